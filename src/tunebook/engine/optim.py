"""Optimizers for stacked parameters, with hyperparameters per member.

Every parameter tensor is stacked, ``[T, ...]``: row ``t`` belongs to member ``t``.
Members are ordered so that members with equal optimizer hyperparameters are
contiguous ("runs"). A step applies torch.optim's own functional kernels to each run's
rows (views, no copies): fused single-pass kernels for SGD, Adam and AdamW, the
multi-tensor ones for RMSprop.

Why not a hand-written update with ``[T, 1, 1]`` hyperparameter tensors: on the CPU and
on a large GPU group the optimizer is bound by memory traffic, and the fused kernels
read and write each byte once where an unfused update chain takes ~10 passes. The cost
of the run split is one kernel launch per distinct hyperparameter set per step (one
for a seeds-only group, five for a five-point learning-rate grid). The arithmetic is
torch.optim's, so a member matches ``torch.optim`` trained alone step for step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch.optim import adam, adamw, rmsprop, sgd


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


def runs_of(hparams: Sequence[OptimHParams]) -> list[tuple[int, int, OptimHParams]]:
    """Maximal ranges [a, b) of equal hyperparameters."""
    out: list[tuple[int, int, OptimHParams]] = []
    for i, h in enumerate(hparams):
        if out and out[-1][2] == h:
            out[-1] = (out[-1][0], i + 1, h)
        else:
            out.append((i, i + 1, h))
    return out


class StackedOptimizer:
    """Optimizer state for stacked parameters; ``step(grads)`` updates in place."""

    def __init__(self, params: list[torch.Tensor], grads: list[torch.Tensor],
                 hparams: Sequence[OptimHParams]):
        kinds = {h.kind for h in hparams}
        if len(kinds) != 1:
            raise ValueError(f"a group has one optimizer kind, got {sorted(kinds)}")
        self.kind = kinds.pop()
        self.params = params
        self.grads = grads
        self.hparams = list(hparams)
        self.step_count = 0
        zeros = lambda: [torch.zeros_like(p) for p in params]  # noqa: E731
        self.state: dict[str, list[torch.Tensor]] = {}
        if self.kind in ("adam", "adamw"):
            self.state = {"m": zeros(), "v": zeros()}
        elif self.kind == "rmsprop":
            self.state = {"sq": zeros(), "buf": zeros()}
        else:
            self.state = {"buf": zeros()}
        self._plan()

    def _plan(self) -> None:
        """Per run: the row views of every parameter and state tensor (made once)."""
        fused = self.params[0].device.type in ("cpu", "cuda")
        self._fused = fused
        self._runs = []
        for a, b, h in runs_of(self.hparams):
            views = {"p": [p[a:b] for p in self.params], "g": [g[a:b] for g in self.grads]}
            for name, tensors in self.state.items():
                views[name] = [t[a:b] for t in tensors]
            steps = [torch.tensor(float(self.step_count), device=self.params[0].device if fused else "cpu")
                     for _ in self.params]
            self._runs.append((a, b, h, views, steps))

    def snapshot(self) -> tuple:
        """A copy of everything a step changes (parameters, state, step counters)."""
        return (self.step_count, [p.clone() for p in self.params],
                {k: [t.clone() for t in ts] for k, ts in self.state.items()},
                [[st.clone() for st in run[4]] for run in self._runs])

    def restore(self, snap: tuple) -> None:
        """Undo the steps taken since ``snap``, in place (views stay valid)."""
        self.step_count, params, state, steps = snap
        for dst, src in zip(self.params, params):
            dst.copy_(src)
        for k, ts in state.items():
            for dst, src in zip(self.state[k], ts):
                dst.copy_(src)
        for run, saved in zip(self._runs, steps):
            for dst, src in zip(run[4], saved):
                dst.copy_(src)

    def select(self, keep: torch.Tensor, params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """Keep only the members at indices ``keep`` (params, grads compacted by the caller)."""
        idx = keep.tolist()
        self.params, self.grads = params, grads
        self.hparams = [self.hparams[i] for i in idx]
        self.state = {k: [t.index_select(0, keep) for t in ts] for k, ts in self.state.items()}
        self._plan()

    def step(self) -> None:
        """One update of every member from the gradients in ``self.grads``."""
        self.step_count += 1
        for _, _, h, v, steps in self._runs:
            g = v["g"]
            if self.kind == "adam":
                adam.adam(v["p"], g, v["m"], v["v"], [], steps, fused=self._fused, amsgrad=False,
                          beta1=h.beta1, beta2=h.beta2, lr=h.lr, weight_decay=h.weight_decay,
                          eps=h.eps, maximize=False)
            elif self.kind == "adamw":
                adamw.adamw(v["p"], g, v["m"], v["v"], [], steps, fused=self._fused, amsgrad=False,
                            beta1=h.beta1, beta2=h.beta2, lr=h.lr, weight_decay=h.weight_decay,
                            eps=h.eps, maximize=False)
            elif self.kind == "rmsprop":
                rmsprop.rmsprop(v["p"], g, v["sq"], [], v["buf"] if h.momentum > 0 else [], steps,
                                foreach=True, lr=h.lr, alpha=h.alpha, eps=h.eps,
                                weight_decay=h.weight_decay, momentum=h.momentum, centered=False)
            else:
                # Zero-initialised buffers: buf = momentum·0 + grad on the first step,
                # exactly torch.optim.SGD's first step (dampening = 0).
                sgd.sgd(v["p"], g, v["buf"] if h.momentum > 0 else [None] * len(g),
                        fused=self._fused and h.momentum > 0, foreach=None if h.momentum > 0 else True,
                        weight_decay=h.weight_decay, momentum=h.momentum, lr=h.lr, dampening=0.0,
                        nesterov=h.kind == "nesterov", maximize=False)


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
                        beta2=cfg.beta2, alpha=cfg.alpha, eps=cfg.eps, weight_decay=cfg.weight_decay)
