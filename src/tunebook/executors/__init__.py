"""Executors: where the stacked groups of a study train.

- ``local`` (the default): in this process, one group after another, or ``--concurrent``
  groups at once in threads (CUDA streams).
- ``process``: ``--workers`` spawned processes on this machine (one per GPU by default).
- ``ray``: Ray tasks, on a local Ray instance or a cluster (``--ray-address``).

The unit of work is a stacked group, planned for the workers' device. Workers never
write: results come back and the driver — this process, holding the study's lock —
stores them, so a store has one writer whatever the executor. Same seeds give the same
numbers on every executor (the engines' randomness is counter-based, per trial).

:func:`open_executor` checks the options and starts the workers (a context manager); a
notebook can open one and pass it to several :func:`tunebook.execute.run_studies` calls.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Sequence

from ..datasets import io_sizes
from ..errors import SpecError
from ..spec import TrialConfig

EXECUTORS = ("local", "process", "ray")
RAY_INSTALL = "pip install 'tunebook[ray]'"


@dataclass(frozen=True)
class Options:
    """What ``run_studies`` was asked for, as the executors see it."""

    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    concurrent: int = 1
    retries: int = 2


#: `--executor process` refuses more workers than this per CPU core (an absurd count once
#: drove a machine into the OOM killer).
MAX_WORKERS_PER_CORE = 4


def check_options(opts: Options, device: str, pruning: bool = False) -> list[str]:
    """Every problem with the executor options, before anything starts or is written."""
    problems = []
    name = opts.executor
    if name not in EXECUTORS:
        return [f"--executor: must be one of {', '.join(EXECUTORS)}, got {name!r}"]
    if opts.workers is not None and (not isinstance(opts.workers, int) or opts.workers < 1):
        problems.append(f"--workers: must be a positive integer, got {opts.workers!r}")
    most = MAX_WORKERS_PER_CORE * (os.cpu_count() or 1)
    if name == "process" and isinstance(opts.workers, int) and opts.workers > most:
        problems.append(f"--workers {opts.workers}: at most {most} worker processes on this machine "
                        f"({MAX_WORKERS_PER_CORE} per CPU core; each loads torch and the dataset); workers start "
                        "only as groups need them, so a larger number gains nothing")
    if opts.workers is not None and name == "local":
        problems.append("--workers: only with --executor process or ray (local trains in this process; "
                        "--concurrent N trains N groups at once in threads)")
    if opts.ray_address is not None and name != "ray":
        problems.append(f"--ray-address: only with --executor ray, got --executor {name}")
    if opts.concurrent != 1 and name != "local":
        problems.append(f"--concurrent: only with --executor local (--executor {name} trains --workers groups "
                        "at once)")
    if not isinstance(opts.retries, int) or opts.retries < 0:
        problems.append(f"retries: must be a whole number ≥ 0, got {opts.retries!r}")
    if pruning and name != "local":
        problems.append(f"--executor {name}: a search with a pruner trains with --executor local only (the "
                        "pruner decides after every epoch, in this process); remove [study] pruner or use "
                        "--executor local")
    if name == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            problems.append(f"--executor ray: Ray is not installed; install it with {RAY_INSTALL}")
        if isinstance(device, str) and device.startswith("cuda:"):
            problems.append(f"--device {device}: with --executor ray, Ray gives each group its GPU; "
                            "use --device cuda (or auto)")
    return problems


@dataclass(frozen=True)
class Resources:
    """What one group asks a Ray cluster for."""

    cpus: float
    gpus: float = 0.0

    def options(self) -> dict:
        return {"num_cpus": self.cpus} | ({"num_gpus": self.gpus} if self.gpus else {})


def group_resources(group: Sequence[TrialConfig] | None, device_type: str, threads: int, per_gpu: int,
                    gpu_bytes: int) -> Resources:
    """Resources of one group from its size. On the CPU: ``threads`` CPUs (the cluster's
    CPUs over ``--workers``). On a GPU: a share of one, ``1/per_gpu`` (``--workers``
    groups share each GPU), doubled until the group's memory fits it (at most the whole
    GPU), and one CPU for its host loop. ``group`` None: the smallest share (a probe)."""
    if device_type != "cuda":
        return Resources(float(threads))
    from ..planner import _states, member_bytes, padded_shape

    share = 1.0 / max(1, per_gpu)
    if group:
        shape = padded_shape([c.layers for c in group])
        need = (len(group) * member_bytes(shape, group[0].batch_size, _states(group), *io_sizes(group[0].dataset))
                / max(1, gpu_bytes))
        while share < need and share < 1.0:
            share *= 2
    return Resources(1.0, round(min(1.0, share), 4))


class Executor:
    """Where groups train. ``plan_device`` is what the planner plans for."""

    name = "local"

    def __init__(self, plan_device, describe: str):
        self.plan_device, self._describe = plan_device, describe

    def describe(self) -> str:
        return self._describe

    def measure_cost(self):
        """The workers' device's stacked-step cost model (the planner's)."""
        from ..planner import calibrate

        return calibrate(self.plan_device)

    def run(self, groups, slot_for: Callable, finish: Callable, state, *, engine: str, data_dir, reporter,
            labels: Sequence[str], stop=None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """This process: one group after another, or ``concurrent`` at once in threads."""

    def __init__(self, device, concurrent: int = 1):
        super().__init__(device, f"this process ({device}" + (f", {concurrent} groups at once)" if concurrent > 1
                                                              else ")"))
        self.device, self.concurrent = device, concurrent

    def run(self, groups, slot_for, finish, state, *, engine, data_dir, reporter, labels, stop=None):
        from ..execute import _train_concurrently, _train_in_turn

        train = dict(engine=engine, dev=self.device, data_dir=data_dir, reporter=reporter, labels=labels, stop=stop)
        if self.concurrent > 1 and len(groups) > 1:
            _train_concurrently(groups, self.concurrent, slot_for, finish, state, **train)
        else:
            _train_in_turn(groups, slot_for, finish, state, **train)


class RemoteExecutor(Executor):
    """Groups sent to a backend's workers (:mod:`.process`, :mod:`.raycluster`); the
    largest first, so that the last to finish is a small one."""

    def __init__(self, name: str, backend, plan_device, retries: int, measure: Callable | None = None):
        super().__init__(plan_device, backend.describe())
        self.name, self.backend, self.retries, self._measure = name, backend, retries, measure

    def measure_cost(self):
        return self._measure() if self._measure is not None else super().measure_cost()

    def run(self, groups, slot_for, finish, state, *, engine, data_dir, reporter, labels, stop=None):
        from .dispatch import dispatch

        if stop is not None:  # refused by check_options; a caller that skipped it
            raise SpecError([f"--executor {self.name}: a pruner needs --executor local"])
        order = sorted(range(len(groups)), key=lambda i: -_work(groups[i]))
        dispatch(self.backend, [groups[i] for i in order], slot_for, finish, state.may_start, engine=engine,
                 data_dir=data_dir, reporter=reporter, labels=[labels[i] for i in order], retries=self.retries)

    def close(self) -> None:
        self.backend.close()


def _work(group: Sequence[TrialConfig]) -> float:
    """A group's training arithmetic (FLOPs at its padded shape, every member's epochs):
    to send the largest first."""
    from ..model import flops_per_sample
    from ..planner import _streams, padded_shape

    lead = group[0]
    epochs = sum(max(c.epochs for c in stream) for stream in _streams(group))
    return (flops_per_sample(padded_shape([c.layers for c in group]), *io_sizes(lead.dataset))
            * epochs * lead.steps_per_epoch * lead.batch_size)


def default_workers(device_type: str, gpus: int, cpus: int) -> int:
    """One worker per GPU; on CPUs, one per two cores (each trains with two threads)."""
    return max(1, gpus) if device_type == "cuda" else max(1, cpus // 2)


@contextmanager
def kept_open(run_kwargs: dict, pruning: bool = False):
    """``run_kwargs`` (of :func:`tunebook.execute.run_studies`) with its executor opened
    once, for a caller that runs many rounds (``--until-decided``, a search): workers and
    a Ray instance start once, not per round. An executor already open is kept as it is."""
    if not isinstance(run_kwargs.get("executor", "local"), str):
        yield run_kwargs
        return
    opts = options_of(run_kwargs)
    with open_executor(opts, run_kwargs.get("device", "auto"), run_kwargs.get("data_dir"), pruning) as ex:
        yield {k: v for k, v in run_kwargs.items() if k not in ("workers", "ray_address", "retries")} | {"executor": ex}


def options_of(run_kwargs: dict) -> Options:
    """The executor options in ``run_kwargs`` (of :func:`tunebook.execute.run_studies`); for
    an executor already open, its name (its workers and address are its own)."""
    ex = run_kwargs.get("executor", "local")
    if not isinstance(ex, str):
        return Options(ex.name, None, None, 1, run_kwargs.get("retries", 2))
    return Options(ex, run_kwargs.get("workers"), run_kwargs.get("ray_address"), run_kwargs.get("concurrent", 1),
                   run_kwargs.get("retries", 2))


def open_executor(opts: Options, device: str = "auto", data_dir=None, pruning: bool = False) -> Executor:
    """Check ``opts`` (``pruning``: for a search with a pruner) and start the executor's
    workers (join or start Ray)."""
    problems = check_options(opts, device, pruning)
    if problems:
        raise SpecError(problems)
    from ..engine.common import resolve_device

    if opts.executor == "ray":
        return _open_ray(opts, device, data_dir)
    try:
        dev = resolve_device(device)
    except ValueError as exc:
        raise SpecError([str(exc)]) from None
    if opts.executor == "local":
        return LocalExecutor(dev, opts.concurrent)
    return _open_process(opts, dev)


def _open_process(opts: Options, dev) -> Executor:
    import torch

    from ..planner import target_of
    from .process import ProcessBackend

    cpus = os.cpu_count() or 1
    if dev.type == "cuda" and dev.index is None:
        gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    else:
        gpus = [str(dev)] if dev.type == "cuda" else []
    workers = opts.workers or default_workers(dev.type, len(gpus), cpus)
    devices = [gpus[i % len(gpus)] for i in range(workers)] if gpus else ["cpu"] * workers
    per_device = max(devices.count(d) for d in set(devices)) if gpus else workers
    plan = target_of(torch.device(devices[0]), per_device)
    threads = max(1, cpus // workers)
    backend = ProcessBackend(devices, threads)
    return RemoteExecutor("process", backend, plan, opts.retries,
                          measure=lambda: _calibrate_with(torch.device(devices[0]), threads))


def _calibrate_with(device, threads: int):
    """The cost model measured here, with a worker's number of CPU threads."""
    import torch

    from ..planner import calibrate

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return calibrate(device)
    finally:
        torch.set_num_threads(before)


def _open_ray(opts: Options, device: str, data_dir) -> Executor:
    from . import raycluster

    owned, resources = raycluster.connect(opts.ray_address)
    try:
        cpus, gpus = int(resources.get("CPU", 0)), int(resources.get("GPU", 0))
        if device == "cuda" and not gpus:
            raise SpecError([f"--device cuda: the Ray cluster has no GPUs (resources: {cpus} CPUs)"])
        kind = "cuda" if (device in ("auto", "cuda") and gpus) else "cpu"
        workers = opts.workers or default_workers(kind, gpus, cpus)
        threads = max(1, cpus // workers)
        per_gpu = max(1, -(-workers // max(1, gpus)))

        probe_share = per_gpu if kind == "cuda" else workers
        backend = raycluster.RayBackend(kind, workers, data_dir, opts.retries, owned)
        smallest = group_resources(None, kind, threads, per_gpu, 1).options()
        plan, _ = backend.probe(smallest, probe_share, calibrate=False)
        gpu_bytes = plan.memory * probe_share  # the memory budget of a whole GPU
        backend.resources = lambda group: group_resources(group, kind, threads, per_gpu, gpu_bytes).options()
        return RemoteExecutor("ray", backend, plan, opts.retries,
                              measure=lambda: backend.probe(smallest, probe_share, calibrate=True)[1])
    except BaseException:
        if owned:
            import ray
            ray.shutdown()
        raise
