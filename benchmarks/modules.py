"""A user's CNN stacked with torch.func against the one-by-one loop (plain torch.optim),
side by side in one run: members 1, 4 and 16 (seeds), the same trials both ways.

    python benchmarks/modules.py                      # 6 000 training images, 1 epoch, batch 64
    python benchmarks/modules.py --subset 20000 --members 1 4 16 32
    python benchmarks/modules.py --mlp                # the same MLP three ways (which engine wins where)

The CNN: conv 1→8 (3×3) → ReLU → max-pool → conv 8→16 → ReLU → max-pool → linear 784→10,
on Fashion-MNIST as 1×28×28 images, Adam. Prints seconds per model-epoch for each way and
the speed-up of the stack (one-by-one time ÷ stacked time). Each row runs in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, sys, time
import torch
from torch import nn
from tunebook.data import load_dataset
from tunebook.engine import modules
from tunebook.engine.common import DeviceData
from tunebook.spec import parse_spec
members, subset, how, device = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
d = DeviceData.from_dataset(load_dataset(train_subset=subset), device)
def cnn(c):
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 7 * 7, 10))
cfgs = parse_spec(f'[study]\nname = "b"\nseeds = {members}\n[defaults]\nepochs = 1\nbatch_size = 64\n').configs()
t0 = time.perf_counter()
if how == "stacked":
    notes = []
    modules.train_modules(cfgs, d, cnn, (1, 28, 28), notes=notes)
    assert not notes, notes
else:
    for c in cfgs:
        modules.train_module_alone(c, d, cnn, (1, 28, 28))
if device != "cpu":
    torch.cuda.synchronize()
print(json.dumps((time.perf_counter() - t0) / members))
"""


MLP_CHILD = r"""
import json, sys, time
import torch
from torch import nn
from tunebook.data import load_dataset
from tunebook.engine import modules, stacked
from tunebook.engine.common import DeviceData
from tunebook.spec import parse_spec
members, subset, how, device = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
d = DeviceData.from_dataset(load_dataset(train_subset=subset), device)
def mlp(c):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
cfgs = parse_spec(f'[study]\nname = "b"\nseeds = {members}\n[defaults]\nlayers = [256, 256]\nepochs = 1\n'
                  'batch_size = 64\n').configs()
t0 = time.perf_counter()
if how == "hand-written":
    stacked.train_group(cfgs, d)
elif how == "torch.func":
    notes = []
    modules.train_modules(cfgs, d, mlp, (784,), notes=notes)
    assert not notes, notes
else:
    for c in cfgs:
        modules.train_module_alone(c, d, mlp, (784,))
if device != "cpu":
    torch.cuda.synchronize()
print(json.dumps((time.perf_counter() - t0) / members))
"""


def mlp_seconds(members: int, subset: int, how: str, device: str) -> float:
    p = subprocess.run([sys.executable, "-c", MLP_CHILD, str(members), str(subset), how, device], capture_output=True,
                       text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def seconds(members: int, subset: int, how: str, device: str) -> float:
    p = subprocess.run([sys.executable, "-c", CHILD, str(members), str(subset), how, device], capture_output=True,
                       text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--subset", type=int, default=6000, help="training images")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--mlp", action="store_true", help="a 256-256 MLP: tunebook's engine, torch.func, one by one")
    args = ap.parse_args()
    import torch

    if args.mlp:
        print(f"MLP 256-256 on {args.subset} images, 1 epoch, batch 64, {args.device}; seconds per model-epoch")
        print("| members | hand-written stacked engine | torch.func stack | one by one (torch.optim) |")
        print("|---|---|---|---|")
        for m in args.members:
            row = [mlp_seconds(m, args.subset, how, args.device) for how in ("hand-written", "torch.func", "alone")]
            print(f"| {m} | {row[0]:.3f} | {row[1]:.3f} | {row[2]:.3f} |", flush=True)
        return

    print(f"CNN on {args.subset} Fashion-MNIST images, 1 epoch, batch 64, {args.device}, {torch.get_num_threads()} threads; "
          "seconds per model-epoch (training and evaluation)")
    print("| members | one by one | stacked (torch.func) | one by one ÷ stacked |")
    print("|---|---|---|---|")
    for m in args.members:
        alone, stacked = seconds(m, args.subset, "alone", args.device), seconds(m, args.subset, "stacked", args.device)
        print(f"| {m} | {alone:.3f} | {stacked:.3f} | {alone / stacked:.2f} |", flush=True)


if __name__ == "__main__":
    main()
