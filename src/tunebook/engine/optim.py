"""Optimizers for stacked parameters, with hyperparameters per member.

Every parameter tensor is stacked, ``[T, ...]``: row ``t`` belongs to member ``t``.
Members are ordered so that members with equal optimizer hyperparameters are
contiguous ("runs"). A step applies torch.optim's own functional kernels to each run's
rows (views, no copies): fused single-pass kernels for SGD, Adam and AdamW, the
multi-tensor ones for RMSprop (on the CPU with a correctly rounded square root:
:func:`_rmsprop_cpu`). A run keeps the state of its own kind only, so one stack can hold
members of different optimizers.

Why not a hand-written update with ``[T, 1, 1]`` hyperparameter tensors: on the CPU and
on a large GPU group the optimizer is bound by memory traffic, and the fused kernels
read and write each byte once where an unfused update chain takes ~10 passes. The cost
of the run split is one kernel launch per distinct hyperparameter set per step (one
for a seeds-only group, five for a five-point learning-rate grid). The arithmetic is
torch.optim's, so a member matches ``torch.optim`` trained alone step for step (RMSprop on
the CPU to within torch's square root, one unit in the last place on some inputs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch.optim import adam, adamw, rmsprop, sgd

from .schedule import learning_rates


@dataclass(frozen=True)
class OptimHParams:
    """One member's optimizer settings (the fields of TrialConfig the update reads)."""

    kind: str
    lr: float
    momentum: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    alpha: float = 0.99
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "constant"       # the learning rate's schedule (tunebook.engine.schedule)
    warmup: int = 0
    epochs: int = 0                  # the run's length, where the schedule reads it (else 0)

    @property
    def scheduled(self) -> bool:
        return self.schedule != "constant" or self.warmup > 0

    def rate(self, step: int, steps_per_epoch: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based) of the run."""
        if not self.scheduled:
            return self.lr
        # a warm-up into a constant rate does not depend on the run's length: its last
        # epoch's rate (lr) holds from then on
        epochs = self.epochs if self.schedule != "constant" else self.warmup + 1
        rates = learning_rates(self.lr, self.schedule, self.warmup, epochs, steps_per_epoch)
        return rates[min(step, len(rates) - 1)]


def runs_of(hparams: Sequence[OptimHParams]) -> list[tuple[int, int, OptimHParams]]:
    """Maximal ranges [a, b) of equal hyperparameters."""
    out: list[tuple[int, int, OptimHParams]] = []
    for i, h in enumerate(hparams):
        if out and out[-1][2] == h:
            out[-1] = (out[-1][0], i + 1, h)
        else:
            out.append((i, i + 1, h))
    return out


#: The state tensors each optimizer kind keeps per parameter.
STATE_NAMES = {"adam": ("m", "v"), "adamw": ("m", "v"), "rmsprop": ("sq", "buf"),
               "sgd": ("buf",), "momentum": ("buf",), "nesterov": ("buf",)}


class _Run:
    """Rows [a, b) of the stack with one set of hyperparameters: views of the parameters
    and gradients, and the run's own optimizer state (sized to the run, of its kind)."""

    def __init__(self, a: int, b: int, h: OptimHParams, params, grads, state, steps):
        self.a, self.b, self.h = a, b, h
        self.p = [p[a:b] for p in params]
        self.g = [g[a:b] for g in grads]
        self.state = state      # name -> one tensor per parameter, rows of this run only
        self.steps = steps      # torch.optim's per-parameter step counters

    def snapshot(self) -> tuple:
        return ({k: [t.clone() for t in ts] for k, ts in self.state.items()}, [s.clone() for s in self.steps])

    def restore(self, snap: tuple) -> None:
        state, steps = snap
        for k, ts in state.items():
            for dst, src in zip(self.state[k], ts):
                dst.copy_(src)
        for dst, src in zip(self.steps, steps):
            dst.copy_(src)


class StackedOptimizer:
    """Optimizer state for stacked parameters; ``step()`` updates in place.

    Members may use different optimizers: each run of equal hyperparameters (kind
    included) owns state of its own kind, so an Adam run and an SGD run in one stack are
    each updated by their own torch.optim kernel, as if trained apart.
    """

    def __init__(self, params: list[torch.Tensor], grads: list[torch.Tensor],
                 hparams: Sequence[OptimHParams], steps_per_epoch: int = 1):
        self.steps_per_epoch = steps_per_epoch  # a schedule's steps are counted in epochs
        self.params = params
        self.grads = grads
        self.hparams = list(hparams)
        self.step_count = 0
        self._fused = params[0].device.type in ("cpu", "cuda")
        # the CPU's own Adam and RMSprop paths (_adam_cpu, _rmsprop_cpu): float32 stacks (the
        # MLP's; a user's module of other dtypes takes torch.optim's, which groups by dtype)
        self._cpu = params[0].device.type == "cpu" and all(p.dtype == torch.float32 for p in params)
        step_device = params[0].device if self._fused else "cpu"
        self._runs = []
        for a, b, h in runs_of(self.hparams):
            state = {name: [torch.zeros_like(p[a:b]) for p in params] for name in STATE_NAMES[h.kind]}
            if self._cpu and h.kind in ("adam", "adamw"):  # one counter read for every tensor (_adam_cpu)
                steps = [torch.tensor(0.0)] * len(params)
            else:
                steps = [torch.tensor(0.0, device=step_device) for _ in params]
            self._runs.append(_Run(a, b, h, params, grads, state, steps))

    @property
    def kinds(self) -> set[str]:
        return {h.kind for h in self.hparams}

    def snapshot(self) -> tuple:
        """A copy of everything a step changes (parameters, state, step counters)."""
        return (self.step_count, [p.clone() for p in self.params], [run.snapshot() for run in self._runs])

    def restore(self, snap: tuple) -> None:
        """Undo the steps taken since ``snap``, in place (views stay valid)."""
        self.step_count, params, runs = snap
        for dst, src in zip(self.params, params):
            dst.copy_(src)
        for run, saved in zip(self._runs, runs):
            run.restore(saved)

    def select(self, keep: torch.Tensor, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """Keep only the members at indices ``keep`` (params, grads compacted by the caller).
        Runs are maximal and ordered, so every surviving run stays one run."""
        idx = keep.tolist()
        self.params, self.grads = params, grads
        self.hparams = [self.hparams[i] for i in idx]
        runs, start = [], 0
        for run in self._runs:
            local = [i - run.a for i in idx if run.a <= i < run.b]
            if not local:
                continue
            rows = torch.tensor(local, device=keep.device)
            state = {k: [t.index_select(0, rows) for t in ts] for k, ts in run.state.items()}
            runs.append(_Run(start, start + len(local), run.h, params, grads, state, run.steps))
            start += len(local)
        self._runs = runs

    def step(self) -> None:
        """One update of every member from the gradients in ``self.grads``."""
        self.step_count += 1
        for run in self._runs:
            h, p, g, st, steps = run.h, run.p, run.g, run.state, run.steps
            lr = h.rate(self.step_count - 1, self.steps_per_epoch)
            if h.kind in ("adam", "adamw") and self._cpu:
                _adam_cpu(p, g, st["m"], st["v"], steps, h, lr)
            elif h.kind == "adam":
                adam.adam(p, g, st["m"], st["v"], [], steps, fused=self._fused, amsgrad=False,
                          beta1=h.beta1, beta2=h.beta2, lr=lr, weight_decay=h.weight_decay,
                          eps=h.eps, maximize=False)
            elif h.kind == "adamw":
                adamw.adamw(p, g, st["m"], st["v"], [], steps, fused=self._fused, amsgrad=False,
                            beta1=h.beta1, beta2=h.beta2, lr=lr, weight_decay=h.weight_decay,
                            eps=h.eps, maximize=False)
            elif h.kind == "rmsprop" and self._cpu:
                _rmsprop_cpu(p, g, st["sq"], st["buf"] if h.momentum > 0 else None, steps, h, lr)
            elif h.kind == "rmsprop":
                rmsprop.rmsprop(p, g, st["sq"], [], st["buf"] if h.momentum > 0 else [], steps,
                                foreach=True, lr=lr, alpha=h.alpha, eps=h.eps,
                                weight_decay=h.weight_decay, momentum=h.momentum, centered=False)
            else:
                # Zero-initialised buffers: buf = momentum·0 + grad on the first step,
                # exactly torch.optim.SGD's first step (dampening = 0).
                sgd.sgd(p, g, st["buf"] if h.momentum > 0 else [None] * len(g),
                        fused=self._fused and h.momentum > 0, foreach=None if h.momentum > 0 else True,
                        weight_decay=h.weight_decay, momentum=h.momentum, lr=lr, dampening=0.0,
                        nesterov=h.kind == "nesterov", maximize=False)


def _adam_cpu(p: list[torch.Tensor], g: list[torch.Tensor], m: list[torch.Tensor], v: list[torch.Tensor],
              steps: list[torch.Tensor], h: OptimHParams, lr: float) -> None:
    """torch.optim's fused Adam (AdamW) step on the CPU: its kernel, called as
    ``torch.optim.adam`` calls it, without what a step of one group of one device does not
    need — grouping the tensors by device and dtype, and a multi-tensor add to the step
    counters, which on the CPU is a loop of one small kernel per tensor. Every tensor of a
    run has taken the same steps, so they share one counter (``steps`` is the one tensor,
    repeated), added to once. ``python benchmarks/optim_cpu.py`` times both calls: a
    [64, 64] member's update 0.049 → 0.034 ms (its whole training step ~0.6 ms)."""
    steps[0].add_(1.0)
    fused = torch._fused_adamw_ if h.kind == "adamw" else torch._fused_adam_
    fused(p, g, m, v, [], steps, amsgrad=False, lr=lr, beta1=h.beta1, beta2=h.beta2,
          weight_decay=h.weight_decay, eps=h.eps, maximize=False, grad_scale=None, found_inf=None)


def _rmsprop_cpu(p: list[torch.Tensor], g: list[torch.Tensor], sq: list[torch.Tensor], buf: list[torch.Tensor] | None,
                 steps: list[torch.Tensor], h: OptimHParams, lr: float) -> None:
    """torch.optim's RMSprop step (its multi-tensor form, the same kernels in the same
    order) with one change: the square root is numpy's, which is correctly rounded and
    takes the same time for every input. torch's CPU kernel (AVX-512, torch 2.13) is one
    unit in the last place off on about 0.6 % of float32 inputs and ~12 times slower where
    the input is zero — and an RMSprop state is zero wherever a gradient always is (the
    first layer's rows of Fashion-MNIST's blank border pixels, dead units).
    ``python benchmarks/optim_cpu.py`` times both roots and both steps side by side: a
    trained [433, 433, 433] member's epoch 1.12× faster in one run (docs/performance.md, issue 21)."""
    torch._foreach_add_(steps, 1.0)
    if h.weight_decay != 0:
        g = torch._foreach_add(g, p, alpha=h.weight_decay)
    torch._foreach_mul_(sq, h.alpha)
    torch._foreach_addcmul_(sq, g, g, value=1 - h.alpha)
    avg = [torch.from_numpy(np.sqrt(s.numpy())) for s in sq]
    torch._foreach_add_(avg, h.eps)
    if buf is not None:
        torch._foreach_mul_(buf, h.momentum)
        torch._foreach_addcdiv_(buf, g, avg)
        torch._foreach_add_(p, buf, alpha=-lr)
    else:
        torch._foreach_addcdiv_(p, g, avg, value=-lr)


def torch_optimizer(params, h: OptimHParams) -> torch.optim.Optimizer:
    """The torch.optim optimizer equal to ``h`` for one model (the reference trainer's)."""
    if h.kind == "adam":
        return torch.optim.Adam(params, lr=h.lr, betas=(h.beta1, h.beta2), eps=h.eps, weight_decay=h.weight_decay)
    if h.kind == "adamw":
        return torch.optim.AdamW(params, lr=h.lr, betas=(h.beta1, h.beta2), eps=h.eps, weight_decay=h.weight_decay)
    if h.kind == "rmsprop":
        return torch.optim.RMSprop(params, lr=h.lr, alpha=h.alpha, eps=h.eps, weight_decay=h.weight_decay,
                                   momentum=h.momentum)
    return torch.optim.SGD(params, lr=h.lr, momentum=h.momentum, nesterov=h.kind == "nesterov",
                           weight_decay=h.weight_decay)


def hparams_of(cfg) -> OptimHParams:
    return OptimHParams(kind=cfg.optimizer, lr=cfg.lr, momentum=cfg.momentum, beta1=cfg.beta1,
                        beta2=cfg.beta2, alpha=cfg.alpha, eps=cfg.eps, weight_decay=cfg.weight_decay,
                        schedule=cfg.schedule, warmup=cfg.warmup, epochs=cfg.epochs if cfg.schedule != "constant" else 0)
