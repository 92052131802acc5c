"""The planner's cost model, measured: time a few synthetic stacks on a device and fit
``seconds per step = a + b · FLOPs + c · rows`` (:class:`tunebook.planner.StepCost`).

Beside the engine because it drives it, through its public timing call
(:func:`tunebook.engine.stacked.seconds_per_step`); the planner only prices groups with
the model it is given (``tunebook calibrate``, ``--plan measured``).
"""

from __future__ import annotations

import time
from dataclasses import replace

from .._version import __version__
from ..hparams import BASE_DEFAULTS
from ..sizes import flops_per_sample
from ..planner import StepCost, machine_of
from ..records import TrialConfig


def points(device) -> list[tuple[int, tuple[int, ...], int]]:
    """(members, layers, steps timed) of the stacks :func:`calibrate` times."""
    if device.type == "cuda":
        return [(1, (32,), 100), (64, (32,), 100), (1, (1024, 1024), 50), (16, (128, 128), 100),
                (64, (256, 256), 50), (256, (512, 512), 20)]
    return [(1, (32,), 40), (16, (32,), 20), (1, (512, 512), 10), (4, (128,), 20), (16, (64, 64), 10),
            (8, (256, 256), 6)]


def _configs(members: int, layers: tuple[int, ...], batch_size: int) -> list[TrialConfig]:
    """``members`` seeds of one Adam configuration at ``layers`` (the study defaults)."""
    base = TrialConfig(dataset="fashion-mnist", validation=0.1, split_seed=0, train_subset=0, layers=layers,
                       activation=BASE_DEFAULTS["activation"], dropout=0.0, epochs=2, batch_size=batch_size,
                       optimizer="adam", lr=BASE_DEFAULTS["lr"], momentum=0.0, beta1=BASE_DEFAULTS["beta1"],
                       beta2=BASE_DEFAULTS["beta2"], alpha=BASE_DEFAULTS["alpha"], eps=BASE_DEFAULTS["eps"],
                       weight_decay=0.0, seed=0)
    return [replace(base, seed=s) for s in range(members)]


def calibrate(device, batch_size: int = 128) -> StepCost:
    """Time the stacks of :func:`points` on ``device`` and fit ``a``, ``b`` and ``c`` by
    non-negative least squares on relative errors. About two seconds on a CPU."""
    import numpy as np
    import torch
    from scipy.optimize import nnls

    from .common import DeviceData
    from .stacked import seconds_per_step

    # A training split of the real size (random pixels): the batch gather's cache misses
    # are part of a step's cost. Each timed "epoch" is cut to a few steps.
    gen = torch.Generator().manual_seed(0)
    n = 54_000
    x = torch.rand(n, 784, generator=gen).to(device)
    y = torch.randint(0, 10, (n,), generator=gen).to(device)
    data = DeviceData(x, y, x[:batch_size], y[:batch_size], x[:batch_size], y[:batch_size], 10, device)
    rows = []
    for members, layers, steps in points(device):
        seconds = seconds_per_step(_configs(members, layers, batch_size), data, steps)
        rows.append((members, "-".join(map(str, layers)), members * batch_size,
                     float(members * batch_size * flops_per_sample(layers)), seconds))
    # relative errors: the points span two orders of magnitude, and the smallest carry ``a``
    y = np.array([r[4] for r in rows])
    x = np.array([[1.0, r[3], r[2]] for r in rows]) / y[:, None]
    scale = x.max(axis=0)
    (a, b, c), _ = nnls(x / scale, np.ones_like(y))
    a, b, c = a / scale[0], b / scale[1], c / scale[2]
    if b <= 0:  # the arithmetic did not register (a tiny device?): price FLOPs by the largest stack
        b = max(rows, key=lambda r: r[3])[4] / max(r[3] for r in rows)
    return StepCost(machine_of(device), float(a), float(b), float(c),
                    f"{time.strftime('%Y-%m-%dT%H:%M:%S')} tunebook {__version__}", tuple(rows))
