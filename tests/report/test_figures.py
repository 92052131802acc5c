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
