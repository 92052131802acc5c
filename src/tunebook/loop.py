"""``--until-decided``: add seeds, round by round, only where a hypothesis is still open.

A loop *around* the one-way flow (DESIGN: propose → plan → execute → store → analyse):

1. train what the study file asks for (its grid × its seeds), as ``tunebook run`` does;
2. judge every hypothesis at the planned looks (:mod:`tunebook.analysis.decide`);
3. stop when all are decided, when the undecided ones have reached ``max_seeds``, or when
   the budget is spent; otherwise give every configuration an undecided hypothesis is
   judged on seeds up to the next look (``round`` more, the next seed numbers after the
   study's), train them stacked, and go to 2.

The store stays the only truth: the seeds of each configuration say which look it has
reached, so the loop can be killed at any point and the same command resumes where it
stopped. ``<study>/decide.toml`` marks the study as sequential (its report judges at the
looks) and records the plan.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import tomli_w

from .errors import SpecError
from .execute import Reporter, StudyOutcome, run_studies
from .spec import StudySpec, TrialConfig
from .store import RunStore, write_atomic

_BUDGET = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|me|model-epochs)\s*")
_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600}


@dataclass
class Budget:
    """Wall time and/or model-epochs; ``spent()`` is asked before every group starts, so a
    run overshoots by at most the group in flight."""

    seconds: float | None = None
    model_epochs: int | None = None
    started: float = field(default_factory=time.monotonic)
    used_model_epochs: int = 0

    @classmethod
    def parse(cls, text: str) -> "Budget":
        """``"10m"``, ``"90s"``, ``"1.5h"``, ``"2000me"`` (model-epochs)."""
        m = _BUDGET.fullmatch(text or "")
        if not m:
            raise SpecError([f"--budget: must be a number and a unit — s, m, h (wall time) or me "
                             f"(model-epochs), e.g. 10m or 2000me — got {text!r}"])
        value, unit = float(m[1]), m[2]
        if value <= 0:
            raise SpecError([f"--budget: must be positive, got {text!r}"])
        if unit in ("me", "model-epochs"):
            return cls(model_epochs=int(value))
        return cls(seconds=value * _SECONDS[unit])

    def spend(self, model_epochs: int) -> None:
        self.used_model_epochs += model_epochs

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def spent(self) -> bool:
        return ((self.seconds is not None and self.elapsed() >= self.seconds)
                or (self.model_epochs is not None and self.used_model_epochs >= self.model_epochs))

    def describe(self) -> str:
        parts = []
        if self.seconds is not None:
            parts.append(f"{self.elapsed():.0f} of {self.seconds:.0f} s")
        if self.model_epochs is not None:
            parts.append(f"{self.used_model_epochs} of {self.model_epochs} model-epochs")
        return ", ".join(parts) or f"{self.elapsed():.0f} s, {self.used_model_epochs} model-epochs (no budget)"


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


def run_until_decided(spec: StudySpec, out: str | Path = "modellogs", *, budget: Budget | None = None,
                      reporter: Reporter | None = None, **run_kwargs) -> DecideOutcome:
    """Run ``spec``, then add seeds where hypotheses are undecided until each is decided,
    reaches ``[study.decide] max_seeds``, or ``budget`` is spent. Resumable: call it again.
    Options as for :func:`tunebook.execute.run_studies`."""
    from .analysis.decide import involved, stored_seeds
    from .analysis.study import analyze

    if not spec.hypotheses:
        raise SpecError([f"{spec.path}: --until-decided needs [[hypothesis]] tables to decide"])
    budget = budget or Budget()
    reporter = reporter or Reporter()
    t0, used0 = time.monotonic(), budget.used_model_epochs
    extra: list[TrialConfig] = []
    rounds, last, stopped = 0, None, "decided"
    looks = spec.decide.looks(len(spec.seeds))
    while True:
        last = run_studies([spec], out, extra={spec.folder: extra}, budget=budget, reporter=reporter, **run_kwargs)[0]
        run_kwargs["fresh"] = False  # --fresh starts the study over once, not every round
        if rounds == 0 and not (last.folder / "decide.toml").exists():
            with RunStore(out, spec.folder):
                mark(last.folder, spec)
        a = analyze(last.folder)
        open_ = [v for v in a.verdicts if v.verdict == "inconclusive"]
        counts = stored_seeds(list(a.runs))
        todo: dict[str, tuple[TrialConfig, int]] = {}
        for v in open_:
            cfgs = involved(v.hypothesis, a.configs)
            have = min((counts.get(c.key, 0) for c in cfgs), default=0)
            later = [n for n in looks if n > have]
            if not later:
                continue
            for c in cfgs:
                todo[c.key] = (c.config, max(later[0], todo.get(c.key, (None, 0))[1]))
        if last.stopped_by_budget or budget.spent():
            stopped = "budget" if open_ else "decided"
            break
        if not open_:
            break
        if not todo:
            stopped = "max_seeds"
            break
        new = [replace(cfg, seed=s) for cfg, n in todo.values() for s in extra_seeds(spec, n)]
        known = {c.trial_id for c in extra}
        added = [c for c in new if c.trial_id not in known]
        if not added and last.trained == 0:  # the seeds asked for cannot be trained (they keep failing)
            stopped = "failed"
            break
        reporter.round_done(rounds + 1, len(a.verdicts) - len(open_), len(a.verdicts), len(added), len(todo),
                            max(n for _, n in todo.values()))
        extra += added
        rounds += 1
    decided = [v for v in a.verdicts if v.verdict != "inconclusive"]
    return DecideOutcome(spec, last.folder, rounds, len(decided), len(a.verdicts),
                         tuple(v.hypothesis.id for v in a.verdicts if v.verdict == "inconclusive"), stopped,
                         budget.used_model_epochs - used0, time.monotonic() - t0, last)
