"""Print how much pairing by seed would gain in each study of a programme (docs/results.md).

    python scripts/pairing_table.py /tmp/prog

Trials with the same seed share their data order and dropout masks (counter-based
randomness), so two configurations' results on one seed are correlated. For every pair of
configurations of a study that trained on the same seeds with the same data order (same
batch size, dataset, split and subset), it measures the seed-to-seed correlation of
val_acc and the standard error of the mean difference, paired (per-seed differences)
against unpaired (Welch). For each `compare` hypothesis whose arms are one configuration
each, it prints the seeds per arm a fixed-n two-sided test at alpha 0.05 would need for 80 %
power at the observed difference, unpaired and paired. Measured from the stored runs; with
5 seeds per configuration each correlation is a rough estimate, the medians less so.
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tunebook.analysis.stats import seeds_needed  # noqa: E402
from tunebook.analysis.study import analyze  # noqa: E402
from tunebook.hypotheses import matches  # noqa: E402

METRIC = "val_acc"


def pairable(a, b) -> bool:
    keys = ("batch_size", "dataset", "validation", "split_seed", "train_subset")
    return a.seeds == b.seeds and len(a.seeds) >= 3 and all(getattr(a.config, k) == getattr(b.config, k) for k in keys)


def main(root: str) -> None:
    print("| study | pairable configuration pairs | median seed-to-seed correlation | "
          "median SE paired / SE unpaired |")
    print("|---|---|---|---|")
    rows = []
    for folder in sorted(p.parent for p in Path(root).glob("*/study.toml")):
        a = analyze(folder)
        corr, ratio = [], []
        for x, y in itertools.combinations([c for c in a.configs if c.n_complete], 2):
            if not pairable(x, y):
                continue
            vx, vy = np.asarray(x.values[METRIC]), np.asarray(y.values[METRIC])
            if vx.std() == 0 or vy.std() == 0:
                continue
            corr.append(float(np.corrcoef(vx, vy)[0, 1]))
            ratio.append(float(np.std(vx - vy, ddof=1) / math.sqrt(vx.var(ddof=1) + vy.var(ddof=1))))
        med = (lambda v: f"{np.median(v):.2f}" if v else "—")  # noqa: E731
        print(f"| {folder.name} | {len(corr)} | {med(corr)} | {med(ratio)} |")
        for h in a.spec.hypotheses:
            if h.kind != "compare" or h.expect == "a ~ b":
                continue
            xs = [c for c in a.configs if c.n_complete and matches(h.a, c.config)]
            ys = [c for c in a.configs if c.n_complete and matches(h.b, c.config)]
            if len(xs) != 1 or len(ys) != 1 or not pairable(xs[0], ys[0]):
                continue
            vx, vy = np.asarray(xs[0].values[METRIC]), np.asarray(ys[0].values[METRIC])
            diff = float(vx.mean() - vy.mean())
            sd_u = math.sqrt((vx.var(ddof=1) + vy.var(ddof=1)) / 2)
            sd_d = float(np.std(vx - vy, ddof=1))
            rows.append((folder.name, h.id, diff, seeds_needed(diff, sd_u), seeds_needed(diff, sd_d, two_sample=False)))
    print("\n| study | hypothesis | observed Δ val_acc | seeds per arm, unpaired (Welch) | seeds, paired |")
    print("|---|---|---|---|---|")
    for study, hid, diff, unpaired, paired in rows:
        print(f"| {study} | {hid} | {100 * diff:+.2f} % | {unpaired or '> 10000'} | {paired or '> 10000'} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "modellogs")
