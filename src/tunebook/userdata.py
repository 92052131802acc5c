"""The user's own data: a classification table (CSV, Parquet) or arrays (``.npz``, ``.npy``
pairs, NumPy arrays in a notebook), read once, checked, preprocessed and held in memory.

A study names it as ``[study] dataset = "iris.csv"`` (a path relative to the study file)
with a ``[data]`` table saying how to read it, or by the name of a dataset registered from
Python (:meth:`Dataset.from_arrays`). Reading gives:

- features as float32 rows (images of any shape flattened; ``categorical`` columns one-hot,
  their categories taken from the training split), scaled as ``scale`` says — ``standard``
  (each feature to mean 0 and SD 1, the default for tables), ``unit`` (0–255 images to
  [0, 1], the default for uint8 arrays) or ``none`` — fitted on the training split only;
- labels as int64 class numbers: strings or integers mapped in sorted order, the mapping
  kept (reports and predictions speak the data's own class names);
- a test split: a second file (``test``), arrays given, or a stratified hold-out
  (``test_fraction``, fixed by ``split_seed``);
- a **fingerprint**: the SHA-256 of the arrays after reading and of the reading options.
  The dataset's key, ``<name>-<12 hex digits>``, is every trial's ``dataset`` field, so it
  is part of every trial id: editing one cell of the CSV gives new trials, never old runs
  mixed with new data.

Every problem is said before anything is written, naming the file, the column and the
rule (:class:`tunebook.errors.SpecError`, exit 2).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .datasets import DATASETS, DatasetInfo
from .errors import SpecError

SUFFIXES = (".csv", ".parquet", ".npz", ".npy")
SCALES = ("standard", "unit", "none")
DATA_KEYS = ("target", "features", "categorical", "scale", "test", "test_fraction", "task")
TASKS = ("classification", "regression")
#: A target of whole numbers with more distinct values than this is not taken for class
#: labels without being told (``[data] task``): a count or a price in whole units is a number.
MAX_INFERRED_CLASSES = 20
#: Where a name alone (a dataset registered in this process) resolves.
_BY_NAME: dict[str, str] = {}
#: The arrays of each registered dataset, by key: train and test, features and labels.
_ARRAYS: dict[str, "Arrays"] = {}
#: The files each registered dataset was read from, with their (size, mtime) when read.
_FILES: dict[str, tuple[tuple[str, int, int], ...]] = {}


#: scikit-learn's datasets that ship inside its package (no download): ``dataset = "sklearn:wine"``.
SKLEARN = ("iris", "wine", "breast_cancer", "digits", "diabetes")
#: Those whose target is a number (a regression).
SKLEARN_REGRESSION = ("diabetes",)


def is_data_path(value: str) -> bool:
    """Whether ``[study] dataset`` names a file (by its suffix or a path separator)."""
    return isinstance(value, str) and (Path(value).suffix.lower() in SUFFIXES or "/" in value)


def is_sklearn(value: str) -> bool:
    return isinstance(value, str) and value.startswith("sklearn:")


def read_sklearn(value: str, opts: DataOptions, split_seed: int, where: str) -> Dataset:
    """One of scikit-learn's shipped datasets (:data:`SKLEARN`; the ``sklearn`` extra),
    read as a table: its feature names and class names kept."""
    name = value.split(":", 1)[1]
    if name not in SKLEARN:
        raise SpecError([f"{where}: study.dataset: {value!r}: scikit-learn's shipped datasets are "
                         + ", ".join(f"sklearn:{n}" for n in SKLEARN)])
    table_only = [k for k in ("target", "features", "categorical", "test") if getattr(opts, k)]
    if table_only:
        raise SpecError([f"{where}: data.{table_only[0]}: not for {value} (its features and target are fixed)"])
    try:
        import sklearn
        from sklearn import datasets as skd
    except ImportError:
        raise SpecError([f"{where}: study.dataset: {value} needs scikit-learn: pip install 'tunebook[sklearn]'"]) from None
    bunch = getattr(skd, f"load_{name}")()
    regression = name in SKLEARN_REGRESSION
    classes = None if regression else [str(c) for c in bunch.target_names]
    features = [str(f) for f in getattr(bunch, "feature_names", [])] or None
    return _prepare_arrays(np.asarray(bunch.data), np.asarray(bunch.target), None,
                           DataOptions(scale=opts.scale or "standard", test_fraction=opts.test_fraction,
                                       task="regression" if regression else None),  # None: its fingerprint
                           # (which hashes the options) stays what it was before tasks existed
                           split_seed, f"{where}: {value}", f"sklearn-{name.replace('_', '-')}",
                           f"scikit-learn {sklearn.__version__} load_{name}", classes, features)


@dataclass(frozen=True)
class DataOptions:
    """The ``[data]`` table: how to read a file."""

    target: str | None = None                 # the label column (default: the last)
    features: tuple[str, ...] | None = None   # default: every other column
    categorical: tuple[str, ...] = ()
    scale: str | None = None                  # default: standard for tables, unit for uint8 arrays
    test: str | None = None                   # a second file (relative to the study file)
    test_fraction: float | None = None        # a stratified hold-out of the file (default 0.2)
    task: str | None = None                   # classification | regression (default: inferred, see _task_of)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if v not in (None, ())}


def parse_options(t: Any, where: str) -> tuple[DataOptions, list[str]]:
    """The ``[data]`` table, and its problems (``where``: the study file)."""
    if not isinstance(t, dict):
        return DataOptions(), [f"{where}: data: must be a table"]
    problems = [f"{where}: data.{k}: unknown key (expected one of {', '.join(DATA_KEYS)})" for k in t
                if k not in DATA_KEYS]

    def names(key):
        v = t.get(key)
        if v is None:
            return None
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            problems.append(f"{where}: data.{key}: must be a column name or a list of them, got {v!r}")
            return None
        return tuple(v)

    target = t.get("target")
    if target is not None and not isinstance(target, str):
        problems.append(f"{where}: data.target: must be a column name, got {target!r}")
        target = None
    scale = t.get("scale")
    if scale is not None and scale not in SCALES:
        problems.append(f"{where}: data.scale: must be one of {', '.join(SCALES)}, got {scale!r}")
        scale = None
    test = t.get("test")
    if test is not None and not isinstance(test, str):
        problems.append(f"{where}: data.test: must be a file name, got {test!r}")
        test = None
    fraction = t.get("test_fraction")
    if fraction is not None and (isinstance(fraction, bool) or not isinstance(fraction, (int, float))
                                 or not 0 < fraction < 1):
        problems.append(f"{where}: data.test_fraction: must be a number in (0, 1), got {fraction!r}")
        fraction = None
    if test is not None and fraction is not None:
        problems.append(f"{where}: data: give test (a second file) or test_fraction (a hold-out), not both")
    task = t.get("task")
    if task is not None and task not in TASKS:
        problems.append(f"{where}: data.task: must be \"classification\" or \"regression\", got {task!r}")
        task = None
    return DataOptions(target, names("features"), names("categorical") or (), scale, test,
                       float(fraction) if fraction is not None else None, task), problems


@dataclass(frozen=True, eq=False)
class Arrays:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass(frozen=True, eq=False)
class Dataset:
    """A user's dataset, read and checked, held in memory: what a study trains on.

    ``tunebook.Dataset.from_arrays(x, y, name="blobs")`` registers one from a notebook;
    a study then names it (``[study] dataset = "blobs"``), or ``spec.with_dataset(ds)``."""

    info: DatasetInfo          # its preprocessing is info.preprocessing (JSON), recorded once
    arrays: Arrays

    @property
    def key(self) -> str:
        return self.info.name

    @classmethod
    def from_arrays(cls, x, y, x_test=None, y_test=None, *, name: str = "arrays", scale: str | None = None,
                    test_fraction: float = 0.2, split_seed: int = 0, classes: Sequence[str] | None = None,
                    features: Sequence[str] | None = None, task: str | None = None) -> "Dataset":
        """From NumPy arrays (or anything ``np.asarray`` takes: a DataFrame's ``.to_numpy()``):
        ``x`` rows of features (images of any shape are flattened), ``y`` labels or numbers
        to predict (``task = "regression"``; inferred for floats that are not all whole);
        the test split given, or held out (``test_fraction``, stratified by ``split_seed``).
        Checked as a file is, registered in this process under ``name``."""
        where = f"arrays {name!r}"
        x, y = np.asarray(x), np.asarray(y)
        test = None if x_test is None else (np.asarray(x_test), np.asarray(y_test))
        if (x_test is None) != (y_test is None):
            raise SpecError([f"{where}: give x_test and y_test together"])
        if task is not None and task not in TASKS:
            raise SpecError([f"{where}: task: must be \"classification\" or \"regression\", got {task!r}"])
        ds = _prepare_arrays(x, y, test, DataOptions(scale=scale, test_fraction=None if test else test_fraction,
                                                     task=task),
                             split_seed, where, name, "arrays", classes, features)
        return register(ds, name)

    @classmethod
    def from_dataframe(cls, df, target: str, *, name: str = "dataframe", test=None, categorical: Sequence[str] = (),
                       scale: str | None = None, test_fraction: float = 0.2, split_seed: int = 0,
                       task: str | None = None) -> "Dataset":
        """From a pandas DataFrame (``target``: the label column — or a number to predict,
        ``task = "regression"``; ``test``: a second one)."""
        where = f"dataframe {name!r}"
        table = {str(c): list(df[c]) for c in df.columns}
        test_table = None if test is None else {str(c): list(test[c]) for c in test.columns}
        if task is not None and task not in TASKS:
            raise SpecError([f"{where}: task: must be \"classification\" or \"regression\", got {task!r}"])
        opts = DataOptions(target=target, categorical=tuple(categorical), scale=scale,
                           test_fraction=None if test is not None else test_fraction, task=task)
        ds = _prepare_table(table, test_table, opts, split_seed, where, name, "dataframe")
        return register(ds, name)


def register(ds: Dataset, name: str | None = None) -> Dataset:
    """Make ``ds`` known to this process (its sizes to the planner, its arrays to the
    loaders), under its key and, when given, its plain ``name``."""
    DATASETS[ds.key] = ds.info
    _ARRAYS[ds.key] = ds.arrays
    if name:
        _BY_NAME[name] = ds.key
    return ds


def _stamp(paths) -> tuple[tuple[str, int, int], ...]:
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append((str(p), st.st_size, st.st_mtime_ns))
    return tuple(out)


def changed_since_read(key: str) -> str | None:
    """The first file of dataset ``key`` that changed (or went) since it was read, or None.
    The runs trained on the arrays read then (their key says which); a warning, not a mix."""
    for path, size, mtime in _FILES.get(key, ()):
        try:
            st = Path(path).stat()
        except OSError:
            return path
        if (st.st_size, st.st_mtime_ns) != (size, mtime):
            return path
    return None


def registered(key: str) -> "Arrays | None":
    return _ARRAYS.get(key)


def by_name(name: str) -> str | None:
    """The key of a dataset registered from Python under ``name``."""
    return _BY_NAME.get(name)


def payload(key: str) -> "Dataset | None":
    """What a worker in another process needs to train on a user's dataset (its sizes and
    arrays): None for a built-in one, which workers read from their own files."""
    arrays = _ARRAYS.get(key)
    return None if arrays is None else Dataset(DATASETS[key], arrays)


# -- reading files ---------------------------------------------------------------------

def read_file(path: Path, opts: DataOptions, split_seed: int, where: str) -> Dataset:
    """Read, check and preprocess a data file (``where``: the study file, for messages)."""
    if not path.is_file():
        raise SpecError([f"{where}: study.dataset: {path}: no such file"])
    suffix = path.suffix.lower()
    name = _name_of(path)
    if suffix in (".csv", ".parquet"):
        table = _read_table(path, where)
        test = None
        if opts.test is not None:
            test_path = (path.parent / opts.test) if not Path(opts.test).is_absolute() else Path(opts.test)
            if not test_path.is_file():
                raise SpecError([f"{where}: data.test: {test_path}: no such file"])
            if test_path.suffix.lower() != suffix:
                raise SpecError([f"{where}: data.test: {test_path}: must be a {suffix} file like {path.name}"])
            test = _read_table(test_path, where)
        stamp = _stamp([path] + ([test_path] if opts.test is not None else []))
        ds = _prepare_table(table, test, opts, split_seed, str(path), name, str(path),
                            test_file=None if opts.test is None else str(test_path))
        _FILES[ds.key] = stamp
        return ds
    table_only = [k for k in ("target", "features", "categorical") if getattr(opts, k)]
    if table_only:
        raise SpecError([f"{where}: data.{table_only[0]}: only for a table (.csv, .parquet); {path.name} holds arrays"])
    stamp = _stamp([path])
    x, y, test = _read_arrays(path, where, opts)
    ds = _prepare_arrays(x, y, test, opts, split_seed, str(path), name, str(path))
    _FILES[ds.key] = stamp
    return ds


def _name_of(path: Path) -> str:
    import re

    stem = re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-") or "data"
    return stem[:40]


def _read_table(path: Path, where: str) -> dict[str, list]:
    """Columns by name, in file order (values as read: strings for CSV)."""
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise SpecError([f"{where}: study.dataset: {path.name}: reading Parquet needs pyarrow: "
                             "pip install 'tunebook[parquet]'"]) from None
        try:
            return {str(k): v for k, v in pq.read_table(path).to_pydict().items()}
        except Exception as exc:  # noqa: BLE001 - pyarrow's errors vary by what is wrong
            raise SpecError([f"{path}: cannot read as Parquet ({type(exc).__name__}: {exc})"]) from None
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SpecError([f"{path}: cannot read as CSV ({exc})"]) from None
    rows = [r for r in rows if r]
    if len(rows) < 2:
        raise SpecError([f"{path}: needs a header line and at least one row"])
    header = [h.strip() for h in rows[0]]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise SpecError([f"{path}: column {dupes[0]!r} appears more than once in the header"])
    bad = next((i for i, r in enumerate(rows[1:], 2) if len(r) != len(header)), None)
    if bad is not None:
        raise SpecError([f"{path}: line {bad} has {len(rows[bad - 1])} fields, the header {len(header)}"])
    return {h: [r[i].strip() for r in rows[1:]] for i, h in enumerate(header)}


def _read_arrays(path: Path, where: str, opts: DataOptions):
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = set(z.files)
                if {"x_train", "y_train"} <= keys:
                    test = (z["x_test"], z["y_test"]) if {"x_test", "y_test"} <= keys else None
                    return z["x_train"], z["y_train"], test
                if {"x", "y"} <= keys:
                    return z["x"], z["y"], None
                raise SpecError([f"{path}: an .npz needs arrays x and y, or x_train, y_train (and x_test, "
                                 f"y_test); it has {', '.join(sorted(keys)) or 'none'}"])
        # .npy pairs: <stem>.npy holds x and <stem>_labels.npy (or a y_ twin) the labels
        labels = [path.with_name(path.stem + "_labels.npy"), path.with_name(path.stem.replace("x", "y", 1) + ".npy")]
        label = next((p for p in labels if p != path and p.is_file()), None)
        if label is None:
            raise SpecError([f"{path}: an .npy dataset needs its labels beside it: {labels[0].name} "
                             f"(or {labels[1].name})"])
        return np.load(path, allow_pickle=False), np.load(label, allow_pickle=False), None
    except (OSError, ValueError) as exc:
        raise SpecError([f"{path}: cannot read the arrays ({exc})"]) from None


# -- checking and preprocessing ----------------------------------------------------------

def _label_map(values: Sequence) -> tuple[list[str], dict]:
    """Classes in sorted order (numbers numerically), and value -> class number."""
    distinct = set(values)

    def as_number(v):
        try:
            return float(v)
        except (TypeError, ValueError):
            return None
    numbers = {v: as_number(v) for v in distinct}
    if all(n is not None and math.isfinite(n) for n in numbers.values()):
        ordered = sorted(distinct, key=lambda v: numbers[v])
        names = [_number_name(numbers[v]) for v in ordered]
    else:
        ordered = sorted(distinct, key=str)
        names = [str(v) for v in ordered]
    return names, {v: i for i, v in enumerate(ordered)}


def _task_of(values: Sequence, opts: DataOptions, where: str, target: str) -> tuple[str, str]:
    """Whether the target is class labels or a number to predict, and why (said in the
    data card): ``[data] task`` when given; else a target holding a number that is not
    whole is a regression, one of words or at most :data:`MAX_INFERRED_CLASSES` whole
    numbers a classification, and more whole numbers than that must be told."""
    def number(v):
        if isinstance(v, bool):
            return None
        try:
            x = float(v)
        except (TypeError, ValueError):
            return None
        return x if math.isfinite(x) else None

    nums = [number(v) for v in values]
    if opts.task == "regression":
        bad = [i for i, x in enumerate(nums) if x is None]
        if bad:
            raise SpecError([f"{where}: column {target!r} (the target): data.task = \"regression\" needs numbers; "
                             f"{len(bad)} rows are not (the first: row {bad[0] + 1}, {values[bad[0]]!r})"])
        return "regression", "as given: data.task, or known for the dataset"
    if opts.task == "classification":
        return "classification", "as given: data.task, or known for the dataset"
    if any(x is None for x in nums):
        return "classification", "inferred: the target holds words"
    if any(not x.is_integer() for x in nums):
        return "regression", "inferred: the target holds numbers that are not whole"
    distinct = len(set(nums))
    if distinct > MAX_INFERRED_CLASSES:
        raise SpecError([f"{where}: column {target!r} (the target) holds {distinct} distinct whole numbers — class "
                         f"labels or a quantity? Say which in the study file: [data] task = \"classification\" or "
                         f"task = \"regression\" (up to {MAX_INFERRED_CLASSES} whole numbers are taken for classes)"])
    return "classification", f"inferred: the target holds {distinct} whole numbers (classes)"


def _number_name(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _prepare_table(table: dict[str, list], test: dict[str, list] | None, opts: DataOptions, split_seed: int,
                   where: str, name: str, origin: str, test_file: str | None = None) -> Dataset:
    columns = list(table)
    problems: list[str] = []
    target = opts.target if opts.target is not None else columns[-1]
    if target not in table:
        raise SpecError([f"{where}: data.target: no column {target!r} (columns: {', '.join(columns)})"])
    features = list(opts.features) if opts.features is not None else [c for c in columns if c != target]
    for c in [*features, *opts.categorical]:
        if c not in table:
            problems.append(f"{where}: data: no column {c!r} (columns: {', '.join(columns)})")
    if target in features:
        problems.append(f"{where}: data.features: {target!r} is the target")
    for c in opts.categorical:
        if c not in features and c in table:
            problems.append(f"{where}: data.categorical: {c!r} is not one of the features")
    if test is not None and set(test) != set(table):
        only_train = sorted(set(table) - set(test))
        only_test = sorted(set(test) - set(table))
        problems.append(f"{test_file}: its columns differ from {where}'s"
                        + (f"; missing {', '.join(map(repr, only_train))}" if only_train else "")
                        + (f"; extra {', '.join(map(repr, only_test))}" if only_test else ""))
    if not features:
        problems.append(f"{where}: data.features: no feature columns")
    if problems:
        raise SpecError(problems)
    labels = [_missing_to_none(v) for v in table[target]]
    blank = [i for i, v in enumerate(labels) if v is None]
    if blank:
        raise SpecError([f"{where}: column {target!r} (the target): {len(blank)} rows have no label "
                         f"(the first: row {blank[0] + 1})"])
    task, why = _task_of(labels, opts, where, target)
    y_test = None
    if task == "regression":
        classes = []
        y = np.array([float(v) for v in labels], dtype=np.float64)
        if test is not None:
            test_labels = [_missing_to_none(v) for v in test[target]]
            problems_t: list[str] = []
            y_test = _numbers(test_labels, target, test_file, problems_t)
            if problems_t:
                raise SpecError(problems_t)
        _check_rows(y, where, _fraction(opts) if test is None else None)
    else:
        classes, mapping = _label_map(labels)
        y = np.array([mapping[v] for v in labels], dtype=np.int64)
        if test is not None:
            test_labels = [_missing_to_none(v) for v in test[target]]
            unseen = sorted({str(v) for v in test_labels if v not in mapping})
            if unseen:
                raise SpecError([f"{test_file}: column {target!r}: label(s) {', '.join(unseen[:5])} are not in the "
                                 f"training file {where} (its classes: {', '.join(classes)})"])
            y_test = np.array([mapping[v] for v in test_labels], dtype=np.int64)
        _check_classes(y, classes, where, _fraction(opts) if test is None else None)
    numeric = [c for c in features if c not in opts.categorical]
    cols_train, cols_test, names = [], [], []
    for c in numeric:
        cols_train.append(_numbers(table[c], c, where, problems))
        if test is not None:
            cols_test.append(_numbers(test[c], c, test_file, problems))
        names.append(c)
    categories: dict[str, list[str]] = {}
    if problems:
        raise SpecError(problems)
    x = np.stack(cols_train, axis=1) if cols_train else np.zeros((len(y), 0), np.float64)
    x_test = (np.stack(cols_test, axis=1) if cols_test else np.zeros((len(y_test), 0), np.float64)) \
        if test is not None else None
    train_idx, test_idx = _hold_out(y, classes, opts, split_seed, test is not None)
    for c in opts.categorical:  # categories from the training split only
        values = [str(v) for v in table[c]]
        cats = sorted({values[i] for i in train_idx})
        categories[c] = cats
        onehot = np.array([[v == k for k in cats] for v in values], dtype=np.float64)
        x = np.concatenate([x, onehot], axis=1)
        if test is not None:
            tv = [str(v) for v in test[c]]
            x_test = np.concatenate([x_test, np.array([[v == k for k in cats] for v in tv], dtype=np.float64)], axis=1)
        names += [f"{c}={k}" for k in cats]
    if test is None:
        x, y, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    scale = opts.scale or "standard"
    return _finish(x, y, x_test, y_test, classes, names, scale, opts, where, name, origin,
                   {"target": target, "categories": categories, "features": numeric}, task, why)


def _missing_to_none(v):
    return None if v is None or (isinstance(v, str) and v.strip() == "") or (isinstance(v, float) and math.isnan(v)) \
        else v


def _numbers(values: Sequence, column: str, where: str, problems: list[str]) -> np.ndarray:
    """A numeric column, or its problems: values that are no number, NaN, infinite or empty."""
    out = np.empty(len(values), np.float64)
    not_numbers, not_finite = [], []
    for i, v in enumerate(values):
        try:
            out[i] = float(v) if v not in (None, "") else math.nan
        except (TypeError, ValueError):
            not_numbers.append(i)
            continue
        if not math.isfinite(out[i]):
            not_finite.append(i)
    if not_numbers:
        example = values[not_numbers[0]]
        problems.append(f"{where}: column {column!r}: {len(not_numbers)} rows are not numbers (the first: row "
                        f"{not_numbers[0] + 1}, {example!r}); list it in data.categorical to one-hot encode it")
    if not_finite:
        problems.append(f"{where}: column {column!r}: {len(not_finite)} rows are empty, NaN or infinite (the first: "
                        f"row {not_finite[0] + 1}); fill or drop them first")
    return out


def _check_classes(y: np.ndarray, classes: list[str], where: str, fraction: float | None) -> None:
    if len(classes) < 2:
        raise SpecError([f"{where}: the target has one class only ({classes[0] if classes else 'none'}): a "
                         "classifier needs at least two"])
    if fraction is None:  # the test split is given: nothing is held out
        return
    for c, n in enumerate(np.bincount(y, minlength=len(classes))):
        held = round(fraction * n)
        if held < 1 or n - held < 1:
            raise SpecError([f"{where}: class {classes[c]!r} has {n} row(s): too few for a stratified "
                             f"test_fraction of {fraction:g} (each class needs a row in the test split and one in "
                             "training)"])


def _check_rows(y: np.ndarray, where: str, fraction: float | None) -> None:
    """A regression target: enough rows to hold out a test split, and not one value only."""
    if len(set(y.tolist())) < 2:
        raise SpecError([f"{where}: the target has one value only ({y[0] if len(y) else 'none'}): nothing to predict"])
    if fraction is not None and round(fraction * len(y)) < 1:
        raise SpecError([f"{where}: {len(y)} rows: too few for a test_fraction of {fraction:g}"])


def _hold_out(y: np.ndarray, classes, opts: DataOptions, split_seed: int, has_test: bool):
    """The test hold-out: stratified by class, or by a numeric target's deciles."""
    if has_test:
        return np.arange(len(y)), np.arange(0)
    from .splits import split_indices, strata

    labels, n_strata = strata(y, len(classes))
    return split_indices(labels, _fraction(opts), split_seed, n_strata)


def _fraction(opts: DataOptions) -> float:
    """The test hold-out fraction: ``test_fraction``, by default 0.2."""
    return opts.test_fraction if opts.test_fraction is not None else 0.2


def _prepare_arrays(x: np.ndarray, y: np.ndarray, test, opts: DataOptions, split_seed: int, where: str, name: str,
                    origin: str, classes: Sequence[str] | None = None,
                    features: Sequence[str] | None = None) -> Dataset:
    if len(x) != len(y):
        raise SpecError([f"{where}: {len(x)} rows of features but {len(y)} labels"])
    if x.ndim < 2:
        x = x.reshape(len(x), 1)
    uint8 = x.dtype == np.uint8
    x = x.reshape(len(x), -1)
    if y.ndim != 1:
        raise SpecError([f"{where}: the labels must be one value per row, got shape {y.shape}"])
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise SpecError([f"{where}: the features must be numbers, got dtype {x.dtype}"])
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise SpecError([f"{where}: {int(bad.any(axis=1).sum())} rows hold NaN or infinite values (the first: row "
                         f"{rows[0] + 1}, feature {cols[0]})"])
    if opts.task is None and (classes is not None or not np.issubdtype(y.dtype, np.floating)):
        task, why = "classification", "inferred: the labels are not floating-point numbers"  # int, bool, text
    else:
        task, why = _task_of(y.tolist(), opts, where, "the labels")
    if task == "regression":
        if classes is not None:
            raise SpecError([f"{where}: classes: not for a regression target"])
        return _prepare_regression_arrays(x, y.astype(np.float64), test, opts, split_seed, where, name, origin,
                                          uint8, features, why)
    names, mapping = _label_map(y.tolist())
    yy = np.array([mapping[v] for v in y.tolist()], dtype=np.int64)
    if classes is not None:
        if len(classes) != len(names):
            raise SpecError([f"{where}: classes names {len(classes)} classes, the labels hold {len(names)}"])
        names = [str(c) for c in classes]
    x_test = y_test = None
    if test is not None:
        xt, yt = _test_features(test, x.shape[1], where, "labels")
        unseen = sorted({str(v) for v in yt.tolist() if v not in mapping})
        if unseen:
            raise SpecError([f"{where}: test label(s) {', '.join(unseen[:5])} are not among the training labels"])
        x_test, y_test = xt, np.array([mapping[v] for v in yt.tolist()], dtype=np.int64)
    _check_classes(yy, names, where, _fraction(opts) if test is None else None)
    if test is None:
        train_idx, test_idx = _hold_out(yy, names, opts, split_seed, False)
        x, yy, x_test, y_test = x[train_idx], yy[train_idx], x[test_idx], yy[test_idx]
    scale = opts.scale or ("unit" if uint8 else "none")
    feats = list(features) if features is not None else [f"x{i}" for i in range(x.shape[1])]
    return _finish(x, yy, x_test, y_test, names, feats, scale, opts, where, name, origin, {})


def _test_features(test, n_features: int, where: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """A given test split's features, checked against the training split's (rows, width,
    finite values); its labels or targets as they came."""
    xt, yt = test
    if len(xt) != len(yt):
        raise SpecError([f"{where}: the test split has {len(xt)} rows of features but {len(yt)} {what}"])
    xt = xt.reshape(len(xt), -1).astype(np.float64)
    if xt.shape[1] != n_features:
        raise SpecError([f"{where}: the test split has {xt.shape[1]} features, the training split {n_features}"])
    if (~np.isfinite(xt)).any():
        r = int(np.nonzero(~np.isfinite(xt))[0][0])
        raise SpecError([f"{where}: the test split holds NaN or infinite values (the first: row {r + 1})"])
    return xt, yt


def _prepare_regression_arrays(x, y, test, opts: DataOptions, split_seed: int, where: str, name: str, origin: str,
                               uint8: bool, features, why: str) -> Dataset:
    """Arrays whose target is a number: checked, split (by the target's deciles), finished."""
    if (~np.isfinite(y)).any():
        raise SpecError([f"{where}: the target holds NaN or infinite values (the first: row "
                         f"{int(np.nonzero(~np.isfinite(y))[0][0]) + 1})"])
    x_test = y_test = None
    if test is not None:
        xt, yt = _test_features(test, x.shape[1], where, "targets")
        yt = np.asarray(yt, dtype=np.float64)
        if (~np.isfinite(yt)).any():
            raise SpecError([f"{where}: the test split's targets hold NaN or infinite values (the first: row "
                             f"{int(np.nonzero(~np.isfinite(yt))[0][0]) + 1})"])
        x_test, y_test = xt, yt
    _check_rows(y, where, _fraction(opts) if test is None else None)
    if test is None:
        train_idx, test_idx = _hold_out(y, [], opts, split_seed, False)
        x, y, x_test, y_test = x[train_idx], y[train_idx], x[test_idx], y[test_idx]
    scale = opts.scale or ("unit" if uint8 else "none")
    feats = list(features) if features is not None else [f"x{i}" for i in range(x.shape[1])]
    return _finish(x, y, x_test, y_test, [], feats, scale, opts, where, name, origin, {}, "regression", why)


def _finish(x, y, x_test, y_test, classes, features, scale: str, opts: DataOptions, where: str, name: str,
            origin: str, extra: dict, task: str = "classification", why: str = "") -> Dataset:
    """Scale (fitted on the training split), fingerprint, and the dataset's record. A
    regression target is standardised by the training split's mean and standard deviation
    (recorded: predictions and errors come back in its own units)."""
    pre: dict[str, Any] = {"scale": scale, "classes": list(classes), **extra}
    target_mean, target_sd = 0.0, 1.0
    if task == "regression":
        target_mean, target_sd = float(y.mean()), float(y.std()) or 1.0
        y, y_test = ((y - target_mean) / target_sd).astype(np.float32), ((y_test - target_mean) / target_sd).astype(np.float32)
        pre |= {"task": "regression", "task_from": why, "target_mean": target_mean, "target_sd": target_sd}
    if scale == "standard":
        mean = x.mean(axis=0)
        sd = x.std(axis=0)
        sd[sd == 0] = 1.0  # a constant feature stays 0
        x, x_test = (x - mean) / sd, (x_test - mean) / sd
        pre |= {"mean": mean.tolist(), "sd": sd.tolist()}
    elif scale == "unit":
        x, x_test = x / 255.0, x_test / 255.0
    x, x_test = x.astype(np.float32), x_test.astype(np.float32)
    for a in (x, y, x_test, y_test):
        a.setflags(write=False)
    digest = hashlib.sha256()
    for a in (x, y, x_test, y_test):
        digest.update(str(a.shape).encode() + np.ascontiguousarray(a).tobytes())
    digest.update(json.dumps({"options": opts.to_dict(), "classes": list(classes), "features": list(features)},
                             sort_keys=True).encode())
    fp = digest.hexdigest()
    if task == "regression":  # the validation hold-out's strata: the target's deciles
        from .splits import strata

        labels, n_strata = strata(y, 0)
        counts = np.bincount(labels, minlength=n_strata)
    else:
        counts = np.bincount(y, minlength=len(classes))
    info = DatasetInfo(name=f"{name}-{fp[:12]}", n_train=len(y), n_test=len(y_test), n_features=x.shape[1],
                       n_classes=len(classes), classes=tuple(classes), class_counts=tuple(int(n) for n in counts),
                       features=tuple(features), fingerprint=fp, origin=origin,
                       preprocessing=json.dumps(_jsonable(pre), sort_keys=True),
                       target_mean=target_mean, target_sd=target_sd, target=str(extra.get("target", "")))
    return Dataset(info, Arrays(x, y, x_test, y_test))


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x


def reread(key: str, study_dir: Path, split_seed: int) -> str:
    """Read dataset ``key`` again from the file its study folder recorded (``data.toml``'s
    origin, with the study copy's ``[data]`` table) and register it; "" when done, else why
    not (no record, the file gone, or changed: another fingerprint)."""
    from . import tomlio

    if registered(key) is not None:
        return ""
    record = Path(study_dir) / DATA_RECORD
    if not record.is_file():
        return f"{record} is missing"
    info = info_from_record(tomlio.loads(record.read_text(encoding="utf-8")))
    if info.origin.startswith("scikit-learn"):
        value = "sklearn:" + info.origin.rsplit("load_", 1)[-1]
    else:
        value = info.origin
        if not Path(value).is_file():
            return f"its data file {value} is gone"
    raw = tomlio.loads((Path(study_dir) / "study.toml").read_text(encoding="utf-8"))
    opts, problems = parse_options(raw.get("data", {}), str(Path(study_dir) / "study.toml"))
    if problems:
        return problems[0]
    try:
        ds = (read_sklearn(value, opts, split_seed, str(record)) if value.startswith("sklearn:")
              else read_file(Path(value), opts, split_seed, str(record)))
    except SpecError as exc:
        return exc.problems[0]
    if ds.key != key:
        return f"{value} has changed since the run trained on it (now dataset {ds.key}, the run's {key})"
    register(ds)
    return ""


# -- the record a study folder keeps ----------------------------------------------------

DATA_RECORD = "data.toml"


def record_of(info: DatasetInfo) -> dict:
    """What ``<study>/data.toml`` holds: enough to analyse and report the study's runs
    without the data (sizes, classes and balance, features, fingerprint, origin)."""
    return {"dataset": {"key": info.name, "origin": info.origin, "fingerprint": info.fingerprint,
                        "n_train": info.n_train, "n_test": info.n_test, "n_features": info.n_features,
                        "classes": list(info.classes), "class_counts": list(info.class_counts),
                        "features": list(info.features), "preprocessing": info.preprocessing}
            | ({"task": "regression", "target": info.target, "target_mean": info.target_mean,
                "target_sd": info.target_sd} if info.task == "regression" else {})}


def info_from_record(d: Mapping) -> DatasetInfo:
    t = d["dataset"]
    return DatasetInfo(name=str(t["key"]), n_train=int(t["n_train"]), n_test=int(t["n_test"]),
                       n_features=int(t["n_features"]), n_classes=len(t["classes"]),
                       classes=tuple(str(c) for c in t["classes"]),
                       class_counts=tuple(int(n) for n in t.get("class_counts", ())),
                       features=tuple(str(f) for f in t.get("features", ())), fingerprint=str(t["fingerprint"]),
                       origin=str(t.get("origin", "")), preprocessing=str(t.get("preprocessing", "")),
                       target=str(t.get("target", "")), target_mean=float(t.get("target_mean", 0.0)),
                       target_sd=float(t.get("target_sd", 1.0)))
