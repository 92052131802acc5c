"""What a driver and its workers say to each other: a group to train, and the worker's
replies (it started, an epoch ended, it is done, it was lost).

Workers never write run folders. They train a group and send these messages back; the
driver writes live TensorBoard curves from ``Epoch``, stores the results of ``Done``,
and retries the group of a ``Lost`` worker. Every message is a small frozen record that
pickles (process pipes and Ray both carry them).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..records import TrialResult
from ..records import TrialConfig


@dataclass(frozen=True)
class Job:
    """One stacked group to train: the unit of work of every executor."""

    id: int                          # the group's number in this call (1-based)
    group: tuple[TrialConfig, ...]
    engine: str
    label: str
    data_dir: str | None = None
    keep: bool = False               # return the trained weights with the results
    data: object = None              # a user's dataset (tunebook.userdata.Dataset): its sizes and arrays
                                     # travel with the job; a built-in one is read from the worker's files
    checkpoints: tuple[str, float] | None = None  # (folder, seconds between saves): see tunebook.checkpoints
    stop: object = None              # a pruner that decides anywhere (tunebook.sampling.FinishedPruning)
    model: object = None             # a user's model (tunebook.usermodel.ModelSpec): the worker imports its
                                     # factory from the file it records


@dataclass(frozen=True)
class Warm:
    """Start up now and make a built-in dataset's split ready on the device (a search that
    will send groups soon): no reply; a failure here is left for the first job to report."""

    split: tuple                      # tunebook.training.data_key of the groups to come
    data_dir: str | None = None


@dataclass(frozen=True)
class Started:
    """A worker began a job. A second ``Started`` of one job (a new ``token``) is a retry:
    what the first attempt sent is void."""

    job: int
    token: str
    where: str                       # host, process id and device, for progress and errors
    pid: int = 0


@dataclass(frozen=True)
class Epoch:
    job: int
    token: str
    event: object                    # tunebook.engine.common.EpochEvent


@dataclass(frozen=True)
class Done:
    job: int
    token: str
    results: tuple[TrialResult, ...]


@dataclass(frozen=True)
class Lost:
    """The job's worker died (killed, out of memory, its node gone) before it was done.
    ``retryable``: whether the driver may send the job again (false when the executor,
    e.g. Ray, has already spent its own retries)."""

    job: int
    why: str
    retryable: bool = True
    attempts: int = 1                # attempts the executor made itself (Ray's retries)
