"""What asking proposals in batches costs a sampler, measured on a synthetic landscape.

    python scripts/search_batch_quality.py                  # TPE and random, batches 1-16, 20 repetitions
    python scripts/search_batch_quality.py --samplers tpe,gp --reps 5

No training: the objective is a smooth accuracy landscape shaped like the log's MLP
searches (best at lr 3e-3 and width 256, falling off quadratically in log lr and log
width, a penalty for depth 3) plus seed noise of 0.4 points — the seed standard
deviation tunebook measured — averaged over 2 seeds per proposal, as a search does.
Proposals are asked through tunebook's own path (``search.open_batch``: a study rebuilt
from the record, a sampler seeded per batch, the batch asked before any result is told).

Printed: for each sampler and batch size, the mean regret (optimum minus the *true*
value of the proposal with the best observed mean) after 48 proposals, in accuracy
points, with its standard error over repetitions; and the same after 24.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SPACE = """
[study]
name = "synthetic"
seeds = 2
sampler = "{sampler}"
trials = {trials}
batch = {batch}
sampler_seed = {seed}
confirm = 0
[search]
lr = {{ low = 1e-4, high = 1e-1, log = true }}
width = {{ low = 32, high = 1024, log = true }}
depth = {{ low = 1, high = 3 }}
dropout = {{ low = 0.0, high = 0.5 }}
"""
OPTIMUM = 0.90


def true_value(p: dict) -> float:
    return (OPTIMUM - 0.010 * (math.log10(p["lr"]) - math.log10(3e-3)) ** 2 * 4
            - 0.004 * (math.log2(p["width"]) - 8) ** 2 - 0.006 * (p["depth"] == 3) - 0.02 * p["dropout"] ** 2)


def one_search(sampler: str, batch: int, trials: int, seed: int) -> list[tuple[float, float]]:
    """(observed mean, true value) of each proposal, in order."""
    from tunebook.analysis.search import ProposalResult
    from tunebook.sampling import open_batch
    from tunebook.spec import parse_spec

    spec = parse_spec(SPACE.format(sampler=sampler, trials=trials, batch=batch, seed=seed))
    noise = random.Random(seed * 7919 + batch)
    done: list[ProposalResult] = []
    out = []
    b = 0
    while len(done) < trials:
        _, _, new = open_batch(spec, done, b, [], len(done), min(batch, trials - len(done)))
        for p in new:
            truth = true_value(dict(p.params))
            observed = sum(truth + noise.gauss(0, 0.004) for _ in range(2)) / 2
            done.append(ProposalResult(p, (), (), (observed,)))
            out.append((observed, truth))
        b += 1
    return out


def regret(history: list[tuple[float, float]], n: int) -> float:
    best_observed = max(history[:n], key=lambda h: h[0])
    return 100 * (OPTIMUM - best_observed[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samplers", default="random,tpe")
    ap.add_argument("--batches", default="1,4,8,16")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--trials", type=int, default=48)
    args = ap.parse_args()
    print(f"# regret in accuracy points (optimum {100 * OPTIMUM:.1f} %) of the proposal with the best observed "
          f"mean; mean ± standard error over {args.reps} repetitions")
    print(f"{'sampler':>8} {'batch':>6} {'after ' + str(args.trials // 2):>16} {'after ' + str(args.trials):>16}")
    for sampler in args.samplers.split(","):
        for batch in map(int, args.batches.split(",")):
            half, full = [], []
            for rep in range(args.reps):
                h = one_search(sampler, batch, args.trials, rep)
                half.append(regret(h, args.trials // 2))
                full.append(regret(h, args.trials))

            def fmt(xs):
                m = sum(xs) / len(xs)
                se = (sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) ** 0.5 / len(xs) ** 0.5
                return f"{m:6.2f} ± {se:4.2f}"
            print(f"{sampler:>8} {batch:>6} {fmt(half):>16} {fmt(full):>16}", flush=True)


if __name__ == "__main__":
    main()
