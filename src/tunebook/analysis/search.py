"""A searched study's results, computed from its record of proposals and its runs:
each proposal's mean over its seeds, importances, the Pareto front, and the confirmation
of the best (the looks, the likely best against each other confirmed proposal). Pure:
the caller reads the files (:func:`tunebook.analysis.study.analyze`); the report renders
:class:`SearchAnalysis`."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from ..datasets import DATASETS
from ..ledger import Proposal
from ..records import TrialConfig
from ..spec import StudySpec
from ..store import Run
from .best import BestEstimate, prob_best
from .sequential import Look, paired_look, welch_look


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
class SearchAnalysis:
    """Everything the report says about a search."""

    results: tuple[ProposalResult, ...]
    confirmed: tuple[Confirmed, ...] = ()
    looks: tuple[int, ...] = ()            # seed counts at which the confirmation judges
    importances: Mapping[str, float] = field(default_factory=dict)
    pareto: frozenset[int] = frozenset()   # proposal numbers on the front (two objectives)
    #: (n, expected best, its standard deviation) for n = 1 .. the proposals done: the
    #: expected best objective of a search of n proposals (:func:`expected_best`)
    expected: tuple[tuple[int, float, float], ...] = ()


def expected_best(values: Sequence[float], maximize: bool = True) -> list[tuple[int, float, float]]:
    """The expected best value of ``n`` proposals, and its standard deviation, for every
    ``n`` from 1 to ``len(values)`` (Dodge et al. 2019, "Show Your Work", eq. 1): the best
    of ``n`` draws with replacement from the empirical distribution of the values seen.
    With ``v_(1) <= ... <= v_(N)`` and ``F_i = i / N``,
    ``E[best of n] = sum_i v_(i) (F_i^n - F_(i-1)^n)`` and the variance from the same weights.

    Assumption: the proposals are independent draws from one distribution — exact for
    random search; for an adaptive sampler (TPE), whose later proposals depend on earlier
    ones, a description of the values it found, not a prediction."""
    v = sorted(values) if maximize else sorted(-x for x in values)
    n_all = len(v)
    out = []
    for n in range(1, n_all + 1):
        w = [(i / n_all) ** n - ((i - 1) / n_all) ** n for i in range(1, n_all + 1)]
        mean = sum(wi * x for wi, x in zip(w, v))
        var = max(0.0, sum(wi * x * x for wi, x in zip(w, v)) - mean * mean)
        out.append((n, mean if maximize else -mean, math.sqrt(var)))
    return out


def search_analysis(spec: StudySpec, proposals: Sequence[Proposal], runs: Mapping[str, Run],
                    with_importances: bool = True) -> SearchAnalysis:
    """The analysis of ``spec``'s search from its recorded ``proposals`` and stored ``runs``
    (by trial id); ``with_importances=False`` leaves the importances empty."""
    results = results_of(spec, proposals, runs)
    two = len(spec.search.objectives) == 2
    metric, direction = spec.search.objectives[0]
    # a pruned proposal counts at its last epoch's value (below what it would have reached,
    # and below the best, or the pruner would not have stopped it)
    done = [r.values[0] if r.values is not None else r.curve[-1] for r in results
            if (r.values is not None and not r.pruned) or (r.pruned and r.curve)]
    return SearchAnalysis(tuple(results), tuple(confirmed(spec, results, runs)), tuple(confirmation_looks(spec)),
                          importances(spec, results) if with_importances else {}, frozenset(pareto_numbers(spec, results)) if two else frozenset(),
                          tuple(expected_best(done, direction == "max")) if not two and len(done) >= 2 else ())


# -- values --------------------------------------------------------------------------

#: The epoch-by-epoch curve a searched objective is followed by (pruning, the export).
PRUNE_CURVE = {"val_acc": "val_acc", "val_loss": "val_loss", "val_rmse": "val_loss"}


def value_of(metric: str, run: Run, n_classes: int) -> float:
    """What a run tells the sampler: its metric; a diverged or collapsed run counts at
    chance level (accuracy 1/C, loss ln C; a regression: what predicting the mean scores —
    loss 1 on the standardised target, RMSE one target SD, R² 0, MAE √(2/π) SD, a normal
    target's mean absolute deviation)."""
    res = run.result
    if metric in ("params", "flops"):
        return float(getattr(res, metric))
    if res.status == "diverged" or res.collapsed:
        if n_classes:
            return 1.0 / n_classes if metric == "val_acc" else math.log(n_classes)
        sd = DATASETS[run.config.dataset].target_sd
        return {"val_rmse": sd, "val_mae": math.sqrt(2 / math.pi) * sd, "val_r2": 0.0}.get(metric, 1.0)
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
            values = tuple(sum(value_of(m, r, n_classes) for r in final) / len(final) for m, _ in spec.search.objectives)
        out.append(ProposalResult(p, configs, tuple(final), values, failed, pruned, curve_of(spec, mine), mine))
    return out


def curve_of(spec: StudySpec, runs: Sequence[Run]) -> tuple[float, ...]:
    """The first objective's mean over the seeds at each epoch they all reached (for
    ``val_rmse``, the validation loss — the training criterion, the MSE it is the root of
    unless ``regression_loss = "huber"`` — in standardised units: what a pruner compares
    epoch by epoch)."""
    metric = PRUNE_CURVE.get(spec.search.objectives[0][0], "")
    if not metric or not runs:
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
    from ..sampling import optuna_module, rebuild

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

    n_classes = DATASETS[spec.dataset].n_classes
    metric, direction = spec.search.objectives[0]
    per = [tuple(runs[spec.config_for(r.params, seed).trial_id] for seed in seeds) for r in top]
    values = [[value_of(metric, m, n_classes) for m in mine] for mine in per]
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
