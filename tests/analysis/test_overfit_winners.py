from __future__ import annotations

from dataclasses import replace

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


def test_pareto_and_winners():
    small = stats([0.850, 0.852, 0.851], params=30_000, seconds=0.5, layers=(32, 32))
    mid = stats([0.869, 0.871, 0.870], params=120_000, seconds=1.0, layers=(128, 128))
    big = stats([0.870, 0.872, 0.871], params=270_000, seconds=2.0, layers=(256, 256))
    slow_bad = stats([0.84, 0.841, 0.842], params=300_000, seconds=3.0, layers=(512, 16))
    front = pareto_front([small, mid, big, slow_bad])
    assert [c.label for c in front] == ["32-32", "128-128", "256-256"]
    w = winners([small, mid, big, slow_bad])
    assert w.accuracy.label == "256-256"
    assert {c.label for c in w.as_good} == {"256-256", "128-128"}
    assert w.fastest.label == "128-128" and w.fewest_params.label == "128-128"
    assert w.practical.label == "128-128"
