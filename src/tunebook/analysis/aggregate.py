"""One row per configuration: its seeds' results summarised (mean, sd, 95 % CI)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from ..spec import TrialConfig
from ..store import Run
from ..hypotheses import param_value
from .stats import Summary, summarize

#: Metrics summarised per configuration, with the direction that counts as better.
HIGHER_IS_BETTER = {"val_acc": True, "test_acc": True, "train_acc": True, "val_loss": False,
                    "test_loss": False, "train_loss": False, "train_seconds": False,
                    "params": False, "flops": False}
SUMMARISED = ("val_acc", "test_acc", "train_acc", "val_loss", "test_loss", "train_loss", "train_seconds")


def config_key(c: TrialConfig) -> str:
    """The id of a configuration across its seeds."""
    return replace(c, seed=0).trial_id


@dataclass(frozen=True)
class ConfigStats:
    """A configuration's results over its seeds (complete ones; diverged are counted)."""

    key: str
    config: TrialConfig            # the configuration (seed of its first run)
    seeds: tuple[int, ...]         # seeds of the complete runs
    n_complete: int
    n_diverged: int
    n_failed: int
    params: int
    flops: int
    values: Mapping[str, tuple[float, ...]]   # metric -> per-seed values (complete runs)
    stats: Mapping[str, Summary]
    histories: tuple[Any, ...]     # History of each complete run

    @property
    def label(self) -> str:
        return self.config.label

    def value(self, param: str) -> Any:
        return param_value(self.config, param)

    def metric(self, name: str) -> tuple[float, ...]:
        if name == "params":
            return (float(self.params),) * max(self.n_complete, 1)
        if name == "flops":
            return (float(self.flops),) * max(self.n_complete, 1)
        return self.values[name]


def _train_metric(run: Run, key: str) -> float:
    h = run.result.history
    seq = h.train_acc if key == "train_acc" else h.train_loss
    return seq[-1] if seq else math.nan


def aggregate(runs: Sequence[Run]) -> list[ConfigStats]:
    """Group runs by configuration (all but the seed) and summarise each metric."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(config_key(r.config), []).append(r)
    out = []
    for key, rs in groups.items():
        rs = sorted(rs, key=lambda r: r.config.seed)
        done = [r for r in rs if r.result.status == "complete"]
        values: dict[str, tuple[float, ...]] = {}
        for m in SUMMARISED:
            if m in ("train_acc", "train_loss"):
                values[m] = tuple(_train_metric(r, m) for r in done)
            else:
                values[m] = tuple(float(getattr(r.result, m)) for r in done)
        out.append(ConfigStats(
            key=key, config=rs[0].config, seeds=tuple(r.config.seed for r in done),
            n_complete=len(done), n_diverged=sum(r.result.status == "diverged" for r in rs),
            n_failed=sum(r.result.status == "failed" for r in rs),
            params=rs[0].result.params, flops=max((r.result.flops for r in done), default=0),
            values=values, stats={m: summarize(v) for m, v in values.items()},
            histories=tuple(r.result.history for r in done)))
    return sorted(out, key=lambda c: (c.config.layers, c.config.epochs, c.config.batch_size,
                                      c.config.lr, c.config.optimizer, c.key))


def varying_params(configs: Sequence[ConfigStats]) -> list[str]:
    """Hyperparameters (incl. units1..3, depth) that take more than one value."""
    keys = ["units1", "units2", "units3", "depth", "epochs", "batch_size", "lr", "optimizer",
            "activation", "dropout", "weight_decay", "momentum"]
    out = []
    for k in keys:
        vals = {_h(c.value(k)) for c in configs}
        if len(vals) > 1:
            out.append(k)
    if "optimizer" in out:  # momentum / weight decay that only follow the optimizer's defaults
        for k in ("momentum", "weight_decay"):
            per_opt = {}
            for c in configs:
                per_opt.setdefault(c.config.optimizer, set()).add(c.value(k))
            if k in out and all(len(v) == 1 for v in per_opt.values()):
                out.remove(k)
    return out


def _h(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def describe(c: ConfigStats, params: Sequence[str]) -> str:
    """A short name for a configuration from the parameters that vary in its study."""
    parts = [c.label] if any(p.startswith("units") or p == "depth" for p in params) or not params else []
    for p in params:
        if p.startswith("units") or p == "depth":
            continue
        v = c.value(p)
        parts.append(f"{p}={v:g}" if isinstance(v, float) else f"{p}={v}")
    return " ".join(parts) if parts else c.label
