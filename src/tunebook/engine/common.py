"""What both engines share: data on the device, epoch events, turning curves into results."""

from __future__ import annotations

import functools
import math
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from ..data import Dataset
from ..devices import device_form_problem
from ..sizes import extra_param_count, param_count, train_flops
from ..records import History, TrialResult, best_epoch_of, is_collapsed
from ..records import TrialConfig


@dataclass(frozen=True, eq=False)
class DeviceData:
    """A dataset's arrays as tensors on one device, put there once per study."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    n_classes: int                 # 0: a regression target (standardised floats, one output)
    device: torch.device
    target_sd: float = 1.0         # a regression target's standard deviation (errors in its units)

    @property
    def n_features(self) -> int:
        return self.x_train.shape[1]

    @property
    def regression(self) -> bool:
        return self.n_classes == 0

    @property
    def n_outputs(self) -> int:
        return max(self.n_classes, 1)

    @classmethod
    def from_dataset(cls, ds: Dataset, device: torch.device | str) -> "DeviceData":
        device = torch.device(device)
        from ..datasets import DATASETS

        def t(a: np.ndarray) -> torch.Tensor:
            # a read-only array (a cache's, an object store's) is copied; one the split made for
            # this call is used as it is: copying the training images again cost a worker a
            # second of fresh pages before its first group (nothing here writes to them)
            return torch.from_numpy(a if a.flags.writeable else a.copy()).to(device)

        return cls(t(ds.x_train), t(ds.y_train), t(ds.x_val), t(ds.y_val), t(ds.x_test), t(ds.y_test),
                   n_classes=ds.n_classes, device=device, target_sd=DATASETS[ds.name].target_sd)


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present; ``cpu``, ``cuda`` and ``cuda:N`` are checked to
    exist. Anything else (mps, xla, meta, gpu...) is refused: the engines are written and
    tested for CPU and CUDA only."""
    if (problem := device_form_problem(name)) is not None:
        raise ValueError(problem)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: no CUDA device is available (torch.cuda.is_available() is False)")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: there are only {torch.cuda.device_count()} CUDA devices")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{torch.get_num_threads()} threads"


@contextmanager
def flush_denormals(device: torch.device) -> Iterator[None]:
    """On the CPU, float32 numbers below 1.2e-38 (denormals) read and written as zero while
    a group trains, then the default again. Training makes them — Adam's second moments of
    near-zero gradients, the weights of dead units — and an x86 core takes up to a hundred
    times longer for an operation on one: a [272, 272, 272] group of one trained its second
    epoch 1.6 times slower than its first before this (benchmarks/denormals.py). Flushing
    them changes no accuracy that could be measured, and both engines train under it, so
    they still agree to float rounding. ``TUNEBOOK_FLUSH_DENORMALS=0`` turns it off (to
    measure what it buys)."""
    if device.type != "cpu" or os.environ.get("TUNEBOOK_FLUSH_DENORMALS", "1") == "0" \
            or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def under_flush(fn):
    """``fn(configs, data, ...)`` trained with :func:`flush_denormals` on ``data``'s device."""
    @functools.wraps(fn)
    def wrapped(configs, data, *args, **kwargs):
        with flush_denormals(data.device):
            return fn(configs, data, *args, **kwargs)
    return wrapped


def chance_loss(n_classes: int) -> float:
    """The loss of a guess that knows nothing: ln C for C classes; for a standardised
    regression target (``n_classes == 0``) the mean squared error of predicting its mean, 1."""
    return math.log(n_classes) if n_classes else 1.0


def diverged(train_loss: float, val_loss: float, n_classes: int) -> bool:
    """A member has diverged when its epoch's mean loss is not finite, or is more than
    100 times the chance-level loss (:func:`chance_loss`): a ReLU net blown up by a huge
    learning rate often stays finite (dead units, loss ~1e4) but its numbers no longer
    mean anything."""
    limit = 100 * chance_loss(n_classes)
    return not (math.isfinite(train_loss) and math.isfinite(val_loss)) or train_loss > limit


@dataclass(frozen=True)
class EpochEvent:
    """Fired after every epoch of a group (progress bars and loggers attach here)."""

    label: str
    epoch: int
    max_epochs: int
    members: int
    val_acc: list[float]
    seconds: float               # the whole epoch: training, evaluation, bookkeeping
    train_seconds: float = 0.0   # the training steps alone (device synchronised)
    #: per member still training: (trial id of its longest config, train_loss, train_acc,
    #: val_loss, val_acc) — what live loggers (TensorBoard) write as the epoch ends
    members_detail: tuple[tuple[str, float, float, float, float], ...] = ()


#: Gradient norms are sampled every this many optimizer steps of an epoch (steps 0, 16, 32…):
#: a few reductions per sampled step, a negligible cost, and an estimate of the epoch's RMS
#: from ~59 of Fashion-MNIST's 938 steps at batch 64. Both engines sample the same steps.
GRAD_EVERY = 16


def grad_samples(steps: int) -> int:
    """How many of an epoch's ``steps`` steps sample the gradient norms."""
    return -(-steps // GRAD_EVERY)


def n_seen(n: int, batch_size: int, steps: int) -> int:
    """Rows an epoch of ``steps`` steps trains on (all ``n``, less a left-out last row)."""
    return min(n, steps * batch_size)


#: A pruner as an engine sees it: called after every epoch's hooks, it returns the trial
#: ids (of members' longest configs) to stop now; they are recorded ``pruned``. It may
#: also pause groups at an epoch (``pause_for(ids)``) and name members already decided
#: (``decided_at(epoch)``): :mod:`tunebook.halving`, read through :func:`pause_at` and
#: :func:`decided_at`.
Stopper = Callable[[EpochEvent], "set[str]"]


@dataclass
class MemberHistory:
    """Curves of one training stream while it trains (mutable; results are frozen)."""

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    wall_time: list[float] = field(default_factory=list)
    test: dict[int, tuple[float, float]] = field(default_factory=dict)  # epoch -> (loss, acc)
    val_class: dict[int, tuple[float, ...]] = field(default_factory=dict)  # epoch -> accuracy per true class
    #: a regression: epoch -> (val MSE, val MAE, test MSE, test MAE) of the standardised target
    errors: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)
    grad_norm: list[tuple[float, ...]] = field(default_factory=list)  # per epoch, per linear layer (RMS)
    diverged_epoch: int = 0
    pruned_epoch: int = 0   # stopped by a pruner at the end of this epoch

    def add(self, train_loss: float, train_acc: float, val_loss: float, val_acc: float, seconds: float) -> None:
        self.train_loss.append(train_loss)
        self.train_acc.append(train_acc)
        self.val_loss.append(val_loss)
        self.val_acc.append(val_acc)
        self.epoch_seconds.append(seconds)
        self.wall_time.append(time.time())

    def frozen(self) -> History:
        return History(tuple(self.train_loss), tuple(self.train_acc), tuple(self.val_loss),
                       tuple(self.val_acc), tuple(self.epoch_seconds), tuple(self.wall_time),
                       tuple(self.grad_norm) if len(self.grad_norm) == len(self.val_acc) else ())


def results_for(configs: Sequence[TrialConfig], hist: MemberHistory, data: DeviceData,
                group_seconds: float, group_size: int, engine: str) -> list[TrialResult]:
    """One result per config of a training stream, each read at its own epoch count. For
    a regression, ``hist.test[epoch]`` holds the test loss (its training criterion: MSE or
    Huber) and ``hist.errors[epoch]`` the validation and test MSE and MAE, all of the
    standardised target; the result reports RMSE and MAE in the target's units (×
    ``data.target_sd``) and R² against each split's own variance."""
    full = hist.frozen()
    lead = max(configs, key=lambda c: c.epochs)
    n_train = data.x_train.shape[0]
    n_out = data.n_outputs
    out = []
    for c in configs:
        common = dict(trial_id=c.trial_id, params=param_count(c.layers, data.n_features, n_out)
                      + extra_param_count(c.layers, c.norm, c.residual),
                      group_seconds=group_seconds, group_size=group_size, engine=engine,
                      device=device_name(data.device),
                      derived_from=lead.trial_id if c.epochs < lead.epochs else "")
        if hist.diverged_epoch and hist.diverged_epoch <= c.epochs:
            n = hist.diverged_epoch
            h = full.head(n)
            out.append(TrialResult(status="diverged", epochs_run=n, history=h, diverged_epoch=n,
                                   train_seconds=sum(h.epoch_seconds),
                                   flops=train_flops(c.layers, n_train, n, data.n_features, n_out),
                                   **common))
            continue
        if hist.pruned_epoch and hist.pruned_epoch < c.epochs:
            n = hist.pruned_epoch
            h = full.head(n)
            out.append(TrialResult(status="pruned", epochs_run=n, history=h, train_seconds=sum(h.epoch_seconds),
                                   flops=train_flops(c.layers, n_train, n, data.n_features, n_out),
                                   best_epoch=best_epoch_of(h), **common))
            continue
        h = full.head(c.epochs)
        test_loss, test_second = hist.test[c.epochs]
        flops = train_flops(c.layers, n_train, c.epochs, data.n_features, n_out)
        if data.regression:
            sd = data.target_sd
            val_mse, val_mae, test_mse, test_mae = hist.errors[c.epochs]
            measured = dict(val_rmse=math.sqrt(val_mse) * sd, val_mae=val_mae * sd,
                            val_r2=1.0 - val_mse / _variance(data.y_val),
                            test_rmse=math.sqrt(test_mse) * sd, test_mae=test_mae * sd,
                            test_r2=1.0 - test_mse / _variance(data.y_test))
            result = TrialResult(status="complete", epochs_run=c.epochs, history=h,
                                 train_seconds=sum(h.epoch_seconds), flops=flops, val_loss=h.val_loss[-1],
                                 test_loss=test_loss, best_epoch=best_epoch_of(h), **measured, **common)
        else:
            result = TrialResult(status="complete", epochs_run=c.epochs, history=h,
                                 train_seconds=sum(h.epoch_seconds), flops=flops,
                                 val_acc=h.val_acc[-1], val_loss=h.val_loss[-1],
                                 test_acc=test_second, test_loss=test_loss, best_epoch=best_epoch_of(h),
                                 val_class_acc=hist.val_class.get(c.epochs, ()), **common)
        out.append(_flag_collapse(result, data.n_classes))
    return out


def paused_results(configs: Sequence[TrialConfig], hist: MemberHistory, data: DeviceData,
                   group_seconds: float, group_size: int, engine: str) -> list[TrialResult]:
    """A paused group's member (:mod:`tunebook.halving`): one ``paused`` result per config
    with the curves so far (and whether it diverged) — never stored: the driver reads its
    value at the rung, so its sizes are not counted (params and flops 0)."""
    h = hist.frozen()
    return [TrialResult(trial_id=c.trial_id, status="paused", params=0, flops=0, epochs_run=len(h), history=h,
                        train_seconds=sum(h.epoch_seconds), group_seconds=group_seconds, group_size=group_size,
                        engine=engine, device=device_name(data.device), diverged_epoch=hist.diverged_epoch)
                   for c in configs]


def pause_at(stop, trial_ids: Sequence[str]) -> int:
    """The epoch at whose end a stopper pauses a group of these (lead) trials (0: never;
    tunebook.halving)."""
    fn = getattr(stop, "pause_for", None)
    return int(fn(trial_ids)) if fn is not None else 0


def decided_at(stop, epoch: int) -> set[str]:
    """Trial ids a stopper has already decided to stop at ``epoch`` (a group that goes on
    from a checkpoint taken there stops them before training on)."""
    fn = getattr(stop, "decided_at", None)
    return set(fn(epoch)) if fn is not None else set()


def to_device(obj, device):
    """Tensors in nested tuples, lists and dicts, moved (the optimizer's snapshot, kept weights)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def history_state(h: MemberHistory) -> dict:
    """A member's curves so far as plain lists, dicts and numbers (a checkpoint's; torch
    reads them back with ``weights_only=True``)."""
    return asdict(h)


def history_from_state(d: dict) -> MemberHistory:
    return MemberHistory(**d)


def _variance(y: torch.Tensor) -> float:
    """A split's target variance about its own mean (R²'s denominator)."""
    return float(y.to(torch.float64).var(unbiased=False)) or 1.0


def _flag_collapse(result: TrialResult, n_classes: int) -> TrialResult:
    return replace(result, collapsed=True) if is_collapsed(result, n_classes) else result

