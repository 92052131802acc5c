"""Where a search's time goes: its wall time against the CPU time of the driver (this
process) and of its workers, and the training time the runs recorded.

    python benchmarks/search_cpu.py                    # halving, sampler seed 2, executor auto
    python benchmarks/search_cpu.py --seed 0 --pruner none --executor local

The study is ``benchmarks/search_vs_peer.py``'s (the peer's space, 30 proposals, batch 8).
Prints wall seconds, the core-seconds the machine had (wall × cores), the driver's and the
workers' CPU seconds (``getrusage``), the sum of every run's epoch seconds (training and
evaluation inside epochs), and what is left idle. One run; the machine's load moves it.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_vs_peer import STUDY  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=2, help="TPE sampler seed")
    ap.add_argument("--pruner", choices=("none", "median", "halving"), default="halving")
    ap.add_argument("--executor", default="auto", help="auto (as `tunebook run`), local, process")
    args = ap.parse_args()

    import tunebook
    from tunebook.spec import load_spec

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "peer-space.toml"
        f.write_text(STUDY.format(seed=args.seed, trials=30, batch=8, pruner=args.pruner))
        t0 = time.perf_counter()
        tunebook.run([load_spec(f)], Path(tmp) / "out", tunebook.RunOptions(device="cpu", executor=args.executor),
                     quiet=True)
        wall = time.perf_counter() - t0
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        epochs = sum(sum(tomllib.loads(r.read_text())["history"]["epoch_seconds"])
                     for r in (Path(tmp) / "out" / "peer-space" / "runs").glob("*/result.toml"))
    cores = os.cpu_count() or 1
    driver, workers = me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime
    print(f"seed {args.seed}, pruner {args.pruner}, executor {args.executor}: wall {wall:.1f} s "
          f"= {wall * cores:.1f} core-s on {cores} cores")
    print(f"  driver CPU {driver:.1f} s, workers CPU {workers:.1f} s, inside epochs (sum of runs) {epochs:.1f} s, "
          f"idle {wall * cores - driver - workers:.1f} core-s")


if __name__ == "__main__":
    main()
