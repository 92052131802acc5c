"""The Optuna adapter: the search space as Optuna distributions, the sampler and pruner
of a study file, and an Optuna study rebuilt from the record of proposals for each batch.
Optuna is optional: ``pip install 'tunebook[search]'``."""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Sequence

from .errors import SpecError
from .ledger import Proposal
from .search_space import Dimension, SearchPlan
from .spec import StudySpec


def optuna_module():
    """Optuna, or a clear error saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise SpecError(["[search] needs Optuna: pip install 'tunebook[search]' (optuna 5)"]) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # tunebook says what matters itself
    return optuna


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


#: Finished proposals Optuna's median pruner waits for before it prunes (``n_startup_trials``).
MEDIAN_STARTUP = 5


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
        return optuna.pruners.MedianPruner(n_startup_trials=MEDIAN_STARTUP, n_warmup_steps=1)
    return None


def rebuild(spec: StudySpec, done: Sequence, sampler):
    """A fresh in-memory Optuna study holding every finished proposal (``done``: each a
    :class:`tunebook.analysis.search.ProposalResult` — complete, failed, pruned), each with
    its epoch-by-epoch curve for the pruner."""
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


def open_batch(spec: StudySpec, done: Sequence, batch_number: int, pending: Sequence[Proposal],
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
    proposal pruned once is stopped in every group that holds its seeds.

    It holds the batch's live Optuna trials, so it decides in this process
    (``anywhere = False``: the search trains with ``--executor local``)."""

    #: whether a copy of this stopper decides the same in a worker process or a Ray task
    anywhere = False

    def __init__(self, spec: StudySpec, trials: Mapping[int, Any], proposal_of: Mapping[str, int]):
        self.metric = spec.search.objectives[0][0]
        self.trials, self.proposal_of = trials, proposal_of
        self.pruned: set = set()

    def _key(self, event, number: int):
        """What a decision is kept under: the proposal (here), or the proposal in one group."""
        return number

    def _trial(self, event, number: int):
        return self.trials.get(number)

    def __call__(self, event) -> set[str]:
        by_proposal: dict[int, list[tuple[str, float]]] = {}
        for trial_id, _, _, val_loss, val_acc in event.members_detail:
            number = self.proposal_of.get(trial_id)
            if number is not None and self._trial(event, number) is not None:
                by_proposal.setdefault(number, []).append((trial_id, val_acc if self.metric == "val_acc" else val_loss))
        stop: set[str] = set()
        for number, rows in by_proposal.items():
            values = [v for _, v in rows if math.isfinite(v)]
            if self._key(event, number) not in self.pruned and values:
                self._trial(event, number).report(sum(values) / len(values), event.epoch)
        for number, rows in by_proposal.items():
            key = self._key(event, number)
            if key not in self.pruned and self._trial(event, number).should_prune():
                self.pruned.add(key)
            if key in self.pruned:
                stop.update(t for t, _ in rows)
        return stop


class FinishedPruning(Pruning):
    """A stopper for pruners that compare a proposal with *finished* proposals only
    (``median``: Optuna's MedianPruner reads completed trials alone). It carries plain
    copies of those — each one's value and epoch-by-epoch curve — and builds its Optuna
    study where it first decides, so it pickles to worker processes and Ray tasks and
    decides there exactly as here (``anywhere = True``): the search trains its groups side
    by side on every executor.

    Each group decides from the seeds it holds (a proposal's seeds train in one group
    unless ``--max-group`` splits them; then each part is judged on its own seeds, on every
    executor alike)."""

    anywhere = True

    def __init__(self, spec: StudySpec, done: Sequence, proposal_of: Mapping[str, int]):
        plan = spec.search
        self.metric = plan.objectives[0][0]
        self.direction = "maximize" if plan.objectives[0][1] == "max" else "minimize"
        self.pruner = make_pruner(spec)
        self.finished = tuple((r.values[0], tuple(r.curve)) for r in done
                              if r.values is not None and not r.pruned and not r.failed)
        self.proposal_of = dict(proposal_of)
        self.pruned = set()
        self._study, self.trials = None, {}

    def __getstate__(self) -> dict:  # the Optuna study is built again where it decides
        return {**self.__dict__, "_study": None, "trials": {}, "pruned": set()}

    def _key(self, event, number: int):
        return (event.label, number)

    def _trial(self, event, number: int):
        key = self._key(event, number)
        if key not in self.trials:
            optuna = optuna_module()
            if self._study is None:
                self._study = optuna.create_study(direction=self.direction, pruner=self.pruner,
                                                  sampler=optuna.samplers.RandomSampler(seed=0))
                for value, curve in self.finished:
                    self._study.add_trial(optuna.trial.create_trial(
                        state=optuna.trial.TrialState.COMPLETE, value=value,
                        intermediate_values={e + 1: v for e, v in enumerate(curve)}))
            self.trials[key] = self._study.ask()
        return self.trials[key]
