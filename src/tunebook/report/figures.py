"""Figures, drawn from analysis results (never from raw files). Headless (Agg), except in a
Jupyter kernel, whose inline backend shows a returned figure in the notebook."""

from __future__ import annotations

import math
import sys
from typing import Sequence

import matplotlib

if "ipykernel" not in sys.modules:  # in Jupyter the kernel's inline backend draws them in the notebook
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.cm  # noqa: E402
import matplotlib.colors  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..analysis.aggregate import HIGHER_IS_BETTER, ConfigStats, describe, heatmap_cells  # noqa: E402
from ..analysis.winners import Winners  # noqa: E402

PCT = {"val_acc", "test_acc", "train_acc"}


def _regression(c: ConfigStats) -> bool:
    from ..datasets import DATASETS

    info = DATASETS.get(c.config.dataset)
    return info is not None and info.task == "regression"


def _scale(metric: str) -> float:
    return 100.0 if metric in PCT else 1.0


def _label(metric: str) -> str:
    return metric.replace("_", " ") + (" (%)" if metric in PCT else "")


def heatmap(configs: Sequence[ConfigStats], x: str, y: str, metric: str = "val_acc") -> Figure:
    """Mean ``metric`` over the grid of two parameters (the log's units1 × units2); when
    other parameters vary inside a cell, the cell is their mean and the title says so."""
    hm = heatmap_cells(configs, x, y, metric)
    grid = np.array(hm.cells, dtype=float).reshape(len(hm.ys), len(hm.xs)) * _scale(metric)
    fig, ax = plt.subplots(figsize=(1.2 * len(hm.xs) + 2.5, 1.0 * len(hm.ys) + 1.8))
    im = ax.imshow(grid, cmap="viridis", origin="lower")
    ax.set_xticks(range(len(hm.xs)), [_tick(v) for v in hm.xs])
    ax.set_yticks(range(len(hm.ys)), [_tick(v) for v in hm.ys])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    for i in range(len(hm.ys)):
        for j in range(len(hm.xs)):
            if not math.isnan(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color=_ink(im.cmap(im.norm(grid[i, j]))))
    fig.colorbar(im, ax=ax, label=_label(metric))
    over = f",\nand the mean over {', '.join(hm.over)}" if hm.over else ""
    ax.set_title(f"mean {_label(metric)} over seeds{over}", fontsize=10)
    fig.tight_layout()
    return fig


def _ink(rgba) -> str:
    """Black on a light cell, white on a dark one (relative luminance, sRGB weights)."""
    r, g, b = rgba[:3]
    return "k" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.5 else "w"


def _tick(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _categorical(values) -> bool:
    return any(isinstance(v, (str, bool)) for v in values)


def metric_vs_param(configs: Sequence[ConfigStats], param: str, metric: str = "val_acc",
                    by: str | None = None, params: Sequence[str] = ()) -> Figure:
    """Mean ± 95 % CI of ``metric`` against ``param``, one series per value of ``by``
    (``"config"``: one per configuration of the other varying ``params``). A categorical
    ``param`` (optimizer, activation) is drawn as points side by side, not as a line."""
    fig, ax = plt.subplots(figsize=(6, 4))
    series: dict = {}
    rank: dict = {}    # series in the order of their values (32, 64, 128, not "128" < "32")
    others = [p for p in params if p != param]
    for c in configs:
        if c.n_complete and c.value(param) is not None:
            # a series per combination of the *other* parameters' values (a width grid's
            # "against units1": one line per units2), never per configuration
            name = (_others_name(c, others) if by == "config" else (c.value(by) if by else ""))
            series.setdefault(name, []).append(c)
            rank.setdefault(name, tuple(_order(c.value(p)) for p in others) if by == "config" else _order(name))
    values = sorted({c.value(param) for cs in series.values() for c in cs}, key=_order)
    categorical = _categorical(values)
    s = _scale(metric)
    for k, (name, cs) in enumerate(sorted(series.items(), key=lambda kv: rank[kv[0]])):
        cs = sorted(cs, key=lambda c: _order(c.value(param)))
        if categorical:  # side by side at each category, no connecting line
            off = (k - (len(series) - 1) / 2) * 0.8 / max(len(series), 1)
            xs = [values.index(c.value(param)) + off for c in cs]
        else:
            xs = [c.value(param) for c in cs]
        means = [c.stats[metric].mean * s for c in cs]
        err = [0 if math.isnan(c.stats[metric].half_width) else c.stats[metric].half_width * s for c in cs]
        label = (str(name) if by == "config" else f"{by}={_tick(name)}") if by else None
        ax.errorbar(xs, means, yerr=err, marker="o", capsize=3, label=label,
                    linestyle="none" if categorical else "-")
    if categorical:
        ax.set_xticks(range(len(values)), [_tick(v) for v in values])
    elif param in ("lr", "weight_decay"):
        ax.set_xscale("log")
    elif param in ("units1", "units2", "units3", "width", "batch_size"):
        ax.set_xscale("log", base=2)
        ax.set_xticks(values, [_tick(v) for v in values])  # 32 … 256, not 2⁵ … 2⁸
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in values) and len(values) <= 12:
        ax.set_xticks(values, [_tick(v) for v in values])  # depth 2 and 3, not 2.0, 2.2, …
    ax.set_xlabel(param)
    ax.set_ylabel(_label(metric))
    ax.set_title(f"{_label(metric)} vs {param} (mean ± 95 % CI over seeds)")
    if by and len(series) > 1:  # outside the axes: a legend never hides a point
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _others_name(c: ConfigStats, others: Sequence[str]) -> str:
    parts = []
    for p in others:
        v = c.value(p)
        parts.append(f"{p}={_tick(v) if not isinstance(v, list) else '-'.join(map(str, v))}")
    return ", ".join(parts) or c.label


def _order(v):
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def learning_curves(configs: Sequence[ConfigStats], kind: str = "loss", params: Sequence[str] = ()) -> Figure:
    """Train vs validation curves per epoch, mean with a min–max band over seeds; each
    configuration named by the study's varying ``params``."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, c in enumerate(configs):
        col = colors[i % len(colors)]
        name = describe(c, params)
        for split, style in (("train", "--"), ("val", "-")):
            curves = [np.asarray(getattr(h, f"{split}_{kind}")) for h in c.histories]
            n = min(len(cv) for cv in curves)
            arr = np.stack([cv[:n] for cv in curves]) * (100 if kind == "acc" else 1)
            ep = np.arange(1, n + 1)
            ax.plot(ep, arr.mean(0), style, color=col, label=f"{name} {split}")
            if len(arr) > 1:
                ax.fill_between(ep, arr.min(0), arr.max(0), color=col, alpha=0.15)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("accuracy (%)" if kind == "acc" else "mean squared error (standardised target)"
                  if configs and _regression(configs[0]) else "cross-entropy loss")
    ax.set_title("learning curves: train (dashed) vs validation, band = seeds' range")
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def gradient_flow(configs: Sequence[ConfigStats], params: Sequence[str] = ()) -> Figure:
    """Each linear layer's weight-gradient norm (RMS over the run's sampled steps, its
    first epoch solid and its last dashed; geometric mean over seeds), by layer from the
    input: gradients that vanish fall towards the first layer."""
    fig, ax = plt.subplots(figsize=(7, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    others = [p for p in params if not p.startswith("units") and p != "depth"]
    for i, c in enumerate(configs):
        runs = [np.asarray(h.grad_norm) for h in c.histories if h.grad_norm]
        if not runs:
            continue
        col = colors[i % len(colors)]
        name = f"{c.label if 'depth' not in params else f'depth {len(c.config.layers)}'}"
        name += f" {describe(c, others)}" if others else ""
        for which, style, tag in ((0, "-", "epoch 1"), (-1, "--", "last epoch")):
            rows = np.stack([r[which] for r in runs])
            mean = np.exp(np.log(np.maximum(rows, 1e-30)).mean(0))
            ax.plot(np.arange(1, len(mean) + 1), mean, style, marker="o", ms=3, color=col,
                    label=f"{name}, {tag}")
    ax.set_yscale("log")
    ax.set_xlabel("linear layer (1 = first hidden, last = output)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("weight-gradient norm (RMS)")
    ax.set_title("gradient flow by layer (vanishing: falling towards layer 1)", fontsize=10)
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def pareto(configs: Sequence[ConfigStats], w: Winners, params: Sequence[str] = ()) -> Figure:
    """Accuracy vs cost (modelled seconds to train alone, or FLOPs); the front of this plane
    joined; winners named by the varying ``params``."""
    metric = w.metric
    s = _scale(metric)
    timed = all(math.isfinite(c.seconds_alone) for c in configs if c.n_complete)
    fig, ax = plt.subplots(figsize=(6.5, 5.2))
    ok = [c for c in configs if c.n_complete]
    ax.errorbar([c.cost for c in ok], [c.stats[metric].mean * s for c in ok],
                yerr=[0 if math.isnan(c.stats[metric].half_width) else c.stats[metric].half_width * s for c in ok],
                fmt="o", color="0.6", capsize=2, label="configurations (mean ± 95 % CI)")
    ax.plot([c.cost for c in w.front], [c.stats[metric].mean * s for c in w.front], "-o", color="C3",
            label="Pareto front")
    tags: dict[str, list[str]] = {}
    for tag, c in (("best", w.accuracy), ("knee", w.practical), ("cheapest ≈ best", w.fastest)):
        tags.setdefault(c.key, []).append(tag)
    markers = iter(("*", "D", "s"))
    for c in {c.key: c for c in (w.accuracy, w.practical, w.fastest)}.values():
        ax.plot([c.cost], [c.stats[metric].mean * s], next(markers), markersize=11, markeredgecolor="k",
                label=f"{' / '.join(tags[c.key])}: {describe(c, params)}")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g") if timed
                                 else matplotlib.ticker.LogFormatterSciNotation())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("seconds to train alone (modelled on the recorded device)" if timed else "training FLOPs")
    ax.set_ylabel(_label(metric))
    ax.set_title(f"{_label(metric)} vs cost" + (" (lower is better)" if not HIGHER_IS_BETTER.get(metric, True) else ""))
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=1, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def compare(groups: Sequence[tuple[str, Sequence[float]]], metric: str,
            bounds: Sequence[tuple[str, float]] = ()) -> Figure:
    """Each group's seeds as dots, with the mean ± 95 % CI; ``bounds``: (label, value) lines
    drawn across (a threshold's bar)."""
    from ..analysis.stats import summarize

    s = _scale(metric)
    fig, ax = plt.subplots(figsize=(max(3.5, 1.4 * len(groups) + 1.5), 3.8))
    for i, (_, values) in enumerate(groups):
        v = np.asarray(values) * s
        ax.plot(np.full(len(v), i) + np.linspace(-0.08, 0.08, len(v)), v, ".", color="0.5")
        st = summarize(values)
        ax.errorbar([i], [st.mean * s], yerr=[0 if math.isnan(st.half_width) else st.half_width * s],
                    fmt="o", color="C0", capsize=4)
    for name, value in bounds:
        ax.axhline(value * s, color="C3", linestyle="--", linewidth=1.2, label=name)
    if bounds:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), frameon=False)
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], rotation=20 if len(groups) > 3 else 0)
    ax.set_ylabel(_label(metric))
    ax.set_title("seeds (dots) and mean ± 95 % CI")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def expected_best(curve: Sequence[tuple[int, float, float]], metric: str) -> Figure:
    """Expected best value of a search of n proposals against n, with a ± one SD band."""
    s = _scale(metric)
    n = np.array([c[0] for c in curve])
    mean = np.array([c[1] for c in curve]) * s
    sd = np.array([c[2] for c in curve]) * s
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ax.fill_between(n, mean - sd, mean + sd, color="C0", alpha=0.2, linewidth=0)
    ax.plot(n, mean, color="C0")
    ax.set_xlabel("proposals")
    ax.set_ylabel(f"expected best {_label(metric)}")
    ax.set_xlim(1, max(2, n[-1]))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def per_class(classes: Sequence[str], runs: Sequence[Sequence[float]], title: str) -> Figure:
    """Validation accuracy within each true class: one row per class (its own name), the
    seeds as dots and their mean as a bar."""
    acc = np.asarray(runs, dtype=float) * 100  # [seeds, classes]
    n = len(classes)
    fig, ax = plt.subplots(figsize=(6.0, max(2.4, 0.32 * n + 1.2)))
    ys = np.arange(n)[::-1]
    ax.barh(ys, np.nanmean(acc, axis=0), color="C0", alpha=0.35, height=0.6)
    offsets = np.linspace(-0.15, 0.15, len(acc)) if len(acc) > 1 else [0.0]
    for k, seed_row in enumerate(acc):
        ax.plot(seed_row, ys + offsets[k], ".", color="0.3", markersize=4)
    ax.set_yticks(ys, [str(c) for c in classes], fontsize=8 if n > 12 else 9)
    ax.set_xlabel("validation accuracy within the class (%)")
    ax.set_xlim(0, 100)
    ax.set_title(f"{title}\nbars: mean over seeds; dots: seeds", fontsize=9)
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def looks(v, metric: str) -> Figure:
    """A sequential verdict: the estimate and its interval (valid over all looks) at each look."""
    sc = _scale(metric)
    fig, ax = plt.subplots(figsize=(5.2, 3.2))
    ns = [lk.n for lk in v.looks]
    est = [lk.estimate * sc for lk in v.looks]
    lo = [lk.lo * sc if math.isfinite(lk.lo) else np.nan for lk in v.looks]
    hi = [lk.hi * sc if math.isfinite(lk.hi) else np.nan for lk in v.looks]
    finite = [i for i in range(len(ns)) if not (np.isnan(lo[i]) or np.isnan(hi[i]))]
    ax.errorbar([ns[i] for i in finite], [est[i] for i in finite],
                yerr=[[est[i] - lo[i] for i in finite], [hi[i] - est[i] for i in finite]],
                fmt="none", ecolor="C0", capsize=4, label="interval valid over all looks")
    ax.plot(ns, est, "o-", color="C0", label="estimate (unbounded interval: too few seeds yet)"
            if len(finite) < len(ns) else "estimate")
    ax.axhline(0, color="0.3", lw=0.8)
    margin = v.hypothesis.margin
    if margin:
        for m in (-margin, margin):
            ax.axhline(m * sc, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("seeds per configuration (look)")
    ax.set_ylabel(("Δ " if v.hypothesis.kind == "compare" else "") + _label(metric))
    ax.set_title(f"{v.hypothesis.id}: {v.verdict} at look {len(v.looks)} of {v.looks_planned}", fontsize=10)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def best_so_far(spent: Sequence[float], seconds: Sequence[float], values: Sequence[float], metric: str,
                maximize: bool) -> Figure:
    """A search's progress: each proposal's mean (dots) and the best mean so far (a step
    line), against the model-epochs spent (left) and the training seconds spent (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    best, cur = [], None
    for v in values:
        cur = v if cur is None or (v > cur if maximize else v < cur) else cur
        best.append(cur)
    k = _scale(metric)
    for ax, xs, label in ((axes[0], spent, "model-epochs trained"), (axes[1], seconds, "training seconds (sum of runs)")):
        ax.plot(xs, [k * v for v in values], "o", color="0.6", markersize=4, label="a proposal (mean over its seeds)")
        ax.step(xs, [k * v for v in best], where="post", color="C0", label="best so far")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(_label(metric))
    axes[0].legend(loc="lower right" if maximize else "upper right", fontsize=8)
    _focus(axes[0], [k * v for v in values], maximize)
    fig.tight_layout()
    return fig


def _focus(ax, ys: Sequence[float], maximize: bool) -> None:
    """Fit the y-axis to the bulk of a search's proposals (a few collapsed ones would
    squash the rest into a line) and say how many fall off it."""
    if len(ys) < 5:
        return
    lo, hi = np.quantile(ys, [0.1, 0.9])
    pad = max(hi - lo, 1e-9) * 0.5
    limits = (lo - pad, max(ys) + pad) if maximize else (min(ys) - pad, hi + pad)
    outside = sum(not limits[0] <= y <= limits[1] for y in ys)
    ax.set_ylim(*limits)
    if outside:
        ax.set_title(f"{outside} proposal{'s' if outside > 1 else ''} off the axis", fontsize=8)


def search_slices(dims, points: Sequence[tuple[dict, float]], metric: str, maximize: bool = True) -> Figure:
    """One panel per searched hyperparameter: each completed proposal's mean objective
    against its value (log axes where the search was log), coloured by proposal order."""
    n = len(dims)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    order = np.arange(len(points))
    k = _scale(metric)
    for ax, d in zip(axes.flat, dims):
        xs = [(p.get(d.name), k * v, i) for i, (p, v) in zip(order, points) if d.name in p]
        if d.kind == "choice":
            labels = [str(c) for c in d.choices]
            ax.scatter([labels.index(str(x)) for x, _, _ in xs], [v for _, v, _ in xs], c=[i for *_, i in xs],
                       cmap="viridis", s=14)
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, rotation=30, fontsize=7)
        else:
            ax.scatter([x for x, _, _ in xs], [v for _, v, _ in xs], c=[i for *_, i in xs], cmap="viridis", s=14)
            if d.log:
                ax.set_xscale("log")
        ax.set_xlabel(d.name)
        ax.set_ylabel(_label(metric), fontsize=8)
        ax.grid(alpha=0.3)
        _focus(ax, [v for _, v, _ in xs], maximize)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    if len(points) > 1:  # the colour scale says what the colour means
        mappable = matplotlib.cm.ScalarMappable(cmap="viridis",
                                                norm=matplotlib.colors.Normalize(0, len(points) - 1))
        fig.colorbar(mappable, ax=list(axes.flat), label="proposal order", fraction=0.03, pad=0.02)
    return fig


def search_pareto(points: Sequence[tuple[float, float, bool]], names: Sequence[str], directions: Sequence[str]) -> Figure:
    """Two objectives: every completed proposal, the Pareto front joined."""
    fig, ax = plt.subplots(figsize=(5.8, 4.2))
    points = [(_scale(names[0]) * x, _scale(names[1]) * y, f) for x, y, f in points]
    ax.scatter([p[0] for p in points if not p[2]], [p[1] for p in points if not p[2]], color="0.6", s=14,
               label="dominated")
    front = sorted((p for p in points if p[2]), key=lambda p: p[0])
    ax.plot([p[0] for p in front], [p[1] for p in front], "o-", color="C3", label="Pareto front")
    ax.set_xlabel(f"{_label(names[0])} ({'higher' if directions[0] == 'max' else 'lower'} is better)")
    ax.set_ylabel(f"{_label(names[1])} ({'higher' if directions[1] == 'max' else 'lower'} is better)")
    if names[1] in ("flops", "params"):
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(matplotlib.ticker.EngFormatter())   # 200k, 1M, 5G: readable
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def save(fig: Figure, path) -> None:
    fig.savefig(path, dpi=110, bbox_inches="tight")  # legends outside the axes stay in the picture
    plt.close(fig)
