"""tunebook's search against the peer's Optuna loop, side by side in one run, on the same
space, proposals and seeds.

    python benchmarks/search_vs_peer.py                       # 30 proposals, sampler seed 0
    python benchmarks/search_vs_peer.py --seeds 0 1 2         # several TPE paths (one is luck)
    python benchmarks/search_vs_peer.py --prune --trials 30   # both with a median pruner
    python benchmarks/search_vs_peer.py --pruner halving      # successive halving in both
    python benchmarks/search_vs_peer.py --pruner halving --plain-peer  # and the peer without a pruner, too
    python benchmarks/search_vs_peer.py --only tunebook       # tunebook alone (for profiling)

The space (both): depth 1–3, one width 32–512 (log), lr 1e-4–1e-1 (log), dropout 0–0.5,
optimizer adam / momentum (SGD, 0.9) / rmsprop; batch 64, 3 epochs, 1 seed; TPE. The peer
is ``benchmarks/peers/optuna_loop.py`` (one trial at a time, a DataLoader per trial);
tunebook runs ``tunebook run`` on the study below (proposals asked ``--batch`` at a time,
each batch trained as stacked groups; no confirmation). Each runs in a process of its own,
timed from outside (process start, imports and dataset loading included in both). Prints,
per sampler seed, both wall times, both best validation accuracies, and the ratio
tunebook / peer.

Pruners (``--pruner``): ``median`` is Optuna's MedianPruner in both; ``halving`` is
successive halving in both — Optuna's SuccessiveHalvingPruner in the peer's loop (one trial
at a time), tunebook's synchronous successive halving over each batch (``pruner =
"halving"``: rungs at 1, 3, 9 epochs, the best third of the batch goes on).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent

STUDY = """[study]
name = "peer-space"
seeds = 1
sampler = "tpe"
sampler_seed = {seed}
trials = {trials}
batch = {batch}
confirm = 0
pruner = "{pruner}"
[defaults]
epochs = 3
batch_size = 64
[search]
depth = {{ low = 1, high = 3 }}
width = {{ low = 32, high = 512, log = true }}
lr = {{ low = 1e-4, high = 1e-1, log = true }}
dropout = {{ low = 0.0, high = 0.5 }}
optimizer = {{ choices = ["adam", "momentum", "rmsprop"] }}
"""


def peer(trials: int, seed: int, pruner: str, device: str = "cpu") -> dict:
    cmd = [sys.executable, str(HERE / "peers" / "optuna_loop.py"), "--trials", str(trials), "--sampler-seed", str(seed),
           "--device", device, "--pruner", pruner]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if p.returncode:
        sys.exit(f"peer: exit {p.returncode}\n{p.stderr}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return {**out, "seconds": seconds, "loop_seconds": out["seconds"]}


def tunebook(trials: int, seed: int, pruner: str, batch: int, extra: list[str], device: str = "cpu") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "peer-space.toml"
        study.write_text(STUDY.format(seed=seed, trials=trials, batch=batch, pruner=pruner))
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "tunebook", "run", str(study), "--out", f"{tmp}/out", "--quiet",
                            "--no-report", "--device", device, *extra], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if p.returncode:
            sys.exit(f"tunebook: exit {p.returncode}\n{p.stderr}")
        best, pruned = 0.0, 0
        for result in Path(f"{tmp}/out/peer-space/runs").glob("*/result.toml"):
            r = tomllib.loads(result.read_text())
            pruned += r["status"] == "pruned"
            if r["status"] == "complete":
                best = max(best, r["val_acc"])
    return {"seconds": seconds, "best": best, "pruned": pruned}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--batch", type=int, default=8, help="tunebook: proposals asked at a time")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="TPE sampler seeds")
    ap.add_argument("--pruner", choices=("none", "median", "halving"), default="none", help="the pruner of both")
    ap.add_argument("--prune", action="store_const", const="median", dest="pruner", help="--pruner median")
    ap.add_argument("--plain-peer", action="store_true",
                    help="with --prune: also run the peer without a pruner (tunebook pruned against the plain loop)")
    ap.add_argument("--only", choices=("peer", "tunebook"))
    ap.add_argument("--device", default="cpu", help="cpu or cuda, for both")
    ap.add_argument("--tunebook-args", default="", help="more `tunebook run` flags, e.g. '--executor process'")
    args = ap.parse_args()
    rows = []
    for seed in args.seeds:
        pruning = args.pruner != "none"
        plain = (peer(args.trials, seed, "none", args.device)
                 if pruning and args.plain_peer and args.only != "tunebook" else None)
        a = peer(args.trials, seed, args.pruner, args.device) if args.only != "tunebook" else None
        b = (tunebook(args.trials, seed, args.pruner, args.batch, args.tunebook_args.split(), args.device)
             if args.only != "peer" else None)
        rows.append((seed, a, b, plain))
        line = f"seed {seed}:"
        if a:
            line += (f" peer {a['seconds']:.1f} s (its loop {a['loop_seconds']:.1f} s) best {a['best']:.4f} "
                     f"({a['pruned']} pruned);")
        if b:
            line += f" tunebook {b['seconds']:.1f} s best {b['best']:.4f} ({b['pruned']} pruned);"
        if a and b:
            line += f" ratio {b['seconds'] / a['seconds']:.2f}"
        if plain:
            line += f"; peer without pruner {plain['seconds']:.1f} s best {plain['best']:.4f}"
            if b:
                line += f", tunebook pruned / plain peer {b['seconds'] / plain['seconds']:.2f}"
        print(line, flush=True)
    both = [(a, b) for _, a, b, _ in rows if a and b]
    if len(both) > 1:
        ratio = sum(b["seconds"] for _, b in both) / sum(a["seconds"] for a, _ in both)
        print(f"all seeds: tunebook / peer wall time {ratio:.2f}; mean best: peer "
              f"{sum(a['best'] for a, _ in both) / len(both):.4f}, tunebook {sum(b['best'] for _, b in both) / len(both):.4f}")
    plains = [(p, b) for _, _, b, p in rows if p and b]
    if len(plains) > 1:
        ratio = sum(b["seconds"] for _, b in plains) / sum(p["seconds"] for p, _ in plains)
        print(f"all seeds: tunebook pruned / plain peer wall time {ratio:.2f}; mean best of the plain peer "
              f"{sum(p['best'] for p, _ in plains) / len(plains):.4f}")


if __name__ == "__main__":
    main()
