"""Print the tables of docs/results.md from a programme's run folders.

    python scripts/results_tables.py modellogs

For every table of the hand-written log (../shared/seed/experiment-log.md) it prints
the log's single-run figure beside tunebook's mean ± 95 % CI over the seeds, then every
verdict. The log's numbers are typed in below from the log (its "accuracy" is Keras'
validation accuracy with the test set as validation data, so it is compared with
tunebook's test_acc; its seconds are Keras on the author's machine).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tunebook.hypotheses import matches  # noqa: E402
from tunebook.analysis.study import analyze  # noqa: E402

# (study, selector, the log's label, the log's accuracy %, the log's seconds)
LOG = {
    "Experiment 1: width grid, 3 epochs (the log quotes two cells)": [
        ("01-width-grid", {"layers": [128, 128]}, "128-128", 87.17, None),
        ("01-width-grid", {"layers": [256, 256]}, "256-256", 84.68, None),
    ],
    "Experiment 2: epochs vs size": [
        ("02-epochs-vs-size", {"layers": [w, w], "epochs": e}, f"{w}-{w}, {e} epochs", acc, sec)
        for e, row in ((3, [(84.88, 7.3), (86.90, 9.2), (86.97, 13.0)]),
                       (5, [(87.09, 12.4), (87.02, 16.2), (87.69, 26.1)]),
                       (10, [(87.77, 30.7), (88.52, 35.1), (88.58, 40.4)]))
        for w, (acc, sec) in zip((64, 128, 256), row)
    ] + [("02-epochs-vs-size", {"layers": [w, w], "epochs": 15}, f"{w}-{w}, 15 epochs", None, None)
         for w in (64, 128, 256)],
    "Experiment 3: depth, 5 epochs": [
        ("03-depth", {"layers": [128, 128]}, "128-128", 87.67, 13.4),
        ("03-depth", {"layers": [128, 128, 128]}, "128-128-128", 87.79, 15.6),
        ("03-depth", {"layers": [256, 256]}, "256-256", 87.81, 19.8),
        ("03-depth", {"layers": [256, 256, 256]}, "256-256-256", 87.90, 21.3),
    ],
    "Experiment 4: extended width, 5 epochs": [
        ("04-extended-width", {"layers": [256, 256]}, "256-256", 88.03, 22.1),
        ("04-extended-width", {"layers": [512, 512]}, "512-512", 87.94, 28.9),
        ("04-extended-width", {"layers": [1024, 1024]}, "1024-1024", 88.35, 63.2),
    ],
    "Final summary of all experiments: the log's accuracy rankings (5 epochs)": [
        ("04-extended-width", {"layers": [1024, 1024]}, "1. 1024-1024", 88.35, 63.2),
        ("04-extended-width", {"layers": [256, 256]}, "2. 256-256", 88.03, 22.1),
        ("05-batch-size", {"batch_size": 32}, "3. 256-256 + batch 32", 87.95, 27.6),
        ("03-depth", {"layers": [256, 256, 256]}, "4. 256-256-256", 87.90, 21.3),
        ("03-depth", {"layers": [128, 128, 128]}, "5. 128-128-128", 87.79, 15.6),
        ("03-depth", {"layers": [128, 128]}, "6. 128-128", 87.67, 13.4),
    ],
    "Experiment 5: batch size, 256-256, 5 epochs": [
        ("05-batch-size", {"batch_size": b}, f"batch {b}", acc, sec)
        for b, acc, sec in ((16, 87.12, 53.4), (32, 87.95, 27.6), (64, 87.75, 19.0), (128, 87.60, 14.8))
    ],
}


def ci(c, metric: str) -> str:
    s = c.stats[metric]
    hw = "" if math.isnan(s.half_width) else f" ± {100 * s.half_width:.2f}"
    return f"{100 * s.mean:.2f}{hw}"


def main(root: str) -> None:
    root = Path(root)
    analyses = {}
    for folder in sorted(p.parent for p in root.glob("*/study.toml")):
        analyses[folder.name] = analyze(folder)
    for title, rows in LOG.items():
        print(f"### {title}\n")
        print("| configuration | log: accuracy (1 run) | tunebook test_acc % (mean ± 95 % CI) | "
              "tunebook val_acc % | seeds | log: seconds | tunebook: s to train alone (modelled) |")
        print("|---|---|---|---|---|---|---|")
        for study, sel, label, acc, sec in rows:
            a = analyses.get(study)
            cs = [c for c in a.configs if matches(sel, c.config)] if a else []
            if len(cs) != 1:
                print(f"| {label} | {acc} | (not run) | | | {sec} | |")
                continue
            c = cs[0]
            print(f"| {label} | {'—' if acc is None else f'{acc:.2f}'} | {ci(c, 'test_acc')} | {ci(c, 'val_acc')} | "
                  f"{c.n_complete} | {'—' if sec is None else sec} | {c.seconds_alone:.2f} |")
        print()
    print("### Verdicts\n")
    print("| study | id | hypothesis | verdict | numbers | seeds that would resolve it |")
    print("|---|---|---|---|---|---|")
    for name, a in analyses.items():
        for v in a.verdicts:
            print(f"| {name} | {v.hypothesis.id} | {v.hypothesis.says} | **{v.verdict}** | {v.detail} | "
                  f"{v.seeds_needed or '—'} |")
    print("\n### Cost models (time alone = a · steps + b · FLOPs, per study)\n")
    for name, a in analyses.items():
        print(f"- {name}: " + "; ".join(m.describe() for m in a.cost_models))
    print("\n### Time per study\n")
    print("| study | trials | training seconds attributed (sum of trial shares) |")
    print("|---|---|---|")
    for name, a in analyses.items():
        own = sum(r.result.train_seconds for r in a.runs if not r.result.derived_from)
        print(f"| {name} | {len(a.runs)} | {sum(r.result.train_seconds for r in a.runs):.1f} "
              f"(of which {own:.1f} in runs not read off a longer one) |")
    print("\n### Stacked groups, by wall time\n")
    groups: dict = {}
    for a in analyses.values():
        for r in a.runs:
            c = r.config
            key = (round(r.result.group_seconds, 3), r.result.group_size, c.label, c.batch_size, c.optimizer)
            groups.setdefault(key, set()).add(c.epochs)
    print("| group wall s | members | layers | batch | optimizer | epoch counts read |")
    print("|---|---|---|---|---|---|")
    for (secs, size, label, batch, opt), epochs in sorted(groups.items(), key=lambda kv: -kv[0][0]):
        print(f"| {secs:.1f} | {size} | {label} | {batch} | {opt} | {', '.join(map(str, sorted(epochs)))} |")
    print(f"\nSum of group wall times: {sum(k[0] for k in groups):.1f} s")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "modellogs")
