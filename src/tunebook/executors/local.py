"""``--executor local``: groups train in this process — one after another, or
``--concurrent N`` at once, each in a thread of its own (and, on CUDA, a stream of its own)
while this thread opens live folders, loads data and stores results."""

from __future__ import annotations

import threading
from collections import deque

from ..reporter import LockedReporter
from ..training import device_data, train_group
from .contract import Executor, Kind, Sink, Slot, Work


class LocalExecutor(Executor):
    """This process: one group after another, or ``concurrent`` at once in threads."""

    name = "local"

    def __init__(self, device, concurrent: int = 1):
        super().__init__(device, f"this process ({device}" + (f", {concurrent} groups at once)" if concurrent > 1
                                                              else ")"))
        self.device, self.concurrent = device, concurrent

    def run(self, work: Work, sink: Sink) -> None:
        if self.concurrent > 1 and len(work.groups) > 1:
            train_concurrently(work, sink, self.device, self.concurrent)
        else:
            train_in_turn(work, sink, self.device)


def train_in_turn(work: Work, sink: Sink, dev) -> None:
    """One group after another, in this thread."""
    for group, label in zip(work.groups, work.labels):
        if not sink.may_start():
            return
        slot = sink.slot(list(group))
        try:
            try:
                slot.open()
                results = train_group(group, work.engine, dev, work.data_dir, sink.reporter,
                                      extra_hooks=[slot.live, sink.epoch], label=label, stop=work.stop,
                                      keep=work.keep, checkpoints=work.checkpoints)
            finally:
                slot.live.close_all()
            sink.finish(slot, results)
        finally:  # interrupted: the live curves of trials that were not saved go too
            slot.close()


class _Stopped(BaseException):
    """Raised in a worker thread at an epoch's end once the run is being interrupted
    (a BaseException: not recorded as a failed trial)."""


def train_concurrently(work: Work, sink: Sink, dev, workers: int) -> None:
    """Up to ``workers`` groups at once, each in a thread of its own (and, on CUDA, a
    stream of its own); this thread opens live folders, loads data and saves results,
    so one writer touches the store. On an interrupt the workers stop at their next
    epoch's end and their groups are not saved (a rerun trains them)."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    interrupted = threading.Event()
    locked = LockedReporter(sink.reporter)
    stop_lock = threading.Lock()
    stop = work.stop

    def stopper(event) -> None:
        if interrupted.is_set():
            raise _Stopped
        with locked.lock:  # the sink's budget, one thread at a time
            sink.epoch(event)

    def shared_stop(event):  # a pruner is asked by one worker at a time
        if stop is None:
            return set()
        with stop_lock:
            return stop(event)

    def train(group, slot: Slot, data, label):
        if dev.type != "cuda":
            return train_group(group, work.engine, dev, work.data_dir, locked, [slot.live, stopper], data, label,
                               shared_stop if stop is not None else None, work.keep, work.checkpoints)
        import torch

        with torch.cuda.stream(torch.cuda.Stream(dev)):
            return train_group(group, work.engine, dev, work.data_dir, locked, [slot.live, stopper], data, label,
                               shared_stop if stop is not None else None, work.keep, work.checkpoints)

    queue = deque(zip(work.groups, work.labels))
    running: dict = {}
    opening: list[Slot] = []  # a slot being opened, closed by the finally if interrupted
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tunebook-group")
    try:
        while queue or running:
            while queue and len(running) < workers and sink.may_start():
                group, label = queue.popleft()
                opening.append(sink.slot(list(group)))
                opening[0].open()
                data = device_data(group[0], dev, work.data_dir)
                if dev.type == "cuda":  # the data's copy is done before another stream reads it
                    import torch
                    torch.cuda.current_stream(dev).synchronize()
                future = pool.submit(train, group, opening[0], data, label)
                running[future] = opening.pop()
            if not running:
                return
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                slot = running[future]
                try:
                    results = future.result()
                    slot.live.close_all()
                    with locked.lock:
                        sink.finish(slot, results)
                finally:
                    running.pop(future)
                    slot.close()
    finally:
        interrupted.set()
        pool.shutdown(wait=True)  # each worker stops at its next epoch's end
        for slot in [*running.values(), *opening]:
            slot.close()


def _check(opts, device: str, pruning: bool) -> list[str]:
    if opts.workers is not None:
        return ["--workers: only with --executor process or ray (local trains in this process; "
                "--concurrent N trains N groups at once in threads)"]
    return []


def _open(opts, device: str, data_dir) -> LocalExecutor:
    from .common import resolved_device

    return LocalExecutor(resolved_device(device), opts.concurrent)


KIND = Kind("local", "in this process (--concurrent N: N groups at once, in threads)", _check, _open)
