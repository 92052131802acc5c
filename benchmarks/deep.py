"""What norms, residual skips and schedules cost: seconds per model-epoch of a stacked
group, plain against each option, and the reference trainer (one torch.nn model at a
time) on the same trials — side by side in one run, each row in a fresh process.

    python benchmarks/deep.py                         # width 128, depth 4, 4 seeds stacked, 2 epochs
    python benchmarks/deep.py --width 256 --depth 8 --seeds 8

Rows: plain, norm = "batch", norm = "layer", residual, batch norm + residual, a cosine
schedule with a warm-up epoch. Each runs the full 54 000-image split at batch 64 with Adam;
the time is the mean of the epochs after the first (the first pays warm-up costs).
Prints the stacked and reference seconds per model-epoch and the ratio of each option to
the plain network on the same engine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
import torch
from tunebook.data import load_dataset
from tunebook.engine import reference, stacked
from tunebook.engine.common import DeviceData
from tunebook.spec import parse_spec
extra, width, depth, seeds, epochs, engine = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
d = DeviceData.from_dataset(load_dataset(), "cpu")
cfgs = parse_spec(f'[study]\nname = "d"\nseeds = {seeds}\n[defaults]\nwidth = {width}\ndepth = {depth}\n'
                  f'epochs = {epochs}\nbatch_size = 64\n' + extra.replace(';', '\n')).configs()
marks = []
hook = lambda e: marks.append(time.perf_counter())
t0 = time.perf_counter()
if engine == "stacked":
    marks.append(t0)
    stacked.train_group(cfgs, d, hooks=[hook])
    per = [(b - a) / len(cfgs) for a, b in zip(marks, marks[1:])][1:]
else:
    per = []
    for c in cfgs:
        marks = [time.perf_counter()]
        reference.train_one(c, d, hooks=[hook])
        per += [b - a for a, b in zip(marks, marks[1:])][1:]
print(json.dumps(sum(per) / len(per)))
"""

ROWS = [("plain", ""), ("norm = batch", 'norm = "batch"'), ("norm = layer", 'norm = "layer"'),
        ("residual", "residual = true"), ("batch norm + residual", 'norm = "batch";residual = true'),
        ("cosine, warmup 1", 'schedule = "cosine";warmup = 1')]


def seconds(extra: str, args, engine: str) -> float:
    p = subprocess.run([sys.executable, "-c", CHILD, extra, str(args.width), str(args.depth), str(args.seeds),
                        str(args.epochs), engine], capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--seeds", type=int, default=4, help="members of the stacked group")
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    print(f"width {args.width}, depth {args.depth}, {args.seeds} seeds; seconds per model-epoch (epochs 2+)")
    print("| option | stacked | × plain | reference | × plain | reference / stacked |")
    print("|---|---|---|---|---|---|")
    base = {}
    for name, extra in ROWS:
        s, r = seconds(extra, args, "stacked"), seconds(extra, args, "reference")
        base.setdefault("s", s)
        base.setdefault("r", r)
        print(f"| {name} | {s:.3f} | {s / base['s']:.2f} | {r:.3f} | {r / base['r']:.2f} | {r / s:.2f} |", flush=True)


if __name__ == "__main__":
    main()
