"""``--executor process``: worker processes on this machine, one group each at a time.

Each worker is a spawned Python process with its own device (on a box with several
GPUs, one worker per GPU by default) and its own share of the CPU's threads. It reads
the dataset from this node's files once, keeps it on its device, and trains the groups
it is sent; its messages come back over a pipe. A worker that dies (killed, out of
memory) is noticed by its process sentinel, replaced, and its group sent again. Workers
ignore Ctrl-C (the driver decides), and leave when the driver is gone: at their next
epoch's end, or when their pipe closes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from multiprocessing.connection import wait

from .contract import Kind
from .messages import Done, Job, Lost, Warm
from .worker import warm

JOIN_SECONDS = 5.0


def _main(conn, device: str, threads: int, parent: int) -> None:  # pragma: no cover - runs in the worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    from .worker import run_job

    torch.set_num_threads(threads)

    def orphaned(event) -> None:
        if os.getppid() != parent:  # the driver died: nobody will store this group
            os._exit(70)

    def send(msg) -> None:
        try:
            conn.send(msg)
        except OSError:  # BrokenPipeError: the driver is gone, nobody reads this; leave without a traceback
            os._exit(0)

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        if isinstance(job, Warm):
            warm(job, device)
            continue
        send(run_job(job, device, send, hooks=[orphaned]))


def _entry_point_is_tunebook() -> bool:
    """Whether this driver is tunebook's own command (whose entry point is guarded), so that
    the hint about an unguarded script is not given where it cannot apply."""
    import sys

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", "") or ""
    return name.startswith("tunebook") or os.path.basename(sys.argv[0] if sys.argv else "") == "tunebook"


class _Worker:
    def __init__(self, ctx, device: str, threads: int):
        self.device = device
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_main, args=(child, device, threads, os.getpid()), daemon=True,
                                   name=f"tunebook-worker-{device}")
        self.process.start()
        child.close()
        self.job: Job | None = None
        self.heard = False  # any message received from it

    def lost(self) -> str:
        self.process.join(timeout=1.0)
        code = self.process.exitcode
        how = (f"killed by signal {signal.Signals(-code).name}" if code is not None and code < 0
               else f"exit code {code}")
        hint = ("" if self.heard else "; it died before it began: see its error above"
                + ("" if _entry_point_is_tunebook() else " — a Python script that starts worker processes must "
                   "guard its entry point with `if __name__ == \"__main__\":`"))
        return f"worker process {self.process.pid} on {self.device} died ({how}){hint}"

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=JOIN_SECONDS)
        self.conn.close()


class ProcessBackend:
    """Up to ``len(devices)`` worker processes, ``threads`` CPU threads each, started as
    groups need them: a study of 2 groups starts 2 workers whatever ``--workers`` says."""

    name = "process"

    def __init__(self, devices: list[str], threads: int):
        self.ctx = mp.get_context("spawn")
        self.devices, self.threads = list(devices), threads
        self.workers: list[_Worker | None] = [None] * len(self.devices)  # a slot starts its worker when used
        self.warmed: set[Warm] = set()

    def describe(self) -> str:
        started = sum(w is not None for w in self.workers)
        return (f"up to {len(self.workers)} worker processes ({', '.join(sorted(set(self.devices)))}; "
                f"{self.threads} threads each; {started} started so far, one per group in flight)")

    def free(self) -> int:
        return sum(w is None or w.job is None for w in self.workers)

    def start(self) -> None:
        """Start every worker now (a search: groups will come), before this process has
        loaded torch, which each worker loads meanwhile."""
        for i, w in enumerate(self.workers):
            if w is None:
                self.workers[i] = _Worker(self.ctx, self.devices[i], self.threads)

    def warm(self, msg: Warm) -> None:
        """Start every worker now and have each make the dataset's split ready: their start
        overlaps the driver's own (a search's first batch would otherwise wait for it).
        Once per message."""
        if msg in self.warmed:
            return
        self.warmed.add(msg)
        self.start()
        for w in self.workers:
            try:
                w.conn.send(msg)
            except OSError:  # died already: replaced when a job comes
                pass

    def submit(self, job: Job) -> None:
        idle = [i for i, w in enumerate(self.workers) if w is not None and w.job is None]
        i = idle[0] if idle else next(i for i, w in enumerate(self.workers) if w is None)
        w = self.workers[i]
        if w is not None and not w.process.is_alive():  # died while idle
            w.kill()
            w = None
        if w is None:
            w = self.workers[i] = _Worker(self.ctx, self.devices[i], self.threads)
        w.job = job
        try:
            w.conn.send(job)
        except OSError:  # died just now; the sentinel reports it
            pass

    def poll(self, timeout: float) -> list:
        busy = [w for w in self.workers if w is not None and w.job is not None]
        if not busy:
            return []
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout))
        out: list = []
        for i, w in enumerate(self.workers):
            if w is None or w.job is None or not ({w.conn, w.process.sentinel} & ready):
                continue
            dead = False
            try:
                while w.conn.poll():
                    msg = w.conn.recv()
                    w.heard = True
                    out.append(msg)
                    if isinstance(msg, Done):
                        w.job = None
                        break
            except (EOFError, OSError):
                dead = True
            if w.job is not None and (dead or not w.process.is_alive()):
                out.append(Lost(w.job.id, w.lost()))
                w.kill()
                self.workers[i] = _Worker(self.ctx, self.devices[i], self.threads)
        return out

    def cancel(self) -> None:
        """Kill the workers that are training (their groups are not stored)."""
        for w in self.workers:
            if w is not None and w.job is not None:
                w.kill()  # replaced by a fresh worker if another job comes
                w.job = None

    def close(self) -> None:
        started = [w for w in self.workers if w is not None]
        for w in started:
            try:
                w.conn.send(None)
            except OSError:
                pass
        for w in started:
            w.process.join(timeout=JOIN_SECONDS)
            w.kill()
        self.workers = []


# -- the kind: its checks and its opener -------------------------------------------------

def _check(opts, device: str, pruning: bool) -> list[str]:
    from .common import MAX_WORKERS_PER_CORE

    most = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
    if isinstance(opts.workers, int) and opts.workers > most:
        return [f"--workers {opts.workers}: at most {most} worker processes on this machine "
                f"({MAX_WORKERS_PER_CORE} per CPU core; each loads torch and the dataset); workers start "
                "only as groups need them, so a larger number gains nothing"]
    return []


def _open(opts, device: str, data_dir):
    from ..devices import device_type
    from ..planner import target_of
    from .common import default_workers, resolved_device
    from .dispatch import RemoteExecutor

    cpus = os.cpu_count() or 1
    if device_type(device) == "cpu":  # told without torch: the workers start before this process loads it
        gpus: list[str] = []
        workers = opts.workers or default_workers("cpu", 0, cpus)
    else:
        import torch

        dev = resolved_device(device)
        gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if dev.index is None else [str(dev)]
        workers = opts.workers or default_workers("cuda", len(gpus), cpus)
    devices = [gpus[i % len(gpus)] for i in range(workers)] if gpus else ["cpu"] * workers
    per_device = max(devices.count(d) for d in set(devices)) if gpus else workers
    threads = max(1, cpus // workers)
    backend = ProcessBackend(devices, threads)
    if opts.start:
        backend.start()
    import torch

    plan = target_of(torch.device(devices[0]), per_device)
    return RemoteExecutor("process", backend, plan, opts.retries,
                          measure=lambda: _calibrate_with(torch.device(devices[0]), threads))


def _calibrate_with(device, threads: int):
    """The cost model measured here, with a worker's number of CPU threads."""
    import torch

    from ..engine.calibrate import calibrate

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return calibrate(device)
    finally:
        torch.set_num_threads(before)


KIND = Kind("process", "--workers processes on this machine (one per GPU by default)", _check, _open)
