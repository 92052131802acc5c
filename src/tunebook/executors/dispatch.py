"""The driver's side of a remote executor: send groups to workers, turn their messages
into progress, live curves and stored results, and retry the groups of lost workers.

One loop serves every backend that runs groups out of this process (worker processes,
Ray). A backend offers ``free()`` (how many more jobs it takes now), ``submit(job)``,
``poll(timeout)`` (the messages that arrived: :mod:`.messages`) and ``cancel()``; this
loop does the rest, in the driver's one thread — the only writer of the store.

Retries: a job whose worker was lost is sent again, at most ``retries`` more times (a
backend that retries by itself, as Ray does, reports a loss only once its own retries
are spent). An attempt's live curves are dropped when it is lost or retried, so a run
folder holds exactly the epochs of the attempt that finished. A job that stays lost is
recorded ``failed`` with the reason; a study never waits forever on a dead worker.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

from ..datasets import io_sizes
from ..errors import SpecError
from ..records import TrialConfig, TrialResult
from ..training import failed_group
from .contract import Executor, Sink, Slot, Work
from .messages import Done, Epoch, Job, Lost, Started

POLL_SECONDS = 0.2


@dataclass
class _InFlight:
    job: Job
    slot: Slot                   # the group's live folders
    attempts: int = 0            # attempts started (a Started with a new token each)
    token: str = ""
    epochs: int = 0              # the last epoch whose live curves were written


class RemoteExecutor(Executor):
    """Groups sent to a backend's workers (:mod:`.process`, :mod:`.raycluster`); the
    largest first, so that the last to finish is a small one."""

    def __init__(self, name: str, backend, plan_device, retries: int, measure: Callable | None = None):
        super().__init__(plan_device, backend.describe())
        self.name, self.backend, self.retries, self._measure = name, backend, retries, measure
        self.shares_disk = name != "ray"  # a Ray worker may run on another machine

    def measure_cost(self):
        return self._measure() if self._measure is not None else super().measure_cost()

    def run(self, work: Work, sink: Sink) -> None:
        if work.stop is not None and not getattr(work.stop, "anywhere", False):  # refused by the options'
            raise SpecError([f"--executor {self.name}: this pruner needs --executor local"])  # checks already
        order = sorted(range(len(work.groups)), key=lambda i: -_work(work.groups[i]))
        dispatch(self.backend, Work(tuple(work.groups[i] for i in order), tuple(work.labels[i] for i in order),
                                    work.engine, work.data_dir, stop=work.stop, keep=work.keep,
                                    checkpoints=work.checkpoints if self.shares_disk else None), sink,
                 retries=self.retries)

    def warm(self, split: tuple, data_dir: str | None = None) -> None:
        if hasattr(self.backend, "warm"):
            from .messages import Warm

            self.backend.warm(Warm(split, data_dir))

    def close(self) -> None:
        self.backend.close()


def _work(group: Sequence[TrialConfig]) -> float:
    """A group's training arithmetic (FLOPs at its padded shape, every member's epochs):
    to send the largest first."""
    from ..sizes import flops_per_sample
    from ..planner import _streams, padded_shape

    lead = group[0]
    epochs = sum(max(c.epochs for c in stream) for stream in _streams(group))
    return (flops_per_sample(padded_shape([c.layers for c in group]), *io_sizes(lead.dataset))
            * epochs * lead.steps_per_epoch * lead.batch_size)


def dispatch(backend, work: Work, sink: Sink, retries: int = 2) -> None:
    """Train ``work`` on ``backend``; ``sink.finish(slot, results)`` stores each group's
    results as its job ends. On an interrupt, jobs in flight are cancelled and nothing
    of them is stored (a rerun trains them)."""
    engine, reporter = work.engine, sink.reporter
    data_dir = None if work.data_dir is None else str(work.data_dir)
    from ..userdata import payload

    from ..usermodel import payload as model_payload

    queue = deque(Job(i, tuple(g), engine, label, data_dir, work.keep, payload(g[0].dataset), work.checkpoints,
                      work.stop, model_payload(g[0].model))
                  for i, (g, label) in enumerate(zip(work.groups, work.labels), 1))
    running: dict[int, _InFlight] = {}
    tried: dict[int, int] = {}  # job id -> attempts lost so far
    try:
        while queue or running:
            while queue and backend.free() > 0 and sink.may_start():
                job = queue.popleft()
                fl = _InFlight(job, sink.slot(list(job.group)), attempts=tried.get(job.id, 0))
                running[job.id] = fl
                fl.slot.open()
                backend.submit(job)
            if not running:
                return
            for msg in backend.poll(POLL_SECONDS):
                fl = running.get(msg.job)
                if fl is None:
                    continue  # a message of a job already done or given up
                if isinstance(msg, Started):
                    _started(fl, msg, reporter)
                elif isinstance(msg, Epoch):
                    if msg.token == fl.token:
                        reporter.epoch(msg.event)
                        fl.slot.live(msg.event)
                        fl.epochs = msg.event.epoch
                        sink.epoch(msg.event)  # may stop the run (a budget): the finally cancels the rest
                elif isinstance(msg, Done):
                    del running[msg.job]
                    _done(fl, list(msg.results), sink.finish)
                elif isinstance(msg, Lost):
                    del running[msg.job]
                    fl.slot.close()  # the lost attempt's live curves go
                    lost = tried[msg.job] = max(fl.attempts, tried.get(msg.job, 0) + 1, msg.attempts)
                    if msg.retryable and lost <= retries:
                        reporter.group_retry(fl.job.label, lost, msg.why)
                        queue.appendleft(fl.job)
                    else:
                        why = (f"WorkerLost: the worker training this group died {lost} time(s) "
                               f"(the last: {msg.why}); the group was not retried again")
                        sink.finish(fl.slot, failed_group(fl.job.group, why, engine))
    finally:
        try:
            backend.cancel()
        finally:
            for fl in running.values():
                fl.slot.close()


def _started(fl: _InFlight, msg: Started, reporter) -> None:
    if fl.token:  # the backend retried the job by itself: the last attempt's curves are void
        reporter.group_retry(fl.job.label, fl.attempts, "its worker was lost")
        fl.slot.discard_live()
        fl.slot.open()
        fl.epochs = 0
    fl.token = msg.token
    fl.attempts += 1
    group = fl.job.group
    reporter.group_start(fl.job.label, len(group), max(c.epochs for c in group))
    reporter.group_placed(fl.job.label, msg.where, msg.pid)


def _done(fl: _InFlight, results: list[TrialResult], finish: Callable) -> None:
    """Store a finished job. Live curves are kept only when they hold every epoch the
    results do (else the run folder's curves are written whole from the results)."""
    fl.slot.live.close_all()
    if any(r.epochs_run > fl.epochs for r in results):
        fl.slot.discard_live()
    try:
        finish(fl.slot, results)
    finally:
        fl.slot.close()
