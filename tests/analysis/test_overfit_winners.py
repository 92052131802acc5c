from __future__ import annotations

from dataclasses import replace

import pytest

from tunebook.analysis.overfit import overfitting, rising_val_falling_train
from tunebook.analysis.winners import pareto_front, winners
from tunebook.records import History

from .helpers import stats


def test_rising_validation_loss_while_training_loss_falls():
    assert rising_val_falling_train([1.0, 0.8, 0.6, 0.5], [0.9, 0.8, 0.85, 0.9])
    assert not rising_val_falling_train([1.0, 0.8, 0.6, 0.5], [0.9, 0.8, 0.85, 0.84])
    assert not rising_val_falling_train([1.0, 1.1, 1.2], [0.9, 1.0, 1.1])  # both rise: not overfitting


def test_overfitting_summary():
    h = History((1.0, 0.7, 0.5, 0.4), (0.6, 0.8, 0.9, 0.95), (0.8, 0.6, 0.65, 0.7), (0.7, 0.8, 0.8, 0.79), (1, 1, 1, 1))
    c = replace(stats([0.79, 0.79]), histories=(h, h))
    o = overfitting(c)
    assert o.flagged and o.flagged_seeds == 2 and o.best_val_loss_epoch == 2.0
    assert abs(o.final_gap - 0.16) < 1e-9 and abs(o.max_gap - 0.16) < 1e-9
    # validation − training loss: -0.2, -0.1, 0.15, 0.3 (a regression's gap, on its losses)
    assert abs(o.final_loss_gap - 0.3) < 1e-9 and abs(o.max_loss_gap - 0.3) < 1e-9


def test_pareto_and_winners():
    small = stats([0.850, 0.852, 0.851], params=30_000, seconds=0.5, layers=(32, 32))
    mid = stats([0.869, 0.872, 0.869], params=120_000, seconds=1.0, layers=(128, 128))  # paired: not always behind
    big = stats([0.870, 0.872, 0.871], params=270_000, seconds=2.0, layers=(256, 256))
    slow_bad = stats([0.84, 0.841, 0.842], params=300_000, seconds=3.0, layers=(512, 16))
    front = pareto_front([small, mid, big, slow_bad])
    assert [c.label for c in front] == ["32-32", "128-128", "256-256"]
    w = winners([small, mid, big, slow_bad])
    assert w.accuracy.label == "256-256"
    assert {c.label for c in w.as_good} == {"256-256", "128-128"}
    assert w.fastest.label == "128-128" and w.fewest_params.label == "128-128"
    assert w.practical.label == "128-128"


def test_the_front_is_that_of_the_plane_drawn():
    """A point dominated in (accuracy, cost) is off the front even when it has fewer
    parameters: the front was once computed in three objectives and drawn in two."""
    cheap = stats([0.85, 0.851, 0.852], params=200_000, seconds=0.5, layers=(64,))
    dominated = stats([0.84, 0.841, 0.842], params=10_000, seconds=0.8, layers=(8,))
    best = stats([0.87, 0.871, 0.872], params=300_000, seconds=2.0, layers=(256,))
    front = pareto_front([cheap, dominated, best])
    assert [c.label for c in front] == ["64", "256"]
    xs = [c.cost for c in front]
    ys = [c.stats["val_acc"].mean for c in front]
    assert xs == sorted(xs) and ys == sorted(ys)  # a drawn front never zig-zags


def test_winners_rank_by_the_configurations_cost_not_the_group_share():
    """32-32 in a group of 5 has a larger share of its group's time than 256-256 in a group
    of 25; it is still the cheaper configuration to train."""
    small = stats([0.870, 0.871, 0.872], params=27_000, seconds=0.3, share=0.9, layers=(32, 32))
    big = stats([0.870, 0.872, 0.871], params=270_000, seconds=1.5, share=0.4, layers=(256, 256))
    w = winners([small, big])
    assert w.fastest.label == "32-32" and w.practical.label == "32-32"


def test_heatmap_cells_are_means_over_the_third_parameter():
    """units1 × units2 with lr varying too: each cell is the mean over the lr values,
    checked against the mean computed here from the configurations."""
    import itertools

    import numpy as np

    from tunebook.analysis.aggregate import heatmap_cells

    rng = np.random.default_rng(7)
    configs = [stats(list(rng.normal(0.8 + 0.001 * u1 / 8 + 0.002 * u2 / 8 - lr, 0.003, 3)), layers=(u1, u2), lr=lr)
               for u1, u2, lr in itertools.product((32, 64, 128), (32, 64), (0.001, 0.01, 0.1))]
    hm = heatmap_cells(configs, "units1", "units2")
    assert hm.xs == (32, 64, 128) and hm.ys == (32, 64) and hm.over == ("lr",)
    for i, u2 in enumerate(hm.ys):
        for j, u1 in enumerate(hm.xs):
            means = [float(np.mean(c.values["val_acc"])) for c in configs if c.config.layers == (u1, u2)]
            assert len(means) == 3 and hm.counts[i][j] == 3
            assert hm.cells[i][j] == pytest.approx(sum(means) / 3, abs=1e-12)


def test_heatmap_figure_says_what_a_cell_averages():
    from tunebook.report.figures import heatmap

    acc = {(u1, u2, lr): 0.7 + u1 / 1000 + u2 / 3000 + lr for u1 in (32, 64) for u2 in (32, 64) for lr in (0.1, 0.01)}
    configs = [stats([v - 0.005, v + 0.005], layers=(u1, u2), lr=lr) for (u1, u2, lr), v in acc.items()]
    fig = heatmap(configs, "units1", "units2")
    assert "mean over lr" in fig.axes[0].get_title()
    drawn = {(round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in fig.axes[0].texts}
    for j, u1 in enumerate((32, 64)):
        for i, u2 in enumerate((32, 64)):  # the cell's number: the mean over lr, in percent
            assert drawn[j, i] == f"{100 * (acc[u1, u2, 0.1] + acc[u1, u2, 0.01]) / 2:.2f}"
    fig = heatmap([c for c in configs if c.config.lr == 0.1], "units1", "units2")
    assert fig.axes[0].get_title() == "mean val acc (%) over seeds"
