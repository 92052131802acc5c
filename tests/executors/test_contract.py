"""The executor contract (tunebook.executors.contract), held against every executor: the
local one (in turn, and two groups at once in threads), worker processes, Ray on a real
local instance, and a fake backend that drives the remote dispatch loop in this process.

Each test calls ``executor.run(work, sink)`` directly with a recording sink — the contract
itself, not a study run through it — and checks one invariant of the contract's docstring.
"""

from __future__ import annotations

import threading
from collections import deque
from contextlib import nullcontext

import pytest

from tunebook.execute import LiveSlot
from tunebook.executors import Options, Work, open_executor
from tunebook.executors.dispatch import RemoteExecutor
from tunebook.executors.messages import Lost
from tunebook.executors.worker import run_job
from tunebook.planner import group_label, plan_groups
from tunebook.reporter import Reporter
from tests.executors.helpers import study, worker_threads


class FakeBackend:
    """A backend for the dispatch loop that trains in this process: ``submit`` queues a job,
    ``poll`` trains one and returns its messages. ``lose_first``: the first attempt of the
    first job is reported lost (retryable), as a dead worker would be."""

    def __init__(self, slots: int = 2, lose_first: bool = False):
        self.slots, self.lose_first = slots, lose_first
        self.queue: deque = deque()
        self.in_flight = 0
        self.cancelled = 0
        self.closed = False

    def describe(self) -> str:
        return "a fake backend in this process"

    def free(self) -> int:
        return self.slots - self.in_flight

    def submit(self, job) -> None:
        self.queue.append(job)
        self.in_flight += 1

    def poll(self, timeout: float) -> list:
        if not self.queue:
            return []
        job = self.queue.popleft()
        self.in_flight -= 1
        if self.lose_first:
            self.lose_first = False
            return [Lost(job.id, "fake: the worker was lost")]
        messages: list = []
        done = run_job(job, "cpu", messages.append)
        return [*messages, done]

    def cancel(self) -> None:
        self.cancelled += len(self.queue)
        self.queue.clear()
        self.in_flight = 0

    def close(self) -> None:
        self.closed = True


def _fake(**kwargs):
    import torch

    from tunebook.planner import target_of

    return RemoteExecutor("fake", FakeBackend(**kwargs), target_of(torch.device("cpu"), 1), retries=2)


@pytest.fixture(params=["local", "local-threads", "process", "ray", "fake"])
def executor(request):
    """Each executor, open for one test (Ray: the session's local instance)."""
    name = request.param
    if name == "fake":
        ex = _fake()
    elif name == "ray":
        pytest.importorskip("ray", reason="the Ray extra is part of the test install")
        request.getfixturevalue("ray_address")
        ex = open_executor(Options("ray", workers=2), "cpu")
    elif name == "local-threads":
        ex = open_executor(Options("local", concurrent=2), "cpu")
    elif name == "process":
        ex = open_executor(Options("process", workers=2), "cpu")
    else:
        ex = open_executor(Options("local"), "cpu")
    with ex:
        yield ex


class RecordingSink:
    """The driver's side of the contract, in memory: what was asked and stored, from
    which thread; slots opened and closed. ``starts``: how many groups may start."""

    def __init__(self, starts: int | None = None, reporter: Reporter | None = None, epochs: int | None = None):
        self.starts, self.stop_after = starts, epochs
        self.reporter = reporter or Reporter()
        self.asked = 0
        self.epochs = 0
        self.finished: list[tuple[list, list]] = []
        self.threads: set[int] = set()
        self.slots: list[LiveSlot] = []

    def may_start(self) -> bool:
        self.asked += 1
        return self.starts is None or len(self.slots) < self.starts

    def epoch(self, event) -> None:
        self.epochs += 1
        if self.stop_after is not None and self.epochs >= self.stop_after:
            from tunebook.budget import BudgetSpent

            raise BudgetSpent

    def slot(self, group):
        s = LiveSlot(list(group))
        s.closed = False
        close = s.close

        def closing():
            s.closed = True
            close()
        s.close = closing
        self.slots.append(s)
        return s

    def finish(self, slot, results) -> None:
        self.threads.add(threading.get_ident())
        self.finished.append((list(slot.group), list(results)))

    def results(self) -> dict:
        return {r.trial_id: r for _, rs in self.finished for r in rs}


def _work(name: str = "contract", grid: str = "units1 = [16, 24, 32]", engine: str = "stacked",
          epochs: int = 2) -> Work:
    configs = study(name, grid=grid, epochs=epochs, subset=1500).configs()
    import torch

    groups = plan_groups(configs, torch.device("cpu"), max_group=2, cost=None)
    assert len(groups) >= 3
    return Work(tuple(tuple(g) for g in groups), tuple(group_label(g) for g in groups), engine)


def _numbers(r) -> tuple:
    h = r.history
    return (r.status, r.epochs_run, r.params, r.flops, r.val_acc, r.val_loss, r.test_acc, r.test_loss,
            r.best_epoch, h.train_loss, h.train_acc, h.val_loss, h.val_acc)


def test_every_group_is_stored_once_with_the_local_numbers(executor):
    work = _work()
    sink = RecordingSink()
    executor.run(work, sink)
    wanted = [c.trial_id for g in work.groups for c in g]
    assert sorted(sink.results()) == sorted(wanted)                       # every trial, once
    assert sum(len(rs) for _, rs in sink.finished) == len(wanted)
    for group, results in sink.finished:                                  # one result per trial of its group
        assert sorted(r.trial_id for r in results) == sorted(c.trial_id for c in group)
    assert sink.threads == {threading.get_ident()}                        # stored from the caller's thread
    assert all(s.closed for s in sink.slots) and len(sink.slots) == len(work.groups)
    assert sink.asked >= len(work.groups)                                 # asked before each group
    reference = RecordingSink()
    # at the thread count the executor trains with (this process's for local and fake; a worker's share of the
    # cores): on AVX-512 CPUs a matrix product's sums split by thread count
    with worker_threads(2) if executor.name not in ("local", "fake") else nullcontext():
        open_executor(Options("local"), "cpu").run(work, reference)
    assert {k: _numbers(r) for k, r in sink.results().items()} == \
        {k: _numbers(r) for k, r in reference.results().items()}


def test_no_group_starts_once_the_sink_says_no(executor):
    work = _work("nostart")
    sink = RecordingSink(starts=1)
    executor.run(work, sink)
    assert len(sink.slots) == 1 and len(sink.finished) == 1              # the one started, stored
    assert all(s.closed for s in sink.slots)


def test_a_group_whose_training_raises_is_stored_failed_not_raised(executor):
    work = _work("raises", engine="no-such-engine")                      # KeyError inside training
    sink = RecordingSink()
    executor.run(work, sink)
    results = sink.results()
    assert len(results) == sum(len(g) for g in work.groups)
    assert {r.status for r in results.values()} == {"failed"}
    assert all("KeyError" in r.error for r in results.values())


class _InterruptAtFirstEpoch(Reporter):
    def epoch(self, event):
        raise KeyboardInterrupt


def test_an_interrupt_stores_nothing_in_flight_closes_every_slot_and_is_raised(executor):
    work = _work("interrupt", epochs=3)
    sink = RecordingSink(reporter=_InterruptAtFirstEpoch())
    with pytest.raises(KeyboardInterrupt):
        executor.run(work, sink)
    assert sink.finished == []
    assert sink.slots and all(s.closed for s in sink.slots)


def test_a_budget_spent_at_an_epoch_stops_the_run_there(executor):
    """sink.epoch is called at every epoch's end of every group, and its BudgetSpent stops
    the run like an interrupt: nothing in flight stored, every slot closed, re-raised."""
    from tunebook.budget import BudgetSpent

    work = _work("budget", epochs=3)
    sink = RecordingSink(epochs=1)
    with pytest.raises(BudgetSpent):
        executor.run(work, sink)
    assert sink.epochs >= 1 and sink.finished == []
    assert sink.slots and all(s.closed for s in sink.slots)


def test_an_executor_runs_again_until_closed(executor):
    first, second = RecordingSink(), RecordingSink()
    executor.run(_work("again", grid="units1 = [16, 24, 32]", epochs=1), first)
    executor.run(_work("again", grid="units1 = [40, 48, 56]", epochs=1), second)
    assert len(first.results()) == len(second.results()) == 6
    assert not set(first.results()) & set(second.results())


def test_the_dispatch_loop_retries_a_lost_group_and_stores_it_once():
    ex = _fake(lose_first=True)
    rec = []

    class Retries(Reporter):
        def group_retry(self, label, attempt, why):
            rec.append((label, attempt, why))

    work = _work("lost")
    sink = RecordingSink(reporter=Retries())
    ex.run(work, sink)
    assert len(rec) == 1 and rec[0][2] == "fake: the worker was lost"
    assert sorted(sink.results()) == sorted(c.trial_id for g in work.groups for c in g)
    assert {r.status for r in sink.results().values()} == {"complete"}
    assert len(sink.slots) == len(work.groups) + 1 and all(s.closed for s in sink.slots)  # the lost attempt's too


def test_kept_weights_come_back_with_their_results(executor):
    """Work.keep: each complete result carries its trained weights across the executor
    (threads, a pipe, Ray's object store), at the trial's own widths."""
    import dataclasses

    work = dataclasses.replace(_work("keep", epochs=1), keep=True)
    sink = RecordingSink()
    executor.run(work, sink)
    for group, results in sink.finished:
        by_id = {c.trial_id: c for c in group}
        for r in results:
            c = by_id[r.trial_id]
            assert r.weights is not None and r.weights["linear0.weight"].shape == (c.layers[0], 784)
            assert r.weights[f"linear{len(c.layers)}.bias"].shape == (10,)
