"""Hyperparameters: the rule for each value, the built-in defaults, and how one grid
point resolves into a full set (``units1..3`` / ``width`` × ``depth`` → ``layers``;
optimizer-dependent defaults). Pure; used by :mod:`tunebook.spec`."""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Mapping

ACTIVATIONS = ("relu", "tanh", "gelu", "sigmoid")
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop")
#: Initial weights (tunebook.model.init_params): nn.Linear's default, He (Kaiming) normal
#: for ReLU-like units, Glorot (Xavier) uniform.
INITS = ("default", "he", "glorot")
#: Normalisation after each hidden linear layer (before its activation): none, batch norm
#: (nn.BatchNorm1d: batch statistics in training, running ones at evaluation), layer norm.
NORMS = ("none", "batch", "layer")
#: Learning-rate schedules, stepped once per epoch (onecycle: per optimizer step), after
#: ``warmup`` epochs of linear warm-up (tunebook.engine.schedule).
SCHEDULES = ("constant", "cosine", "step", "onecycle")
#: A regression's training loss: the mean squared error, or Huber's (delta 1 on the
#: standardised target: quadratic within one SD of the truth, linear beyond; torch's huber_loss).
REGRESSION_LOSSES = ("mse", "huber")
MAX_WIDTH = 1 << 16
#: What a study or a hypothesis may judge by.
METRICS = ("val_acc", "val_loss", "test_acc", "test_loss", "train_acc", "train_loss",
           "train_seconds", "params", "flops",
           "val_rmse", "val_mae", "val_r2", "test_rmse", "test_mae", "test_r2")
#: Measured for a classifier only, and for a regression only (its losses are the MSE).
CLASSIFICATION_METRICS = ("val_acc", "test_acc", "train_acc")
REGRESSION_METRICS = ("val_rmse", "val_mae", "val_r2", "test_rmse", "test_mae", "test_r2")


def metric_problem(metric: str, task: str) -> str | None:
    """Why ``metric`` is not measured for a ``task`` dataset, or None."""
    if task == "regression" and metric in CLASSIFICATION_METRICS:
        return ("is an accuracy: a regression target measures val_rmse, val_mae, val_r2 (and test_*), "
                "and val_loss (the mean squared error of the standardised target)")
    if task == "classification" and metric in REGRESSION_METRICS:
        return "measures a regression's errors: this dataset's target is class labels (val_acc, val_loss, ...)"
    return None


def fmt_value(value: Any) -> str:
    """A value as the user wrote it, TOML-ish (strings in double quotes)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(fmt_value(v) for v in value) + "]"
    return repr(value)


# --- value rules: each returns (normalized value, None) or (None, "rule") -------------

Rule = Callable[[Any], "tuple[Any, str | None]"]


def int_rule(lo: int, hi: int | None = None, what: str = "an integer") -> Rule:
    def check(v: Any) -> tuple[Any, str | None]:
        if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
            return None, f"must be {what}"
        return v, None
    return check


def float_rule(ok: Callable[[float], bool], what: str) -> Rule:
    def check(v: Any) -> tuple[Any, str | None]:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not ok(v):
            return None, f"must be {what}"
        return float(v), None
    return check


def choice_rule(options: tuple[str, ...]) -> Rule:
    def check(v: Any) -> tuple[Any, str | None]:
        if v not in options:
            return None, "must be one of " + ", ".join(fmt_value(o) for o in options)
        return v, None
    return check


def bool_rule(v: Any) -> tuple[Any, str | None]:
    if not isinstance(v, bool):
        return None, "must be true or false"
    return v, None


def _layers(v: Any) -> tuple[Any, str | None]:
    ok = (isinstance(v, list) and 0 < len(v) <= 16
          and all(isinstance(u, int) and not isinstance(u, bool) and 0 < u <= MAX_WIDTH for u in v))
    if not ok:
        return None, f"must be a list of 1 to 16 positive integers (each at most {MAX_WIDTH})"
    return tuple(v), None


_POSITIVE_WIDTH = int_rule(1, MAX_WIDTH, f"a positive integer (at most {MAX_WIDTH})")

#: Every hyperparameter a study may set in [defaults] or [grid], with its rule.
HPARAM_RULES: dict[str, Rule] = {
    "layers": _layers,
    "units1": _POSITIVE_WIDTH,
    "units2": _POSITIVE_WIDTH,
    "units3": _POSITIVE_WIDTH,
    "width": _POSITIVE_WIDTH,
    "depth": int_rule(1, 16, "an integer from 1 to 16"),
    "activation": choice_rule(ACTIVATIONS),
    "dropout": float_rule(lambda x: 0 <= x < 1, "a number in [0, 1)"),
    "epochs": int_rule(1, 10_000, "a positive integer"),
    "batch_size": int_rule(1, None, "a positive integer"),
    "optimizer": choice_rule(OPTIMIZERS),
    "lr": float_rule(lambda x: x > 0, "a positive number"),
    "momentum": float_rule(lambda x: 0 <= x < 1, "a number in [0, 1)"),
    "beta1": float_rule(lambda x: 0 <= x < 1, "a number in [0, 1)"),
    "beta2": float_rule(lambda x: 0 <= x < 1, "a number in [0, 1)"),
    "alpha": float_rule(lambda x: 0 <= x < 1, "a number in [0, 1)"),
    "eps": float_rule(lambda x: x > 0, "a positive number"),
    "weight_decay": float_rule(lambda x: x >= 0, "a non-negative number"),
    "label_smoothing": float_rule(lambda x: 0 <= x < 1, "a number in [0, 1)"),
    "init": choice_rule(INITS),
    "norm": choice_rule(NORMS),
    "residual": bool_rule,
    "schedule": choice_rule(SCHEDULES),
    "warmup": int_rule(0, 10_000, "a whole number of epochs ≥ 0"),
    "regression_loss": choice_rule(REGRESSION_LOSSES),
}
_OPTIMIZER_KEYS = {  # which optimizer hyperparameters each optimizer reads
    "sgd": {"momentum"}, "momentum": {"momentum"}, "nesterov": {"momentum"},
    "adam": {"beta1", "beta2", "eps"}, "adamw": {"beta1", "beta2", "eps"},
    "rmsprop": {"alpha", "eps", "momentum"},
}
_SHAPE_KEYS = ("layers", "width", "depth", "units1", "units2", "units3")

#: The flat, commented block of defaults every trial starts from (nanoGPT habit).
BASE_DEFAULTS: dict[str, Any] = {
    "layers": (128, 128),   # hidden layer widths; the output layer (10 classes) is implied
    "activation": "relu",
    "dropout": 0.0,
    "epochs": 3,
    "batch_size": 64,
    "optimizer": "adam",
    "lr": 1e-3,
    "beta1": 0.9,           # Adam/AdamW: torch.optim's defaults
    "beta2": 0.999,
    "alpha": 0.99,          # RMSprop's smoothing constant (torch.optim's default)
    "eps": 1e-8,
    "label_smoothing": 0.0, # the loss's targets: (1 - s) on the label, s spread over all classes
    "init": "default",      # initial weights: nn.Linear's U(±1/sqrt(fan_in)); "he"; "glorot"
    "norm": "none",         # after each hidden linear layer: "batch" (BatchNorm1d) | "layer" (LayerNorm)
    "residual": False,      # identity skips between hidden layers (a projection where widths differ)
    "schedule": "constant", # learning rate: "cosine" | "step" (×0.1 at 1/2 and 3/4) | "onecycle"
    "warmup": 0,            # epochs of linear learning-rate warm-up before the schedule
    "regression_loss": "mse",  # a numeric target's training loss: "mse" | "huber"
}
_DEFAULT_MOMENTUM = {"momentum": 0.9, "nesterov": 0.9}
_DEFAULT_WEIGHT_DECAY = {"adamw": 0.01}  # torch.optim.AdamW's default



def resolve(defaults: Mapping[str, Any], point: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Merge defaults and one grid point; turn units*/width/depth into ``layers``.

    Precedence: the grid point over [defaults] over BASE_DEFAULTS. ``width``/``depth``
    rebuild the layer list; ``unitsK`` then sets hidden layer K (K = len + 1 appends).
    Returns the merged hyperparameters and a list of (key, rule) problems.
    """
    merged = {**BASE_DEFAULTS, **defaults, **point}
    problems: list[tuple[str, str]] = []
    layers = list(point.get("layers", defaults.get("layers", BASE_DEFAULTS["layers"])))
    if "width" in merged or "depth" in merged:
        layers = [merged.get("width", layers[0])] * merged.get("depth", len(layers))
    for k in (1, 2, 3):
        unit = merged.get(f"units{k}")
        if unit is None:
            continue
        if k - 1 < len(layers):
            layers[k - 1] = unit
        elif k - 1 == len(layers):
            layers.append(unit)
        else:
            problems.append((f"units{k}", f"needs units{k - 1} (or a layers list of {k - 1} entries) first"))
    for key in _SHAPE_KEYS:
        merged.pop(key, None)
    merged["layers"] = tuple(layers)
    opt = merged["optimizer"]
    mixed = "optimizer" in point  # [defaults] may hold keys for some of the grid's optimizers
    for key in ("momentum", "beta1", "beta2", "alpha", "eps"):
        if key in _OPTIMIZER_KEYS[opt]:
            continue
        if key in point or (key in defaults and not mixed):
            problems.append((key, f"has no effect with optimizer {fmt_value(opt)}"))
    merged.setdefault("momentum", _DEFAULT_MOMENTUM.get(opt, 0.0))
    if opt in ("momentum", "nesterov") and merged["momentum"] == 0:
        problems.append(("momentum", f"must be positive with optimizer {fmt_value(opt)}"))
    merged.setdefault("weight_decay", _DEFAULT_WEIGHT_DECAY.get(opt, 0.0))
    if merged["residual"] and len(merged["layers"]) < 2 and ("residual" in point or "residual" in defaults):
        problems.append(("residual", "has no effect with one hidden layer (skips join hidden layers)"))
    if isinstance(merged["warmup"], int) and isinstance(merged["epochs"], int) and merged["warmup"] >= merged["epochs"] > 0:
        problems.append(("warmup", f"must be fewer epochs than epochs ({merged['epochs']})"))
    return merged, problems
