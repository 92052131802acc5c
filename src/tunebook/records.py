"""Frozen, self-checking records: what a trial is and what it produced.

A :class:`TrialConfig` is one resolved configuration, seed included; its hash is the trial
id. A :class:`TrialResult` is what an engine returns and what ``result.toml`` holds. It
validates itself on construction: a ``complete`` result has finite metrics in range and
histories as long as ``epochs_run``; whatever is read back from disk passes through the
same checks, so a malformed file can never become a record.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from typing import Any, Mapping

from .datasets import DATASETS, train_count

#: The fields every trial id has hashed since the first release (all of them, always).
ID_FIELDS_V1 = ("dataset", "validation", "split_seed", "train_subset", "layers", "activation", "dropout", "epochs",
                "batch_size", "optimizer", "lr", "momentum", "beta1", "beta2", "alpha", "eps", "weight_decay", "seed")
#: Fields added to TrialConfig after that, with the default each must have: hashed only when
#: not at it, so adding a field leaves every stored trial id — and every run folder — as it
#: was (a study resumed after an upgrade retrains nothing). Add new fields here.
ID_DEFAULTS: dict[str, Any] = {"label_smoothing": 0.0, "init": "default", "norm": "none", "residual": False,
                               "schedule": "constant", "warmup": 0, "regression_loss": "mse", "model": "",
                               "model_params": {}}


def trial_id_of(fields: Mapping[str, Any], defaults: Mapping[str, Any] | None = None) -> str:
    """The trial id of a configuration's fields: the sha-256 of their sorted JSON, the
    fields of :data:`ID_FIELDS_V1` always, any other only where it differs from its default
    (``defaults``, by default :data:`ID_DEFAULTS`); 12 hex digits."""
    defaults = ID_DEFAULTS if defaults is None else defaults
    kept = {k: v for k, v in fields.items() if k in ID_FIELDS_V1 or k not in defaults or v != defaults[k]}
    blob = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def steps_of(n_train: int, batch_size: int, norm: str = "none") -> int:
    """Optimizer steps of one epoch over ``n_train`` rows: the last batch may be short;
    with batch norm a last batch of one row is left out (its variance is undefined, so
    torch's BatchNorm1d refuses it — DataLoader's drop_last for that one row)."""
    steps = -(-n_train // batch_size)
    if norm == "batch" and n_train % batch_size == 1 and n_train > 1:
        steps -= 1
    return steps


@dataclass(frozen=True)
class TrialConfig:
    """One fully resolved configuration, seed included. Its hash is the trial id."""

    dataset: str
    validation: float | str
    split_seed: int
    train_subset: int
    layers: tuple[int, ...]
    activation: str
    dropout: float
    epochs: int
    batch_size: int
    optimizer: str
    lr: float
    momentum: float
    beta1: float
    beta2: float
    alpha: float
    eps: float
    weight_decay: float
    seed: int
    label_smoothing: float = 0.0   # the cross-entropy's target smoothing (torch's label_smoothing)
    init: str = "default"          # initial weights: default (nn.Linear's) | he | glorot
    norm: str = "none"             # after each hidden linear layer: none | batch | layer
    residual: bool = False         # skips between hidden layers (identity; a projection where widths differ)
    schedule: str = "constant"     # learning-rate schedule: constant | cosine | step | onecycle
    warmup: int = 0                # epochs of linear learning-rate warm-up
    regression_loss: str = "mse"   # a numeric target's training loss: mse | huber
    #: a user's model ("package.module:factory", tunebook.usermodel) in place of the MLP, and
    #: its own hyperparameters' values, sorted by name ("" and (): the built-in MLP)
    model: str = ""
    model_params: tuple[tuple[str, Any], ...] = ()

    @cached_property
    def trial_id(self) -> str:
        """Stable 12-hex-digit hash (same config, same id, any machine): see :func:`trial_id_of`.
        Computed once per record (the record is frozen; a report asks it thousands of times)."""
        return trial_id_of(self.to_dict())

    @cached_property
    def config_id(self) -> str:
        """The id of the configuration across its seeds (the trial id of its seed-0 twin)."""
        return replace(self, seed=0).trial_id

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps of one epoch (the last batch may be short)."""
        return steps_of(train_count(DATASETS[self.dataset], self.validation, self.train_subset), self.batch_size,
                        self.norm)

    @property
    def stream_key(self) -> tuple:
        """Everything but ``epochs``: trials equal here share one training run (read at each
        one's epoch count). A schedule that spans the run (cosine, step, onecycle) depends on
        ``epochs``, so there it is part of the key."""
        d = self.to_dict()
        d["model_params"] = self.model_params
        if self.schedule == "constant" and not self.model:  # a user's model trains each epoch count apart
            d.pop("epochs")
        return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in d.items()))

    @property
    def label(self) -> str:
        return "-".join(str(u) for u in self.layers) if not self.model else self.model.split(":")[-1]

    def get(self, key: str) -> Any:
        """A field's value, or one of a user model's own hyperparameters (None: neither)."""
        if key in self.__dataclass_fields__:
            return getattr(self, key)
        return dict(self.model_params).get(key)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = list(self.layers)
        d["model_params"] = dict(self.model_params)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrialConfig":
        d = dict(d)
        d["layers"] = tuple(d["layers"])
        if "model_params" in d:
            d["model_params"] = tuple(sorted(dict(d["model_params"]).items()))
        return cls(**d)



STATUSES = ("complete", "diverged", "failed", "pruned")
#: A result on its way from an engine to the driver that is never stored: ``paused`` — a
#: group stopped at a successive-halving rung (tunebook.halving), its curves so far.
TRANSIENT = ("paused",)
#: What a regression's result measures besides its loss (errors in the target's units).
REGRESSION_METRICS = ("val_rmse", "val_mae", "val_r2", "test_rmse", "test_mae", "test_r2")
HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds")


@dataclass(frozen=True)
class History:
    """Per-epoch curves, one entry per epoch run (epoch 1 first)."""

    train_loss: tuple[float, ...] = ()
    train_acc: tuple[float, ...] = ()
    val_loss: tuple[float, ...] = ()
    val_acc: tuple[float, ...] = ()
    epoch_seconds: tuple[float, ...] = ()
    wall_time: tuple[float, ...] = ()   # Unix time at which each epoch ended (optional)
    #: per epoch, the root-mean-square over the epoch's sampled steps (every 16th) of each
    #: linear layer's weight-gradient norm, first layer first (optional: absent before 0.3)
    grad_norm: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self) -> None:
        lengths = {len(getattr(self, k)) for k in HISTORY_KEYS}
        if len(lengths) != 1:
            raise ValueError(f"history arrays differ in length: { {k: len(getattr(self, k)) for k in HISTORY_KEYS} }")
        if self.wall_time and len(self.wall_time) != len(self.val_acc):
            raise ValueError(f"history.wall_time has {len(self.wall_time)} entries for {len(self.val_acc)} epochs")
        for k in HISTORY_KEYS + ("wall_time",):
            object.__setattr__(self, k, tuple(float(v) for v in getattr(self, k)))
        if self.grad_norm:
            if len(self.grad_norm) != len(self.val_acc) or len({len(g) for g in self.grad_norm}) != 1:
                raise ValueError(f"history.grad_norm must hold one list of layer norms per epoch "
                                 f"({len(self.val_acc)}), got {len(self.grad_norm)}")
            object.__setattr__(self, "grad_norm", tuple(tuple(float(v) for v in g) for g in self.grad_norm))

    def __len__(self) -> int:
        return len(self.val_acc)

    def head(self, n: int) -> "History":
        return History(**{k: getattr(self, k)[:n] for k in HISTORY_KEYS + ("wall_time", "grad_norm")})


@dataclass(frozen=True)
class TrialResult:
    """What one trial produced. ``train_seconds`` is the trial's share of its group's time."""

    trial_id: str
    status: str
    params: int
    flops: int
    epochs_run: int
    train_seconds: float
    val_acc: float = math.nan
    val_loss: float = math.nan
    test_acc: float = math.nan
    test_loss: float = math.nan
    best_epoch: int = 0
    history: History = field(default_factory=History)
    group_seconds: float = 0.0
    group_size: int = 1
    derived_from: str = ""     # trial id of the longer run this result was read from
    diverged_epoch: int = 0    # first epoch whose training loss was not finite
    error: str = ""            # a failed trial's error and traceback
    engine: str = ""
    device: str = ""
    collapsed: bool = False    # complete, but stuck at chance accuracy (see is_collapsed)
    #: a complete run's final validation accuracy within each true class, in the dataset's
    #: class order (empty in runs stored before tunebook kept it; NaN: no such row)
    val_class_acc: tuple[float, ...] = ()
    #: a regression's errors in the target's own units, and R² (NaN for a classifier; then
    #: not written to result.toml). Its val_loss / test_loss are its training criterion (MSE,
    #: or Huber's) on the standardised target; its accuracies are NaN.
    val_rmse: float = math.nan
    val_mae: float = math.nan
    val_r2: float = math.nan
    test_rmse: float = math.nan
    test_mae: float = math.nan
    test_r2: float = math.nan
    #: the trained weights (tunebook.weights.member_state's tensors) on their way from the
    #: engine to the store when the study keeps them; never written to result.toml
    weights: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.status not in STATUSES + TRANSIENT:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if len(self.history) != self.epochs_run:
            raise ValueError(f"history has {len(self.history)} epochs but epochs_run = {self.epochs_run}")
        if self.params < 0 or self.flops < 0 or self.group_size < 1:
            raise ValueError("params, flops must be >= 0 and group_size >= 1")
        if self.status == "complete" and self.regression:
            for k in ("val_loss", "test_loss", "train_seconds") + REGRESSION_METRICS:
                v = getattr(self, k)
                if not math.isfinite(v):
                    raise ValueError(f"a complete regression result needs a finite {k}, got {v}")
            if not 1 <= self.best_epoch <= self.epochs_run:
                raise ValueError(f"best_epoch must be in 1..{self.epochs_run}, got {self.best_epoch}")
        elif self.status == "complete":
            for k in ("val_acc", "val_loss", "test_acc", "test_loss", "train_seconds"):
                v = getattr(self, k)
                if not math.isfinite(v):
                    raise ValueError(f"a complete result needs a finite {k}, got {v}")
            for k in ("val_acc", "test_acc"):
                if not 0.0 <= getattr(self, k) <= 1.0:
                    raise ValueError(f"{k} must be in [0, 1], got {getattr(self, k)}")
            if not 1 <= self.best_epoch <= self.epochs_run:
                raise ValueError(f"best_epoch must be in 1..{self.epochs_run}, got {self.best_epoch}")
        if self.status == "diverged" and self.diverged_epoch < 1:
            raise ValueError("a diverged result needs diverged_epoch >= 1")
        if self.status == "failed" and not self.error:
            raise ValueError("a failed result needs its error")
        if not isinstance(self.collapsed, bool):
            raise ValueError(f"collapsed must be true or false, got {self.collapsed!r}")
        if not all(isinstance(a, float) and (math.isnan(a) or 0.0 <= a <= 1.0) for a in self.val_class_acc):
            raise ValueError(f"val_class_acc must hold accuracies in [0, 1], got {self.val_class_acc!r}")

    @property
    def done(self) -> bool:
        """Finished for good: rerunning the same config would give the same record."""
        return self.status in ("complete", "diverged")

    @property
    def regression(self) -> bool:
        """A regression's result (its errors measured), not a classifier's."""
        return math.isfinite(self.val_rmse)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(replace(self, weights=None))
        d.pop("weights")
        for k in REGRESSION_METRICS:  # a classifier's result.toml stays as it always was
            if not math.isfinite(d[k]):
                d.pop(k)
        d["history"] = {k: list(getattr(self.history, k)) for k in HISTORY_KEYS}
        if self.history.wall_time:
            d["history"]["wall_time"] = list(self.history.wall_time)
        if self.history.grad_norm:
            d["history"]["grad_norm"] = [list(g) for g in self.history.grad_norm]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrialResult":
        """Build from a ``result.toml`` table. Keys this version does not know (a note a
        person added, a field of a newer version) are ignored: see :func:`unknown_keys`."""
        names = {f.name for f in fields(cls)} - {"weights"}  # never read from a file
        d = {k: v for k, v in d.items() if k in names}
        hist = d.pop("history", {})
        if not isinstance(hist, Mapping):
            raise ValueError("history must be a table")
        if "val_class_acc" in d:
            if not isinstance(d["val_class_acc"], (list, tuple)):
                raise ValueError("val_class_acc must be a list of accuracies")
            d["val_class_acc"] = tuple(float(a) if isinstance(a, (int, float)) and not isinstance(a, bool) else a
                                       for a in d["val_class_acc"])
        grads = hist.get("grad_norm", ())
        if not isinstance(grads, (list, tuple)) or not all(isinstance(g, (list, tuple)) for g in grads):
            raise ValueError("history.grad_norm must be a list of lists of numbers")
        return cls(history=History(**{k: tuple(hist.get(k, ())) for k in HISTORY_KEYS + ("wall_time",)},
                                   grad_norm=tuple(tuple(g) for g in grads)), **d)


def unknown_keys(d: Mapping[str, Any]) -> list[str]:
    """Keys of a ``result.toml`` table that :meth:`TrialResult.from_dict` ignores."""
    names = {f.name for f in fields(TrialResult)} - {"weights"}
    out = sorted(k for k in d if k not in names)
    hist = d.get("history")
    if isinstance(hist, Mapping):
        out += sorted(f"history.{k}" for k in hist if k not in HISTORY_KEYS + ("wall_time", "grad_norm"))
    return out


#: A complete run learned nothing when its final training loss is still within 5 % of
#: ln(C) — the loss of a uniform guess, and of a network whose output no longer depends on
#: its input (dead ReLUs, saturated units, a learning rate too small to move) — and its
#: validation accuracy is below twice chance (1/C). Accuracy alone cannot say it: a random
#: network scores anywhere from 5 to 20 % on 10 classes.
COLLAPSE_LOSS = 0.95
COLLAPSE_ACC = 2.0
#: A regression run learned nothing when it explains under 1 % of the validation target's
#: variance (R² < 0.01): what predicting the training mean scores (R² ≈ 0).
COLLAPSE_R2 = 0.01


def is_collapsed(result: "TrialResult", n_classes: int) -> bool:
    """Complete, with a finite loss, but stuck at chance (such a run is not averaged in)."""
    if result.status != "complete":
        return False
    if result.collapsed:
        return True
    if result.regression:
        return result.val_r2 < COLLAPSE_R2
    train_loss = result.history.train_loss[-1] if result.history.train_loss else math.nan
    return train_loss >= COLLAPSE_LOSS * math.log(n_classes) and result.val_acc < COLLAPSE_ACC / n_classes


def best_epoch_of(history: "History") -> int:
    """The best epoch of a run: highest validation accuracy, or — for a regression, whose
    accuracies are NaN — lowest validation loss (the first one on ties)."""
    if any(math.isfinite(v) for v in history.val_acc):
        return best_epoch(history.val_acc)
    return best_epoch(tuple(-v for v in history.val_loss))


def best_epoch(val_acc: tuple[float, ...]) -> int:
    """1-based epoch of the highest validation accuracy (the first one on ties)."""
    finite = [(v, -i) for i, v in enumerate(val_acc) if math.isfinite(v)]
    return -max(finite)[1] + 1 if finite else 0
