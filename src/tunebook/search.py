"""Searched studies: Optuna's samplers propose, tunebook trains them stacked, on seeds.

A batch at a time: the sampler is asked for ``batch`` proposals, each proposal trains on
the study's seeds (every seed its own run folder, all of a batch's runs planned into
stacked groups together — different widths share a padded stack where that pays), and
the sampler is told each proposal's **mean over its seeds**.

The run store stays the truth; next to it, ``<study>/search/proposals.toml`` records
what was proposed, batch by batch, *before* it trains (written atomically by tunebook).
That makes a search resumable and reproducible:

- an interrupted batch is finished on the next run, never proposed again;
- every batch is asked of a fresh Optuna study rebuilt from the record (parameters,
  values, the sampler's own per-trial attributes) and a sampler seeded by
  (``sampler_seed``, batch number), so the proposals are a function of the record: the
  same study file and seed give the same proposals whether or not the run was stopped
  on the way.

Values told: the objective's mean over the proposal's complete runs; a run that
diverged counts at chance level (accuracy 1/C, loss ln C: a configuration that diverges
on some seeds is a bad one); a proposal none of whose runs trained (engine failure) is
told FAIL. Optuna is an optional dependency: ``pip install 'tunebook[search]'``.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import tomli_w

from . import tomlio
from .datasets import DATASETS
from .errors import SpecError
from .execute import Reporter, StudyOutcome, run_studies
from .analysis.best import BestEstimate
from .analysis.sequential import Look
from .search_space import Dimension, SearchPlan
from .spec import StudySpec, TrialConfig
from .store import Run, RunStore, write_atomic

LEDGER = Path("search") / "proposals.toml"


def optuna_module():
    """Optuna, or a clear error saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise SpecError(["[search] needs Optuna: pip install 'tunebook[search]' (optuna 5)"]) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # tunebook says what matters itself
    return optuna


@dataclass(frozen=True)
class Proposal:
    """One point the sampler proposed: its number (0, 1, ...), the batch it came in, the
    hyperparameters as sampled, and the sampler's attributes of that trial."""

    number: int
    batch: int
    params: tuple[tuple[str, Any], ...]
    system_attrs: str = "{}"   # JSON: what the sampler stored on the trial (GA generations, CMA state)

    def to_dict(self) -> dict:
        return {"number": self.number, "batch": self.batch, "params": dict(self.params),
                "system_attrs": self.system_attrs}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Proposal":
        return cls(int(d["number"]), int(d["batch"]), tuple(dict(d["params"]).items()), str(d.get("system_attrs", "{}")))


@dataclass(frozen=True)
class ProposalResult:
    """A proposal and what its seeds gave."""

    proposal: Proposal
    configs: tuple[TrialConfig, ...]
    runs: tuple[Run, ...]              # its stored final runs (complete, diverged)
    values: tuple[float, ...] | None   # per objective, as told; None: not all seeds done
    failed: bool = False
    pruned: bool = False               # a pruner stopped it (its seeds are stored "pruned")
    curve: tuple[float, ...] = ()      # the first objective's mean over its seeds, epoch by epoch
    tried: tuple[Run, ...] = ()        # every stored run of its seeds (pruned and failed ones too)

    @property
    def finished(self) -> bool:
        """Told to the sampler: complete, failed or pruned (else still to train)."""
        return self.values is not None or self.failed or self.pruned

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.proposal.params)

    def describe(self) -> str:
        """The hyperparameters as people read them: ``depth = 1, lr = 0.0005453, ...``."""
        return ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in self.params.items())


@dataclass(frozen=True)
class Confirmed:
    """A top proposal trained on the confirmation seeds, and how likely it is the best."""

    result: ProposalResult
    runs: tuple[Run, ...]              # its runs on every confirmation seed
    estimate: BestEstimate             # mean ± 95 % CI over those seeds; P(best) among the confirmed
    versus: Look | None = None         # the likely best against this one (None for the likely best itself)


@dataclass(frozen=True)
class SearchOutcome:
    spec: StudySpec
    folder: Path
    results: tuple[ProposalResult, ...]
    last: StudyOutcome | None
    stopped: str                       # "trials", "budget", "failed"
    seconds: float
    confirmed: tuple[Confirmed, ...] = ()

    def likely_best(self) -> Confirmed | None:
        """The confirmed proposal most likely to be the best (None before confirmation)."""
        return max(self.confirmed, key=lambda c: c.estimate.p_best, default=None)

    def best(self) -> ProposalResult | None:
        """The best proposal by its mean (first objective) — the luckiest mean, not yet a
        confirmed winner."""
        done = [r for r in self.results if r.values is not None]
        if not done:
            return None
        metric, direction = self.spec.search.objectives[0]
        sign = 1 if direction == "max" else -1
        return max(done, key=lambda r: sign * r.values[0])


# -- the record of proposals -------------------------------------------------------------

def read_ledger(study_dir: Path, plan: SearchPlan | None = None) -> list[Proposal]:
    """The recorded proposals; with ``plan``, each checked against the search space (an
    edited record with a value outside its distribution would train, then fail in Optuna):
    every problem named, exit 2, nothing trained."""
    import tomllib

    path = study_dir / LEDGER
    if not path.is_file():
        return []
    try:
        doc = tomlio.loads(path.read_text())
        proposals = [Proposal.from_dict(d) for d in doc.get("proposal", [])]
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError) as exc:
        raise SpecError([f"{path}: cannot read the record of proposals ({exc}); move it aside to start the "
                         "search over"]) from None
    if plan is not None:
        problems = [f"{path}: proposal {p.number}: {why}" for p in proposals for why in ledger_problems(p, plan)]
        if problems:
            raise SpecError(problems + [f"{path}: it does not match the study's [search] table; restore it, or "
                                        "move it aside to start the search over"])
    return proposals


def ledger_problems(p: Proposal, plan: SearchPlan) -> list[str]:
    """What is wrong with one recorded proposal for ``plan``'s space."""
    out = []
    params = dict(p.params)
    names = {d.name for d in plan.dimensions}
    for k in params:
        if k not in names:
            out.append(f"{k} is not a searched hyperparameter")
    for d in plan.dimensions:
        if d.name not in params:
            if d.applies(params):
                out.append(f"{d.name} is missing")
            continue
        v = params[d.name]
        if d.kind == "choice":
            if v not in d.choices:
                out.append(f"{d.name} = {v!r} is not one of {list(d.choices)}")
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            out.append(f"{d.name} = {v!r} is not a number")
        elif d.kind == "int" and int(v) != v:
            out.append(f"{d.name} = {v!r} is not an integer")
        elif not (float(d.low) - 1e-12 <= float(v) <= float(d.high) + 1e-12):
            out.append(f"{d.name} = {v!r} is outside its range [{d.low}, {d.high}]")
    return out


def write_ledger(study_dir: Path, proposals: Sequence[Proposal]) -> None:
    path = study_dir / LEDGER
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, "# tunebook: what the sampler proposed, batch by batch (written before training)\n"
                 + tomli_w.dumps({"proposal": [p.to_dict() for p in proposals]}))


# -- Optuna --------------------------------------------------------------------------

def distribution(d: Dimension):
    optuna = optuna_module()
    if d.kind == "choice":
        return optuna.distributions.CategoricalDistribution(list(d.choices))
    if d.kind == "int":
        return optuna.distributions.IntDistribution(int(d.low), int(d.high), log=d.log, step=int(d.step or 1))
    return optuna.distributions.FloatDistribution(float(d.low), float(d.high), log=d.log, step=d.step)


def suggest(trial, plan: SearchPlan) -> dict[str, Any]:
    """The trial's hyperparameters: unconditional ones first, then those whose condition
    holds (a conditional parameter is absent where it does not apply)."""
    params: dict[str, Any] = {}
    for d in plan.dimensions:
        if not d.applies(params):
            continue
        if d.kind == "choice":
            params[d.name] = trial.suggest_categorical(d.name, list(d.choices))
        elif d.kind == "int":
            params[d.name] = trial.suggest_int(d.name, int(d.low), int(d.high), step=int(d.step or 1), log=d.log)
        else:
            params[d.name] = trial.suggest_float(d.name, float(d.low), float(d.high), step=d.step, log=d.log)
    return params


def make_sampler(plan: SearchPlan, batch_number: int):
    """The sampler for one batch, seeded by (sampler_seed, batch)."""
    optuna = optuna_module()
    from .engine.rng import key

    seed = key(plan.sampler_seed, batch_number) & 0x7FFFFFFF
    if plan.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if plan.sampler == "tpe":  # the constant liar keeps a batch's proposals apart
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=True,
                                          n_startup_trials=max(10, plan.batch))
    if plan.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(10, plan.batch))
    if plan.sampler == "cmaes":
        import importlib.util

        if importlib.util.find_spec("cmaes") is None:
            raise SpecError(["study.sampler = \"cmaes\" needs the cmaes package: pip install cmaes"]) from None
        return optuna.samplers.CmaEsSampler(seed=seed, popsize=max(plan.batch, 4))
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(plan.batch, 4))


def make_pruner(spec: StudySpec):
    """Optuna's pruner for ``[study] pruner`` (None for "none").

    All of a batch advances in lock-step (one stacked epoch at a time), and every
    proposal of the batch reports its epoch before any is asked whether to stop, so a
    pruner that compares running trials sees the whole batch: successive halving
    (``asha``; Optuna's SuccessiveHalvingPruner, rungs at 1, 3, 9... epochs, the top third
    go on) and ``hyperband`` (several such brackets) prune within the first batch already.
    ``median`` compares with *completed* proposals only, so it starts pruning from the
    second batch, after 5 have completed."""
    optuna = optuna_module()
    plan = spec.search
    if plan.pruner == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if plan.pruner == "hyperband":
        epochs = [d.high for d in plan.dimensions if d.name == "epochs"] or [dict(spec.defaults).get("epochs", 3)]
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=int(epochs[0]), reduction_factor=3)
    if plan.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    return None


def rebuild(spec: StudySpec, done: Sequence[ProposalResult], sampler):
    """A fresh in-memory Optuna study holding every finished proposal (complete, failed,
    pruned), each with its epoch-by-epoch curve for the pruner."""
    optuna = optuna_module()
    plan = spec.search
    study = optuna.create_study(sampler=sampler, pruner=make_pruner(spec),
                                directions=["maximize" if d == "max" else "minimize" for _, d in plan.objectives])
    dims = {d.name: d for d in plan.dimensions}
    State = optuna.trial.TrialState
    for r in done:
        attrs = json.loads(r.proposal.system_attrs)
        state = State.PRUNED if r.pruned else State.FAIL if r.failed else State.COMPLETE
        study.add_trial(optuna.trial.create_trial(
            state=state, values=list(r.values) if state == State.COMPLETE else None, params=r.params,
            distributions={k: distribution(dims[k]) for k in r.params}, system_attrs=attrs,
            intermediate_values={e + 1: v for e, v in enumerate(r.curve)},
            user_attrs={"tunebook_number": r.proposal.number}))
    return study


def open_batch(spec: StudySpec, done: Sequence[ProposalResult], batch_number: int, pending: Sequence[Proposal],
               first: int, n: int):
    """The batch's live Optuna study: finished proposals added, the ``pending`` ones (an
    interrupted batch) asked again with their recorded parameters, and ``n`` new ones
    asked (numbered from ``first``). Returns (study, {number: trial}, new proposals)."""
    plan = spec.search
    study = rebuild(spec, done, make_sampler(plan, batch_number))
    trials = {}
    for p in pending:
        study.enqueue_trial(dict(p.params), skip_if_exists=False)
        trial = study.ask()
        suggest(trial, plan)
        trials[p.number] = trial
    new = []
    for i in range(n):
        trial = study.ask()
        params = suggest(trial, plan)
        attrs = dict(study.get_trials(deepcopy=False)[trial.number].system_attrs)
        attrs = {k: v for k, v in attrs.items() if not k.startswith("fixed_params")}
        try:
            encoded = json.dumps(attrs)
        except TypeError:
            encoded = "{}"
        new.append(Proposal(first + i, batch_number, tuple(params.items()), encoded))
        trials[first + i] = trial
    return study, trials, new


class Pruning:
    """The engine's stopper for one batch: after each epoch, every proposal in the group
    reports the mean of its seeds' objective (val_acc or val_loss); then each is asked
    ``should_prune`` — so the pruner sees the whole lock-step batch at that epoch. A
    proposal pruned once is stopped in every group that holds its seeds."""

    def __init__(self, spec: StudySpec, trials: Mapping[int, Any], proposal_of: Mapping[str, int]):
        self.metric = spec.search.objectives[0][0]
        self.trials, self.proposal_of = trials, proposal_of
        self.pruned: set[int] = set()

    def __call__(self, event) -> set[str]:
        by_proposal: dict[int, list[tuple[str, float]]] = {}
        for trial_id, _, _, val_loss, val_acc in event.members_detail:
            number = self.proposal_of.get(trial_id)
            if number is not None and number in self.trials:
                by_proposal.setdefault(number, []).append((trial_id, val_acc if self.metric == "val_acc" else val_loss))
        stop: set[str] = set()
        for number, rows in by_proposal.items():
            values = [v for _, v in rows if math.isfinite(v)]
            if number not in self.pruned and values:
                self.trials[number].report(sum(values) / len(values), event.epoch)
        for number, rows in by_proposal.items():
            if number not in self.pruned and self.trials[number].should_prune():
                self.pruned.add(number)
            if number in self.pruned:
                stop.update(t for t, _ in rows)
        return stop


# -- values --------------------------------------------------------------------------

def _value(metric: str, run: Run, n_classes: int) -> float:
    res = run.result
    if metric in ("params", "flops"):
        return float(getattr(res, metric))
    if res.status == "diverged" or res.collapsed:
        return 1.0 / n_classes if metric == "val_acc" else math.log(n_classes)
    return float(getattr(res, metric))


def results_of(spec: StudySpec, proposals: Sequence[Proposal], runs: Mapping[str, Run]) -> list[ProposalResult]:
    n_classes = DATASETS[spec.dataset].n_classes
    out = []
    for p in proposals:
        configs = tuple(spec.config_for(dict(p.params), seed) for seed in spec.seeds)
        mine = tuple(runs[c.trial_id] for c in configs if c.trial_id in runs)
        final = [r for r in mine if r.result.done]
        pruned = any(r.result.status == "pruned" for r in mine)
        failed = not pruned and len(mine) == len(configs) and len(final) < len(configs)  # tried, some failed
        values = None
        if len(final) == len(configs):
            values = tuple(sum(_value(m, r, n_classes) for r in final) / len(final) for m, _ in spec.search.objectives)
        out.append(ProposalResult(p, configs, tuple(final), values, failed, pruned, _curve(spec, mine), mine))
    return out


def _curve(spec: StudySpec, runs: Sequence[Run]) -> tuple[float, ...]:
    """The first objective's mean over the seeds at each epoch they all reached."""
    metric = spec.search.objectives[0][0]
    if metric not in ("val_acc", "val_loss") or not runs:
        return ()
    curves = [getattr(r.result.history, metric) for r in runs]
    n = min(len(c) for c in curves)
    out = []
    for e in range(n):
        vals = [c[e] for c in curves if math.isfinite(c[e])]
        if not vals:
            break
        out.append(sum(vals) / len(vals))
    return tuple(out)


def importances(spec: StudySpec, results: Sequence[ProposalResult]) -> dict[str, float]:
    """How much each searched hyperparameter decides whether a proposal lands in the best
    quarter of the completed ones (Optuna's PED-ANOVA evaluator, deterministic; fANOVA
    would need scikit-learn). Parameters present in every completed proposal only (a
    conditional one is left out); {} with fewer than 4 completed proposals."""
    optuna = optuna_module()
    done = [r for r in results if r.values is not None]
    if len(done) < 4:
        return {}
    study = rebuild(spec, done, optuna.samplers.RandomSampler(seed=0))
    common = [d.name for d in spec.search.dimensions if all(d.name in r.params for r in done)]
    varied = [n for n in common if len({repr(r.params[n]) for r in done}) > 1]
    if not varied:
        return {}
    sign = -1.0 if spec.search.objectives[0][1] == "max" else 1.0  # PED-ANOVA looks for *low* targets
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(target_quantile=0.25), params=varied,
                target=lambda t: sign * t.values[0])
    except (RuntimeError, ValueError):  # too little variation for the evaluator
        return {}


def pareto_numbers(spec: StudySpec, results: Sequence[ProposalResult]) -> set[int]:
    """Proposal numbers on the Pareto front of the objectives (multi-objective searches)."""
    signs = [1 if d == "max" else -1 for _, d in spec.search.objectives]
    vals = {r.proposal.number: tuple(s * x for s, x in zip(signs, r.values)) for r in results if r.values is not None}

    def dominates(w, v):  # w at least as good everywhere and better somewhere (higher is better here)
        return all(a >= b for a, b in zip(w, v)) and any(a > b for a, b in zip(w, v))
    return {n for n, v in vals.items() if not any(dominates(w, v) for m, w in vals.items() if m != n)}


# -- confirmation ----------------------------------------------------------------------

def confirm_seeds(spec: StudySpec, count: int | None = None) -> tuple[int, ...]:
    """The study's seeds, then the next unused integers, up to ``count`` (default: the
    first confirmation look, ``confirm_seeds``)."""
    seeds, n = list(spec.seeds), 0
    while len(seeds) < (count or spec.search.confirm_seeds):
        if n not in seeds:
            seeds.append(n)
        n += 1
    return tuple(seeds)


def top_proposals(spec: StudySpec, results: Sequence[ProposalResult]) -> list[ProposalResult]:
    """The ``confirm`` best proposals by their search mean (first objective) — judged on
    the search seeds only, so adding confirmation seeds never changes which they are."""
    done = [r for r in results if r.values is not None]
    sign = 1 if spec.search.objectives[0][1] == "max" else -1
    return sorted(done, key=lambda r: (-sign * r.values[0], r.proposal.number))[:spec.search.confirm]


def confirmation_looks(spec: StudySpec) -> list[int]:
    """Seed counts at which the confirmed proposals are judged: ``confirm_seeds``, then
    rounds of half as many more, up to ``confirm_max_seeds``."""
    plan = spec.search
    step = max(2, plan.confirm_seeds // 2)
    looks = list(range(plan.confirm_seeds, plan.confirm_max_seeds, step))
    return looks + [plan.confirm_max_seeds]


def confirmation(spec: StudySpec, results: Sequence[ProposalResult],
                 runs: Mapping[str, Run]) -> tuple[list[TrialConfig], list[Confirmed]]:
    """Where the confirmation stands: the trials still to train for the current look, and
    the confirmed proposals at the last complete look ([] before the first).

    At each look the likely best (highest P(best)) is compared with every other confirmed
    proposal by the decide machinery's tests (:mod:`tunebook.analysis.sequential`): the
    anytime-valid paired t-test when both train with one batch size (their seeds then share
    data order and dropout masks), Welch's interval split over the planned looks
    otherwise; at alpha / (confirmed proposals), for the lead is chosen from the data. Seeds are added, look
    by look, until every comparison is decided (better, or negligible within the study's
    ``margin``: the lead's interval against it lies above −margin, the rule of a ``best``
    verdict) or ``confirm_max_seeds`` is reached; the tests stay valid however many
    looks are taken. The path is recomputed from the store, so it resumes."""
    top = top_proposals(spec, results)
    if not top or spec.search.confirm == 0:
        return [], []
    last: list[Confirmed] = []
    looks = confirmation_looks(spec)
    for n in looks:
        seeds = confirm_seeds(spec, n)
        configs = [spec.config_for(r.params, seed) for r in top for seed in seeds]
        missing = [c for c in configs if c.trial_id not in runs]
        if missing or any(not runs[c.trial_id].result.done for c in configs):
            return missing, last  # a failed run stays failed: the look cannot complete
        last = _judged(spec, top, seeds, runs, len(looks))
        if all(c.versus is None or c.versus.decision != "undecided" for c in last):
            break
    return [], last


def _judged(spec: StudySpec, top: Sequence[ProposalResult], seeds, runs: Mapping[str, Run],
            n_looks: int) -> list[Confirmed]:
    from .analysis.best import prob_best
    from .analysis.sequential import paired_look, welch_look

    n_classes = DATASETS[spec.dataset].n_classes
    metric, direction = spec.search.objectives[0]
    per = [tuple(runs[spec.config_for(r.params, seed).trial_id] for seed in seeds) for r in top]
    values = [[_value(metric, m, n_classes) for m in mine] for mine in per]
    estimates = prob_best(values, direction == "max")
    lead = max(range(len(top)), key=lambda i: estimates[i].p_best)
    # the `best` verdict's rule (best within margin): the lead is chosen from the data among
    # the k confirmed, so each of its comparisons is at alpha / k (Bonferroni over the
    # choice); "within the margin of every other" needs each one (intersection–union)
    alpha = spec.alpha / max(1, len(top))
    out = []
    for i, (r, mine, e) in enumerate(zip(top, per, estimates)):
        look = None
        if i != lead:
            sign = 1.0 if direction == "max" else -1.0  # "a > b": the lead is better
            a, b = [sign * v for v in values[lead]], [sign * v for v in values[i]]
            same_data = top[lead].configs[0].batch_size == r.configs[0].batch_size
            look = (paired_look(a, b, alpha, spec.margin) if same_data
                    else welch_look(a, b, alpha, spec.margin, looks=n_looks))
            if spec.margin > 0 and look.decision == "undecided" and look.lo > -spec.margin:
                look = replace(look, decision="within margin")  # not behind by the margin: decided
        out.append(Confirmed(r, mine, e, look))
    return out


def confirmed(spec: StudySpec, results: Sequence[ProposalResult], runs: Mapping[str, Run]) -> list[Confirmed]:
    """The confirmed proposals at the last complete look ([] before the first)."""
    return confirmation(spec, results, runs)[1]


# -- the loop ------------------------------------------------------------------------

def run_search(spec: StudySpec, out: str | Path = "modellogs", *, reporter: Reporter | None = None,
               budget=None, **run_kwargs) -> SearchOutcome:
    """Run (or resume) a searched study until ``trials`` proposals are done or the time
    budget (``[study] time_budget`` or ``budget``) is spent. Options as for
    :func:`tunebook.execute.run_studies` (device, engine, max_group, pad, concurrent,
    executor...); the executor's workers start once for the whole search."""
    from .executors import kept_open

    if spec.search is None:
        raise SpecError([f"{spec.path}: not a searched study (no [search] table)"])
    optuna_module()
    from .execute import holding

    pruning = spec.search.pruner != "none"
    with kept_open(run_kwargs, pruning=pruning) as run_kwargs, holding([spec], out, run_kwargs, pruning):
        return _search(spec, out, reporter, budget, run_kwargs)  # the lock held across every batch


def _search(spec: StudySpec, out, reporter: Reporter | None, budget, run_kwargs: dict) -> SearchOutcome:
    from .loop import Budget

    plan = spec.search
    reporter = reporter or Reporter()
    if budget is None and plan.time_budget:
        budget = Budget.parse(plan.time_budget)
    t0 = time.perf_counter()
    folder = Path(out) / spec.folder
    last: StudyOutcome | None = None
    stopped = "trials"
    fresh = run_kwargs.pop("fresh", False)
    while True:
        with RunStore(out, spec.folder) as store:
            if fresh:
                store.start_over(time.strftime("%Y%m%d-%H%M%S"))
                fresh = False
            proposals = read_ledger(folder, spec.search)
            runs = {r.trial_id: r for r in store.iter_runs([])}
            results = results_of(spec, proposals, runs)
            pending = [r for r in results if not r.finished]
            new: list[Proposal] = []
            trials: dict[int, Any] = {}
            can_ask = not pending and len(proposals) < plan.trials and not (budget is not None and budget.spent())
            if can_ask or (pending and plan.pruner != "none"):
                batch_number = pending[0].proposal.batch if pending else max((p.batch for p in proposals), default=-1) + 1
                _, trials, new = open_batch(spec, [r for r in results if r.finished], batch_number,
                                            [r.proposal for r in pending], len(proposals),
                                            min(plan.batch, plan.trials - len(proposals)) if can_ask else 0)
                if new:
                    write_ledger(folder, [*proposals, *new])
        batch = [*pending, *results_of(spec, new, {})]
        todo = [c for r in batch for c in r.configs]
        stop = None
        if plan.pruner != "none" and todo:
            stop = Pruning(spec, trials, {c.trial_id: r.proposal.number for r in batch for c in r.configs})
        if not todo and len(proposals) >= plan.trials:  # every proposal done: confirm the best
            todo = confirmation(spec, results, runs)[0]
        if not todo:
            stopped = "budget" if len(proposals) < plan.trials else "trials"
            break
        if budget is not None and budget.spent():
            stopped = "budget"
            break
        (last,) = run_studies([spec], out, extra={spec.folder: todo}, budget=budget, reporter=reporter,
                              stop=stop, **run_kwargs)
        if last.stopped_by_budget:
            stopped = "budget"
            break
        if last.aborted:  # too many groups failed in a row: said by the outcome
            stopped = "failed"
            break
    with RunStore(out, spec.folder) as store:
        runs = {r.trial_id: r for r in store.iter_runs([])}
    results = results_of(spec, read_ledger(folder, spec.search), runs)
    return SearchOutcome(spec, folder, tuple(results), last, stopped, time.perf_counter() - t0,
                         tuple(confirmed(spec, results, runs)))


def load_search(spec: StudySpec, out: str | Path = "modellogs") -> tuple[list[ProposalResult], list[Confirmed]]:
    """The proposals of a searched study, what they gave, and the confirmed ones (read only)."""
    from .store import scan_runs

    folder = Path(out) / spec.folder
    runs = {r.trial_id: r for r in scan_runs(folder / "runs").runs}
    results = results_of(spec, read_ledger(folder, spec.search), runs)
    return results, confirmed(spec, results, runs)


def export_journal(spec: StudySpec, results: Sequence[ProposalResult], path: str | Path) -> Path:
    """The search as an Optuna journal file (``optuna-dashboard PATH`` opens it): one
    Optuna trial per proposal, its value the mean over seeds, the seeds' trial ids and
    values as user attributes. A proposal still training is written as RUNNING."""
    optuna = optuna_module()
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = Path(path)
    if path.exists():
        raise SpecError([f"--optuna {path}: exists; tunebook does not overwrite a journal (choose a new name)"])
    storage = JournalStorage(JournalFileBackend(str(path)))
    plan = spec.search
    study = optuna.create_study(storage=storage, study_name=spec.name, directions=[
        "maximize" if d == "max" else "minimize" for _, d in plan.objectives])
    study.set_user_attr("tunebook_sampler", plan.sampler)
    study.set_user_attr("tunebook_seeds", list(spec.seeds))
    with warnings.catch_warnings():  # experimental in Optuna, and what the dashboard labels axes with
        warnings.simplefilter("ignore")
        study.set_metric_names([m for m, _ in plan.objectives])
    dims = {d.name: d for d in plan.dimensions}
    for r in results:
        State = optuna.trial.TrialState
        state = (State.PRUNED if r.pruned else State.FAIL if r.failed else State.COMPLETE if r.values is not None
                 else State.RUNNING)
        user = {"tunebook_number": r.proposal.number, "seeds": [run.config.seed for run in r.runs],
                "trial_ids": [run.trial_id for run in r.runs]}
        for m, _ in plan.objectives:
            user[f"{m}_per_seed"] = [_value(m, run, DATASETS[spec.dataset].n_classes) for run in r.runs]
        study.add_trial(optuna.trial.create_trial(
            state=state, values=list(r.values) if state == State.COMPLETE else None, params=r.params,
            distributions={k: distribution(dims[k]) for k in r.params}, user_attrs=user,
            intermediate_values={e + 1: v for e, v in enumerate(r.curve)}))
    return path
