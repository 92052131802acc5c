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

The contract between the driver and an executor is :mod:`.contract`; each executor kind
(:data:`EXECUTORS`) names its checks and its opener: :mod:`.local`, :mod:`.process`,
:mod:`.ray_kind` (whose Ray-importing half is :mod:`.raycluster`). The dispatch loop shared by
the remote ones is :mod:`.dispatch`; what a worker runs, :mod:`.worker`.
"""

from __future__ import annotations

from ..errors import SpecError
from .common import (MAX_WORKERS_PER_CORE, RAY_INSTALL, Options, Resources, default_workers,  # noqa: F401
                     group_resources, resolved_device)
from .contract import Executor, Kind, Sink, Slot, Work
from .dispatch import RemoteExecutor
from .local import LocalExecutor


def _kinds() -> dict[str, Kind]:
    from . import local, process, ray_kind

    return {k.name: k for k in (local.KIND, process.KIND, ray_kind.KIND)}


#: The executor kinds by name, in the order --help lists them. A new executor: a module
#: with its Executor subclass and a ``KIND``, added to :func:`_kinds`.
EXECUTORS: dict[str, Kind] = _kinds()


def check_options(opts: Options, device: str, pruning: bool = False) -> list[str]:
    """Every problem with the executor options, before anything starts or is written: the
    checks every kind shares, then the kind's own."""
    name = opts.executor
    if name not in EXECUTORS:
        return [f"--executor: must be one of {', '.join(EXECUTORS)}, got {name!r}"]
    problems = []
    if opts.workers is not None and (not isinstance(opts.workers, int) or opts.workers < 1):
        problems.append(f"--workers: must be a positive integer, got {opts.workers!r}")
    if opts.ray_address is not None and name != "ray":
        problems.append(f"--ray-address: only with --executor ray, got --executor {name}")
    if opts.concurrent != 1 and name != "local":
        problems.append(f"--concurrent: only with --executor local (--executor {name} trains --workers groups "
                        "at once)")
    if not isinstance(opts.retries, int) or opts.retries < 0:
        problems.append(f"retries: must be a whole number ≥ 0, got {opts.retries!r}")
    if pruning and name != "local":
        problems.append(f"--executor {name}: a search with [study] pruner = \"asha\" or \"hyperband\" trains with "
                        "--executor local only (the pruner compares the proposals still training, in this "
                        "process); use pruner = \"median\" (decided in any worker), remove [study] pruner, or use "
                        "--executor local")
    return problems + EXECUTORS[name].check(opts, device, pruning)


def open_executor(opts: Options, device: str = "auto", data_dir=None, pruning: bool = False) -> Executor:
    """Check ``opts`` (``pruning``: for a search whose pruner decides in this process) and start the executor's
    workers (join or start Ray). Use it as a context manager, or ``close()`` it."""
    problems = check_options(opts, device, pruning)
    if problems:
        raise SpecError(problems)
    return EXECUTORS[opts.executor].open(opts, device, data_dir)


__all__ = ["EXECUTORS", "Executor", "Kind", "LocalExecutor", "Options", "RemoteExecutor", "Resources", "Sink", "Slot", "Work",
           "check_options", "default_workers", "group_resources", "open_executor"]
