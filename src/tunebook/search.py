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

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from . import halving
from .analysis.search import (Confirmed, ProposalResult, confirm_seeds, confirmation, confirmation_looks,  # noqa: F401
                              confirmed, curve_of, importances, pareto_numbers, results_of, search_analysis,
                              top_proposals, value_of)
from .budget import Budget
from .datasets import DATASETS
from .errors import SpecError
from .execute import StudyOutcome, holding, kept_open, run_studies, warm_workers
from .ledger import LEDGER, Proposal, ledger_problems, read_ledger, write_ledger  # noqa: F401
from .options import CHECKPOINT_EVERY, MAX_FAILURES, RunOptions, picked
from .reporter import Reporter
from .sampling import (FinishedPruning, Pruning, distribution, make_pruner, make_sampler, open_batch, optuna_module,  # noqa: F401
                       rebuild, suggest)
from .spec import StudySpec
from .store import RunStore


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


# -- the loop ------------------------------------------------------------------------

def run_search(spec: StudySpec, out: str | Path = "modellogs", options: RunOptions | None = None, *,
               fresh: bool = False, reporter: Reporter | None = None, budget: Budget | None = None,
               device: str = "auto", engine: str = "stacked", executor="local", workers: int | None = None,
               ray_address: str | None = None, concurrent: int = 1, retries: int = 2, max_group: int | None = None,
               pad: "bool | str" = True, max_failures: int | None = MAX_FAILURES,
               data_dir: str | Path | None = None,
               checkpoint_every: float | None = CHECKPOINT_EVERY) -> SearchOutcome:
    """Run (or resume) a searched study until ``trials`` proposals are done or the time
    budget (``[study] time_budget`` or ``budget``) is spent. How trials train: ``options``
    or its fields as keywords (:func:`tunebook.execute.run_studies`); the executor's
    workers start once for the whole search."""
    opts = picked(options, locals())
    if spec.search is None:
        raise SpecError([f"{spec.path}: not a searched study (no [search] table)"])
    optuna_module()
    pruning = spec.search.prunes_in_driver  # a median pruner decides in any worker
    with kept_open(opts, pruning=pruning, search=True) as opts:
        warm_workers(opts, spec)  # they start while the inputs are checked
        with holding([spec], out, opts, fresh=fresh, pruning=pruning):
            return _search(spec, out, reporter, budget, opts)  # the lock held across every batch


def _search(spec: StudySpec, out, reporter: Reporter | None, budget: Budget | None,
            opts: RunOptions) -> SearchOutcome:
    plan = spec.search
    reporter = reporter or Reporter()
    if budget is None and plan.time_budget:
        budget = Budget.parse(plan.time_budget)
    t0 = time.perf_counter()
    folder = Path(out) / spec.folder
    last: StudyOutcome | None = None
    stopped = "trials"
    while True:
        with RunStore(out, spec.folder) as store:
            proposals = read_ledger(folder, spec.search)
            decisions = halving.read_decisions(folder) if plan.pruner == "halving" else []  # before any write
            runs = {r.trial_id: r for r in store.iter_runs([])}
            results = results_of(spec, proposals, runs)
            pending = [r for r in results if not r.finished]
            new: list[Proposal] = []
            trials: dict[int, Any] = {}
            can_ask = not pending and len(proposals) < plan.trials and not (budget is not None and budget.spent())
            if can_ask or (pending and plan.prunes_in_driver):  # asha, hyperband: the batch's live trials
                batch_number = pending[0].proposal.batch if pending else max((p.batch for p in proposals), default=-1) + 1
                _, trials, new = open_batch(spec, [r for r in results if r.finished], batch_number,
                                            [r.proposal for r in pending], len(proposals),
                                            min(plan.batch, plan.trials - len(proposals)) if can_ask else 0)
                if new:
                    write_ledger(folder, [*proposals, *new])
        batch = [*pending, *results_of(spec, new, {})]
        todo = [c for r in batch for c in r.configs]
        stop = None
        if plan.pruner == "halving" and todo:  # the batch's next phase: to its next rung, or to the end
            stop = halving.phase(batch, decisions)
        elif plan.pruner != "none" and todo:
            proposal_of = {c.trial_id: r.proposal.number for r in batch for c in r.configs}
            stop = (Pruning(spec, trials, proposal_of) if plan.prunes_in_driver
                    else FinishedPruning(spec, [r for r in results if r.finished], proposal_of))
        if not todo and len(proposals) >= plan.trials:  # every proposal done: confirm the best
            todo = confirmation(spec, results, runs)[0]
        if not todo:
            stopped = "budget" if len(proposals) < plan.trials else "trials"
            break
        if budget is not None and budget.spent():
            stopped = "budget"
            break
        (last,) = run_studies([spec], out, opts, extra={spec.folder: todo}, budget=budget, reporter=reporter,
                              stop=stop)
        if last.stopped_by_budget:
            stopped = "budget"
            break
        if last.aborted:  # too many groups failed in a row: said by the outcome
            stopped = "failed"
            break
        if isinstance(stop, halving.Halving) and stop.pause_at:  # the batch stands at a rung: rank it
            if not _decide_rung(spec, folder, batch, decisions, last.paused, stop.pause_at, reporter):
                raise RuntimeError(f"{folder}: batch {batch[0].proposal.batch} paused at epoch {stop.pause_at} but "
                                   "could not be ranked there (a seed paused short of the rung); this is a bug in "
                                   "tunebook — please report it")
    with RunStore(out, spec.folder) as store:
        runs = {r.trial_id: r for r in store.iter_runs([])}
    results = results_of(spec, read_ledger(folder, spec.search), runs)
    return SearchOutcome(spec, folder, tuple(results), last, stopped, time.perf_counter() - t0,
                         tuple(confirmed(spec, results, runs)))


def _decide_rung(spec: StudySpec, folder: Path, batch: Sequence[ProposalResult], decisions: Sequence,
                 paused, epoch: int, reporter: Reporter) -> bool:
    """Successive halving at a rung: the paused proposals ranked, the decision added to
    ``decisions`` (the record as this phase began) and written before any survivor goes on
    (a resumed search reads it back). False where the batch could not be ranked: a seed
    paused short of the rung (never so; the caller stops rather than run the phase again
    and again)."""
    metric = spec.search.objectives[0][0]
    gone = halving.pruned_numbers(decisions)  # pruned at an earlier rung (a stack pauses them with its survivors)
    curves = halving.rung_curves([r for r in batch if r.proposal.number not in gone], paused, epoch, metric)
    if curves is None:
        return False
    if curves:  # else nothing trains past the rung any more (every group ended before it)
        d = halving.decide(batch[0].proposal.batch, epoch, curves, maximize=metric == "val_acc")
        halving.write_decisions(folder, [*decisions, d])
        reporter.rung_done(d.batch, epoch, len(d.kept), len(d.curves))
    return True


def load_search(spec: StudySpec, out: str | Path = "modellogs") -> tuple[list[ProposalResult], list[Confirmed]]:
    """The proposals of a searched study, what they gave, and the confirmed ones (read only)."""
    from .store import scan_runs

    folder = Path(out) / spec.folder
    runs = {r.trial_id: r for r in scan_runs(folder / "runs").runs}
    results = results_of(spec, read_ledger(folder, spec.search), runs)
    return results, confirmed(spec, results, runs)


def export_journal(spec: StudySpec, results: Sequence[ProposalResult], path: str | Path,
                   confirmed: Sequence = ()) -> Path:
    """The search as an Optuna journal file (``optuna-dashboard PATH`` opens it): one
    Optuna trial per proposal, its value the mean over seeds, the seeds' trial ids and
    values as user attributes. A proposal still training is written as RUNNING.
    ``confirmed`` (:class:`tunebook.analysis.search.Confirmed`): the confirmation, as a
    second study ``<name>-confirmation`` in the same journal — one trial per confirmed
    proposal, its value the mean over the confirmation seeds, with its 95 % interval,
    P(best) and each seed's value as user attributes."""
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
            user[f"{m}_per_seed"] = [value_of(m, run, DATASETS[spec.dataset].n_classes) for run in r.runs]
        study.add_trial(optuna.trial.create_trial(
            state=state, values=list(r.values) if state == State.COMPLETE else None, params=r.params,
            distributions={k: distribution(dims[k]) for k in r.params}, user_attrs=user,
            intermediate_values={e + 1: v for e, v in enumerate(r.curve)}))
    if confirmed:
        metric, direction = plan.objectives[0]
        again = optuna.create_study(storage=storage, study_name=f"{spec.name}-confirmation",
                                    direction="maximize" if direction == "max" else "minimize")
        again.set_user_attr("tunebook_confirmation_of", spec.name)
        for c in confirmed:
            e = c.estimate
            user = {"tunebook_number": c.result.proposal.number, "seeds": [run.config.seed for run in c.runs],
                    f"{metric}_per_seed": [value_of(metric, run, DATASETS[spec.dataset].n_classes) for run in c.runs],
                    "ci95": [e.low, e.high], "p_best": e.p_best,
                    "decision": c.versus.decision if c.versus is not None else "likely best"}
            again.add_trial(optuna.trial.create_trial(
                state=optuna.trial.TrialState.COMPLETE, values=[e.mean], params=c.result.params,
                distributions={k: distribution(dims[k]) for k in c.result.params}, user_attrs=user))
    return path
