"""A user's own ``torch.nn.Module``, many copies trained as one computation (issue 23's
engine; wiring it into study files is the next step).

``train_modules(configs, data, build)`` trains one copy of ``build(config)`` per trial —
seeds, learning rates, optimizers may differ; the architecture may not — as PyTorch's
model-ensembling recipe does: the copies' parameters stacked (``torch.func.
stack_module_state``), the forward and its gradient vmapped over the members
(``vmap(grad(functional_call))``), every member's update by the vectorized optimizers of the
MLP engine (:mod:`.optim`: its own kind's state, torch.optim's kernels). Data order comes
from the counter-based RNG per member, and ``nn.Dropout`` layers are swapped for
:class:`HashedDropout`, whose keep-masks are :func:`tunebook.engine.rng.keep_mask`'s for
(seed, step, layer) — so every member equals the module trained alone by
:func:`train_module_alone` (plain ``torch.optim``, the oracle) to float rounding.

Buffers are stacked like parameters (a row per member), so a BatchNorm's in-place update of
its running statistics updates each member's own row — vmap refuses such updates only of
an unbatched (shared) tensor. What cannot be stacked trains one by one through
:func:`train_module_alone`, with the reason: copies whose parameter shapes differ, modules
that draw randomness other than dropout (:func:`unstackable`), and what vmap cannot batch —
data-dependent control flow, ``.item()`` — found by a trial step before training.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..records import TrialConfig, TrialResult, best_epoch_of
from . import rng
from .common import (DeviceData, EpochEvent, MemberHistory, decided_at, device_name, diverged, history_from_state,
                     history_state, pause_at, to_device, under_flush)
from .optim import StackedOptimizer, hparams_of, torch_optimizer

Build = Callable[[TrialConfig], nn.Module]


class HashedDropout(nn.Module):
    """``nn.Dropout`` with tunebook's counter-based masks: in training, the input times the
    buffer ``mask`` (kept / (1 - rate)), which the engine fills for each step from
    (seed, step, layer); in evaluation the input itself."""

    def __init__(self, rate: float, layer: int):
        super().__init__()
        self.rate, self.layer = rate, layer
        self.register_buffer("mask", torch.ones(0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return x
        return x * self.mask


def prepared(module: nn.Module) -> tuple[nn.Module, list[tuple[str, HashedDropout]]]:
    """A copy of ``module`` whose ``nn.Dropout`` layers are :class:`HashedDropout` (numbered
    in module order), and those layers by name."""
    module = copy.deepcopy(module)
    drops: list[tuple[str, HashedDropout]] = []
    for name, child in list(module.named_modules()):
        for cname, sub in list(child.named_children()):
            if type(sub) is nn.Dropout:
                hd = HashedDropout(sub.p, len(drops))
                setattr(child, cname, hd)
                drops.append((f"{name}.{cname}" if name else cname, hd))
    return module, drops


def unstackable(modules: Sequence[nn.Module]) -> str:
    """Why these modules cannot train as one stack, or "" (they can)."""
    shapes = [{k: tuple(p.shape) for k, p in m.named_parameters()} for m in modules]
    for s in shapes[1:]:
        if s != shapes[0]:
            diff = sorted(set(s.items()) ^ set(shapes[0].items()))
            return f"their parameter shapes differ ({diff[0][0]}: {diff[0][1]})"
    for name, sub in modules[0].named_modules():
        if isinstance(sub, (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)):
            return f"{name} ({type(sub).__name__}) draws randomness tunebook cannot give each copy"
    return ""


def _built(configs: Sequence[TrialConfig], build: Build) -> list[nn.Module]:
    """One module per config, each built under its seed (its initial weights are the
    seed's, as built alone), leaving the caller's random state as it was."""
    out = []
    for c in configs:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            out.append(build(c))
    return out


def _masks(drops, seeds: Sequence[int], step: int, shapes: dict[str, tuple[int, ...]], device) -> dict:
    """Each dropout layer's keep-masks for this step, ``[T, B, *shape]`` (scaled)."""
    out = {}
    for name, d in drops:
        shape = shapes[name]
        flat = (shape[0], math.prod(shape[1:]))
        rate = torch.full((len(seeds), 1, 1), d.rate, device=device)
        keep = rng.keep_mask(list(seeds), step, d.layer, flat, rate, device)
        out[f"{name}.mask"] = keep.to(torch.float32).div_(1 - d.rate).view(len(seeds), *shape)
    return out


def _dropout_shapes(module: nn.Module, drops, x: torch.Tensor, cache: dict) -> dict[str, tuple[int, ...]]:
    """The input shape of each dropout layer for a batch ``x`` (one forward, hooked, once
    per batch size: ``cache``)."""
    if x.shape[0] in cache:
        return cache[x.shape[0]]
    shapes: dict[str, tuple[int, ...]] = {}
    handles = [d.register_forward_pre_hook(lambda m, a, n=name: shapes.__setitem__(n, tuple(a[0].shape)))
               for name, d in drops]
    try:
        with torch.no_grad():
            was = module.training
            module.eval()
            module(x)
            module.train(was)
    finally:
        for h in handles:
            h.remove()
    cache[x.shape[0]] = shapes
    return shapes


def _inputs(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Flat feature rows (``[..., n_features]``) given one input's shape back."""
    return x.view(*x.shape[:-1], *shape) if shape else x


@under_flush
def train_module_alone(config: TrialConfig, data: DeviceData, build: Build, input_shape: Sequence[int] = (),
                       hooks: Sequence[Callable] = (), label: str = "", keep: bool = False,
                       stop=None) -> TrialResult:
    """The oracle: one copy of ``build(config)`` trained by plain ``torch.optim`` — the same
    data order and dropout masks as a stacked member. Randomness of the module's own
    (``nn.Dropout2d``, …) draws from torch's generator seeded by the trial's seed, so a run
    is repeatable on its device; the caller's random state is left as it was. ``stop``: a
    search's pruner (:data:`tunebook.engine.common.Stopper`; a pause trains again next time)."""
    devices = [data.device] if data.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(rng.key(config.seed, 0x4D4F44) & 0x7FFFFFFF)  # "MOD"
        return _train_alone(config, data, build, input_shape, hooks, label, keep, stop)


def _train_alone(config, data, build, input_shape, hooks, label, keep, stop=None) -> TrialResult:
    t_start = time.perf_counter()
    module, drops = prepared(_built([config], build)[0])
    module = module.to(data.device)
    opt = torch_optimizer(module.parameters(), hparams_of(config))
    n, bsz = data.x_train.shape[0], config.batch_size
    steps = -(-n // bsz)
    hist = MemberHistory()
    shape_cache: dict = {}
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        module.train()
        perm = rng.permutations([config.seed], epoch, n, data.device)[0]
        loss_sum = torch.zeros((), dtype=torch.float64, device=data.device)  # on the device: no sync per step
        correct = torch.zeros((), dtype=torch.int64, device=data.device)
        for s in range(steps):
            idx = perm[s * bsz:(s + 1) * bsz]
            xb = _inputs(data.x_train.index_select(0, idx), input_shape)
            yb = data.y_train.index_select(0, idx)
            if drops:
                shapes = _dropout_shapes(module, drops, xb, shape_cache)
                for name, d in drops:
                    d.mask = _masks([(name, d)], [config.seed], (epoch - 1) * steps + s, shapes, data.device)[
                        f"{name}.mask"][0]
            logits = module(xb)
            loss = F.cross_entropy(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.detach().argmax(1) == yb).sum()
        train_loss, train_acc = loss_sum.item() / n, correct.item() / n
        val_loss, val_acc = _evaluate_alone(module, data.x_val, data.y_val, input_shape)
        hist.add(train_loss, train_acc, val_loss, val_acc, time.perf_counter() - t0)
        event = EpochEvent(label, epoch, config.epochs, 1, [val_acc], hist.epoch_seconds[-1],
                           members_detail=((config.trial_id, train_loss, train_acc, val_loss, val_acc),))
        for hook in hooks:
            hook(event)
        if diverged(train_loss, val_loss, data.n_classes):
            hist.diverged_epoch = epoch
            break
        if stop is not None and epoch < config.epochs and config.trial_id in stop(event):
            hist.pruned_epoch = epoch
            break
        if epoch == pause_at(stop, [config.trial_id]) and epoch < config.epochs:  # a halving rung
            return _result(config, hist, module, data, time.perf_counter() - t_start, 1, "modules-alone",
                           paused=True)
    if not hist.diverged_epoch and not hist.pruned_epoch:
        hist.test[config.epochs] = _evaluate_alone(module, data.x_test, data.y_test, input_shape)
    result = _result(config, hist, module, data, time.perf_counter() - t_start, 1, "modules-alone")
    if keep and result.status == "complete":
        from dataclasses import replace

        result = replace(result, weights=_state(module))
    return result


@torch.no_grad()
def _evaluate_alone(module, x, y, input_shape, chunk: int = 5000) -> tuple[float, float]:
    module.eval()
    loss, correct = 0.0, 0
    for s in range(0, x.shape[0], chunk):
        out = module(_inputs(x[s:s + chunk], input_shape))
        loss += F.cross_entropy(out, y[s:s + chunk], reduction="sum").item()
        correct += int((out.argmax(1) == y[s:s + chunk]).sum())
    return loss / x.shape[0], correct / x.shape[0]


def _state(module: nn.Module) -> dict:
    """A module's state_dict as numpy arrays (what a kept run's weights file holds)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _result(config, hist: MemberHistory, module, data, seconds: float, group: int, engine: str,
            paused: bool = False) -> TrialResult:
    """A member's result from its curves: diverged, pruned (at ``hist.pruned_epoch``),
    complete — or ``paused`` (a halving rung; never stored)."""
    h = hist.frozen()
    if hist.pruned_epoch:
        h = h.head(hist.pruned_epoch)
    params = sum(p.numel() for p in module.parameters())
    common = dict(trial_id=config.trial_id, params=params, flops=0, group_seconds=seconds, group_size=group,
                  engine=engine, device=device_name(data.device), train_seconds=sum(h.epoch_seconds))
    if paused:
        return TrialResult(status="paused", epochs_run=len(h), history=h, diverged_epoch=hist.diverged_epoch,
                           **common)
    if hist.diverged_epoch:
        return TrialResult(status="diverged", epochs_run=len(h), history=h, diverged_epoch=hist.diverged_epoch,
                           **common)
    if hist.pruned_epoch:
        return TrialResult(status="pruned", epochs_run=len(h), history=h, best_epoch=best_epoch_of(h), **common)
    test_loss, test_acc = hist.test[config.epochs]
    return TrialResult(status="complete", epochs_run=len(h), history=h, val_acc=h.val_acc[-1],
                       val_loss=h.val_loss[-1], test_acc=test_acc, test_loss=test_loss, best_epoch=best_epoch_of(h),
                       **common)


@under_flush
def train_modules(configs: Sequence[TrialConfig], data: DeviceData, build: Build, input_shape: Sequence[int] = (),
                  hooks: Sequence[Callable] = (), label: str = "", notes: list | None = None,
                  keep: bool = False, checkpoint=None, stop=None) -> list[TrialResult]:
    """Train ``build(c)`` for every config, stacked where :func:`unstackable` allows (else
    one by one, the reason appended to ``notes``). Configs share ``epochs`` and
    ``batch_size``; seeds, optimizers and their settings may differ.

    ``checkpoint`` (a :class:`tunebook.checkpoints.GroupCheckpoint`), for a stack: it goes
    on from the state saved there (parameters, optimizer state, buffers such as BatchNorm's
    running statistics, the curves so far), saves it when due, and whenever a hook stops the
    run at an epoch's end (a budget, Ctrl-C: raised again once saved). Trained one by one, a
    group keeps none (it trains again from its first epoch).

    ``stop`` (a search's pruner, :data:`tunebook.engine.common.Stopper`): a member it stops
    is recorded ``pruned`` there; its row is computed on while others train (rows are
    independent under vmap) and the stack ends once every member is stopped. A pause
    (``pause_for``) saves the checkpoint and returns ``paused`` results."""
    if len({(c.epochs, c.batch_size) for c in configs}) != 1:
        raise ValueError("configs of one stack of modules must share epochs and batch_size")
    built = _built(configs, build)
    prepared_ = [prepared(m) for m in built]
    reason = unstackable([m for m, _ in prepared_])
    if reason:
        if notes is not None:
            notes.append(f"{label or 'modules'}: trained one by one — {reason}")
        return [train_module_alone(c, data, build, input_shape, hooks, label, keep, stop) for c in configs]
    t_start = time.perf_counter()
    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    order = sorted(range(len(configs)), key=lambda i: repr(hparams_of(configs[i])))  # equal settings adjacent:
    cfgs = [configs[i] for i in order]                                                # one optimizer run each
    modules = [prepared_[i][0].to(data.device) for i in order]
    drops = prepared_[order[0]][1]  # the dropout layers of modules[0] (the stack's first row), whose shapes are measured
    params, buffers = stack_module_state(modules)
    names = list(params)
    base = copy.deepcopy(modules[0]).to("meta")
    opt = StackedOptimizer([params[k].detach().clone() for k in names],
                           [torch.zeros_like(params[k]) for k in names], [hparams_of(c) for c in cfgs])
    stacked_buffers = {k: v for k, v in buffers.items() if not k.endswith(".mask")}
    seeds = [c.seed for c in cfgs]

    def loss_of(p: dict, b: dict, x: torch.Tensor, y: torch.Tensor):
        out = functional_call(base, (p, b), (x,))
        return F.cross_entropy(out, y), out

    step = vmap(grad_and_value(loss_of, has_aux=True), in_dims=(0, 0, 0, 0))
    n, bsz, t = data.x_train.shape[0], cfgs[0].batch_size, len(cfgs)
    steps = -(-n // bsz)
    hists = [MemberHistory() for _ in cfgs]
    shape_cache: dict = {}
    try:  # a trial step on the first batch: what vmap cannot batch (data-dependent control flow,
        # .item(), in-place updates of unbatched tensors) fails here, before anything trained
        xb = _inputs(data.x_train[rng.permutations(seeds, 1, n, data.device)[:, :bsz]], input_shape)
        b = {k: v.clone() for k, v in stacked_buffers.items()}  # copies: a BatchNorm's running statistics
        # are updated in place (each member's own row), and this step must leave them as they are
        if drops:
            b |= _masks(drops, seeds, 0, _dropout_shapes(modules[0], drops, xb[0], shape_cache), data.device)
        step(dict(zip(names, opt.params)), b, xb, data.y_train[:bsz].expand(t, -1))
    except RuntimeError as exc:
        why = str(exc).strip().splitlines()[0]
        if notes is not None:
            notes.append(f"{label or 'modules'}: trained one by one — torch.func's vmap cannot batch it ({why})")
        return [train_module_alone(c, data, build, input_shape, hooks, label, keep, stop) for c in configs]
    first, seconds_before = 1, 0.0
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        first, seconds_before = int(saved["epoch"]) + 1, float(saved["seconds"])
        opt.restore(to_device(saved["opt"], data.device))
        for k, v in saved["buffers"].items():
            stacked_buffers[k].copy_(v.to(data.device))
        hists = [history_from_state(h) for h in saved["histories"]]
        t_start -= seconds_before
    ids = [c.trial_id for c in cfgs]
    pausing = pause_at(stop, ids)
    if saved is not None and stop is not None:  # decided at the checkpoint's epoch (a halving rung): stop them now
        gone = decided_at(stop, first - 1)
        for h, tid in zip(hists, ids):
            if tid in gone and not h.pruned_epoch:
                h.pruned_epoch = first - 1
        if all(h.pruned_epoch for h in hists):
            first = cfgs[0].epochs + 1
        elif pausing == first - 1:  # paused here already (a search resumed before deciding)
            return [_result(c, h, modules[0], data, seconds_before, t, "modules", paused=True)
                    for c, h in zip(cfgs, hists)]
    for epoch in range(first, cfgs[0].epochs + 1):
        t0 = time.perf_counter()
        base.train()
        perm = rng.permutations(seeds, epoch, n, data.device)
        loss_sum = torch.zeros(t, dtype=torch.float64, device=data.device)
        correct = torch.zeros(t, dtype=torch.int64, device=data.device)
        for s in range(steps):
            idx = perm[:, s * bsz:(s + 1) * bsz]
            xb = _inputs(data.x_train[idx], input_shape)   # [T, B, ...]
            yb = data.y_train[idx]
            b = dict(stacked_buffers)
            if drops:
                shapes = _dropout_shapes(modules[0], drops, xb[0], shape_cache)
                b |= _masks(drops, seeds, (epoch - 1) * steps + s, shapes, data.device)
            g, (loss, out) = step(dict(zip(names, opt.params)), b, xb, yb)
            for dst, k in zip(opt.grads, names):
                dst.copy_(g[k])
            opt.step()
            loss_sum += loss.detach().to(torch.float64) * yb.shape[1]
            correct += (out.detach().argmax(-1) == yb).sum(1)
        base.eval()
        val = _evaluate_stack(base, names, opt.params, stacked_buffers, data.x_val, data.y_val, input_shape)
        train_loss = (loss_sum / n).tolist()
        train_acc = (correct.to(torch.float64) / n).tolist()
        share = (time.perf_counter() - t0) / t
        for i, h in enumerate(hists):
            h.add(train_loss[i], train_acc[i], val[0][i], val[1][i], share)
        live = [i for i, h in enumerate(hists) if not h.pruned_epoch]
        event = EpochEvent(label, epoch, cfgs[0].epochs, len(live), [val[1][i] for i in live], share * t,
                           members_detail=tuple((ids[i], train_loss[i], train_acc[i], val[0][i], val[1][i])
                                                for i in live))
        interrupt = None
        try:
            for hook in hooks:
                hook(event)
        except BaseException as exc:  # a budget or Ctrl-C at this epoch's end: save the state, then stop
            if checkpoint is None or epoch == cfgs[0].epochs:
                raise
            interrupt = exc
        if stop is not None and interrupt is None and epoch < cfgs[0].epochs:
            stopped = stop(event)
            for i in live:
                if ids[i] in stopped:
                    hists[i].pruned_epoch = epoch
        all_stopped = all(h.pruned_epoch for h in hists)
        pause = pausing == epoch and interrupt is None and not all_stopped
        if checkpoint is not None and epoch < cfgs[0].epochs and (interrupt is not None or pause
                                                                  or checkpoint.due()):
            checkpoint.save({"epoch": epoch, "opt": to_device(opt.snapshot(), "cpu"),
                             "buffers": {k: v.cpu() for k, v in stacked_buffers.items()},
                             "seconds": time.perf_counter() - t_start,
                             "histories": [history_state(h) for h in hists]})
        if interrupt is not None:
            raise interrupt
        if pause:  # a halving rung: the driver ranks the batch, the survivors go on from the checkpoint
            return [_result(c, h, modules[0], data, time.perf_counter() - t_start, t, "modules", paused=True)
                    for c, h in zip(cfgs, hists)]
        if all_stopped:
            break
    test = (_evaluate_stack(base, names, opt.params, stacked_buffers, data.x_test, data.y_test, input_shape)
            if not all(h.pruned_epoch for h in hists) else None)  # (every member stopped: no test to measure)
    seconds = time.perf_counter() - t_start
    results = {}
    for i, (c, h) in enumerate(zip(cfgs, hists)):
        last = h.pruned_epoch or len(h.train_loss)  # a pruned row's later epochs are not its own
        bad = [e for e, (tl, vl) in enumerate(zip(h.train_loss[:last], h.val_loss[:last]))
               if diverged(tl, vl, data.n_classes)]
        if bad:  # recorded at its first diverged epoch (it trained on, alone in its row, to no effect on the rest)
            h.pruned_epoch = 0
            h.diverged_epoch = bad[0] + 1
            for key in ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds", "wall_time"):
                setattr(h, key, getattr(h, key)[:h.diverged_epoch])
        elif not h.pruned_epoch:
            h.test[c.epochs] = (test[0][i], test[1][i])
        results[c.trial_id] = _result(c, h, modules[0], data, seconds, t, "modules")
        if keep and results[c.trial_id].status == "complete":  # row i of the stack, as the module's state_dict
            from dataclasses import replace

            state = {k: p[i] for k, p in zip(names, opt.params)} | {k: v[i] for k, v in stacked_buffers.items()}
            module = copy.deepcopy(modules[0])
            module.load_state_dict(state, strict=False)
            results[c.trial_id] = replace(results[c.trial_id], weights=_state(module))
    return [results[c.trial_id] for c in configs]


@torch.no_grad()
def _evaluate_stack(base, names, flat, buffers, x, y, input_shape, chunk: int = 2000) -> tuple[list, list]:
    """Every member's mean loss and accuracy on (x, y) (evaluation mode: no dropout)."""
    from torch.func import functional_call, vmap

    t = flat[0].shape[0]
    loss = torch.zeros(t, dtype=torch.float64, device=x.device)
    correct = torch.zeros(t, dtype=torch.int64, device=x.device)

    def out_of(p, b, xx):
        return functional_call(base, (p, b), (xx,))

    forward = vmap(out_of, in_dims=(0, 0, None))
    for s in range(0, x.shape[0], chunk):
        out = forward(dict(zip(names, flat)), buffers, _inputs(x[s:s + chunk], input_shape))  # [T, N, C]
        yc = y[s:s + chunk]
        loss += F.cross_entropy(out.flatten(0, 1), yc.repeat(t), reduction="none").view(t, -1).sum(
            1, dtype=torch.float64)
        correct += (out.argmax(-1) == yc).sum(1)
    return (loss / x.shape[0]).tolist(), (correct.to(torch.float64) / x.shape[0]).tolist()


def build_of(config: TrialConfig) -> Build:
    """The build function of a study's user model: its factory called with the trial's own
    hyperparameters and what the data is (:class:`tunebook.usermodel.ModelData`)."""
    from ..usermodel import factory, model_data

    fn, info = factory(config.model), model_data(config.dataset)
    return lambda c: fn(dict(c.model_params), info)


def input_shape_of(config: TrialConfig) -> tuple[int, ...]:
    from ..usermodel import model_data

    return model_data(config.dataset).input_shape


def train_user_models(configs: Sequence[TrialConfig], data: DeviceData, hooks: Sequence[Callable] = (),
                      label: str = "", keep: bool = False, checkpoint=None, stop=None) -> list[TrialResult]:
    """A planned group of a user model's trials (one architecture, one epoch count): stacked
    where torch.func can, one by one otherwise — the reason said as a warning."""
    import warnings

    notes: list[str] = []
    results = train_modules(configs, data, build_of(configs[0]), input_shape_of(configs[0]), hooks, label, notes,
                            keep, checkpoint, stop)
    for note in notes:
        warnings.warn(note, ModelWarning, stacklevel=2)
    return results


class ModelWarning(UserWarning):
    """A user's model trained one by one (why: its message)."""
