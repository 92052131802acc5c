"""Study files: parse, validate, expand into trials.

A study file is TOML with four parts: ``[study]`` (name, dataset, split, seeds, ...),
``[defaults]`` (hyperparameters every trial starts from), ``[grid]`` (lists whose
cartesian product gives the configurations) and ``[[hypothesis]]`` (claims to judge).

Validation reports *every* problem at once, each as ``file: key.path: rule, got value``,
and rejects unknown keys so that a typo never silently becomes a default.
"""

from __future__ import annotations

import itertools
import re
import math
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from . import tomlio
from .datasets import DATASETS, train_count
from .errors import SpecError
from .hparams import (ACTIVATIONS, BASE_DEFAULTS, HPARAM_RULES, METRICS, OPTIMIZERS, float_rule,  # noqa: F401
                      int_rule, metric_problem, resolve)
from .hypotheses import Hypothesis, parse_hypotheses
from .problems import Problems
from .hparams import fmt_value as _fmt
from .search_space import SEARCH_STUDY_KEYS, SearchPlan, parse_plan, parse_search

NAME_RULE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


# --- the records ---------------------------------------------------------------------
# TrialConfig and its id live in tunebook.records (below every module that uses them);
# they are named here too, where a study's configurations are made.
from .records import ID_DEFAULTS, ID_FIELDS_V1, TrialConfig, trial_id_of  # noqa: E402,F401


@dataclass(frozen=True)
class DecidePlan:
    """How ``tunebook run --until-decided`` spends seeds: start with the study's seeds, add
    ``round`` more to every configuration an undecided hypothesis needs, look again, and
    stop at ``max_seeds`` per configuration. The looks are planned from these numbers, so
    tests that split alpha over the looks know how many there can be."""

    max_seeds: int = 100
    round: int = 5

    def looks(self, initial: int) -> list[int]:
        """Seeds per configuration at each planned look."""
        ns = list(range(initial, self.max_seeds + 1, self.round)) if initial <= self.max_seeds else [initial]
        return ns if ns[-1] >= self.max_seeds else ns + [self.max_seeds]


@dataclass(frozen=True)
class StudySpec:
    """A validated study file."""

    name: str
    title: str
    dataset: str
    validation: float | str
    seeds: tuple[int, ...]
    split_seed: int
    train_subset: int
    metric: str
    alpha: float
    defaults: tuple[tuple[str, Any], ...]
    grid: tuple[tuple[str, tuple[Any, ...]], ...]
    hypotheses: tuple[Hypothesis, ...] = ()
    path: str = "<string>"
    source: str = ""
    description: str = ""
    smoke: str = ""        # the smoke-test overrides this study runs with ("" for a full run)
    margin: float = 0.0    # smallest effect of interest (metric units): smaller is "negligible"
    test: str = "auto"     # auto | t | bounded: the verdicts' tests (analysis.contrast)
    decide: DecidePlan = DecidePlan()
    search: SearchPlan | None = None  # [search]: proposals come from a sampler, not a grid
    keep: str = "best"     # trained weights kept: best (the recommended configuration's runs) | all | none
    budget: str = ""       # a run's budget when no --budget is given ("10m", "2000me"; "" none)
    model: str = ""        # a user's model, "package.module:factory" (tunebook.usermodel); "": the MLP

    def _repr_html_(self) -> str:
        from .htmlrepr import spec_html

        return spec_html(self, model_epochs(self.configs()))

    @property
    def folder(self) -> str:
        """The study's folder under the output root; smoke tests get their own
        (``<name>.smoke``, a name no study can take), so they never mix with full runs."""
        return f"{self.name}{SMOKE_SUFFIX}" if self.smoke else self.name

    def varying(self) -> tuple[str, ...]:
        """Grid keys that take more than one value, or the searched hyperparameters (what
        tells this study's trials apart)."""
        if self.search is not None:
            return self.search.names
        return tuple(k for k, v in self.grid if len(v) > 1)

    def run_label(self, c: "TrialConfig") -> str:
        """A short name for a trial of this study, e.g. ``128-64_lr0.01_s3`` (run folders,
        TensorBoard's run list)."""
        keys = self.varying()
        parts = [c.label] if not keys or any(k in LAYER_KEYS for k in keys) else []
        for k in keys:
            if k not in LAYER_KEYS:
                v = c.get(k)
                if (k, v) in _WORDS:
                    parts.append(_WORDS[k, v])
                else:
                    parts.append(f"{_SHORT.get(k, k)}{v:g}" if isinstance(v, float) else f"{_SHORT.get(k, k)}{v}")
        return "_".join(parts + [f"s{c.seed}"])

    def points(self) -> list[dict[str, Any]]:
        """Grid points (hyperparameters as written, before resolution), in file order."""
        keys = [k for k, _ in self.grid]
        values = [v for _, v in self.grid]
        return [dict(zip(keys, combo)) for combo in itertools.product(*values)]

    def configs(self) -> list[TrialConfig]:
        """One TrialConfig per grid point and seed, duplicates removed, in a stable order.
        A searched study has none of its own: its sampler proposes them
        (:mod:`tunebook.search`)."""
        if self.search is not None:
            return []
        seen: dict[str, TrialConfig] = {}
        for point in self.points():
            merged, _ = resolve(dict(self.defaults), point)
            for seed in self.seeds:
                cfg = _build(self, merged, seed)
                seen.setdefault(cfg.trial_id, cfg)
        return list(seen.values())

    def config_for(self, params: Mapping[str, Any], seed: int) -> TrialConfig:
        """The trial of hyperparameters ``params`` (over [defaults]) and ``seed``."""
        merged, problems = resolve(dict(self.defaults), dict(params))
        if problems:
            raise SpecError([f"{self.path}: proposal {dict(params)}: {key}: {rule}" for key, rule in problems])
        return _build(self, merged, seed)

    def with_overrides(self, *, seeds: int | None = None, epochs: int | None = None,
                       train_subset: int | None = None) -> "StudySpec":
        """The same study with smoke-test overrides (fewer seeds/epochs, a data subset).

        The result is a smoke test: it lives in its own folder (:attr:`folder`) and its
        ``source`` (what is stored as study.toml) says what was overridden. Asking for more
        seeds than the study has, or a subset larger than its training split, is an error.
        A searched study's confirmation then trains on one seed more than its proposals (a
        smoke test runs each step once, not confirmation's 10 to 30 seeds)."""
        import tomli_w

        spec, raw, said = self, tomlio.loads(self.source) if self.source else {}, []
        raw.setdefault("study", {})
        where = f"{self.path} (with overrides)"
        if seeds is not None and seeds > len(self.seeds):
            raise SpecError([f"{where}: --seeds: must be at most the study's {len(self.seeds)} seeds, got {seeds}"])
        n_train = train_count(DATASETS[self.dataset], self.validation)
        if train_subset is not None and not DATASETS[self.dataset].n_classes <= train_subset <= n_train:
            raise SpecError([f"{where}: --subset: must be from {DATASETS[self.dataset].n_classes} to the "
                             f"training split's {n_train} samples, got {train_subset}"])
        if seeds is not None:
            spec = replace(spec, seeds=spec.seeds[:seeds])
            raw["study"]["seeds"] = list(spec.seeds)
            said.append(f"--seeds {seeds}")
            if spec.search is not None and spec.search.confirm:
                spec = replace(spec, search=replace(spec.search, confirm_seeds=seeds + 1, confirm_max_seeds=seeds + 1))
                raw["study"]["confirm_seeds"] = raw["study"]["confirm_max_seeds"] = seeds + 1
        if epochs is not None:
            grid = tuple((k, v) for k, v in spec.grid if k != "epochs")
            defaults = tuple((k, v) for k, v in spec.defaults if k != "epochs") + (("epochs", epochs),)
            spec = replace(spec, grid=grid, defaults=defaults)
            raw.get("grid", {}).pop("epochs", None)
            raw.setdefault("defaults", {})["epochs"] = epochs
            said.append(f"--epochs {epochs}")
        if train_subset is not None:
            spec = replace(spec, train_subset=train_subset)
            raw["study"]["train_subset"] = train_subset
            said.append(f"--subset {train_subset}")
        if said:
            p = Problems(where)
            _check_points(spec, p)
            p.raise_if_any()
            raw["study"]["smoke"] = " ".join(said)
            header = f"# {self.path} as run with the smoke-test overrides {' '.join(said)}\n"
            spec = replace(spec, source=header + tomli_w.dumps(raw), smoke=" ".join(said))
        return spec


#: A smoke test's study folder is ``<name>.smoke`` (a name no study can take).
SMOKE_SUFFIX = ".smoke"
LAYER_KEYS = ("layers", "units1", "units2", "units3", "width", "depth")
_SHORT = {"batch_size": "b", "epochs": "e", "optimizer": "", "activation": "", "dropout": "drop",
          "weight_decay": "wd", "momentum": "mom", "label_smoothing": "ls", "init": "",
          "norm": "", "schedule": "", "warmup": "warm", "regression_loss": ""}
#: Values named by a word of their own in run labels.
_WORDS = {("norm", "none"): "nonorm", ("norm", "batch"): "bn", ("norm", "layer"): "ln",
          ("residual", True): "res", ("residual", False): "plain"}


# --- parsing ---------------------------------------------------------------------------

_STUDY_KEYS = {"name", "title", "description", "dataset", "validation", "seeds", "model",
               "split_seed", "train_subset", "metric", "alpha", "smoke", "margin", "decide", "test", "keep",
               "budget"}
# (a searched study's [study] may also hold search_space.SEARCH_STUDY_KEYS)
_DECIDE_KEYS = {"max_seeds", "round"}
_TOP_KEYS = {"study", "defaults", "grid", "hypothesis", "search", "data"}
#: The most trials (grid points × seeds) a study may have; counted before anything is
#: expanded (a 10⁹-point grid once grew `validate` to 4.7 GB).
MAX_TRIALS = 100_000


def load_spec(path: str | Path, check_selectors: bool = True, recorded: bool = False) -> StudySpec:
    """Read and validate a study file; raises :class:`SpecError` listing every problem.
    ``recorded``: a study folder's copy, read to analyse it — a user's dataset is taken
    from the folder's ``data.toml`` (the data its runs trained on), not read again."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([f"{path}: cannot read: {exc}"]) from None
    return parse_spec(text, where=str(path), check_selectors=check_selectors, recorded=recorded)


def parse_spec(text: str, where: str = "<string>", check_selectors: bool = True, recorded: bool = False) -> StudySpec:
    """Validate study TOML given as text (``where`` names it in messages).

    ``check_selectors=False`` accepts hypotheses whose selectors match no configuration
    (used when re-reading a stored study that ran with smoke-test overrides; such a
    hypothesis is then judged inconclusive for want of data).
    """
    try:
        raw = tomlio.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError([f"{where}: not valid TOML: {exc}"]) from None
    p = Problems(where)
    for key in raw:
        if key not in _TOP_KEYS:
            p.add(key, "unknown section (expected study, data, defaults, grid, search, hypothesis)")
    study = _table(raw, "study", p, required=True)
    defaults_raw = _table(raw, "defaults", p)
    grid_raw = _table(raw, "grid", p)
    searched = "search" in raw
    if searched:
        study = {k: v for k, v in study.items() if k not in SEARCH_STUDY_KEYS}
        study.setdefault("seeds", 2)  # seeds per proposal
    else:
        for key in sorted(SEARCH_STUDY_KEYS & set(_table(raw, "study", Problems(where)))):
            p.add(f"study.{key}", "only with a [search] table")

    s = _parse_study(study, p)
    s["dataset"] = _resolve_dataset(s["dataset"], raw.get("data"), s["split_seed"], where, p, recorded)
    task = DATASETS[s["dataset"]].task if s["dataset"] in DATASETS else "classification"
    if task == "regression" and "metric" not in study:
        s["metric"] = "val_rmse"  # a regression is judged by its error, in the target's units
    if s["metric"] in METRICS and metric_problem(s["metric"], task):
        p.add("study.metric", metric_problem(s["metric"], task), s["metric"])
    for table, t in (("defaults", defaults_raw), ("grid", grid_raw), ("search", raw.get("search") or {})):
        if not isinstance(t, dict):
            continue
        if task == "regression" and "label_smoothing" in t:
            p.add(f"{table}.label_smoothing", "smooths class labels: not for a regression target", t["label_smoothing"])
        if task == "classification" and "regression_loss" in t:
            p.add(f"{table}.regression_loss", "is a numeric target's loss: a classifier trains with cross-entropy",
                  t["regression_loss"])
    model_rules: dict = {}
    model_ints: frozenset = frozenset()
    if "model" in study or "model" in defaults_raw:
        model_rules, model_ints = _resolve_model(study.get("model", defaults_raw.get("model")), where, p, recorded,
                                     defaults_raw, grid_raw, raw.get("search") or {})
        s["model"] = study.get("model", defaults_raw.get("model"))
        defaults_raw = {k: v for k, v in defaults_raw.items() if k != "model"}
    defaults = _parse_defaults(defaults_raw, p, model_rules)
    grid = _parse_grid(grid_raw, p, model_rules)
    plan = None
    if searched:
        dims = parse_search(_table(raw, "search", p), p, model_rules, model_ints)
        plan = parse_plan(_table(raw, "study", Problems(where)), dims, s["metric"], p, len(s["seeds"]))
        for i, (m, _) in enumerate(plan.objectives):
            if metric_problem(m, task):
                p.add(f"study.objectives[{i}]", metric_problem(m, task), m)
        if grid_raw:
            p.add("grid", "a study has [grid] or [search], not both")
        if raw.get("hypothesis"):
            p.add("hypothesis", "a searched study tests no hypotheses (yet): put claims in a grid study")
        if "decide" in study:
            p.add("study.decide", "not with [search]")
    if "seed" in defaults_raw or "seed" in grid_raw:
        key = "defaults.seed" if "seed" in defaults_raw else "grid.seed"
        p.add(key, "seeds are set by study.seeds (a count or a list)")
    if p.items and not searched and "hypothesis" in raw:
        # every problem in one pass: the hypotheses' own rules (kind, keys, expect...) are
        # checked even though their selectors cannot be matched against a broken grid
        parse_hypotheses(raw.get("hypothesis", []), [], s["metric"], p, TrialConfig.__dataclass_fields__,
                         False, s["margin"])
    n_points = math.prod(len(v) for v in grid.values() if isinstance(v, (list, tuple))) if grid else 1
    if not searched and n_points * max(len(s["seeds"]), 1) > MAX_TRIALS:  # counted, never expanded
        sizes = " × ".join(f"{len(v)} {k}" for k, v in grid.items() if isinstance(v, (list, tuple)))
        p.add("grid", f"{sizes} × {len(s['seeds'])} seeds = {n_points * len(s['seeds']):,} trials, more than "
              f"the {MAX_TRIALS:,} a study may have: split it, or search the space with a [search] table instead")
    p.raise_if_any()

    spec = StudySpec(defaults=tuple(defaults.items()), grid=tuple(grid.items()), path=where,
                     source=text, hypotheses=(), search=plan, **s)
    _check_points(spec, p)
    if plan is not None:
        _check_search_points(spec, p)
    p.raise_if_any()
    if plan is not None:
        return spec

    hyps = parse_hypotheses(raw.get("hypothesis", []), spec.configs(), spec.metric, p,
                            TrialConfig.__dataclass_fields__, check_selectors, spec.margin)
    for i, h in enumerate(hyps):
        if metric_problem(h.metric, task):
            p.add(f"hypothesis[{i}] ({h.id}).metric", metric_problem(h.metric, task), h.metric)
    p.raise_if_any()
    return replace(spec, hypotheses=tuple(hyps))


def _resolve_dataset(value: str, data: Any, split_seed: int, where: str, p: Problems, recorded: bool = False) -> str:
    """``[study] dataset`` as a key of :data:`tunebook.datasets.DATASETS`: a built-in name, a
    dataset registered from Python, or a data file (relative to the study file) read with
    ``[data]`` now — every check before anything is written. A study folder's own copy
    (``<study>/study.toml``) finds the data it ran on in ``<study>/data.toml`` when the file
    is elsewhere, or always with ``recorded`` (analysing and reporting need its sizes, not
    its rows, and the runs' data, not today's file)."""
    from . import userdata

    key = value if value in DATASETS else userdata.by_name(value)
    if key is not None:
        if data is not None:
            p.add("data", f"only with a data file as study.dataset ({value!r} is read as it is)")
        return key
    if not (userdata.is_data_path(value) or userdata.is_sklearn(value)):
        p.add("study.dataset", "must be one of " + ", ".join(_fmt(d) for d in DATASETS if DATASETS[d].builtin)
              + ", a dataset registered from Python (tunebook.Dataset.from_arrays), a data file ("
              + ", ".join(userdata.SUFFIXES) + ") or one of scikit-learn's shipped ones ("
              + ", ".join(f"sklearn:{n}" for n in userdata.SKLEARN) + ")", value)
        return "fashion-mnist"
    opts, problems = userdata.parse_options(data if data is not None else {}, where)
    for problem in problems:
        p.items.append(problem)
    if problems:
        return "fashion-mnist"
    record = Path(where).parent / userdata.DATA_RECORD
    path = Path(value) if Path(value).is_absolute() else Path(where).parent / value
    reachable = userdata.is_sklearn(value) or path.is_file()
    if record.is_file() and (recorded or not reachable):  # a study folder's copy: the data it ran on
        try:
            info = userdata.info_from_record(tomlio.loads(record.read_text(encoding="utf-8")))
        except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
            p.add("study.dataset", f"{record} cannot be read ({type(exc).__name__}: {exc}); tunebook writes it "
                  "when the study runs: run it again")
            return "fashion-mnist"
        DATASETS.setdefault(info.name, info)
        return info.name
    if userdata.is_sklearn(value):
        try:
            ds = userdata.read_sklearn(value, opts, split_seed, where)
        except SpecError as exc:
            p.items.extend(exc.problems)
            return "fashion-mnist"
        return userdata.register(ds).key
    try:
        ds = userdata.read_file(path, opts, split_seed, where)
    except SpecError as exc:
        p.items.extend(exc.problems)
        return "fashion-mnist"
    userdata.register(ds)
    return ds.key


def _table(raw: Mapping, key: str, p: Problems, required: bool = False) -> dict:
    if key not in raw:
        if required:
            p.add(f"[{key}]", "section is required")
        return {}
    value = raw[key]
    if not isinstance(value, dict):
        p.add(key, "must be a table", value)
        return {}
    return value


def _parse_study(t: Mapping[str, Any], p: Problems) -> dict[str, Any]:
    for key in t:
        if key not in _STUDY_KEYS:
            p.add(f"study.{key}", "unknown key (expected one of " + ", ".join(sorted(_STUDY_KEYS)) + ")")
    name = t.get("name")
    if name is None:
        p.add("study.name", "is required")
    elif not isinstance(name, str) or not NAME_RULE.fullmatch(name):
        p.add("study.name", "must match [a-z0-9][a-z0-9_-]* (at most 64 characters; it names a folder)", name)
    dataset = t.get("dataset", "fashion-mnist")
    if not isinstance(dataset, str):
        p.add("study.dataset", "must be a built-in dataset's name or a data file", dataset)
        dataset = "fashion-mnist"
    validation = t.get("validation", 0.1)
    if validation != "test":
        v, err = float_rule(lambda x: 0 < x <= 0.5, 'a fraction in (0, 0.5] or "test"')(validation)
        if err:
            p.add("study.validation", err, validation)
            validation = 0.1
        else:
            validation = v
    seeds_raw = t.get("seeds", 1)
    seeds: tuple[int, ...] = (0,)
    if isinstance(seeds_raw, list):
        ok = seeds_raw and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**31 for x in seeds_raw)
        if not ok or len(set(seeds_raw)) != len(seeds_raw):
            p.add("study.seeds", "must be a list of distinct integers in [0, 2^31)", seeds_raw)
        else:
            seeds = tuple(seeds_raw)
    else:
        n, err = int_rule(1, 100_000, "a count from 1 to 100000 or a list of seeds")(seeds_raw)
        if err:
            p.add("study.seeds", err, seeds_raw)
        else:
            seeds = tuple(range(n))
    split_seed, err = int_rule(0, 2**31 - 1, "a non-negative integer")(t.get("split_seed", 0))
    if err:
        p.add("study.split_seed", err, t.get("split_seed"))
    subset, err = int_rule(0, None, "a non-negative integer (0 = the whole training split)")(t.get("train_subset", 0))
    if err:
        p.add("study.train_subset", err, t.get("train_subset"))
    metric = t.get("metric", "val_acc")
    if metric not in METRICS:
        p.add("study.metric", "must be one of " + ", ".join(_fmt(m) for m in METRICS), metric)
    alpha, err = float_rule(lambda x: 0 < x < 0.5, "a number in (0, 0.5)")(t.get("alpha", 0.05))
    if err:
        p.add("study.alpha", err, t.get("alpha"))
    for key in ("title", "description", "smoke"):
        if key in t and not isinstance(t[key], str):
            p.add(f"study.{key}", "must be a string", t[key])
    margin, err = float_rule(lambda x: x >= 0, "a non-negative number in the metric's units (0.003 = 0.3 points "
                             "of accuracy)")(t.get("margin", 0.0))
    if err:
        p.add("study.margin", err, t.get("margin"))
    decide = _parse_decide(t.get("decide", {}), len(seeds), p)
    budget = t.get("budget", "")
    if budget != "":
        from .budget import budget_problem

        problem = budget_problem(budget)
        if problem:
            p.add("study.budget", problem + " (the run's budget when no --budget is given)", budget)
            budget = ""
    keep = t.get("keep", "best")
    if keep not in ("best", "all", "none"):
        p.add("study.keep", 'must be "best" (the weights of the recommended configuration\'s runs), "all" or "none"',
              keep)
    test = t.get("test", "auto")
    if test not in ("auto", "t", "bounded"):
        p.add("study.test", 'must be "auto" (the t-test, or the distribution-free bounded test where the seeds fail '
              'its Gaussian check), "t" or "bounded"', test)
    return {
        "keep": keep if keep in ("best", "all", "none") else "best", "budget": budget,
        "margin": margin or 0.0, "decide": decide, "test": test if test in ("auto", "t", "bounded") else "auto",
        "name": name if isinstance(name, str) else "",
        "title": t.get("title") if isinstance(t.get("title"), str) else (name if isinstance(name, str) else ""),
        "description": t.get("description") if isinstance(t.get("description"), str) else "",
        "smoke": t.get("smoke") if isinstance(t.get("smoke"), str) else "",
        "dataset": dataset, "validation": validation, "seeds": seeds,
        "split_seed": split_seed or 0, "train_subset": subset or 0,
        "metric": metric if metric in METRICS else "val_acc", "alpha": alpha or 0.05,
    }


def _parse_decide(t: Any, n_seeds: int, p: Problems) -> "DecidePlan":
    """``[study.decide]``: how ``--until-decided`` adds seeds (see :class:`DecidePlan`)."""
    if not isinstance(t, dict):
        p.add("study.decide", "must be a table ([study.decide] with max_seeds and round)", t)
        return DecidePlan(max(n_seeds, 100), n_seeds)
    for key in t:
        if key not in _DECIDE_KEYS:
            p.add(f"study.decide.{key}", "unknown key (expected max_seeds, round)")
    max_seeds, err = int_rule(max(n_seeds, 2), 10_000, f"an integer from the study's {n_seeds} seeds (at least 2) "
                              "to 10000")(t.get("max_seeds", max(n_seeds, 100)))
    if err:
        p.add("study.decide.max_seeds", err, t.get("max_seeds"))
    rnd, err = int_rule(1, 10_000, "a positive integer (seeds added per round)")(t.get("round", n_seeds))
    if err:
        p.add("study.decide.round", err, t.get("round"))
    return DecidePlan(max_seeds or max(n_seeds, 100), rnd or n_seeds)


def _rule_for(section: str, key: str, p: Problems, extra: Mapping | None = None):
    """The rule of hyperparameter ``key`` (tunebook's, or a user model's own: ``extra``), or
    None after reporting it unknown ("seed" is reported once by the caller)."""
    rule = HPARAM_RULES.get(key) or (extra or {}).get(key)
    if rule is None and key != "seed":
        close = [k for k in [*HPARAM_RULES, *(extra or {})] if _similar(k, key)]
        hint = f"; did you mean {_fmt(close[0])}?" if close else ""
        own = f" (the model's own: {', '.join(extra)})" if extra else ""
        p.add(f"{section}.{key}", f"unknown hyperparameter{hint}{own}")
    return rule


#: The MLP's own hyperparameters: a user's model takes its shape from its factory instead.
MLP_ONLY = ("layers", "units1", "units2", "units3", "width", "depth", "activation", "dropout", "norm", "residual",
            "init", "label_smoothing")


def _resolve_model(ref: Any, where: str, p: Problems, recorded: bool, *tables: Mapping) -> tuple[dict, frozenset]:
    """``[study] model``: the factory imported (or, for a study folder's copy, its recorded
    declaration) and registered; its hyperparameters' rules. The MLP's shape keys are
    refused beside it."""
    from . import usermodel

    record = Path(where).parent / usermodel.MODEL_RECORD
    try:
        if recorded and record.is_file():
            ms = usermodel.from_record(tomlio.loads(record.read_text(encoding="utf-8")))
        else:
            ms = usermodel.load(ref, Path(where).parent, where)
    except SpecError as exc:
        p.items.extend(exc.problems)
        return {}, frozenset()
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        p.add("study.model", f"{record} cannot be read ({type(exc).__name__}: {exc})")
        return {}, frozenset()
    usermodel.remember(ms)
    for section, t in zip(("defaults", "grid", "search"), tables):
        for key in t if isinstance(t, dict) else ():
            if key in MLP_ONLY:
                p.add(f"{section}.{key}", f"is the MLP's: not with study.model = {_fmt(ms.ref)} (its shape is its "
                      "factory's; declare a hyperparameter of its own)")
    return ms.rules, frozenset(name for name, prm in ms.params if prm.kind == "int")


def _similar(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 2:
        return False
    common = sum(1 for x, y in zip(a, b) if x == y)
    return common >= max(len(a), len(b)) - 2


def _checked(rule, value: Any, where: str, p: Problems) -> tuple[bool, Any]:
    v, err = rule(value)
    if err:
        p.add(where, err, value)
    return err is None, v


def _parse_defaults(t: Mapping[str, Any], p: Problems, extra: Mapping | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in t.items():
        if key in MLP_ONLY and extra:
            continue  # refused by _resolve_model
        rule = _rule_for("defaults", key, p, extra)
        if rule is not None:
            ok, v = _checked(rule, value, f"defaults.{key}", p)
            if ok:
                out[key] = v
    return out


def _parse_grid(t: Mapping[str, Any], p: Problems, extra: Mapping | None = None) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for key, values in t.items():
        if key in MLP_ONLY and extra:
            continue  # refused by _resolve_model
        rule = _rule_for("grid", key, p, extra)
        if rule is None:
            continue
        if not isinstance(values, list) or not values:
            p.add(f"grid.{key}", "must be a non-empty list of values", values)
            continue
        checked = [_checked(rule, value, f"grid.{key}[{i}]", p) for i, value in enumerate(values)]
        good = [v for ok, v in checked if ok]
        if len(set(good)) != len(good):
            p.add(f"grid.{key}", "must not repeat a value", values)
        out[key] = tuple(good)
    return out


def _build(spec: StudySpec, merged: Mapping[str, Any], seed: int) -> TrialConfig:
    model_params: tuple = ()
    if spec.model:
        from . import usermodel

        ms = usermodel.remembered(spec.model)
        model_params = tuple(sorted((k, merged.get(k, default)) for k, default in ms.defaults.items()))
    return TrialConfig(
        dataset=spec.dataset, validation=spec.validation, split_seed=spec.split_seed,
        train_subset=spec.train_subset, seed=seed, model=spec.model, model_params=model_params,
        **{k: merged[k] for k in ("layers", "activation", "dropout", "epochs", "batch_size",
                                  "optimizer", "lr", "momentum", "beta1", "beta2", "alpha",
                                  "eps", "weight_decay", "label_smoothing", "init", "norm", "residual",
                                  "schedule", "warmup", "regression_loss")})


def _source_key(key: str, defaults: Mapping, grid: Mapping, point: Mapping) -> str:
    if key in point:
        return f"grid.{key}[{list(grid[key]).index(point[key])}]"
    if key in defaults:
        return f"defaults.{key}"
    return key


def _check_points(spec: StudySpec, p: Problems) -> None:
    """Rules that need a whole resolved configuration (checked for every grid point)."""
    defaults, grid = dict(spec.defaults), dict(spec.grid)
    info = DATASETS[spec.dataset]
    n_train = train_count(info, spec.validation, spec.train_subset)
    full = train_count(info, spec.validation)
    if spec.train_subset and not info.n_classes <= spec.train_subset <= full:
        p.add("study.train_subset", f"must be 0 or from {info.n_classes} to the training split's {full} samples",
              spec.train_subset)
    for point in spec.points():
        merged, problems = resolve(defaults, point)
        for key, rule in problems:
            p.add(_source_key(key, defaults, grid, point), rule, {**defaults, **point}.get(key))
        if merged["batch_size"] > n_train:
            p.add(_source_key("batch_size", defaults, grid, point),
                  f"must be at most the training split size {n_train}", merged["batch_size"])


def _check_search_points(spec: StudySpec, p: Problems) -> None:
    """Rules that need a whole configuration, for a searched study: every combination of
    its choices (up to 256), with each range at its low and its high end."""
    plan = spec.search
    defaults = dict(spec.defaults)
    choices = [d for d in plan.dimensions if d.kind == "choice"]
    ranges = [d for d in plan.dimensions if d.kind != "choice"]
    n_train = train_count(DATASETS[spec.dataset], spec.validation, spec.train_subset)
    seen: set[tuple[str, str]] = set()
    combos = list(itertools.islice(itertools.product(*[d.choices for d in choices]), 256))
    for combo in combos:
        picked = {d.name: v for d, v in zip(choices, combo)}
        picked = {d.name: picked[d.name] for d in choices if d.applies(picked)}
        for end in ("low", "high"):
            params = dict(picked)
            for d in ranges:
                if d.applies(params):
                    params[d.name] = getattr(d, end)
            merged, problems = resolve(defaults, params)
            for key, rule in problems:
                where = f"search.{key}" if key in params else (f"defaults.{key}" if key in defaults else key)
                if (where, rule) not in seen:
                    seen.add((where, rule))
                    p.add(where, rule + (f" (in the proposal {fmt_params(params)})" if params else ""))
            if merged["batch_size"] > n_train and ("batch_size", "") not in seen:
                seen.add(("batch_size", ""))
                where = "search.batch_size.high" if "batch_size" in params else "defaults.batch_size"
                p.add(where, f"must be at most the training split size {n_train}", merged["batch_size"])


def fmt_params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} = {_fmt(v)}" for k, v in params.items())


def model_epochs(configs: Iterable[TrialConfig], shared: bool = True) -> int:
    """Model-epochs the configs cost; with ``shared``, trials differing only in epochs
    share one run of the largest budget (the stacked engine's epoch sharing)."""
    if not shared:
        return sum(c.epochs for c in configs)
    longest: dict[tuple, int] = {}
    for c in configs:
        longest[c.stream_key] = max(longest.get(c.stream_key, 0), c.epochs)
    return sum(longest.values())


__all__ = ["StudySpec", "TrialConfig", "DecidePlan", "load_spec", "parse_spec", "model_epochs",
           "HPARAM_RULES", "BASE_DEFAULTS", "ACTIVATIONS", "OPTIMIZERS", "METRICS"]
