"""Stored runs as rows: for ``tunebook ls``, notebooks and pandas."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .store import Run, RunStore, find_studies

#: The columns of `tunebook ls` (each row of runs_table has these and a few more).
COLUMNS = ("study", "trial", "layers", "epochs", "batch", "lr", "val_acc", "test_acc", "seconds", "params", "status")


def load_runs(path: str | Path = "modellogs", problems: list[str] | None = None) -> list[Run]:
    """Every readable run under a study folder or a folder of studies."""
    runs: list[Run] = []
    for study in find_studies(path):
        runs.extend(RunStore(study.parent, study.name).iter_runs(problems))
    return runs


def run_row(run: Run) -> dict[str, Any]:
    c, r = run.config, run.result
    return {"study": run.study, "trial": c.trial_id, "layers": c.label, "epochs": c.epochs,
            "batch": c.batch_size, "lr": c.lr, "optimizer": c.optimizer, "seed": c.seed,
            "val_acc": r.val_acc, "test_acc": r.test_acc, "seconds": r.train_seconds,
            "params": r.params, "status": r.status, "path": str(run.path)}


def runs_table(runs: Sequence[Run]) -> list[dict[str, Any]]:
    return [run_row(r) for r in runs]


def runs_dataframe(runs: Sequence[Run]):
    """A pandas DataFrame of :func:`runs_table` (needs pandas, an optional dependency)."""
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("runs_dataframe needs pandas: pip install pandas") from None
    return pd.DataFrame(runs_table(runs))
