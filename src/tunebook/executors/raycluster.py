"""``--executor ray``: groups as Ray tasks, on one machine or a cluster.

Imported only when Ray is asked for (``pip install 'tunebook[ray]'``). Each group is one
task with the resources its size asks for (:func:`tunebook.executors.group_resources`);
Ray places it, and retries it on another worker when its worker dies (``max_retries``;
exceptions inside training are not retried — they are recorded ``failed``). The dataset
is put into Ray's object store once per split and reaches each node once; the workers
of a node read it from shared memory. Epochs come back through a small mailbox actor;
results come back as the task's return value, and the driver stores them.

Stopping does not use ``ray.cancel``: in Ray 2.60 a cancel that crosses the task's own
reply aborts the driver (``Check failed: it != submissible_tasks_.end() Tried to complete
task that was not pending``; the same race as the retry one ray-project/ray PR 54798 fixed),
and the interrupted study lost its exit status. A stopped task is told through the mailbox
instead and ends at its next epoch; a driver that exits takes its tasks with it (Ray ends a
finished job's workers).
"""

from __future__ import annotations

import logging
import signal
import threading

import ray

from .messages import Done, Job, Lost
from .worker import run_job


@ray.remote(num_cpus=0)
class Mailbox:
    """Messages from the tasks to the driver, in the order each task sent them."""

    def __init__(self) -> None:
        self.items: list = []
        self.stopped: set[str] = set()

    def put(self, key: str, item) -> bool:
        """Keep ``item``; answer whether the task that sent it (``key``) was stopped."""
        if key in self.stopped:
            return True
        self.items.append(item)
        return False

    def stop(self, keys) -> None:
        self.stopped.update(keys)

    def drain(self) -> list:
        items, self.items = self.items, []
        return items


class Stopped(Exception):
    """Raised in a task the driver stopped, at its next epoch: training records the group
    failed and the task returns at once, as an ordinary result nobody reads."""


@ray.remote
def _train(job: Job, device: str, threads: int, dataset, mailbox, key: str):  # pragma: no cover - in a Ray worker
    import torch

    torch.set_num_threads(threads)

    def send(message) -> None:
        # put() returns once the mailbox holds the message: everything a task sent is
        # there before its result is
        if ray.get(mailbox.put.remote(key, message)):
            raise Stopped(key)

    try:
        return run_job(job, device, send, dataset=dataset)
    except Stopped as exc:  # stopped before its group began (its Started refused): failed alike
        from ..training import failed_group

        return Done(job.id, "", tuple(failed_group(job.group, exc, job.engine)))


@ray.remote
def _probe(device: str, share: int, calibrate: bool, threads: int):  # pragma: no cover - runs in a Ray worker
    """A worker's device as the planner sees it (and its cost model, when asked), at the
    CPU threads a group's task gets (Ray reuses worker processes: one that trained with
    other settings must not lend them to the measurement)."""
    import torch

    torch.set_num_threads(threads)
    from ..engine.calibrate import calibrate as measure
    from ..planner import target_of

    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", torch.cuda.current_device())
    return target_of(dev, share), (measure(dev) if calibrate else None)


def connect(address: str | None) -> tuple[bool, dict]:
    """Join the cluster at ``address`` (``auto``, ``HOST:PORT``, ``ray://...``) or start a
    local instance (None). Returns whether this call started Ray (and so must stop it) and
    the cluster's resources. A Ray already initialised in this process (a notebook, a test
    session) is used as it is."""
    if ray.is_initialized():
        return False, ray.cluster_resources()
    _check_reachable(address)
    main = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
    global _OWN_TEMP
    extra = {}
    if not address:  # a local instance of our own: its session folder goes when it stops
        import tempfile

        _OWN_TEMP = tempfile.mkdtemp(prefix="tunebook-ray-")
        extra["_temp_dir"] = _OWN_TEMP
    try:
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, **extra)
    except (ConnectionError, ValueError, RuntimeError, TimeoutError) as exc:
        from ..errors import SpecError

        _remove_own_temp()
        raise SpecError([f"--ray-address {address}: cannot join a Ray cluster there "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc})"]) from None
    finally:
        # Ray's core worker installs its own SIGTERM handler, which ends the process at once;
        # tunebook's (stop like Ctrl-C: clean up, keep finished trials, exit 130) is put back.
        for sig, handler in handlers.items():
            if handler is not None:
                signal.signal(sig, handler)
    return True, ray.cluster_resources()


#: The temporary folder of the local Ray instance this process started (None: none, or
#: a cluster joined): Ray keeps a session folder of logs and sockets per start, which would
#: otherwise pile up in /tmp/ray, one per run.
_OWN_TEMP: str | None = None


def _remove_own_temp() -> None:
    global _OWN_TEMP
    if _OWN_TEMP:
        import shutil

        shutil.rmtree(_OWN_TEMP, ignore_errors=True)
        _OWN_TEMP = None


def _check_reachable(address: str | None) -> None:
    """A HOST:PORT that nothing answers at is said at once (Ray itself keeps trying to
    connect for minutes)."""
    import re
    import socket

    from ..errors import SpecError

    m = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)", address or "")
    if not m:
        return
    host, port = m.group(1), int(m.group(2))
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise SpecError([f"--ray-address {address}: nothing answers at {host}:{port} "
                         f"({exc.strerror or type(exc).__name__}); start the cluster's head there "
                         f"(ray start --head --port={port}) or give the address it printed"]) from None


class RayBackend:
    """Groups as Ray tasks; at most ``slots`` in flight (Ray queues none beyond them)."""

    name = "ray"

    def __init__(self, device: str, slots: int, data_dir, retries: int, owned: bool):
        self.device, self.slots = device, slots
        self.resources = lambda group: {"num_cpus": 1}  # set by the opener: a group's Ray resources
        self.data_dir, self.retries, self.owned = data_dir, retries, owned
        self.mailbox = Mailbox.remote()
        self.datasets: dict[tuple, ray.ObjectRef] = {}
        self.running: dict[ray.ObjectRef, tuple[Job, str]] = {}  # a task: its job, its mailbox key
        self.stopped: list[ray.ObjectRef] = []  # tasks told to stop (their results are never read)

    def describe(self) -> str:
        where = ray.get_runtime_context().gcs_address
        return f"Ray at {where} ({'started by tunebook' if self.owned else 'joined'}), up to {self.slots} groups at once"

    def probe(self, resources: dict, share: int, calibrate: bool, threads: int = 1):
        """(planning target, cost model or None) measured on a worker with ``resources``,
        at ``threads`` CPU threads (a group's task's)."""
        return ray.get(_probe.options(**resources).remote(self.device, share, calibrate, threads))

    def free(self) -> int:
        return self.slots - len(self.running)

    def _dataset(self, job: Job):
        from ..data import load_dataset
        from ..training import data_key

        key = data_key(job.group[0])
        if key not in self.datasets:  # read here once, into the object store
            self.datasets[key] = ray.put(load_dataset(*key, self.data_dir))
        return self.datasets[key]

    def submit(self, job: Job) -> None:
        import uuid

        opts = self.resources(job.group)
        key = uuid.uuid4().hex
        ref = _train.options(**opts, max_retries=self.retries, retry_exceptions=False).remote(
            job, self.device, max(1, int(opts.get("num_cpus", 1))), self._dataset(job), self.mailbox, key)
        self.running[ref] = (job, key)

    def poll(self, timeout: float) -> list:
        refs = list(self.running)
        if not refs:
            return []
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out = list(ray.get(self.mailbox.drain.remote()))  # every message of a ready task is in it
        for ref in ready:
            job, _ = self.running.pop(ref)
            try:
                out.append(ray.get(ref))  # the task's Done
            except ray.exceptions.RayError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                out.append(Lost(job.id, f"{type(exc).__name__}: {first}", retryable=False,
                                attempts=self.retries + 1))
        return out

    def cancel(self) -> None:
        """Stop the tasks in flight (their groups are not stored): each ends at its next
        epoch, when the mailbox answers that it was stopped."""
        if self.running:
            try:
                ray.get(self.mailbox.stop.remote([key for _, key in self.running.values()]))
            except ray.exceptions.RayError:  # the mailbox is gone with its cluster: so are the tasks
                pass
            self.stopped += list(self.running)
        self.running.clear()

    def close(self) -> None:
        self.cancel()
        try:
            ray.kill(self.mailbox)
        except Exception:  # noqa: BLE001 - the cluster may be gone already
            pass
        self.datasets.clear()
        if self.owned:
            ray.shutdown()
            _remove_own_temp()
