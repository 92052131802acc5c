"""``--until-decided``: add seeds, round by round, only where a hypothesis is still open.

A loop *around* the one-way flow (DESIGN: propose → plan → execute → store → analyse):

1. train what the study file asks for (its grid × its seeds), as ``tunebook run`` does;
2. judge every hypothesis at the planned looks (:mod:`tunebook.analysis.decide`);
3. stop when all are decided (and survive Holm's correction over the study), when the
   open ones have reached ``max_seeds``, or when the budget is spent; otherwise give every
   configuration an open hypothesis is judged on seeds up to the next look (``round`` more, the next seed numbers after the
   study's), train them stacked, and go to 2.

The store stays the only truth: the seeds of each configuration say which look it has
reached, so the loop can be killed at any point and the same command resumes where it
stopped. ``<study>/decide.toml`` marks the study as sequential (its report judges at the
looks) and records the plan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import tomli_w

from .budget import Budget
from .errors import SpecError
from .execute import StudyOutcome, holding, kept_open, run_studies
from .options import CHECKPOINT_EVERY, MAX_FAILURES, RunOptions, picked
from .reporter import Reporter
from .spec import StudySpec, TrialConfig
from .store import RunStore, write_atomic

@dataclass(frozen=True)
class DecideOutcome:
    """What :func:`run_until_decided` did and where the study stands."""

    spec: StudySpec
    folder: Path
    rounds: int                    # rounds of added seeds trained by this call
    decided: int
    hypotheses: int
    undecided: tuple[str, ...]     # ids still open
    stopped: str                   # "decided" | "max_seeds" | "budget" | "failed"
    model_epochs: int              # trained by this call
    seconds: float
    last: StudyOutcome | None = None


def extra_seeds(spec: StudySpec, n: int) -> list[int]:
    """The first ``n`` seeds of the study's sequence: its own, then the next numbers up."""
    seeds = list(spec.seeds)
    nxt = max(seeds) + 1 if seeds else 0
    while len(seeds) < n:
        seeds.append(nxt)
        nxt += 1
    return seeds[:n]


def mark(folder: Path, spec: StudySpec) -> None:
    from .analysis.study import DECIDE_MARK

    plan = {"decide": {"max_seeds": spec.decide.max_seeds, "round": spec.decide.round,
                       "looks": spec.decide.looks(len(spec.seeds)), "alpha": spec.alpha, "margin": spec.margin}}
    write_atomic(folder / DECIDE_MARK, "# written by tunebook run --until-decided: verdicts are judged at these looks\n"
                 + tomli_w.dumps(plan))


def run_until_decided(spec: StudySpec, out: str | Path = "modellogs", options: RunOptions | None = None, *,
                      fresh: bool = False, reporter: Reporter | None = None, budget: Budget | None = None,
                      device: str = "auto", engine: str = "stacked", executor="local", workers: int | None = None,
                      ray_address: str | None = None, concurrent: int = 1, retries: int = 2,
                      max_group: int | None = None, pad: "bool | str" = True, max_failures: int | None = MAX_FAILURES,
                      data_dir: str | Path | None = None,
                      checkpoint_every: float | None = CHECKPOINT_EVERY) -> DecideOutcome:
    """Run ``spec``, then add seeds where hypotheses are undecided until each is decided,
    reaches ``[study.decide] max_seeds``, or ``budget`` is spent. Resumable: call it again.
    How trials train: ``options`` or its fields as keywords (:func:`tunebook.execute.run_studies`)."""
    return run_all_until_decided([spec], out, picked(options, locals()), fresh=fresh, reporter=reporter,
                                 budget=budget)[0]


def _todo(spec: StudySpec, a) -> tuple[list, dict[str, tuple[TrialConfig, int]]]:
    """(open verdicts, configuration key → (config, seeds it needs for the next look)),
    configurations in order of expected decisions per model-epoch (:func:`_priority`), so
    that under a budget the groups most likely to decide something train first."""
    from .analysis.decide import involved, stored_seeds

    looks = spec.decide.looks(len(spec.seeds))
    open_ = [v for v in a.verdicts if still_open(a, v)]
    counts = stored_seeds(list(a.runs))
    wants: list[tuple[float, list, int]] = []
    for v in open_:
        cfgs = involved(v.hypothesis, a.configs)
        have = min((counts.get(c.key, 0) for c in cfgs), default=0)
        later = [n for n in looks if n > have]
        if later:
            cost = sum(c.config.epochs * max(later[0] - counts.get(c.key, 0), 0) for c in cfgs) or 1
            wants.append((_priority(v, spec.margin) / cost, cfgs, later[0]))
    todo: dict[str, tuple[TrialConfig, int]] = {}
    for _, cfgs, n in sorted(wants, key=lambda w: -w[0]):
        for c in cfgs:
            todo[c.key] = (c.config, max(n, todo.get(c.key, (None, 0))[1]))
    return open_, todo


def still_open(a, v) -> bool:
    """Whether a hypothesis still needs seeds: undecided, or decided at alpha but not yet
    surviving Holm's correction over the study (its anytime p-value can still fall)."""
    if v.no_data:
        return v.verdict == "inconclusive"
    return v.verdict == "inconclusive" or not a.survives_holm(v.hypothesis.id)


def _priority(v, margin: float) -> float:
    """How close a verdict is to a decision: its estimate, or the margin, in half-widths of
    its current interval (0 while the interval is unbounded)."""
    if not v.looks:
        return 0.0
    last = v.looks[-1]
    half = (last.hi - last.lo) / 2
    if not (half > 0 and half != float("inf")):
        return 0.0
    return max(abs(last.estimate), v.hypothesis.margin or margin) / half


def run_all_until_decided(specs: Sequence[StudySpec], out: str | Path = "modellogs",
                          options: RunOptions | None = None, *, fresh: bool = False,
                          reporter: Reporter | None = None, budget: Budget | None = None) -> list[DecideOutcome]:
    """:func:`run_until_decided` for several studies as one programme: each round's new
    seeds of all studies train together, and a trial several studies want trains once.
    The executor's workers (or Ray) start once for all rounds."""
    for spec in specs:
        if not spec.hypotheses:
            raise SpecError([f"{spec.path}: --until-decided needs [[hypothesis]] tables to decide"])
    options = options or RunOptions()
    # the executor opened once, the locks held across every round: no other process between rounds
    with kept_open(options) as opts, holding(specs, out, opts, fresh=fresh):
        return _rounds(specs, out, budget, reporter, opts)


def _rounds(specs: Sequence[StudySpec], out, budget: Budget | None, reporter: Reporter | None,
            opts: RunOptions) -> list[DecideOutcome]:
    from .analysis.study import analyze_runs, is_decided

    budget = budget or Budget()
    reporter = reporter or Reporter()
    t0, used0 = time.monotonic(), budget.used_model_epochs
    extra: dict[str, list[TrialConfig]] = {s.folder: [] for s in specs}
    rounds, last_finals = 0, -1
    stopped = {s.folder: "" for s in specs}
    while True:
        lasts = run_studies(specs, out, opts, extra=extra, budget=budget, reporter=reporter)
        for spec, last in zip(specs, lasts):
            if not is_decided(last.folder):
                with RunStore(out, spec.folder):
                    mark(last.folder, spec)
        # each study's runs read once per round; all of them feed every study's cost model
        stored = {s.folder: list(RunStore(out, s.folder).iter_runs()) for s in specs}
        every = [r for rs in stored.values() for r in rs]
        analyses = {s.folder: analyze_runs(s, stored[s.folder], last.folder, cost_runs=every, sequential=True)
                    for s, last in zip(specs, lasts)}
        plans = {s.folder: _todo(s, analyses[s.folder]) for s in specs}
        spent = budget.spent() or any(o.stopped_by_budget for o in lasts)
        added_any = []
        finals = sum(1 for o in lasts for r in o.runs if r.result.done) + sum(len(a.runs) for a in analyses.values())
        progressed, last_finals = finals != last_finals, finals
        for spec in specs:
            open_, todo = plans[spec.folder]
            if stopped[spec.folder]:
                continue
            if not open_:
                stopped[spec.folder] = "decided"
            elif spent:
                stopped[spec.folder] = "budget"
            elif not todo:
                stopped[spec.folder] = "max_seeds"
            else:
                known = {c.trial_id for c in extra[spec.folder]}
                new = [replace(cfg, seed=sd) for cfg, n in todo.values() for sd in extra_seeds(spec, n)]
                added = [c for c in new if c.trial_id not in known]
                extra[spec.folder] += added
                added_any += added
        if any(o.aborted for o in lasts):  # too many groups failed in a row: said by the outcome
            for k, v in stopped.items():
                stopped[k] = v or "failed"
            break
        if all(stopped.values()):
            break
        if not added_any and not progressed:  # the seeds asked for cannot be trained (they keep failing)
            for k, v in stopped.items():
                stopped[k] = v or "failed"
            break
        n_dec = sum(len(a.verdicts) - len(plans[f][0]) for f, a in analyses.items())
        n_all = sum(len(a.verdicts) for a in analyses.values())
        open_cfgs = list({k: v for f in plans if not stopped[f] for k, v in plans[f][1].items()}.values())
        reporter.round_done(rounds + 1, n_dec, n_all, len({c.trial_id for c in added_any}), len(open_cfgs),
                            max((n for _, n in open_cfgs), default=0))
        rounds += 1
    out_ = []
    for spec, last in zip(specs, lasts):
        a = analyses[spec.folder]
        open_ids = tuple(v.hypothesis.id for v in a.verdicts if still_open(a, v))
        out_.append(DecideOutcome(spec, last.folder, rounds, len(a.verdicts) - len(open_ids), len(a.verdicts),
                                  open_ids, stopped[spec.folder], budget.used_model_epochs - used0,
                                  time.monotonic() - t0, last))
    return out_
