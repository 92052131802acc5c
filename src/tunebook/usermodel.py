"""A user's own model: ``[study] model = "package.module:factory"``.

The factory is a function ``factory(hp, data) -> torch.nn.Module``: ``hp`` a dict of the
trial's values of the factory's own hyperparameters, ``data`` a :class:`ModelData` (the
inputs' shape — 1×28×28 for Fashion-MNIST's images — the outputs, the classes). It
declares those hyperparameters so that study files are checked as strictly as the MLP's:

.. code-block:: python

    import tunebook

    @tunebook.hyperparameters(channels=tunebook.Int(4, 64, default=8),
                              kernel=tunebook.Choice([3, 5], default=3))
    def build(hp, data):
        ...

(or a plain ``build.hyperparameters = {"channels": {"low": 4, "high": 64, "default": 8}}``).
The module is imported from the study file's folder (put first on ``sys.path`` while it
imports) or the environment. Its copies train stacked with torch.func where their shapes
agree (:mod:`tunebook.engine.modules`).

A study folder records the model it ran (``<study>/model.toml``: the reference, the file it
came from, the declared hyperparameters), so its runs are analysed and reported without
importing the code again.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .errors import SpecError

MODEL_RECORD = "model.toml"
REF_RULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
#: Factories resolved in this process, by reference.
_FACTORIES: dict[str, Callable] = {}


@dataclass(frozen=True)
class Param:
    """One declared hyperparameter of a model: an integer or float range, or choices."""

    kind: str                      # "int" | "float" | "choice"
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple = ()

    def check(self, value: Any) -> tuple[Any, str | None]:
        """(value, None), or (None, the rule) — the form of tunebook.hparams' rules."""
        if self.kind == "choice":
            if value not in self.choices:
                return None, "must be one of " + ", ".join(json.dumps(c) for c in self.choices)
            return value, None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (self.kind == "int" and not isinstance(value, int)):
            return None, f"must be {'an integer' if self.kind == 'int' else 'a number'} from {self.low:g} to {self.high:g}"
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return None, f"must be {'an integer' if self.kind == 'int' else 'a number'} from {self.low:g} to {self.high:g}"
        return (int(value) if self.kind == "int" else float(value)), None

    def to_dict(self) -> dict:
        d = {"kind": self.kind, "default": self.default}
        if self.kind == "choice":
            d["choices"] = list(self.choices)
        else:
            d |= {"low": self.low, "high": self.high}
        return d


def Int(low: int, high: int, default: int) -> Param:  # noqa: N802 - reads as a type in a declaration
    """An integer hyperparameter in [low, high]."""
    return _made({"kind": "int", "low": low, "high": high, "default": default}, "Int")


def Float(low: float, high: float, default: float) -> Param:  # noqa: N802
    """A real hyperparameter in [low, high]."""
    return _made({"kind": "float", "low": low, "high": high, "default": default}, "Float")


def Choice(choices: Sequence, default: Any) -> Param:  # noqa: N802
    """One of ``choices`` (strings, numbers, booleans)."""
    return _made({"kind": "choice", "choices": list(choices), "default": default}, "Choice")


def hyperparameters(**params: Param) -> Callable:
    """Declare a model factory's hyperparameters (a decorator)."""
    def mark(fn: Callable) -> Callable:
        fn.hyperparameters = dict(params)
        return fn
    return mark


def _made(d: Mapping, where: str) -> Param:
    problems = _param_problems(d, where)
    if problems:
        raise ValueError("; ".join(problems))
    return _param(d)


def _param(d: Mapping) -> Param:
    kind = d.get("kind") or ("choice" if "choices" in d else "int" if all(
        isinstance(d.get(k), int) and not isinstance(d.get(k), bool) for k in ("low", "high", "default")) else "float")
    if kind == "choice":
        return Param("choice", d["default"], choices=tuple(d["choices"]))
    return Param(kind, d["default"], float(d["low"]), float(d["high"]))


def _param_problems(d: Any, where: str) -> list[str]:
    if isinstance(d, Param):
        return []
    if not isinstance(d, Mapping):
        return [f"{where}: must be tunebook.Int / Float / Choice or a table {{low, high, default}} / {{choices, default}}"]
    if "default" not in d:
        return [f"{where}: needs a default"]
    if "choices" in d:
        if not isinstance(d["choices"], (list, tuple)) or not d["choices"] or d["default"] not in d["choices"]:
            return [f"{where}: choices must be a non-empty list holding the default"]
        return []
    lo, hi, de = d.get("low"), d.get("high"), d.get("default")
    nums = [v for v in (lo, hi, de) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(nums) != 3 or not lo <= de <= hi:
        return [f"{where}: needs numbers low ≤ default ≤ high"]
    return []


@dataclass(frozen=True)
class ModelSpec:
    """A study's model: its reference, the file it was imported from, its hyperparameters."""

    ref: str
    file: str
    params: tuple[tuple[str, Param], ...]

    @property
    def rules(self) -> dict[str, Callable]:
        return {name: p.check for name, p in self.params}

    @property
    def defaults(self) -> dict[str, Any]:
        return {name: p.default for name, p in self.params}


@dataclass(frozen=True)
class ModelData:
    """What a factory is told about the data: the shape of one input (``(1, 28, 28)`` for
    Fashion-MNIST; a table's ``(n_features,)``), the outputs (classes, or 1 for a number),
    the class names."""

    input_shape: tuple[int, ...]
    n_outputs: int
    classes: tuple[str, ...]
    n_features: int


def load(ref: str, base_dir: Path, where: str) -> ModelSpec:
    """Import ``ref`` ("package.module:factory") — from ``base_dir`` first, then the
    environment — check its declaration, and register the factory in this process."""
    if not isinstance(ref, str) or not REF_RULE.fullmatch(ref):
        raise SpecError([f"{where}: study.model: must be \"package.module:factory\" (a module importable from the "
                         f"study file's folder or the environment, and a function in it), got {ref!r}"])
    module_name, fn_name = ref.split(":")
    added = str(Path(base_dir).resolve())
    local = Path(added, *module_name.split("."))
    local = local.with_suffix(".py") if local.with_suffix(".py").is_file() else local / "__init__.py"
    cached = sys.modules.get(module_name)
    if cached is not None and local.is_file():  # the study's own file: its current text, not a stale import
        if Path(getattr(cached, "__file__", "") or "").resolve() != local.resolve():
            sys.modules.pop(module_name)
    sys.path.insert(0, added)
    try:
        if cached is not None and module_name in sys.modules and local.is_file():
            module = importlib.reload(cached)
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - the user's code: any error is theirs, named
        raise SpecError([f"{where}: study.model: cannot import {module_name!r} from {added} or the environment "
                         f"({type(exc).__name__}: {exc})"]) from None
    finally:
        if sys.path and sys.path[0] == added:
            sys.path.pop(0)
    factory = getattr(module, fn_name, None)
    if not callable(factory):
        raise SpecError([f"{where}: study.model: {module_name} has no function {fn_name!r}"])
    declared = getattr(factory, "hyperparameters", {}) or {}
    if not isinstance(declared, Mapping):
        raise SpecError([f"{where}: study.model: {ref}.hyperparameters must be a dict of name -> declaration"])
    from .hparams import HPARAM_RULES

    problems = []
    for name, d in declared.items():
        if name in HPARAM_RULES:
            problems.append(f"{where}: study.model: {ref} declares {name!r}, which is tunebook's own hyperparameter "
                            "(choose another name)")
        problems += _param_problems(d, f"{where}: study.model: {ref}.hyperparameters[{name!r}]")
    if problems:
        raise SpecError(problems)
    params = tuple((name, d if isinstance(d, Param) else _param(d)) for name, d in declared.items())
    _FACTORIES[ref] = factory
    return ModelSpec(ref, str(getattr(module, "__file__", "") or ""), params)


#: The model specs this process has read, by reference (study parsing builds configs from them).
_SPECS: dict[str, ModelSpec] = {}


def remember(ms: ModelSpec) -> None:
    _SPECS[ms.ref] = ms


def remembered(ref: str) -> ModelSpec:
    return _SPECS[ref]


def factory(ref: str, file: str = "") -> Callable:
    """The registered factory of ``ref`` (imported again from ``file``'s folder if this
    process has not seen it: a worker, a stored study)."""
    if ref not in _FACTORIES:
        if not file:
            raise SpecError([f"model {ref}: not loaded in this process"])
        load(ref, Path(file).parents[ref.split(":")[0].count(".")], f"model {ref}")  # the package's folder
    return _FACTORIES[ref]


def payload(ref: str) -> "ModelSpec | None":
    """What a worker in another process needs to build a user's model (None: the MLP)."""
    return _SPECS.get(ref) if ref else None


def adopt(ms: ModelSpec) -> None:
    """A worker: remember ``ms`` and import its factory from the file it records (a worker
    on another machine needs the same file at the same path, or the module importable)."""
    remember(ms)
    factory(ms.ref, ms.file)


def record_of(ms: ModelSpec) -> dict:
    """What ``<study>/model.toml`` holds."""
    return {"model": {"ref": ms.ref, "file": ms.file,
                      "hyperparameters": {name: p.to_dict() for name, p in ms.params}}}


def from_record(d: Mapping) -> ModelSpec:
    t = d["model"]
    return ModelSpec(str(t["ref"]), str(t.get("file", "")),
                     tuple((name, _param(p)) for name, p in dict(t.get("hyperparameters", {})).items()))


def model_data(dataset: str) -> ModelData:
    from .datasets import DATASETS

    info = DATASETS[dataset]
    return ModelData(tuple(info.input_shape) or (info.n_features,), info.n_outputs, tuple(info.classes), info.n_features)
