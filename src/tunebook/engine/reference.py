"""The reference trainer: one plain ``nn.Module`` and ``torch.optim``, the oracle.

It shares with the stacked engine only what makes them comparable — the initial
weights (:func:`tunebook.model.init_params`), the data order and dropout masks
(:mod:`tunebook.engine.rng`) — and nothing of the training step itself.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..model import DeepMLP, init_params
from ..records import TrialResult
from ..records import TrialConfig
from . import rng
from ..records import steps_of
from .common import (GRAD_EVERY, DeviceData, EpochEvent, MemberHistory, Stopper, diverged, grad_samples, n_seen,
                     pause_at, paused_results, results_for, under_flush)
from .schedule import scheduler, step_scheduler
from .optim import hparams_of, torch_optimizer

_ACT = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


class HashDropout(nn.Module):
    """Dropout whose mask comes from :func:`rng.keep_mask` (seed, step, layer)."""

    def __init__(self, rate: float, seed: int, layer: int, clock: list[int]):
        super().__init__()
        self.rate, self.seed, self.layer, self.clock = rate, seed, layer, clock

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return x
        rate = torch.tensor([[[self.rate]]], device=x.device)
        keep = rng.keep_mask([self.seed], self.clock[0], self.layer, tuple(x.shape), rate, x.device)[0]
        return x * keep.to(x.dtype) / (1 - self.rate)


def build_mlp(cfg: TrialConfig, n_in: int, n_out: int, clock: list[int]) -> nn.Module:
    if cfg.norm != "none" or cfg.residual:
        from ..model import init_projections

        drops = [HashDropout(cfg.dropout, cfg.seed, l, clock) if cfg.dropout > 0 else nn.Identity()
                 for l in range(len(cfg.layers))]
        model = DeepMLP(cfg.layers, n_in, n_out, cfg.activation, cfg.norm, cfg.residual, drops)
        with torch.no_grad():
            init = init_params(cfg.seed, cfg.layers, n_in, n_out, cfg.init)
            for lin, w, b in zip(model.linears, init[::2], init[1::2]):
                lin.weight.copy_(w)
                if lin.bias is not None:
                    lin.bias.copy_(b)
            if cfg.residual:
                for skip, q in zip(model.skips, init_projections(cfg.seed, cfg.layers, cfg.init)):
                    if q is not None:
                        skip.weight.copy_(q)
        return model
    dims = [n_in, *cfg.layers, n_out]
    mods: list[nn.Module] = []
    for l, (i, o) in enumerate(zip(dims[:-1], dims[1:])):
        mods.append(nn.Linear(i, o))
        if l < len(cfg.layers):
            mods.append(_ACT[cfg.activation]())
            if cfg.dropout > 0:
                mods.append(HashDropout(cfg.dropout, cfg.seed, l, clock))
    model = nn.Sequential(*mods)
    with torch.no_grad():
        linears = [m for m in model if isinstance(m, nn.Linear)]
        init = init_params(cfg.seed, cfg.layers, n_in, n_out, cfg.init)
        for lin, w, b in zip(linears, init[::2], init[1::2]):
            lin.weight.copy_(w)
            lin.bias.copy_(b)
    return model


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 10_000) -> tuple[float, float]:
    model.eval()
    loss, correct = 0.0, 0
    for s in range(0, x.shape[0], chunk):
        logits = model(x[s:s + chunk])
        loss += F.cross_entropy(logits, y[s:s + chunk], reduction="sum").item()
        correct += (logits.argmax(1) == y[s:s + chunk]).sum().item()
    return loss / x.shape[0], correct / x.shape[0]


@torch.no_grad()
def errors(model: nn.Module, x: torch.Tensor, y: torch.Tensor, huber: bool = False,
           chunk: int = 10_000) -> tuple[float, float, float]:
    """A regression: the mean criterion (``mse_loss``, or ``huber_loss`` with delta 1), the
    mean squared and the mean absolute error (``l1_loss``)."""
    model.eval()
    crit, sq, ab = 0.0, 0.0, 0.0
    for s in range(0, x.shape[0], chunk):
        pred = model(x[s:s + chunk]).squeeze(-1)
        sq += F.mse_loss(pred, y[s:s + chunk], reduction="sum").item()
        ab += F.l1_loss(pred, y[s:s + chunk], reduction="sum").item()
        if huber:
            crit += F.huber_loss(pred, y[s:s + chunk], reduction="sum", delta=1.0).item()
    n = x.shape[0]
    return (crit if huber else sq) / n, sq / n, ab / n


@torch.no_grad()
def class_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int) -> tuple[float, ...]:
    """Accuracy within every true class (NaN for a class with no row in ``y``)."""
    model.eval()
    pred = torch.cat([model(x[s:s + 10_000]).argmax(1) for s in range(0, x.shape[0], 10_000)])
    hits = torch.bincount(y[pred == y], minlength=n_classes).to(torch.float64)
    return tuple((hits / torch.bincount(y, minlength=n_classes).to(torch.float64)).cpu().tolist())


@under_flush
def train_one(cfg: TrialConfig, data: DeviceData,
              hooks: Sequence[Callable[[EpochEvent], None]] = (), label: str = "",
              stop: Stopper | None = None, keep: bool = False) -> TrialResult:
    """One trial as a plain ``nn.Module``; ``keep``: a complete result carries its trained
    weights (``result.weights``, :func:`tunebook.weights.module_state`)."""
    t_start = time.perf_counter()
    clock = [0]
    model = build_mlp(cfg, data.n_features, data.n_outputs, clock).to(data.device)
    opt = torch_optimizer(model.parameters(), hparams_of(cfg))
    hist = MemberHistory()
    n, bsz = data.x_train.shape[0], cfg.batch_size
    steps = steps_of(n, bsz, cfg.norm)
    sched = scheduler(opt, cfg.schedule, cfg.warmup, cfg.epochs, steps)
    weights = [m.weight for m in (model.linears if isinstance(model, DeepMLP) else model) if isinstance(m, nn.Linear)]
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        perm = rng.permutations([cfg.seed], epoch, n, data.device)[0]
        loss_sum = torch.zeros((), device=data.device, dtype=torch.float64)
        correct = torch.zeros((), device=data.device, dtype=torch.int64)
        grad_sq = torch.zeros(len(weights), device=data.device, dtype=torch.float64)
        for s in range(steps):
            clock[0] = (epoch - 1) * steps + s
            idx = perm[s * bsz:(s + 1) * bsz]
            xb, yb = data.x_train.index_select(0, idx), data.y_train.index_select(0, idx)
            logits = model(xb)
            if data.regression and cfg.regression_loss == "huber":
                loss = F.huber_loss(logits.squeeze(-1), yb, delta=1.0)
            elif data.regression:
                loss = F.mse_loss(logits.squeeze(-1), yb)
            else:
                loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if s % GRAD_EVERY == 0:
                grad_sq += torch.stack([w.grad.detach().square().sum() for w in weights]).to(torch.float64)
            opt.step()
            step_scheduler(sched, cfg.schedule, end_of_epoch=False)
            loss_sum += loss.detach() * len(idx)
            if not data.regression:
                correct += (logits.detach().argmax(1) == yb).sum()
        step_scheduler(sched, cfg.schedule, end_of_epoch=True)
        train_loss = loss_sum.item() / n_seen(n, bsz, steps)  # syncs the device: the steps are done
        hist.grad_norm.append(tuple((grad_sq / grad_samples(steps)).sqrt().cpu().tolist()))
        t_train = time.perf_counter() - t0
        huber = cfg.regression_loss == "huber"
        if data.regression:  # the criterion, MSE and MAE; accuracies are NaN
            val_loss, val_mse, val_mae = errors(model, data.x_val, data.y_val, huber)
            val_acc = train_acc = math.nan
        else:
            val_loss, val_acc = evaluate(model, data.x_val, data.y_val)
            train_acc = correct.item() / n_seen(n, bsz, steps)
        if diverged(train_loss, val_loss, data.n_classes):
            hist.diverged_epoch = epoch
        elif epoch == cfg.epochs and data.regression:
            test_loss, test_mse, test_mae = errors(model, data.x_test, data.y_test, huber)
            hist.test[epoch] = (test_loss, math.nan)
            hist.errors[epoch] = (val_mse, val_mae, test_mse, test_mae)
        elif epoch == cfg.epochs:
            hist.test[epoch] = evaluate(model, data.x_test, data.y_test)
            hist.val_class[epoch] = class_accuracy(model, data.x_val, data.y_val, data.n_classes)
        hist.add(train_loss, train_acc, val_loss, val_acc, time.perf_counter() - t0)
        event = EpochEvent(label, epoch, cfg.epochs, 1, [val_acc], hist.epoch_seconds[-1], t_train,
                           ((cfg.trial_id, train_loss, hist.train_acc[-1], val_loss, val_acc),))
        for hook in hooks:
            hook(event)
        if hist.diverged_epoch:
            break
        if stop is not None and epoch < cfg.epochs and cfg.trial_id in stop(event):
            hist.pruned_epoch = epoch
            break
        if epoch == pause_at(stop, [cfg.trial_id]) and epoch < cfg.epochs:  # a halving rung; no checkpoint: trained again
            return paused_results([cfg], hist, data, time.perf_counter() - t_start, 1, engine="reference")[0]
    result = results_for([cfg], hist, data, time.perf_counter() - t_start, 1, engine="reference")[0]
    if keep and result.status == "complete":
        from ..weights import module_state

        result = replace(result, weights=module_state(model))
    return result


def train_group(configs: Sequence[TrialConfig], data: DeviceData,
                hooks: Sequence[Callable[[EpochEvent], None]] = (), label: str = "",
                stop: Stopper | None = None, keep: bool = False) -> list[TrialResult]:
    """The reference engine trains a group one trial after another (a user's model: plain
    torch.optim, :func:`tunebook.engine.modules.train_module_alone`)."""
    if configs and configs[0].model:
        from .modules import build_of, input_shape_of, train_module_alone

        return [train_module_alone(c, data, build_of(c), input_shape_of(c), hooks, label, keep) for c in configs]
    return [train_one(c, data, hooks, label, stop, keep) for c in configs]
