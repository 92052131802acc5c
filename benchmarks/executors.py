"""Executors side by side: the same study through local, process and ray, end to end.

    python benchmarks/executors.py                       # CPU: the width grid, local vs process vs ray (2 workers)
    python benchmarks/executors.py --device cuda:0 --workers 2,3,4 --concurrent 2,4   # one GPU

Each variant is what `tunebook run STUDY --out FRESH --executor E --workers N --quiet
--no-report` does: executor start-up (spawning workers, starting Ray), the planner's
calibration (each variant has its own fresh output root, so each measures its own
workers' device), training, and storing every run folder. Printed: wall seconds, trials
per minute, and each variant's ratio to the local executor measured in this same run
(these machines are noisy: compare within a run, not across runs). Every variant's
numbers are also checked equal to the local executor's (same seeds ⇒ same numbers;
only when groups are planned alike, which `--no-pad` guarantees).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def numbers(outcome) -> dict:
    return {r.trial_id: (r.result.status, r.result.history.val_acc, r.result.test_acc) for r in outcome.runs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default=str(ROOT / "examples" / "fashion-mnist" / "01-width-grid.toml"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--executors", default="local,process,ray")
    ap.add_argument("--workers", default="2", help="comma-separated worker counts for process and ray")
    ap.add_argument("--concurrent", default="", help="also local with these --concurrent counts (e.g. 2,4)")
    ap.add_argument("--no-pad", action="store_true", help="exact shapes only: every variant plans alike")
    ap.add_argument("--seeds", type=int, help="smoke: first N seeds")
    ap.add_argument("--epochs", type=int, help="smoke: N epochs")
    ap.add_argument("--subset", type=int, help="smoke: N training samples")
    args = ap.parse_args()

    import torch

    from tunebook.engine.common import device_name, resolve_device
    from tunebook.execute import load_specs, run_studies

    overrides = {k: v for k, v in (("seeds", args.seeds), ("epochs", args.epochs), ("train_subset", args.subset))
                 if v is not None}
    specs = [s.with_overrides(**overrides) for s in load_specs(args.study)]
    trials = len({c.trial_id for s in specs for c in s.configs()})
    print(f"study: {args.study} ({trials} trials); device: {device_name(resolve_device(args.device))}; "
          f"torch {torch.__version__}; {torch.get_num_threads()} threads here")
    variants = []
    for name in args.executors.split(","):
        if name == "local":
            variants.append(("local", dict(executor="local")))
            variants += [(f"local --concurrent {n}", dict(executor="local", concurrent=int(n)))
                         for n in args.concurrent.split(",") if n]
        else:
            variants += [(f"{name} --workers {n}", dict(executor=name, workers=int(n)))
                         for n in args.workers.split(",")]
    rows, base, ref = [], None, None
    for label, kw in variants:
        with tempfile.TemporaryDirectory(prefix="tb-exec-") as out:
            t0 = time.perf_counter()
            device = args.device.split(":")[0] if kw["executor"] == "ray" else args.device  # Ray picks the GPU
            outcomes = run_studies(specs, out, device=device, pad=not args.no_pad, **kw)
            seconds = time.perf_counter() - t0
        got = {k: v for o in outcomes for k, v in numbers(o).items()}
        trained = sum(o.trained for o in outcomes)
        bad = sum(1 for o in outcomes for r in o.runs if r.result.status != "complete")
        if ref is None:
            ref = got
        same = "same numbers" if got == ref else ("numbers differ (planned differently: use --no-pad)"
                                                  if got.keys() == ref.keys() else "DIFFERENT TRIALS")
        base = base or seconds
        rows.append((label, seconds, trials / seconds * 60, base / seconds, trained, bad, same))
        print(f"{label:22s} {seconds:8.1f} s  {trials / seconds * 60:7.1f} trials/min  {base / seconds:5.2f}× local"
              f"  ({trained} trained, {bad} not complete; {same})", flush=True)
    print("\n| executor | wall s | trials/min | vs local |\n|---|---:|---:|---:|")
    for label, seconds, tpm, ratio, *_ in rows:
        print(f"| {label} | {seconds:.1f} | {tpm:.1f} | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
