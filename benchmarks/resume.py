"""A budget that stops a one-group study mid-way, the same command going on from the
checkpoint, and a run never stopped — side by side, through the CLI.

    python benchmarks/resume.py                  # 16 trials of [128] on the full dataset, --budget 8s
    python benchmarks/resume.py --budget 10s --epochs 4

Prints the wall time of each command, the time the budget stop took past its budget, the
checkpoint's size, and whether every stored number (curves, test accuracy, accuracy by
class) of the stopped-and-resumed study equals the never-stopped one's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY = """[study]
name = "resume"
seeds = 4
[defaults]
layers = [128]
epochs = {epochs}
batch_size = 128
[grid]
lr = [0.001, 0.003, 0.01, 0.03]
"""


def tunebook(*args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "tunebook", *args], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"tunebook {' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    return time.perf_counter() - t0, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", default="8s", help="less than the study needs (about 14 s here)")
    ap.add_argument("--epochs", type=int, default=6)
    args = ap.parse_args()
    import tunebook as tb

    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "resume.toml"
        study.write_text(STUDY.format(epochs=args.epochs))
        common = ["--quiet", "--no-report", "--device", "cpu"]
        stopped, text = tunebook("run", str(study), "--out", f"{tmp}/a", "--budget", args.budget, *common)
        said = [line.strip() for line in text.splitlines() if "budget spent" in line or line.startswith("done in")]
        resumed, _ = tunebook("run", str(study), "--out", f"{tmp}/a", *common)
        whole, _ = tunebook("run", str(study), "--out", f"{tmp}/b", *common)
        numbers = lambda folder: {r.trial_id: (r.result.history.train_loss, r.result.history.val_acc,  # noqa: E731
                                               r.result.test_acc, r.result.val_class_acc)
                                  for r in tb.load_runs(folder)}
        same = numbers(f"{tmp}/a/resume") == numbers(f"{tmp}/b/resume")
    print(f"--budget {args.budget}: the command took {stopped:.1f} s (process start and data loading included)")
    for line in said or ["the study finished within the budget"]:
        print(f"  {line}")  # "done in": the training and storing alone, as the command says it
    print(f"the same command again: {resumed:.1f} s; a run never stopped: {whole:.1f} s")
    print(f"stopped + resumed / never stopped: {(stopped + resumed) / whole:.2f}")
    print(f"every stored number equal to the never-stopped run's: {same}")


if __name__ == "__main__":
    main()
