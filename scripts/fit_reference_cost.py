"""Fit the time-alone cost model (seconds ≈ a · steps + b · FLOPs) to the stacked groups
stored under a folder, per machine: how `analysis.cost.REFERENCE_TIME` was obtained.

    python scripts/fit_reference_cost.py /tmp/prog

Reports never use a fit of their own run (group times move with the machine's load: the
same fit went from 49 to 318 s per TFLOP between two runs on one loaded machine); a fit
made on a quiet machine can become the reference by editing REFERENCE_TIME.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tunebook.analysis.cost import REFERENCE_TIME, fit_cost_models  # noqa: E402
from tunebook.results import load_runs  # noqa: E402


def main(root: str) -> None:
    for model in fit_cost_models(load_runs(root)).values():
        print(model.describe())
    a, b, _, where = REFERENCE_TIME["cpu"]
    print(f"reference now (cpu): {1e3 * a:.3f} ms per step + {1e12 * b:.3f} s per TFLOP — {where}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "modellogs")
