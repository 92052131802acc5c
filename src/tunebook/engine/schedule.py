"""Learning-rate schedules, as torch.optim.lr_scheduler computes them.

A trial's schedule (``schedule``, ``warmup``, over its ``epochs``):

- ``constant``: the learning rate throughout (after the warm-up);
- ``cosine``: ``CosineAnnealingLR`` from ``lr`` to 0 over the epochs after the warm-up;
- ``step``: ``MultiStepLR``, ×0.1 at one half and at three quarters of those epochs;
- ``onecycle``: ``OneCycleLR`` stepped every optimizer step (max ``lr``, its own rise
  over the first 30 % of the steps — or the first ``warmup`` epochs when given — then a
  cosine fall to ``lr / 25 / 1e4``; ``cycle_momentum=False``: it changes the learning
  rate alone, for every optimizer alike).

The warm-up (``warmup`` epochs, not with onecycle) is ``LinearLR`` from ``lr / (warmup + 1)``
up to ``lr``, joined to the main schedule by ``SequentialLR``. Every schedule but onecycle
steps once per epoch, at its end.

The reference trainer attaches :func:`scheduler` to its ``torch.optim`` optimizer; the
stacked engine reads the same numbers from :func:`learning_rates`, which runs that
scheduler on a stand-in optimizer — so both engines' rates are torch's, step for step.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import torch

#: The schedulers that step every optimizer step rather than every epoch.
PER_STEP = ("onecycle",)


def scheduler(opt: torch.optim.Optimizer, schedule: str, warmup: int, epochs: int, steps_per_epoch: int):
    """The ``torch.optim.lr_scheduler`` for a trial on ``opt`` (None: a constant rate)."""
    from torch.optim import lr_scheduler as lrs

    if schedule == "onecycle":
        pct = warmup / epochs if warmup else 0.3
        return lrs.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=epochs * steps_per_epoch,
                              pct_start=pct, cycle_momentum=False)
    span = epochs - warmup
    if schedule == "cosine":
        main = lrs.CosineAnnealingLR(opt, T_max=max(1, span))
    elif schedule == "step":
        main = lrs.MultiStepLR(opt, milestones=sorted({m for m in (span // 2, 3 * span // 4) if m > 0}), gamma=0.1)
    elif schedule == "constant":
        main = None
    else:
        raise ValueError(f"schedule: must be constant, cosine, step or onecycle, got {schedule!r}")
    if not warmup:
        return main
    warm = lrs.LinearLR(opt, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup)
    if main is None:
        return warm
    return lrs.SequentialLR(opt, [warm, main], milestones=[warmup])


@lru_cache(maxsize=256)
def learning_rates(lr: float, schedule: str, warmup: int, epochs: int, steps_per_epoch: int) -> tuple[float, ...]:
    """The learning rate of every optimizer step of a run (``epochs × steps_per_epoch``),
    as :func:`scheduler` sets it on a ``torch.optim`` optimizer."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()": a stand-in
        warnings.simplefilter("ignore")
        sched = scheduler(opt, schedule, warmup, epochs, steps_per_epoch)
        out = []
        for _ in range(epochs):
            for _ in range(steps_per_epoch):
                out.append(float(opt.param_groups[0]["lr"]))
                if sched is not None and schedule in PER_STEP:
                    sched.step()
            if sched is not None and schedule not in PER_STEP:
                sched.step()
    return tuple(out)


def step_scheduler(sched, schedule: str, end_of_epoch: bool) -> None:
    """Advance ``sched`` (the reference trainer's) after an optimizer step, or at an epoch's end."""
    if sched is not None and (schedule in PER_STEP) != end_of_epoch:
        sched.step()
