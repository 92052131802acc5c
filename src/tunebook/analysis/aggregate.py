"""One row per configuration: its seeds' results summarised (mean, sd, 95 % CI)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..datasets import DATASETS
from ..records import is_collapsed
from ..records import TrialConfig
from ..store import Run
from ..hypotheses import param_value
from .cost import machine
from .stats import Summary, summarize

#: Metrics summarised per configuration, with the direction that counts as better.
HIGHER_IS_BETTER = {"val_acc": True, "test_acc": True, "train_acc": True, "val_loss": False,
                    "test_loss": False, "train_loss": False, "train_seconds": False,
                    "params": False, "flops": False, "val_rmse": False, "val_mae": False, "val_r2": True,
                    "test_rmse": False, "test_mae": False, "test_r2": True}
SUMMARISED = ("val_acc", "test_acc", "train_acc", "val_loss", "test_loss", "train_loss", "train_seconds",
              "val_rmse", "val_mae", "val_r2", "test_rmse", "test_mae", "test_r2")


def config_key(c: TrialConfig) -> str:
    """The id of a configuration across its seeds."""
    return c.config_id


@dataclass(frozen=True)
class ConfigStats:
    """A configuration's results over its seeds: complete runs are summarised; diverged,
    collapsed (complete but stuck at chance accuracy), failed and pruned ones are counted."""

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
    n_collapsed: int = 0
    seconds_alone: float = math.nan  # modelled time to train it alone on its machine (analysis.cost)
    n_pruned: int = 0              # stopped early by a search's pruner
    #: each complete run's final validation accuracy within every true class (runs stored
    #: before tunebook kept it are left out)
    class_acc: tuple[tuple[float, ...], ...] = ()

    @property
    def n_runs(self) -> int:
        return self.n_complete + self.n_diverged + self.n_failed + self.n_collapsed + self.n_pruned

    @property
    def cost(self) -> float:
        """What ranks configurations by cost: the modelled seconds alone, else the FLOPs."""
        return self.seconds_alone if math.isfinite(self.seconds_alone) else float(self.flops)

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


def aggregate(runs: Sequence[Run], cost_models: Mapping[str, Any] | None = None) -> list[ConfigStats]:
    """Group runs by configuration (all but the seed) and summarise each metric.

    One trial counts once (a trial id seen twice is one observation). Collapsed runs are
    counted, not averaged in. ``cost_models`` (device → :class:`~.cost.CostModel`) give
    each configuration its modelled time alone."""
    groups: dict[str, dict[str, Run]] = {}
    for r in runs:
        groups.setdefault(config_key(r.config), {}).setdefault(r.trial_id, r)
    out = []
    for key, by_id in groups.items():
        rs = sorted(by_id.values(), key=lambda r: r.config.seed)
        n_classes = DATASETS[rs[0].config.dataset].n_classes
        collapsed = [r for r in rs if is_collapsed(r.result, n_classes)]
        done = [r for r in rs if r.result.status == "complete" and r not in collapsed]
        values: dict[str, tuple[float, ...]] = {}
        for m in SUMMARISED:
            if m in ("train_acc", "train_loss"):
                values[m] = tuple(_train_metric(r, m) for r in done)
            else:
                values[m] = tuple(float(getattr(r.result, m)) for r in done)
        flops = max((r.result.flops for r in done), default=0)
        machines = [machine(r) for r in done if r.result.device]  # where most of its runs trained
        model = (cost_models or {}).get(max(set(machines), key=machines.count)) if machines else None
        out.append(ConfigStats(
            key=key, config=rs[0].config, seeds=tuple(r.config.seed for r in done),
            n_complete=len(done), n_diverged=sum(r.result.status == "diverged" for r in rs),
            n_failed=sum(r.result.status == "failed" for r in rs),
            params=rs[0].result.params, flops=flops,
            values=values, stats={m: summarize(v) for m, v in values.items()},
            histories=tuple(r.result.history for r in done), n_collapsed=len(collapsed),
            n_pruned=sum(r.result.status == "pruned" for r in rs),
            class_acc=tuple(r.result.val_class_acc for r in done if r.result.val_class_acc),
            # the cost model is the MLP's: a user's model has no modelled time (its FLOPs are not counted)
            seconds_alone=model.seconds(rs[0].config, flops) if model and done and not rs[0].config.model
            else math.nan))
    return sorted(out, key=lambda c: (c.config.layers, c.config.epochs, c.config.batch_size,
                                      c.config.lr, c.config.optimizer, c.key))


def varying_params(configs: Sequence[ConfigStats]) -> list[str]:
    """Hyperparameters (incl. units1..3, depth) that take more than one value."""
    keys = ["units1", "units2", "units3", "depth", "epochs", "batch_size", "lr", "optimizer",
            "activation", "dropout", "weight_decay", "momentum", "label_smoothing", "init", "norm",
            "residual", "schedule", "warmup", "regression_loss"]
    keys += sorted({k for c in configs for k, _ in c.config.model_params})  # a user model's own
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
        if isinstance(v, bool):  # as a study file writes it
            parts.append(f"{p}={'true' if v else 'false'}")
        else:
            parts.append(f"{p}={v:g}" if isinstance(v, float) else f"{p}={v}")
    return " ".join(parts) if parts else c.label


@dataclass(frozen=True)
class Heatmap:
    """Mean ``metric`` on the grid of two parameters. A cell is the mean over seeds of each
    configuration in it, then the plain mean over those configurations, i.e. over the values
    of the other varying parameters (``over``), each counted once."""

    x: str
    y: str
    metric: str
    xs: tuple[Any, ...]
    ys: tuple[Any, ...]
    cells: tuple[tuple[float, ...], ...]   # [row of ys][column of xs]; NaN where nothing ran
    counts: tuple[tuple[int, ...], ...]    # configurations averaged in each cell
    over: tuple[str, ...]                  # other parameters that vary inside the cells


def heatmap_cells(configs: Sequence[ConfigStats], x: str, y: str, metric: str = "val_acc") -> Heatmap:
    ok = [c for c in configs if c.n_complete and c.value(x) is not None and c.value(y) is not None]
    xs, ys = sorted({c.value(x) for c in ok}), sorted({c.value(y) for c in ok})
    members: dict[tuple[int, int], list[float]] = {}
    for c in ok:
        members.setdefault((ys.index(c.value(y)), xs.index(c.value(x))), []).append(c.stats[metric].mean)
    cells = tuple(tuple(float(sum(members[i, j]) / len(members[i, j])) if (i, j) in members else math.nan
                        for j in range(len(xs))) for i in range(len(ys)))
    counts = tuple(tuple(len(members.get((i, j), ())) for j in range(len(xs))) for i in range(len(ys)))
    others = [p for p in varying_params(ok) if p not in (x, y)]
    over = tuple(p for p in others if any(len({_h(c.value(p)) for c in ok if (c.value(x), c.value(y)) == cell}) > 1
                                          for cell in {(c.value(x), c.value(y)) for c in ok}))
    return Heatmap(x, y, metric, tuple(xs), tuple(ys), cells, counts, over)

