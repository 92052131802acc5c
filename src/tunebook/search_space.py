"""Search spaces: the ``[search]`` table of a study file, validated like the rest.

A searched study replaces ``[grid]`` by distributions, one per hyperparameter::

    [search]
    lr = { low = 1e-4, high = 1e-1, log = true }
    width = { low = 32, high = 1024, log = true }          # integers: integer bounds
    depth = { low = 1, high = 3 }
    dropout = { low = 0.0, high = 0.5, step = 0.1 }
    optimizer = { choices = ["adam", "sgd", "momentum"] }
    momentum = { low = 0.5, high = 0.99, when = { optimizer = ["momentum"] } }

``when`` makes a parameter conditional on a choice (momentum only where the optimizer
reads it). The ``[study]`` keys that drive a search (``sampler``, ``trials``, ``batch``,
``objectives``, ``time_budget``, ``sampler_seed``) are parsed here too. Pure.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping

from .hparams import HPARAM_RULES, fmt_value
from .problems import Problems

SAMPLERS = ("random", "tpe", "gp", "cmaes", "nsga2")
PRUNERS = ("none", "halving", "asha", "hyperband", "median")
#: Pruners that compare a proposal with the others still training (a rung's cohort): they
#: decide in the driver, which sees every group of a batch. ``median`` compares with
#: finished proposals only, so any worker can decide it from a copy of them; ``halving``
#: pauses the batch at each rung and ranks it here (tunebook.halving), on any executor.
DRIVER_PRUNERS = ("asha", "hyperband")
#: What a search may optimise, and in which direction it is better.
OBJECTIVE_METRICS = {"val_acc": "max", "val_loss": "min", "params": "min", "flops": "min",
                     "val_rmse": "min", "val_mae": "min", "val_r2": "max"}
INTEGER_KEYS = ("units1", "units2", "units3", "width", "depth", "epochs", "batch_size", "warmup")
_DIMENSION_KEYS = {"low", "high", "log", "step", "choices", "when"}
_WALL = re.compile(r"(\d+(?:\.\d+)?)(s|m|h)")
SEARCH_STUDY_KEYS = {"sampler", "trials", "batch", "objectives", "time_budget", "sampler_seed", "confirm",
                     "confirm_seeds", "confirm_max_seeds", "pruner"}


@dataclass(frozen=True)
class Dimension:
    """One searched hyperparameter: a range (``low``..``high``, maybe log or stepped) or
    a set of ``choices``; ``when`` (name → allowed values) makes it conditional."""

    name: str
    kind: str                          # "float", "int" or "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    when: tuple[tuple[str, tuple[Any, ...]], ...] = ()

    def applies(self, params: Mapping[str, Any]) -> bool:
        """Whether this dimension is sampled, given the values drawn before it."""
        return all(params.get(name) in allowed for name, allowed in self.when)


@dataclass(frozen=True)
class SearchPlan:
    """How a searched study proposes trials."""

    dimensions: tuple[Dimension, ...]
    sampler: str = "tpe"
    trials: int = 32                   # proposals in all
    batch: int = 8                     # proposals asked (and trained stacked) at a time
    objectives: tuple[tuple[str, str], ...] = (("val_acc", "max"),)
    time_budget: str = ""              # wall time, as --budget ("30m"); "" = none
    sampler_seed: int = 0
    confirm: int = 3                   # the best proposals (by mean) trained on more seeds at the end
    confirm_seeds: int = 10            # seeds of the first confirmation look
    confirm_max_seeds: int = 10        # more, round by round, until the likely best is decided
    pruner: str = "none"               # stops unpromising proposals epoch by epoch (Optuna's pruners)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    @property
    def prunes_in_driver(self) -> bool:
        """Whether the pruner must decide in this process (``asha``, ``hyperband``: they
        compare running proposals), which trains the search with ``--executor local``."""
        return self.pruner in DRIVER_PRUNERS


def parse_search(t: Mapping[str, Any], p: Problems, extra: Mapping | None = None,
                 extra_integers: frozenset = frozenset()) -> tuple[Dimension, ...]:
    """``[search]``: every problem reported, as ``search.<key>...: rule, got value``.
    ``extra``: a user model's own hyperparameters' rules (tunebook.usermodel)."""
    dims: list[Dimension] = []
    for name, spec in t.items():
        where = f"search.{name}"
        rule = HPARAM_RULES.get(name) or (extra or {}).get(name)
        if extra and name in ("layers", "units1", "units2", "units3", "width", "depth", "activation", "dropout",
                              "norm", "residual", "init", "label_smoothing"):
            continue  # the MLP's: refused beside a user's model (spec._resolve_model)
        if rule is None or name == "layers":
            hint = " (search width/depth or units1..3 instead)" if name == "layers" else ""
            p.add(where, f"unknown hyperparameter{hint}")
            continue
        if not isinstance(spec, dict):
            p.add(where, "must be a table: { low = .., high = .. } or { choices = [..] }", spec)
            continue
        for key in spec:
            if key not in _DIMENSION_KEYS:
                p.add(f"{where}.{key}", "unknown key (expected low, high, log, step, choices, when)")
        when = _parse_when(spec.get("when"), f"{where}.when", p)
        if "choices" in spec:
            if any(k in spec for k in ("low", "high", "log", "step")):
                p.add(where, "takes either choices or low/high, not both")
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices:
                p.add(f"{where}.choices", "must be a non-empty list", choices)
                continue
            good = []
            for i, value in enumerate(choices):
                v, err = rule(value)
                if err:
                    p.add(f"{where}.choices[{i}]", err, value)
                else:
                    good.append(v)
            if len(set(good)) != len(good):
                p.add(f"{where}.choices", "must not repeat a value", choices)
            dims.append(Dimension(name, "choice", choices=tuple(good), when=when))
            continue
        dim = _parse_range(name, spec, where, rule, p, name in extra_integers)
        if dim is not None:
            dims.append(Dimension(**{**dim.__dict__, "when": when}))
    _check_conditions(dims, p)
    if "depth" in {d.name for d in dims} and any(d.name.startswith("units") for d in dims):
        p.add("search", "depth and units1..3 both set the layer list: search width with depth, or units1..3")
    return tuple(sorted(dims, key=lambda d: (bool(d.when), list(t).index(d.name))))


def _parse_when(value: Any, where: str, p: Problems) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not value:
        p.add(where, "must be a table of a searched choice and its values, e.g. { optimizer = [\"sgd\"] }", value)
        return ()
    out = []
    for name, allowed in value.items():
        allowed = allowed if isinstance(allowed, list) else [allowed]
        out.append((name, tuple(allowed)))
    return tuple(out)


def _parse_range(name: str, spec: Mapping[str, Any], where: str, rule, p: Problems,
                 integer: bool = False) -> Dimension | None:
    if "low" not in spec or "high" not in spec:
        p.add(where, "needs low and high (or choices)")
        return None
    integer = integer or name in INTEGER_KEYS
    values = {}
    for key in ("low", "high"):
        v = spec[key]
        if integer and (isinstance(v, bool) or not isinstance(v, int)):
            p.add(f"{where}.{key}", f"must be an integer ({name} is a count)", v)
            return None
        checked, err = rule(v)
        if err:
            p.add(f"{where}.{key}", err, v)
            return None
        values[key] = checked
    low, high = values["low"], values["high"]
    if not low < high:
        p.add(where, f"low must be below high, got low = {fmt_value(low)}, high = {fmt_value(high)}")
        return None
    log = spec.get("log", False)
    if not isinstance(log, bool):
        p.add(f"{where}.log", "must be true or false", log)
        log = False
    if log and low <= 0:
        p.add(f"{where}.log", "needs low > 0", low)
    step = spec.get("step")
    if step is not None:
        ok = (not isinstance(step, bool) and isinstance(step, (int, float)) and math.isfinite(step) and step > 0
              and (not integer or isinstance(step, int)))
        if not ok:
            p.add(f"{where}.step", "must be a positive " + ("integer" if integer else "number"), step)
            step = None
        elif log:
            p.add(f"{where}.step", "cannot be combined with log = true (Optuna samples one or the other)")
            step = None
    return Dimension(name, "int" if integer else "float", low=low, high=high, log=log, step=step)


def _check_conditions(dims: list[Dimension], p: Problems) -> None:
    by_name = {d.name: d for d in dims}
    for d in dims:
        for name, allowed in d.when:
            target = by_name.get(name)
            if target is None or target.kind != "choice":
                p.add(f"search.{d.name}.when.{name}", "must name a searched choice (a { choices = [..] } entry)")
                continue
            if target.when:
                p.add(f"search.{d.name}.when.{name}", "conditions on a conditional parameter are not supported")
            for v in allowed:
                if v not in target.choices:
                    p.add(f"search.{d.name}.when.{name}", f"must list values of search.{name}.choices", v)


def parse_plan(t: Mapping[str, Any], dims: tuple[Dimension, ...], metric: str, p: Problems,
               n_seeds: int = 2) -> SearchPlan:
    """The ``[study]`` keys of a searched study (``n_seeds``: the study's seeds per proposal)."""
    sampler = t.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        p.add("study.sampler", "must be one of " + ", ".join(fmt_value(s) for s in SAMPLERS), sampler)
        sampler = "tpe"
    trials = t.get("trials")
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= 100_000:
        p.add("study.trials", "must be a count of proposals from 1 to 100000 (required with [search])", trials)
        trials = 1
    batch = t.get("batch", min(8, trials))
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= 4096:
        p.add("study.batch", "must be a count of proposals trained at a time, from 1 to 4096", batch)
        batch = 1
    seed = t.get("sampler_seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        p.add("study.sampler_seed", "must be an integer in [0, 2^31)", seed)
        seed = 0
    objectives = _parse_objectives(t.get("objectives", [f"{metric}:{OBJECTIVE_METRICS.get(metric, 'max')}"]), p)
    if len(objectives) > 1 and sampler == "cmaes":
        p.add("study.sampler", "cmaes optimises one objective; use nsga2, tpe or random for several", sampler)
    budget = t.get("time_budget", "")
    if budget != "" and not (isinstance(budget, str) and _WALL.fullmatch(budget) and float(_WALL.fullmatch(budget)[1]) > 0):
        p.add("study.time_budget", "must be a wall time such as \"30m\", \"90s\" or \"2h\"", budget)
        budget = ""
    if not dims:
        p.add("search", "must search at least one hyperparameter")
    confirm = t.get("confirm", min(3, trials))
    if isinstance(confirm, bool) or not isinstance(confirm, int) or not 0 <= confirm <= trials:
        p.add("study.confirm", f"must be a count of proposals from 0 to study.trials ({trials})", confirm)
        confirm = 0
    confirm_seeds = t.get("confirm_seeds", max(10, 2 * n_seeds))
    if (isinstance(confirm_seeds, bool) or not isinstance(confirm_seeds, int)
            or not n_seeds < confirm_seeds <= 10_000):
        p.add("study.confirm_seeds", f"must be more than the study's {n_seeds} seeds per proposal (at most 10000)",
              confirm_seeds)
        confirm_seeds = max(10, 2 * n_seeds)
    max_seeds = t.get("confirm_max_seeds", confirm_seeds)
    if isinstance(max_seeds, bool) or not isinstance(max_seeds, int) or not confirm_seeds <= max_seeds <= 10_000:
        p.add("study.confirm_max_seeds", f"must be at least study.confirm_seeds ({confirm_seeds}), at most 10000",
              max_seeds)
        max_seeds = confirm_seeds
    pruner = t.get("pruner", "none")
    if pruner not in PRUNERS:
        p.add("study.pruner", "must be one of " + ", ".join(fmt_value(x) for x in PRUNERS), pruner)
        pruner = "none"
    elif pruner != "none" and (len(objectives) > 1 or objectives[0][0] not in ("val_acc", "val_loss", "val_rmse")):
        p.add("study.pruner", "prunes on one objective measured every epoch (val_acc, val_loss, or val_rmse — "
              "followed by its validation loss); "
              "not with several objectives or params/flops", pruner)
        pruner = "none"
    return SearchPlan(dims, sampler, trials, batch, objectives, budget, seed, confirm, confirm_seeds, max_seeds,
                      pruner)


def _parse_objectives(value: Any, p: Problems) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        p.add("study.objectives", 'must be a non-empty list such as ["val_acc:max", "flops:min"]', value)
        return (("val_acc", "max"),)
    out = []
    for i, item in enumerate(value):
        metric, _, direction = item.partition(":") if isinstance(item, str) else ("", "", "")
        if metric not in OBJECTIVE_METRICS or direction not in ("max", "min"):
            p.add(f"study.objectives[{i}]", "must be METRIC:max or METRIC:min, METRIC one of "
                  + ", ".join(OBJECTIVE_METRICS), item)
            continue
        out.append((metric, direction))
    if len({m for m, _ in out}) != len(out):
        p.add("study.objectives", "must not repeat a metric", value)
    return tuple(out) or (("val_acc", "max"),)
