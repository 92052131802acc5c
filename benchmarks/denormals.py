"""What flushing denormals buys: a group of one trained epoch by epoch on the CPU, with
tunebook's flush-to-zero and without it (``TUNEBOOK_FLUSH_DENORMALS=0``), side by side.

    python benchmarks/denormals.py                 # widths 64, 256, 512 and 272-272-272, 4 epochs
    python benchmarks/denormals.py --layers 256 --epochs 6 --dropout 0.2

Each row runs in a fresh process. Prints seconds per epoch (the full 54 000-image split,
batch 64, Adam) and the ratio of the last epoch's time without to with the flush: a float32
number below 1.2e-38 costs an x86 core up to a hundred times more per operation, and
training makes more of them epoch by epoch (Adam's second moments of tiny gradients).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
from tunebook.data import load_dataset
from tunebook.engine import stacked
from tunebook.engine.common import DeviceData
from tunebook.spec import parse_spec
layers, epochs, dropout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
d = DeviceData.from_dataset(load_dataset(), "cpu")
cfgs = parse_spec(f'[study]\nname = "d"\nseeds = 1\n[defaults]\nlayers = [{layers}]\nepochs = {epochs}\n'
                  f'batch_size = 64\ndropout = {dropout}\n').configs()
marks = [time.perf_counter()]
stacked.train_group(cfgs, d, hooks=[lambda e: marks.append(time.perf_counter())])
print(json.dumps([b - a for a, b in zip(marks, marks[1:])]))
"""


def epochs_of(layers: str, epochs: int, dropout: float, flush: bool) -> list[float]:
    env = dict(os.environ, TUNEBOOK_FLUSH_DENORMALS="1" if flush else "0")
    p = subprocess.run([sys.executable, "-c", CHILD, layers, str(epochs), str(dropout)], env=env,
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", nargs="+", default=["64", "256", "512", "272,272,272"])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--dropout", type=float, default=0.0)
    args = ap.parse_args()
    for layers in args.layers:
        layers = layers.replace("-", ",")
        off = epochs_of(layers, args.epochs, args.dropout, flush=False)
        on = epochs_of(layers, args.epochs, args.dropout, flush=True)
        fmt = lambda xs: " ".join(f"{x:.2f}" for x in xs)  # noqa: E731
        print(f"[{layers}] dropout {args.dropout:g}: without flush {fmt(off)} s; with flush {fmt(on)} s per epoch; "
              f"last epoch {off[-1] / on[-1]:.2f}x faster, all epochs {sum(off) / sum(on):.2f}x", flush=True)


if __name__ == "__main__":
    main()
