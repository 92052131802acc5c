"""How a study trains: one frozen record, checked once, that the CLI builds from its flags
and a notebook passes (or spells as keywords) to :func:`tunebook.run_study`.

``RunOptions`` says *how* to train (device, engine, executor, planning); what a call
trains and how it reports are the call's own arguments (``fresh``, ``reporter``,
``budget``). Constructing one checks every field that needs nothing but the record and
raises :class:`tunebook.errors.SpecError` with every problem at once, before anything is
written; the checks that need a study (a pruner with a remote executor, the output
folder, the dataset files) come at the start of the run, still before the first write.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from .errors import SpecError

if TYPE_CHECKING:
    from .executors import Executor, Options

#: Groups in a row that may fail entirely before a run starts no further group.
MAX_FAILURES = 3
#: Seconds between a training group's checkpoints (and at every budget stop or Ctrl-C).
CHECKPOINT_EVERY = 60.0
PAD = (True, False, "measured")
#: The engines' names (``tunebook.engine.ENGINES``' keys, pinned by a test): options are
#: checked without importing the engines, and torch with them.
ENGINE_NAMES = ("stacked", "reference")


@dataclass(frozen=True)
class RunOptions:
    """How trials train. The fields are the ``tunebook run`` flags of the same names."""

    device: str = "auto"                        # auto, cpu, cuda, cuda:N
    engine: str = "stacked"                     # stacked, or reference (one nn.Module at a time)
    executor: Union[str, "Executor"] = "local"  # local, process, ray, auto (a search: process) — or one open
    workers: int | None = None                  # process/ray: groups at once (default: per GPU / 2 cores)
    ray_address: str | None = None              # ray: a cluster to join (default: a local instance)
    concurrent: int = 1                         # local: groups at once, in threads
    retries: int = 2                            # process/ray: sends of a group whose worker died
    max_group: int | None = None                # the most trials in one stacked group
    pad: bool | str = True                      # True: the reference plan; "measured"; False: equal widths only
    max_failures: int | None = MAX_FAILURES     # groups failed in a row before no further one starts
    data_dir: str | Path | None = None          # the dataset files (default: tunebook's search path)
    checkpoint_every: float | None = CHECKPOINT_EVERY  # seconds between a group's checkpoints (0: every
                                                # epoch; None: none); see tunebook.checkpoints

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise SpecError(problems)

    @property
    def executor_name(self) -> str:
        return self.executor if isinstance(self.executor, str) else self.executor.name

    def executor_options(self) -> "Options":
        """What the executor kinds check and open (an executor already open: its name)."""
        from .executors import Options

        if not isinstance(self.executor, str):
            return Options(self.executor.name, None, None, 1, self.retries)
        return Options(self.executor, self.workers, self.ray_address, self.concurrent, self.retries)

    def problems(self, pruning: bool = False) -> list[str]:
        """Every problem of these options (``pruning``: for a search whose pruner decides
        in this process, ``asha`` or ``hyperband``)."""
        from .devices import device_form_problem
        from .executors import check_options

        problems = []
        if self.engine not in ENGINE_NAMES:
            problems.append(f"--engine: must be one of {', '.join(ENGINE_NAMES)}, got {self.engine!r}")
        form = device_form_problem(self.device)
        if form is not None:
            problems.append(form)
        elif self.executor_name != "ray" and self.device.startswith("cuda"):  # auto and cpu always exist
            from .engine.common import resolve_device

            try:
                resolve_device(self.device)
            except ValueError as exc:
                problems.append(str(exc))
        if self.executor == "auto":  # resolved per part of a run (for_part): the options both choices share
            if self.workers is not None and (not _is_int(self.workers) or self.workers < 1):
                problems.append(f"--workers: must be a positive integer, got {self.workers!r}")
            if self.ray_address is not None:
                problems.append("--ray-address: only with --executor ray, got --executor auto")
        elif isinstance(self.executor, str) or (pruning and self.executor.name != "local"):  # an open one: its own
            problems += check_options(self.executor_options(), self.device, pruning)
        if self.max_failures is not None and (not _is_int(self.max_failures) or self.max_failures < 1):
            problems.append(f"--max-failures: must be a positive integer, got {self.max_failures!r}")
        if self.max_group is not None and (not _is_int(self.max_group) or self.max_group < 1):
            problems.append(f"--max-group: must be a positive integer, got {self.max_group!r}")
        every = self.checkpoint_every
        if every is not None and (isinstance(every, bool) or not isinstance(every, (int, float)) or not every >= 0):
            problems.append(f"--checkpoint-every: must be a number of seconds ≥ 0 (0: every epoch), got {every!r}")
        if self.pad not in PAD:
            problems.append(f"pad: must be True (the reference cost model), \"measured\" or False, got {self.pad!r}")
        return problems

    def for_part(self, search: bool, pruning: bool = False) -> "RunOptions":
        """``executor = "auto"`` made definite for one part of a run: a search (without a
        pruner, or with ``median`` or ``halving``, which decide in any worker) on a CPU of two or more cores trains its groups in worker processes, one
        CPU thread each, side by side (a search's proposals are each of their own shape, so
        its groups are small, and two small groups on two cores train in about half the
        time of one after the other at two threads: docs/performance.md); everything else
        — grids, whose stacks are large, and searches whose pruner compares running
        proposals from this process (``pruning``: asha, hyperband) — in this process. Other executors are returned as they are."""
        if self.executor != "auto":
            return self
        import os

        from .devices import device_type

        cores = os.cpu_count() or 1
        if search and not pruning and self.concurrent == 1 and cores >= 2 and device_type(self.device) == "cpu":
            return replace(self, executor="process", workers=self.workers or cores)
        return replace(self, executor="local", workers=None)

    def opened(self, executor: "Executor") -> "RunOptions":
        """These options with ``executor`` open in place of its name (its workers and
        address are its own)."""
        return replace(self, executor=executor, workers=None, ray_address=None, concurrent=1)

    @classmethod
    def of(cls, options: "RunOptions | None" = None, **given: Any) -> "RunOptions":
        """``options`` (default: the defaults) with each keyword in ``given`` that differs
        from its field's default put in: how the run functions take both a record and
        keywords. A keyword that is not a field is an error."""
        names = {f.name: f.default for f in fields(cls)}
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise TypeError(f"not a run option: {', '.join(unknown)} (the options: {', '.join(names)})")
        changes = {k: v for k, v in given.items() if not _same(v, names[k])}
        if options is None:
            return cls(**changes)
        if not isinstance(options, RunOptions):
            raise TypeError(f"options: a tunebook.RunOptions, got {type(options).__name__}")
        return replace(options, **changes) if changes else options


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _same(a, b) -> bool:
    """Equal and of one type (``pad=1`` is not ``pad=True``)."""
    return type(a) is type(b) and a == b


#: The keyword names of RunOptions, for the run functions' signatures and their docs.
FIELDS = tuple(f.name for f in fields(RunOptions))


def picked(options: RunOptions | None, values) -> RunOptions:
    """The run functions' options: ``options`` with their option keywords (``values``: the
    function's ``locals()``, which hold one entry per field) put in by :meth:`RunOptions.of`."""
    return RunOptions.of(options, **{k: values[k] for k in FIELDS})
