"""Synchronous successive halving over a search's batch (``[study] pruner = "halving"``).

The rule (Jamieson & Talwalkar 2016, "Non-stochastic best arm identification and
hyperparameter optimization"; the synchronous form of Li et al.'s Hyperband brackets):
rungs stand at 1, 3, 9, … epochs (``ETA`` = 3, below a proposal's last epoch). Every
proposal of a batch trains to the first rung and *pauses* there — its group keeps a
checkpoint and sends back its curves so far, in any executor; once the whole batch stands
at the rung, the proposals still to train past it are ranked by their objective at the
rung (the mean over their seeds; a diverged seed counts as the worst value) and the best
``max(1, n // ETA)`` go on to the next rung, the rest are stored ``pruned`` at the rung.
Ties go to the lower proposal number. The survivors go on from their checkpoints, so
nothing is trained twice and the numbers equal an unpaused run's.

Why not Optuna's SuccessiveHalvingPruner here: it decides one trial at a time against the
values recorded before it, so within a batch the first trial asked meets an empty rung and
the decision depends on the order of asking; here the whole rung is ranked at once.

What it assumes: the ranking at a rung predicts the ranking at the end (the usual bet of
early stopping; a slow starter with a good end is pruned). It is a budget rule, not a
test: it claims no error rate, and the search's confirmation step (more seeds of the best
proposals) is what the report's conclusions rest on.

Decisions are written before the survivors go on (``<study>/search/rungs.toml``, tunebook's
own file), so a stopped search resumes with the same survivors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import tomli_w

from . import tomlio
from .errors import SpecError
from .store import write_atomic

ETA = 3
RUNGS = Path("search") / "rungs.toml"


def rungs(epochs: int, eta: int = ETA) -> tuple[int, ...]:
    """The rungs below a proposal's last epoch: 1, eta, eta², … < ``epochs``."""
    out, r = [], 1
    while r < epochs:
        out.append(r)
        r *= eta
    return tuple(out)


def survivors(values: Mapping[int, float], maximize: bool, eta: int = ETA) -> set[int]:
    """The proposals (number → objective at the rung) that go on: the best
    ``max(1, n // eta)``; NaN ranks last, ties go to the lower number."""
    if not values:
        return set()
    worst = -math.inf if maximize else math.inf

    def key(number: int) -> tuple[float, int]:
        v = values[number]
        v = worst if math.isnan(v) else v
        return (-v if maximize else v, number)

    ranked = sorted(values, key=key)
    return set(ranked[:max(1, len(values) // eta)])


@dataclass(frozen=True)
class Decision:
    """One rung of one batch: each ranked proposal's curve up to the rung (its objective,
    the mean over its seeds, epoch by epoch), and which went on."""

    batch: int
    epoch: int
    curves: tuple[tuple[int, tuple[float, ...]], ...]   # (proposal number, objective at epochs 1..rung)
    kept: tuple[int, ...]

    @property
    def values(self) -> dict[int, float]:
        """Each ranked proposal's objective at the rung."""
        return {n: c[-1] for n, c in self.curves}

    @property
    def pruned(self) -> tuple[int, ...]:
        return tuple(n for n, _ in self.curves if n not in self.kept)

    def to_dict(self) -> dict:
        return {"batch": self.batch, "epoch": self.epoch, "kept": list(self.kept), "pruned": list(self.pruned),
                "curves": {str(n): list(c) for n, c in self.curves}}


def decide(batch: int, epoch: int, curves: Mapping[int, Sequence[float]], maximize: bool) -> Decision:
    """Rank the curves' values at the rung (:func:`survivors`)."""
    kept = survivors({n: c[-1] for n, c in curves.items()}, maximize)
    return Decision(batch, epoch, tuple(sorted((n, tuple(c)) for n, c in curves.items())), tuple(sorted(kept)))


def read_decisions(study_dir: Path) -> list[Decision]:
    path = study_dir / RUNGS
    if not path.is_file():
        return []
    try:
        doc = tomlio.loads(path.read_text(encoding="utf-8"))
        out = [Decision(int(d["batch"]), int(d["epoch"]),
                        tuple(sorted((int(n), tuple(float(v) for v in c)) for n, c in dict(d["curves"]).items())),
                        tuple(sorted(int(n) for n in d["kept"])))
               for d in doc.get("decision", [])]
        for d in out:
            if not set(d.kept) <= dict(d.curves).keys():
                raise ValueError(f"batch {d.batch}, epoch {d.epoch}: kept {sorted(set(d.kept) - dict(d.curves).keys())} "
                                 "were not ranked")
        return out
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise SpecError([f"{path}: cannot read the record of successive-halving decisions ({exc}); move it "
                         "aside to decide the paused batch again"]) from None


def write_decisions(study_dir: Path, decisions: Sequence[Decision]) -> None:
    body = tomli_w.dumps({"decision": [d.to_dict() for d in decisions]})
    (study_dir / RUNGS).parent.mkdir(parents=True, exist_ok=True)
    write_atomic(study_dir / RUNGS, "# tunebook: successive-halving decisions of this search (pruner = \"halving\")"
                 "\n# written before the survivors go on; a resumed search reads them back\n" + body)


class Halving:
    """The engines' stopper for one phase of a batch: its groups *pause* at the end of epoch
    ``pause_at`` (0: they train to the end) — each keeps its checkpoint and returns
    ``paused`` results with the curves so far — and the members ``decided`` to stop (trial
    id → rung epoch) are stopped at that epoch: at its end while training, or as soon as a
    group goes on from a checkpoint taken there (:meth:`decided_at`). A group left with no
    member to train does not pause: it ends. Plain data: it decides the same in any worker."""

    anywhere = True   # a copy decides the same in a worker process or a Ray task
    pauses = True     # groups keep checkpoints with it (its decisions are plain data)

    def __init__(self, pause_at: int = 0, decided: Mapping[str, int] | None = None):
        self.pause_at = int(pause_at)
        self.decided = dict(decided or {})

    def pause_for(self, trial_ids) -> int:
        """The epoch at whose end a group of these (lead) trials pauses; 0: it does not."""
        return self.pause_at

    def decided_at(self, epoch: int) -> set[str]:
        return {t for t, e in self.decided.items() if e == epoch}

    def __call__(self, event) -> set[str]:
        return {row[0] for row in event.members_detail if self.decided.get(row[0]) == event.epoch}


def next_rung(batch: Sequence, decisions: Sequence[Decision], batch_number: int) -> int:
    """The batch's next undecided rung (0: every rung decided: its survivors train to the
    end). ``batch``: its unfinished :class:`tunebook.analysis.search.ProposalResult` s."""
    done = {d.epoch for d in decisions if d.batch == batch_number}
    last = max((c.epochs for r in batch if not r.finished for c in r.configs), default=0)
    upcoming = [r for r in rungs(last) if r not in done and r > max(done, default=0)]
    return upcoming[0] if upcoming else 0


def pruned_numbers(decisions: Sequence[Decision]) -> dict[int, Decision]:
    """Proposal number → the decision that pruned it."""
    return {n: d for d in decisions for n in d.pruned}


def phase(batch: Sequence, decisions: Sequence[Decision]) -> Halving:
    """The stopper for the batch's next phase (``batch``: its unfinished proposals): pause
    at its next undecided rung, stop the proposals pruned at rungs decided before."""
    gone = pruned_numbers(decisions)
    decided = {c.trial_id: gone[r.proposal.number].epoch for r in batch for c in r.configs
               if r.proposal.number in gone}
    return Halving(next_rung(batch, decisions, batch[0].proposal.batch), decided)


def rung_curves(batch: Sequence, paused: Mapping, epoch: int, metric: str) -> dict[int, tuple[float, ...]] | None:
    """Each paused proposal's objective epoch by epoch up to the rung ``epoch`` (the mean
    over its seeds that train past it; a seed that diverged makes the value at the rung
    NaN — it ranks last). Proposals none of whose seeds paused, or that end at the rung,
    are not ranked; nor should ones pruned at an earlier rung be passed (a stack pauses
    them with its survivors). None when a seed paused short of the rung: it cannot be
    ranked there."""
    out = {}
    for r in batch:
        mine = [paused[c.trial_id] for c in r.configs if c.trial_id in paused and c.epochs > epoch]
        if not mine:
            continue
        if any(len(p.history) < epoch and not p.diverged_epoch for p in mine):
            return None
        curves = []
        for p in mine:
            curve = list((p.history.val_acc if metric == "val_acc" else p.history.val_loss)[:epoch])
            curve += [math.nan] * (epoch - len(curve))
            if p.diverged_epoch:
                curve[-1] = math.nan
            curves.append(curve)
        out[r.proposal.number] = tuple(math.fsum(c[e] for c in curves) / len(curves) for e in range(epoch))
    return out


