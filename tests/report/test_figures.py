"""The report's figures draw what they say (synthetic configurations, no training)."""

from __future__ import annotations

import numpy as np

from tunebook.report import figures
from tests.analysis.helpers import stats


def _width_grid():
    rng = np.random.default_rng(0)
    return [stats(rng.normal(0.85 + 0.001 * (u1 + u2) / 32, 0.003, 5), layers=(u1, u2))
            for u1 in (32, 64, 128, 256) for u2 in (32, 64, 128, 256)]


def test_a_width_grid_against_units1_draws_one_line_per_units2():
    fig = figures.metric_vs_param(_width_grid(), "units1", "val_acc", "config", ["units1", "units2"])
    ax = fig.axes[0]
    lines = [c for c in ax.containers]  # one errorbar container per series
    assert len(lines) == 4
    assert all(len(c.lines[0].get_xdata()) == 4 for c in lines)  # each joins the four widths
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [f"units2={u}" for u in (32, 64, 128, 256)]


def test_heatmap_text_is_dark_on_light_cells_and_light_on_dark_ones():
    fig = figures.heatmap(_width_grid(), "units1", "units2")
    ax = fig.axes[0]
    im = ax.images[0]
    for t in ax.texts:
        value = float(t.get_text())
        r, g, b, _ = im.cmap(im.norm(value))
        light = 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.5
        assert t.get_color() == ("k" if light else "w")
    assert {t.get_color() for t in ax.texts} == {"k", "w"}  # viridis runs dark to light here
    assert len(fig.axes) == 2  # the colour bar


def test_the_by_class_figure_names_each_class_and_draws_every_seed():
    classes = ("T-shirt/top", "Trouser", "Pullover")
    runs = [(0.9, 0.98, 0.7), (0.88, 0.97, 0.74)]
    ax = figures.per_class(classes, runs, "best").axes[0]
    labels = {round(t.get_position()[1]): t.get_text() for t in ax.get_yticklabels()}
    assert labels == {2: "T-shirt/top", 1: "Trouser", 0: "Pullover"}  # first class on top
    bars = sorted(ax.patches, key=lambda p: -p.get_y())
    assert [round(b.get_width(), 6) for b in bars] == [89.0, 97.5, 72.0]  # the means, in percent
    dots = [x for line in ax.lines for x in line.get_xdata()]
    assert sorted(dots) == sorted(100 * v for run in runs for v in run)


def _depth_grid():
    """The log's experiment 3: [128, 128], [128, 128, 128], [256, 256], [256, 256, 256]."""
    rng = np.random.default_rng(1)
    return [stats(rng.normal(0.86 + 0.001 * w / 32 - 0.002 * d, 0.003, 5), layers=(w,) * d)
            for w in (128, 256) for d in (2, 3)]


def _overview(configs, params):
    from types import SimpleNamespace

    from tunebook.report.document import overview_figures

    a = SimpleNamespace(spec=SimpleNamespace(metric="val_acc"), configs=configs, params=params)
    drawn = {}
    overview_figures(a, configs, lambda name, make, caption: drawn.setdefault(name, make) and (name, caption))
    return drawn


def test_a_depth_grid_is_drawn_against_depth_and_width_not_against_units3():
    """Figures against a parameter draw lines: series are named by the parameters every
    configuration has and the drawn one does not settle. Before, a depth grid drew
    "against depth" as four lone points (units3, None on two-layer networks, named a series
    of its own for each configuration), "against units3" and a units1 × units2 heatmap
    that was a diagonal."""
    drawn = _overview(_depth_grid(), ["units1", "units2", "units3", "depth"])
    assert sorted(drawn) == ["heatmap-units1-depth", "vs-depth", "vs-units1"]
    ax = drawn["vs-depth"]().axes[0]
    assert [len(c.lines[0].get_xdata()) for c in ax.containers] == [2, 2]  # 2 → 3 layers, at each width
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["units1=128, units2=128", "units1=256, units2=256"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "3"]  # whole layers, not 2.2, 2.4, …
    ax = drawn["vs-units1"]().axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["depth=2", "depth=3"]
    assert [len(c.lines[0].get_xdata()) for c in ax.containers] == [2, 2]


def test_a_grid_of_layer_lists_of_one_width_is_drawn_against_units1_once():
    """[[256, 256], [512, 512], [1024, 1024]]: units2 moves with units1 — one figure, one
    line through the three widths, no heatmap (it would be a diagonal)."""
    rng = np.random.default_rng(2)
    configs = [stats(rng.normal(0.88, 0.003, 5), layers=(w, w)) for w in (256, 512, 1024)]
    drawn = _overview(configs, ["units1", "units2"])
    assert sorted(drawn) == ["vs-units1"]
    ax = drawn["vs-units1"]().axes[0]
    assert [len(c.lines[0].get_xdata()) for c in ax.containers] == [3] and ax.get_legend() is None
    assert sorted(_overview(_width_grid(), ["units1", "units2"])) == ["heatmap-units1-units2", "vs-units1", "vs-units2"]
