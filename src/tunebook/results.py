"""Stored runs as rows: for ``tunebook ls`` and ``export``, notebooks and pandas.

Two shapes, both plain lists of dicts (and DataFrames when pandas is installed):

- :func:`runs_table`: one row per run — every hyperparameter, every final metric, the
  status (with the ``collapsed`` marker), cost and provenance (:data:`RUN_COLUMNS`);
- :func:`epochs_table`: one row per run and epoch — the long form of the curves
  (:data:`EPOCH_COLUMNS`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import operator
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from .datasets import DATASETS
from .errors import SpecError
from .records import HISTORY_KEYS, is_collapsed
from .store import RUN_NAME, Run, RunStore, find_studies

HPARAM_COLUMNS = ("layers", "depth", "activation", "dropout", "epochs", "batch_size", "optimizer", "lr",
                  "momentum", "beta1", "beta2", "alpha", "eps", "weight_decay", "label_smoothing", "init", "norm",
                  "residual", "schedule", "warmup", "regression_loss", "seed")
DATA_COLUMNS = ("dataset", "validation", "split_seed", "train_subset")
METRIC_COLUMNS = ("val_acc", "val_loss", "test_acc", "test_loss", "train_acc", "train_loss", "best_epoch",
                  "val_rmse", "val_mae", "val_r2", "test_rmse", "test_mae", "test_r2")  # the last six: a regression's
RUN_COLUMNS = (("study", "trial", "config") + HPARAM_COLUMNS + ("status", "collapsed") + METRIC_COLUMNS
               + ("epochs_run", "diverged_epoch", "params", "flops", "train_seconds", "group_seconds", "group_size",
                  "derived_from", "device", "engine") + DATA_COLUMNS + ("started", "path"))
#: The long form: every hyperparameter on every row (a curve can be drawn by lr or width
#: without joining the runs' table), then the epoch and its numbers.
EPOCH_COLUMNS = ("study", "trial", "config") + HPARAM_COLUMNS + ("epoch",) + HISTORY_KEYS + ("wall_time",)
#: One row per run and class: a classifier's final validation accuracy within each true
#: class (``TrialResult.val_class_acc``), every hyperparameter on every row.
CLASS_COLUMNS = ("study", "trial", "config") + HPARAM_COLUMNS + ("class_index", "class", "val_class_acc", "path")
#: Columns ls always shows; the hyperparameters that vary among the listed runs go between.
LS_LEFT = ("study", "trial")
#: `ls` shows the model's work (parameters, training FLOPs), not ``train_seconds``: that is a
#: share of a stacked group's wall time, which depends on the grouping and the machine's
#: load (a 32-32 run in a group of 5 "took" longer than a 128-128 run in a group of 25).
#: ``--format csv|json`` and ``export`` keep every column.
LS_RIGHT = ("seed", "val_acc", "test_acc", "params", "flops", "status")


def load_runs(path: str | Path = "modellogs", problems: list[str] | None = None) -> list[Run]:
    """Every readable run (one per trial and study) under a study folder or a folder of studies."""
    runs: list[Run] = []
    for study in find_studies(path):
        runs.extend(RunStore(study.parent, study.name).iter_runs(problems))
    return runs


def run_row(run: Run) -> dict[str, Any]:
    c, r = run.config, run.result
    h = r.history
    m = RUN_NAME.fullmatch(run.path.name)
    row: dict[str, Any] = {"study": run.study, "trial": c.trial_id, "config": c.config_id, **_hparams(c)}
    row |= {"status": r.status, "collapsed": is_collapsed(r, DATASETS[c.dataset].n_classes),
            "val_acc": r.val_acc, "val_loss": r.val_loss, "test_acc": r.test_acc, "test_loss": r.test_loss,
            "train_acc": h.train_acc[-1] if len(h) else math.nan,
            "train_loss": h.train_loss[-1] if len(h) else math.nan, "best_epoch": r.best_epoch,
            **{k: getattr(r, k) for k in ("val_rmse", "val_mae", "val_r2", "test_rmse", "test_mae", "test_r2")},
            "epochs_run": r.epochs_run, "diverged_epoch": r.diverged_epoch, "params": r.params, "flops": r.flops,
            "train_seconds": r.train_seconds, "group_seconds": r.group_seconds, "group_size": r.group_size,
            "derived_from": r.derived_from, "device": r.device, "engine": r.engine}
    row |= {k: (str(v) if k == "validation" else v) for k, v in ((k, getattr(c, k)) for k in DATA_COLUMNS)}
    row |= {"started": m["stamp"] if m else "", "path": str(run.path)}
    return row


def _hparams(c) -> dict[str, Any]:
    """A run's :data:`HPARAM_COLUMNS` (its layers joined by ``-``, their count as depth)."""
    return {"layers": c.label, "depth": len(c.layers)} | {k: getattr(c, k) for k in HPARAM_COLUMNS
                                                          if k not in ("layers", "depth")}


def runs_table(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One dict per run, with the keys of :data:`RUN_COLUMNS`."""
    return [run_row(r) for r in runs]


def epochs_table(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """One dict per run and epoch (the long form of the curves), keys :data:`EPOCH_COLUMNS`."""
    out = []
    for run in runs:
        h = run.result.history
        c = run.config
        hparams = _hparams(c)
        for i in range(len(h)):
            row = {"study": run.study, "trial": run.trial_id, "config": run.config.config_id}
            row |= hparams
            row["epoch"] = i + 1
            row |= {k: getattr(h, k)[i] for k in HISTORY_KEYS}
            row["wall_time"] = h.wall_time[i] if h.wall_time else math.nan
            out.append(row)
    return out


def classes_table(runs: Sequence[Run], problems: list[str] | None = None) -> list[dict[str, Any]]:
    """One dict per complete run and true class (keys :data:`CLASS_COLUMNS`): its final
    validation accuracy within the class, NaN where the validation split has no row of it.
    A regression has no classes; a run stored before tunebook kept the accuracies by class
    (0.2) has none — each such run is named in ``problems``, not given made-up rows."""
    out = []
    for run in runs:
        c, r = run.config, run.result
        info = DATASETS[c.dataset]
        if not info.n_classes or not r.done:
            continue
        if len(r.val_class_acc) != info.n_classes:
            if problems is not None:
                problems.append(f"{run.path}: no validation accuracy by class recorded (stored before tunebook "
                                "kept it); left out of the table by class")
            continue
        hparams = _hparams(c)
        for i, (name, acc) in enumerate(zip(info.classes, r.val_class_acc)):
            out.append({"study": run.study, "trial": c.trial_id, "config": c.config_id, **hparams,
                        "class_index": i, "class": name, "val_class_acc": acc, "path": str(run.path)})
    return out


def _pandas():
    try:
        import pandas as pd
    except ImportError:
        raise ImportError("runs_dataframe needs pandas: pip install 'tunebook[pandas]'") from None
    return pd


def runs_dataframe(runs: Sequence[Run], long: bool = False):
    """:func:`runs_table` (or, with ``long``, :func:`epochs_table`) as a pandas DataFrame."""
    pd = _pandas()
    if long:
        return pd.DataFrame(epochs_table(runs), columns=list(EPOCH_COLUMNS))
    return pd.DataFrame(runs_table(runs), columns=list(RUN_COLUMNS))


def configs_table(analysis) -> list[dict[str, Any]]:
    """One dict per configuration of a study's analysis (``tunebook.analysis.study.analyze``):
    its varying hyperparameters, seeds, each metric's mean and 95 % interval, its cost."""
    rows = []
    for c in analysis.configs:
        row: dict[str, Any] = {"config": c.config.config_id, "layers": c.label}
        row |= {p: c.value(p) for p in analysis.params if p != "layers"}
        row |= {"seeds": len(c.seeds), "diverged": c.n_diverged, "collapsed": c.n_collapsed, "failed": c.n_failed}
        for m, s in c.stats.items():
            row |= {m: s.mean, f"{m}_lo": s.lo, f"{m}_hi": s.hi}
        row |= {"params": c.params, "flops": c.flops, "seconds_alone": c.seconds_alone}
        rows.append(row)
    return rows


def verdicts_table(analysis) -> list[dict[str, Any]]:
    """One dict per hypothesis of a study's analysis: its verdict and the numbers behind it."""
    return [{"hypothesis": v.hypothesis.id, "kind": v.hypothesis.kind, "says": v.hypothesis.says,
             "verdict": v.verdict, "effect": v.effect, "lo": v.lo, "hi": v.hi, "p": v.p,
             "survives_holm": analysis.survives_holm(v.hypothesis.id), "seeds": v.n_seeds, "test": v.test,
             "detail": v.detail} for v in analysis.verdicts]


def configs_dataframe(analysis):
    """:func:`configs_table` as a pandas DataFrame."""
    return _pandas().DataFrame(configs_table(analysis))


def verdicts_dataframe(analysis):
    """:func:`verdicts_table` as a pandas DataFrame."""
    return _pandas().DataFrame(verdicts_table(analysis))


def varying_columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Hyperparameter and data columns whose value differs among ``rows`` (seed excluded)."""
    return [k for k in HPARAM_COLUMNS + DATA_COLUMNS
            if k != "seed" and len({_hashable(r[k]) for r in rows}) > 1]


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


# --- --where and --sort -------------------------------------------------------------------

_OPS = {"=": operator.eq, "==": operator.eq, "!=": operator.ne, "<=": operator.le, ">=": operator.ge,
        "<": operator.lt, ">": operator.gt}
_WHERE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(==|!=|<=|>=|=|<|>)\s*(.*?)\s*")


#: Columns that hold fractions (0–1): ``val_acc>85`` is a wrong unit, ``val_acc>85%`` the same as ``>0.85``.
FRACTION_COLUMNS = ("val_acc", "test_acc", "train_acc")


def parse_where(text: str) -> tuple[str, Any, Any]:
    """``"optimizer=adam"``, ``"lr<0.01"``, ``"val_acc>85%"``, ``"status!=complete"`` → (column, op, value).
    A percentage (``85%``) is a fraction (0.85); a plain number above 1 for an accuracy column
    is refused (it would match nothing); an unknown column gets the nearest names."""
    import difflib

    m = _WHERE.fullmatch(text)
    if not m:
        raise SpecError([f"--where {text!r}: must be COLUMN OP VALUE with OP one of =, !=, <, <=, >, >="])
    col, op, raw = m.groups()
    if col not in RUN_COLUMNS:
        near = difflib.get_close_matches(col, RUN_COLUMNS, n=3)
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        raise SpecError([f"--where {text!r}: unknown column {col!r}{hint} (columns: {', '.join(RUN_COLUMNS)})"])
    raw = raw.strip()
    if raw.endswith("%"):
        try:
            value: Any = float(raw[:-1]) / 100
        except ValueError:
            raise SpecError([f"--where {text!r}: {raw!r} is not a percentage"]) from None
        if col not in FRACTION_COLUMNS:
            raise SpecError([f"--where {text!r}: a percentage fits only {', '.join(FRACTION_COLUMNS)} "
                             f"(fractions), not {col!r}"])
        return col, _OPS[op], value
    value = _parse_value(raw)
    if col in FRACTION_COLUMNS and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 1:
        raise SpecError([f"--where {text!r}: {col} is a fraction from 0 to 1, so {value:g} matches nothing; "
                         f"write {value / 100:g} or {value:g}%"])
    return col, _OPS[op], value


def _parse_value(raw: str) -> Any:
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return raw.strip("'\"")


def filter_rows(rows: Iterable[dict[str, Any]], where: Sequence[str]) -> list[dict[str, Any]]:
    conds = [parse_where(w) for w in where]
    out = []
    for r in rows:
        try:
            if all(op(r[col], value) for col, op, value in conds):
                out.append(r)
        except TypeError:
            continue  # a text column compared with < to a number: no match
    return out


def sort_rows(rows: list[dict[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Sort by columns (``-col`` descending), stable, missing values last."""
    for key in reversed(keys):
        desc = key.startswith("-")
        col = key.lstrip("-")
        if col not in RUN_COLUMNS:
            raise SpecError([f"--sort {key!r}: unknown column {col!r} (columns: {', '.join(RUN_COLUMNS)})"])
        present = [r for r in rows if _sortable(r[col])]
        missing = [r for r in rows if not _sortable(r[col])]
        rows = sorted(present, key=lambda r: _key(r[col]), reverse=desc) + missing
    return rows


def _sortable(v: Any) -> bool:
    return not (isinstance(v, float) and math.isnan(v))


def _key(v: Any) -> Any:
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


# --- export -------------------------------------------------------------------------------

FORMATS = ("csv", "json", "parquet")


def export_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str], fmt: str) -> bytes:
    """Rows as CSV (NaN as an empty cell), JSON (a list of objects, NaN as null) or Parquet."""
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if _nan(r.get(k)) else r.get(k) for k in columns})
        return buf.getvalue().encode()
    if fmt == "json":
        clean = [{k: None if _nan(r.get(k)) else r.get(k) for k in columns} for r in rows]
        return (json.dumps(clean, indent=1) + "\n").encode()
    if fmt == "parquet":
        pd = _pandas()
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ImportError("parquet export needs pyarrow: pip install 'tunebook[parquet]'") from None
        buf = io.BytesIO()
        pd.DataFrame(list(rows), columns=list(columns)).to_parquet(buf, index=False)
        return buf.getvalue()
    raise SpecError([f"--format: must be one of {', '.join(FORMATS)}, got {fmt!r}"])


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))
