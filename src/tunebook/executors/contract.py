"""The executor contract: what an executor is given, what it must do, and what it calls.

The driver (:func:`tunebook.execute.run_studies`) plans groups and owns the store; an
executor trains the groups somewhere and hands each group's results back. Between them
are three small types:

- :class:`Work` — what to train: the planned groups, their labels, the engine, the data
  folder and the search's pruner (a frozen record);
- :class:`Sink` — the driver's side, which the executor calls: ``may_start()`` before each
  group, ``slot(group)`` for the group's live folders, ``epoch(event)`` at every epoch's
  end of every group, ``finish(slot, results)`` to store them, and ``reporter`` for progress;
- :class:`Executor` — ``run(work, sink)``, and ``close()`` when done.

Invariants every executor keeps (``tests/executors/test_contract.py`` holds each to them):

1. ``sink.may_start()`` is asked before each group starts; once it says no, no further group
   starts (groups in flight finish and are stored).
2. A group's results are stored by exactly one ``sink.finish(slot, results)`` call, in the
   thread that called ``run`` (the store has one writer), with one result per trial of the
   group; a trial whose training raised is a ``failed`` result, not an exception.
3. Every slot opened is closed, on success, failure and interrupt alike; after an interrupt
   (``KeyboardInterrupt``, or the ``BudgetSpent`` that ``sink.epoch`` raises) nothing of a
   group still in flight is stored, and ``run`` re-raises it.
4. Same trials, same numbers: a group gives the numbers the local executor gives at the
   same number of CPU threads (the engines' randomness is counter-based, per trial).
5. ``run`` may be called again on the same executor (rounds of ``--until-decided``, a
   search's batches) until ``close()``.

A new executor is one module: a subclass of :class:`Executor` and a :class:`Kind` that
checks its options and opens it, registered in :data:`tunebook.executors.EXECUTORS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Protocol, Sequence

from ..records import TrialConfig, TrialResult

if TYPE_CHECKING:
    from ..reporter import Reporter


@dataclass(frozen=True)
class Work:
    """The groups of one call, in the planner's order, and how to train them."""

    groups: tuple[tuple[TrialConfig, ...], ...]
    labels: tuple[str, ...]             # one per group: progress and errors name it
    engine: str = "stacked"
    data_dir: str | None = None
    #: a search's pruner (tunebook.engine.common.Stopper): one whose ``anywhere`` is true is
    #: sent with each group to the workers (a copy per group); others need the local executor
    stop: Callable | None = None
    keep: bool = False                  # results carry their trained weights (a study keeps them)
    #: (folder, seconds between saves): groups go on from their checkpoints and keep them
    #: (tunebook.checkpoints); None where the executor's workers do not share this disk
    checkpoints: tuple[str, float] | None = None

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.groups):
            raise ValueError(f"Work: {len(self.groups)} groups but {len(self.labels)} labels")


class Slot(Protocol):
    """One group in training, as the driver keeps it: its trials' live folders."""

    group: list[TrialConfig]
    started: float                      # Unix time the group started (it names the run folders)

    def open(self) -> None:
        """Create the live folders (TensorBoard curves grow there epoch by epoch)."""

    def live(self, event) -> None:
        """An epoch ended (an engine hook); ``live.close_all()`` closes the writers."""

    def discard_live(self) -> None:
        """Drop the curves written so far (a retried attempt's): the run folders are then
        written whole from the results."""

    def close(self) -> None:
        """Close the writers and remove unsaved live folders (idempotent)."""


class Sink(Protocol):
    """The driver's side of the contract."""

    reporter: "Reporter"

    def may_start(self) -> bool:
        """Whether another group may start (false once a budget is spent or too many groups
        in a row failed)."""

    def slot(self, group: Sequence[TrialConfig]) -> Slot:
        """A (not yet opened) slot for ``group``."""

    def epoch(self, event) -> None:
        """An epoch of a group ended (a ``tunebook.engine.common.EpochEvent``); it may raise
        ``tunebook.budget.BudgetSpent`` to stop the run there."""

    def finish(self, slot: Slot, results: Sequence[TrialResult]) -> None:
        """Store a group's results (one per trial)."""


class Executor(ABC):
    """Where groups train. ``plan_device`` is what the planner plans groups for (the
    workers' device, which may not be this process's)."""

    name: str = ""
    #: whether its workers write to this machine's disk (then groups keep checkpoints there)
    shares_disk: bool = True

    def __init__(self, plan_device, describe: str):
        self.plan_device, self._describe = plan_device, describe

    def describe(self) -> str:
        return self._describe

    def measure_cost(self):
        """The workers' device's stacked-step cost model (the planner's), measured here."""
        from ..engine.calibrate import calibrate

        return calibrate(self.plan_device)

    @abstractmethod
    def run(self, work: Work, sink: Sink) -> None:
        """Train ``work``'s groups, storing each through ``sink`` (the invariants above)."""

    def warm(self, split: tuple, data_dir: str | None = None) -> None:
        """Start the workers now and have each make a built-in dataset's ``split`` (a
        :func:`tunebook.training.data_key`) ready on its device — a caller that knows
        groups will come (a search); by default nothing."""

    def close(self) -> None:
        """Stop the workers (idempotent)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class Kind:
    """An executor as the options name it: its checks (run before anything is written) and
    how to open it."""

    name: str
    summary: str                        # for --help
    check: Callable                     # (Options, device: str, pruning: bool) -> list[str]
    open: Callable                      # (Options, device: str, data_dir) -> Executor
