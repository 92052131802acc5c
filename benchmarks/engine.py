"""Seconds per model-epoch: the tutorial loop vs tunebook's engines, side by side.

    python benchmarks/engine.py                      # CPU, the four widths of the issue
    python benchmarks/engine.py --device cuda        # on a GPU
    python benchmarks/engine.py --layers 128-128 --rows a,c

Rows, for each layer shape (batch 64, Adam lr 1e-3, the 54 000-image training split):

  (a) tutorial   the idiomatic loop: DataLoader(TensorDataset, shuffle=True), nn.Sequential,
                 torch.optim.Adam, one epoch after 20 warm-up steps;
  (b) reference  tunebook's reference trainer (one nn.Module, data on the device);
  (c) stacked×5  the stacked engine with 5 seeds in one group;
  (d) stacked×T  the stacked engine with the largest group the runner would form
                 (memory budget; on the CPU also its 64-member cap).

Every row runs in a fresh subprocess (its peak memory is that process's alone), and
times the training steps only (no evaluation), synchronising the device. Rows (b)–(d)
train 2 epochs and report the second (on CUDA the first includes graph capture); on the
CPU, (d) is timed over --cpu-big-steps steps of the real epoch loop and scaled to an
epoch, because a 64-member epoch of 1024-1024 takes minutes. The FLOP limit is
6 · params · samples ÷ the float32 matmul rate measured in this run (a large square
matmul). All ratios printed come from numbers measured in this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

ROW_NAMES = {"a": "tutorial", "b": "reference", "c": "stacked×5", "d": "stacked×T", "e": "stacked×1"}


def _sync(device: str) -> None:
    import torch
    if device == "cuda":
        torch.cuda.synchronize()


def _data(device: str):
    from tunebook.data import load_dataset
    from tunebook.engine.common import DeviceData
    return DeviceData.from_dataset(load_dataset(), device)


def _configs(layers: list[int], seeds: int, epochs: int):
    from tunebook.spec import parse_spec
    return parse_spec(f'[study]\nname = "bench"\nseeds = {seeds}\n[defaults]\nlayers = {layers}\n'
                      f'epochs = {epochs}\nbatch_size = 64\noptimizer = "adam"\nlr = 0.001\n').configs()


def row_tutorial(layers, device, **_):
    import torch
    import torch.nn.functional as F
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    d = _data(device)
    dims = [784, *layers, 10]
    mods = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        mods.append(nn.Linear(a, b))
        if i < len(layers):
            mods.append(nn.ReLU())
    model = nn.Sequential(*mods).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(d.x_train, d.y_train), batch_size=64, shuffle=True)

    def train(limit=None):
        for i, (xb, yb) in enumerate(loader):
            if limit is not None and i >= limit:
                break
            opt.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()

    train(20)
    _sync(device)
    t = time.perf_counter()
    train()
    _sync(device)
    return {"T": 1, "seconds": time.perf_counter() - t}


def _engine_row(train_group, layers, device, seeds):
    d = _data(device)
    events = []
    train_group(_configs(layers, seeds, 2), d, hooks=[events.append])
    return {"T": seeds, "seconds": events[-1].train_seconds / seeds,
            "first_epoch": events[0].train_seconds / seeds}


def row_reference(layers, device, **_):
    from tunebook.engine import reference
    d = _data(device)
    events = []
    reference.train_group(_configs(layers, 1, 2), d, hooks=[events.append])
    return {"T": 1, "seconds": events[-1].train_seconds}


def row_stacked5(layers, device, **_):
    from tunebook.engine import stacked
    return _engine_row(stacked.train_group, layers, device, 5)


def row_stacked_big(layers, device, big=None, cpu_big_steps=40, **_):
    import torch
    from tunebook.engine import stacked
    from tunebook.planner import max_members

    dev = torch.device(device)
    t = big or max_members(_configs(layers, 1, 1)[0], dev)
    if device == "cuda":
        out = _engine_row(stacked.train_group, layers, device, t)
        return out
    # CPU: the real epoch loop, timed over a number of steps and scaled to an epoch.
    from tunebook.engine.optim import StackedOptimizer, hparams_of
    d = _data(device)
    members = stacked.plan_members(_configs(layers, t, 1))
    model = stacked.StackedMLP(members, 784, 10, dev)
    opt = StackedOptimizer(model.params, model.grads, [hparams_of(m.lead) for m in members])
    loop = stacked.EpochLoop(model, opt, d, 64)
    perm = stacked.rng.permutations(model.seeds, 1, loop.n)
    loss = torch.zeros(t, dtype=torch.float64)
    correct = torch.zeros(t, dtype=torch.int64)
    for s in range(3):
        loop.step(perm, s, s, loss, correct)
    t0 = time.perf_counter()
    for s in range(3, 3 + cpu_big_steps):
        loop.step(perm, s, s, loss, correct)
    elapsed = time.perf_counter() - t0
    return {"T": t, "seconds": elapsed / cpu_big_steps * loop.steps / t, "steps_timed": cpu_big_steps}


def row_stacked1(layers, device, **_):
    """A group of one (a search's proposal of its own shape)."""
    from tunebook.engine import stacked
    return _engine_row(stacked.train_group, layers, device, 1)


ROWS = {"a": row_tutorial, "b": row_reference, "c": row_stacked5, "d": row_stacked_big, "e": row_stacked1}


def child(args) -> None:
    import torch
    layers = [int(x) for x in args.child_layers.split("-")]
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    out = ROWS[args.child](layers, args.device, big=args.big and int(args.big), cpu_big_steps=args.cpu_big_steps)
    if args.device == "cuda":
        out["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(out))


def matmul_rate(device: str, n: int = 4096, reps: int = 5) -> float:
    import torch
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    _sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t)


def big_for(layers: str, big: str | None) -> int | None:
    if not big:
        return None
    if "=" not in big:
        return int(big)
    sizes = dict(item.split("=") for item in big.split(","))
    return int(sizes[layers]) if layers in sizes else None


def run_row(key: str, layers: str, args, tf32: bool = False, eager: bool = False, flush: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--child", key, "--child-layers", layers, "--device", args.device,
           "--cpu-big-steps", str(args.cpu_big_steps)]
    big = big_for(layers, args.big)
    if big:
        cmd += ["--big", str(big)]
    if tf32:
        cmd += ["--tf32"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if eager:
        env["TUNEBOOK_CUDA_GRAPHS"] = "0"
    if not flush:
        env["TUNEBOOK_FLUSH_DENORMALS"] = "0"
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"row {key} {layers} failed:\n{p.stdout}\n{p.stderr}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--layers", default="64-64,128-128,256-256,1024-1024")
    ap.add_argument("--rows", default="a,b,c,d", help="a tutorial, b reference, c stacked×5, d stacked×T, "
                                                       "e stacked×1 (a group of one)")
    ap.add_argument("--no-flush", action="store_true",
                    help="CPU: also time rows b, c, e without flushing denormals (TUNEBOOK_FLUSH_DENORMALS=0): "
                         "what the flush buys")
    ap.add_argument("--big", help="group size for row (d) instead of the runner's largest: N, or "
                    "per shape as 256-256=2048,1024-1024=256")
    ap.add_argument("--tf32", action="store_true", help="CUDA: also time row (d) with TF32 matmuls")
    ap.add_argument("--eager", action="store_true",
                    help="CUDA: also time rows (c) and (d) without CUDA graphs (TUNEBOOK_CUDA_GRAPHS=0)")
    ap.add_argument("--cpu-big-steps", type=int, default=40)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-layers", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    import torch
    from tunebook.model import param_count

    rate = matmul_rate(args.device)
    dev_name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# benchmarks/engine.py --device {args.device}: {dev_name}, torch {torch.__version__}")
    print(f"float32 matmul rate (4096² square, measured now): {rate / 1e9:.0f} GFLOP/s")
    print("seconds per model-epoch, training steps only, 54 000 samples, batch 64, Adam\n")
    header = f"{'layers':>10} {'row':>10} {'T':>5} {'s/model-epoch':>14} {'vs (a)':>8} {'vs limit':>9} {'peak MB':>9}"
    print(header)
    print("-" * len(header))
    for layers in args.layers.split(","):
        widths = [int(x) for x in layers.split("-")]
        limit = 6 * param_count(widths) * 54_000 / rate
        base = None
        for key in args.rows.split(","):
            r = run_row(key, layers, args)
            if key == "a":
                base = r["seconds"]
            speedup = f"{base / r['seconds']:.2f}×" if base else "—"
            note = f"  (timed over {r['steps_timed']} steps)" if "steps_timed" in r else ""
            print(f"{layers:>10} {ROW_NAMES[key]:>10} {r['T']:>5} {r['seconds']:>14.4f} {speedup:>8} "
                  f"{r['seconds'] / limit:>8.2f}× {r['peak_mb']:>9.0f}{note}", flush=True)
            if key in ("c", "d") and args.eager and args.device == "cuda":
                r = run_row(key, layers, args, eager=True)
                speedup = f"{base / r['seconds']:.2f}×" if base else "—"
                print(f"{layers:>10} {key + ' eager':>10} {r['T']:>5} {r['seconds']:>14.4f} {speedup:>8} "
                      f"{r['seconds'] / limit:>8.2f}× {r['peak_mb']:>9.0f}", flush=True)
            if key in ("b", "c", "e") and args.no_flush and args.device == "cpu":
                r = run_row(key, layers, args, flush=False)
                speedup = f"{base / r['seconds']:.2f}×" if base else "—"
                print(f"{layers:>10} {key + ' no FTZ':>10} {r['T']:>5} {r['seconds']:>14.4f} {speedup:>8} "
                      f"{r['seconds'] / limit:>8.2f}× {r['peak_mb']:>9.0f}", flush=True)
            if key == "d" and args.tf32 and args.device == "cuda":
                r = run_row(key, layers, args, tf32=True)
                speedup = f"{base / r['seconds']:.2f}×" if base else "—"
                print(f"{layers:>10} {'d + TF32':>10} {r['T']:>5} {r['seconds']:>14.4f} {speedup:>8} "
                      f"{r['seconds'] / limit:>8.2f}× {r['peak_mb']:>9.0f}", flush=True)
        print(f"{layers:>10} {'FLOP limit':>10} {'':>5} {limit:>14.4f}")
    print("\n'vs (a)' = (a)'s time ÷ the row's (higher is faster); 'vs limit' = the row's time ÷ the FLOP limit.")


if __name__ == "__main__":
    main()
