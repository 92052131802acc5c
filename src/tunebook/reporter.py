"""Progress callbacks: what a run says while it trains. The default says nothing; the CLI
draws progress bars (:mod:`tunebook.progress`), a notebook may pass its own."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from .records import TrialConfig, TrialResult
    from .spec import StudySpec


class Reporter:
    """Progress callbacks; the default says nothing. Executors call ``group_start``,
    ``epoch``, ``group_placed`` and ``group_retry``; the driver the rest."""

    def study_start(self, specs: "Sequence[StudySpec]", todo: int, done: int, groups: int) -> None: ...
    def group_start(self, label: str, trials: int, epochs: int) -> None: ...
    def epoch(self, event) -> None: ...
    def trial_saved(self, config: "TrialConfig", result: "TrialResult") -> None: ...
    def study_end(self, outcome) -> None:
        """A :class:`tunebook.execute.StudyOutcome`: what the call did."""
    def planner_measured(self, cost, seconds: float) -> None:
        """The planner's cost model of this device was measured (once per output root)."""
    def executor_ready(self, description: str) -> None:
        """Where groups will train, when not in this process (before each call's first group)."""
    def group_placed(self, label: str, where: str, pid: int = 0) -> None:
        """A worker (``where``: host, process, device; ``pid`` its process id on that host)
        began the group (process and ray executors)."""
    def group_retry(self, label: str, attempt: int, why: str) -> None:
        """The worker training a group was lost after ``attempt`` attempts; it is sent again."""
    def rung_done(self, batch: int, epoch: int, kept: int, ranked: int) -> None:
        """A search's successive halving ranked batch ``batch`` at epoch ``epoch``: ``kept``
        of the ``ranked`` proposals go on, the rest are pruned there."""
    def round_done(self, round_: int, decided: int, total: int, adding: int, configs: int, seeds: int) -> None:
        """--until-decided: a round was judged; ``adding`` trials (``configs`` configurations
        up to ``seeds`` seeds) train next."""


class LockedReporter:
    """A reporter called from several threads, one call at a time (``lock`` is public: the
    thread that stores results holds it too, so a bar is never drawn mid-save)."""

    def __init__(self, reporter: Reporter):
        self._reporter, self.lock = reporter, threading.Lock()

    def __getattr__(self, name):
        method = getattr(self._reporter, name)

        def locked(*args, **kwargs):
            with self.lock:
                return method(*args, **kwargs)
        return locked
