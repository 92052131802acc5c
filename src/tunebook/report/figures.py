"""Figures, drawn from analysis results (never from raw files). Headless (Agg)."""

from __future__ import annotations

import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..analysis.aggregate import ConfigStats  # noqa: E402
from ..analysis.winners import Winners  # noqa: E402

PCT = {"val_acc", "test_acc", "train_acc"}


def _scale(metric: str) -> float:
    return 100.0 if metric in PCT else 1.0


def _label(metric: str) -> str:
    return metric.replace("_", " ") + (" (%)" if metric in PCT else "")


def heatmap(configs: Sequence[ConfigStats], x: str, y: str, metric: str = "val_acc") -> Figure:
    """Mean ``metric`` over the grid of two parameters (the log's units1 × units2)."""
    xs = sorted({c.value(x) for c in configs if c.n_complete})
    ys = sorted({c.value(y) for c in configs if c.n_complete})
    grid = np.full((len(ys), len(xs)), np.nan)
    for c in configs:
        if c.n_complete and c.value(x) in xs and c.value(y) in ys:
            cell = grid[ys.index(c.value(y)), xs.index(c.value(x))]
            v = c.stats[metric].mean * _scale(metric)
            grid[ys.index(c.value(y)), xs.index(c.value(x))] = v if math.isnan(cell) else (cell + v) / 2
    fig, ax = plt.subplots(figsize=(1.2 * len(xs) + 2.5, 1.0 * len(ys) + 1.8))
    im = ax.imshow(grid, cmap="viridis", origin="lower")
    ax.set_xticks(range(len(xs)), [str(v) for v in xs])
    ax.set_yticks(range(len(ys)), [str(v) for v in ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    for i in range(len(ys)):
        for j in range(len(xs)):
            if not math.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color="w", fontsize=8)
    fig.colorbar(im, ax=ax, label=_label(metric))
    ax.set_title(f"mean {_label(metric)} over seeds")
    fig.tight_layout()
    return fig


def metric_vs_param(configs: Sequence[ConfigStats], param: str, metric: str = "val_acc",
                    by: str | None = None) -> Figure:
    """Mean ± 95 % CI of ``metric`` against ``param``, one line per value of ``by``."""
    fig, ax = plt.subplots(figsize=(6, 4))
    lines: dict = {}
    for c in configs:
        if c.n_complete and c.value(param) is not None:
            lines.setdefault(c.label if by == "layers" else (c.value(by) if by else ""), []).append(c)
    categorical = any(isinstance(c.value(param), str) for c in configs)
    for name, cs in sorted(lines.items(), key=lambda kv: str(kv[0])):
        cs = sorted(cs, key=lambda c: c.value(param))
        xs = [str(c.value(param)) if categorical else c.value(param) for c in cs]
        s = _scale(metric)
        means = [c.stats[metric].mean * s for c in cs]
        err = [0 if math.isnan(c.stats[metric].half_width) else c.stats[metric].half_width * s for c in cs]
        ax.errorbar(xs, means, yerr=err, marker="o", capsize=3, label=f"{by}={name}" if by and by != "layers" else str(name))
    if not categorical and param in ("lr", "weight_decay"):
        ax.set_xscale("log")
    if not categorical and param in ("units1", "units2", "units3", "batch_size"):
        ax.set_xscale("log", base=2)
    ax.set_xlabel(param)
    ax.set_ylabel(_label(metric))
    ax.set_title(f"{_label(metric)} vs {param} (mean ± 95 % CI over seeds)")
    if len(lines) > 1 or by:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def learning_curves(configs: Sequence[ConfigStats], kind: str = "loss") -> Figure:
    """Train vs validation curves per epoch, mean with a min–max band over seeds."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, c in enumerate(configs):
        col = colors[i % len(colors)]
        for split, style in (("train", "--"), ("val", "-")):
            curves = [np.asarray(getattr(h, f"{split}_{kind}")) for h in c.histories]
            n = min(len(cv) for cv in curves)
            arr = np.stack([cv[:n] for cv in curves]) * (100 if kind == "acc" else 1)
            ep = np.arange(1, n + 1)
            ax.plot(ep, arr.mean(0), style, color=col, label=f"{c.label} {split}")
            if len(arr) > 1:
                ax.fill_between(ep, arr.min(0), arr.max(0), color=col, alpha=0.15)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("accuracy (%)" if kind == "acc" else "cross-entropy loss")
    ax.set_title("learning curves: train (dashed) vs validation, band = seeds' range")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def pareto(configs: Sequence[ConfigStats], w: Winners) -> Figure:
    """Accuracy vs training seconds; the Pareto front joined; winners named."""
    metric = w.metric
    s = _scale(metric)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ok = [c for c in configs if c.n_complete]
    ax.errorbar([c.stats["train_seconds"].mean for c in ok], [c.stats[metric].mean * s for c in ok],
                yerr=[0 if math.isnan(c.stats[metric].half_width) else c.stats[metric].half_width * s for c in ok],
                fmt="o", color="0.6", capsize=2, label="configurations (mean ± 95 % CI)")
    fx = [c.stats["train_seconds"].mean for c in w.front]
    ax.plot(fx, [c.stats[metric].mean * s for c in w.front], "-o", color="C3", label="Pareto front")
    tags: dict[str, list[str]] = {}
    for tag, c in (("best", w.accuracy), ("knee", w.practical), ("fastest ≈ best", w.fastest)):
        tags.setdefault(c.key, []).append(tag)
    for c in {c.key: c for c in (w.accuracy, w.practical, w.fastest)}.values():
        ax.annotate(f"{' / '.join(tags[c.key])}: {c.label}", (c.stats["train_seconds"].mean, c.stats[metric].mean * s),
                    textcoords="offset points", xytext=(-10, 8), fontsize=8, ha="right")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training seconds per trial (share of its group)")
    ax.set_ylabel(_label(metric))
    ax.set_title("accuracy vs cost")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def compare(groups: Sequence[tuple[str, Sequence[float]]], metric: str) -> Figure:
    """Each group's seeds as dots, with the mean ± 95 % CI."""
    from ..analysis.stats import summarize

    s = _scale(metric)
    fig, ax = plt.subplots(figsize=(max(3.5, 1.4 * len(groups) + 1.5), 3.8))
    for i, (_, values) in enumerate(groups):
        v = np.asarray(values) * s
        ax.plot(np.full(len(v), i) + np.linspace(-0.08, 0.08, len(v)), v, ".", color="0.5")
        st = summarize(values)
        ax.errorbar([i], [st.mean * s], yerr=[0 if math.isnan(st.half_width) else st.half_width * s],
                    fmt="o", color="C0", capsize=4)
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], rotation=20 if len(groups) > 3 else 0)
    ax.set_ylabel(_label(metric))
    ax.set_title("seeds (dots) and mean ± 95 % CI")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
