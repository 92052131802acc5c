"""What a worker runs: one job (a stacked group) on its device, its epochs sent back as
they end, its results returned. The same code serves worker processes and Ray tasks.

A worker writes nothing: its results travel back to the driver, which stores them
(one writer, one lock). Exceptions in training are recorded as failed trials, as in
the local executor; a worker that dies is noticed by the driver, which retries.
"""

from __future__ import annotations

import os
import socket
import uuid
from functools import partial
from typing import Callable, Sequence

from .messages import Done, Epoch, Job, Started, Warm


def where(device) -> str:
    """Names a worker in progress output and in the error of a lost group."""
    from ..engine.common import device_name

    return f"{socket.gethostname()} pid {os.getpid()} {device_name(device)}"


def _device(device: str):
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def warm(msg: Warm, device: str) -> None:
    """Make ``msg``'s split ready on ``device`` for the jobs to come (checked as a job would
    read it); a failure is left for the first job, which meets it again and records it."""
    from ..training import split_on

    try:
        split_on(msg.split, _device(device), msg.data_dir)
    except Exception:  # noqa: BLE001 - reported by the first job
        pass


def run_job(job: Job, device: str, send: Callable[[object], None], dataset=None,
            hooks: Sequence[Callable] = ()) -> Done:
    """Train ``job`` on ``device`` (``cpu``, ``cuda``, ``cuda:N``), calling ``send`` with a
    :class:`Started` and then an :class:`Epoch` per epoch; return its :class:`Done`.
    ``dataset``: the split's arrays when they came with the job (Ray's object store);
    otherwise they are read from this node's dataset files, once per process."""
    from ..training import device_data, train_safely

    if job.data is not None:  # a user's dataset: known to this process from now on
        from ..userdata import register

        register(job.data)
    if job.model is not None:  # a user's model: its factory imported here from the file it came from
        from ..usermodel import adopt

        adopt(job.model)
    dev = _device(device)
    token = uuid.uuid4().hex
    send(Started(job.id, token, where(dev), os.getpid()))

    def forward(event) -> None:
        send(Epoch(job.id, token, event))

    data = partial(device_data, job.group[0], dev, job.data_dir, dataset)
    results = train_safely(job.group, job.engine, data, [forward, *hooks], job.label, job.stop, keep=job.keep,
                           checkpoints=job.checkpoints)
    return Done(job.id, token, tuple(results))
