"""What the executor kinds share: their options, the resources a group asks for, how
many workers by default, the device. Below every executor module (they import this one;
it imports none of them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..datasets import io_sizes
from ..errors import SpecError
from ..records import TrialConfig

RAY_INSTALL = "pip install 'tunebook[ray]'"


@dataclass(frozen=True)
class Options:
    """What the executor was asked for (``tunebook.options.RunOptions`` holds these too)."""

    executor: str = "local"
    workers: int | None = None
    ray_address: str | None = None
    concurrent: int = 1
    retries: int = 2
    start: bool = False        # every worker started as the executor opens (a search: groups will come)


#: `--executor process` refuses more workers than this per CPU core (an absurd count once
#: drove a machine into the OOM killer).
MAX_WORKERS_PER_CORE = 4


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


def default_workers(device_type: str, gpus: int, cpus: int) -> int:
    """One worker per GPU; on CPUs, one per two cores (each trains with two threads)."""
    return max(1, gpus) if device_type == "cuda" else max(1, cpus // 2)


def resolved_device(device: str):
    """``device`` as a torch device, or the SpecError that says why not."""
    from ..engine.common import resolve_device

    try:
        return resolve_device(device)
    except ValueError as exc:
        raise SpecError([str(exc)]) from None
