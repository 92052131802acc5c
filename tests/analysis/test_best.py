"""P(best) by a paired bootstrap over seeds: calibrated by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from tunebook.analysis.best import prob_best


def _arms(rng, means, n, rho=0.6):
    """Per-seed values of len(means) arms on n shared seeds: a common seed effect (the
    pairing) plus each arm's own noise, unit variance in all."""
    common = rng.normal(size=n) * np.sqrt(rho)
    return [m + common + rng.normal(size=n) * np.sqrt(1 - rho) for m in means]


def test_probabilities_sum_to_one_and_ties_split():
    est = prob_best([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    assert [e.p_best for e in est] == [0.5, 0.5]
    est = prob_best([[0.9, 0.8, 0.85], [0.5, 0.6, 0.55], [0.7, 0.1, 0.2]])
    assert sum(e.p_best for e in est) == pytest.approx(1.0) and est[0].p_best == 1.0
    low = prob_best([[0.1, 0.2, 0.15], [0.5, 0.6, 0.55]], maximize=False)
    assert low[0].p_best == 1.0 and low[0].mean == pytest.approx(0.15)
    with pytest.raises(ValueError, match="the same two or more seeds"):
        prob_best([[1.0], [2.0]])


def test_under_the_null_every_arm_is_best_equally_often():
    """Three equal arms, 10 seeds, 400 simulated confirmations: the mean P(best) of each
    arm is 1/3 (within 3 Monte Carlo standard errors)."""
    rng = np.random.default_rng(1)
    sims = np.array([[e.p_best for e in prob_best(_arms(rng, [0, 0, 0], 10), n_boot=1000, seed=i)]
                     for i in range(400)])
    se = sims.std(axis=0, ddof=1) / np.sqrt(len(sims))
    assert np.all(np.abs(sims.mean(axis=0) - 1 / 3) <= 3 * se), sims.mean(axis=0)


def test_a_one_sd_lead_is_named_the_likely_best_nearly_always():
    """Arms at 0, 0 and +1 SD on 10 paired seeds: the +1 arm has the highest P(best) in
    at least 95 % of 300 simulations, and P(best) ≥ 0.8 in most of them."""
    rng = np.random.default_rng(2)
    named, sure = 0, 0
    for i in range(300):
        est = prob_best(_arms(rng, [0, 0, 1], 10), n_boot=1000, seed=i)
        named += max(est, key=lambda e: e.p_best).index == 2
        sure += est[2].p_best >= 0.8
    assert named >= 0.95 * 300 and sure >= 0.8 * 300, (named, sure)


def test_the_mean_interval_covers_the_truth_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    hits = sum(e.low <= 0.5 <= e.high for i in range(1000)
               for e in prob_best([rng.normal(0.5, 1, 10), rng.normal(0, 1, 10)], n_boot=50, seed=i)[:1])
    assert 0.93 * 1000 <= hits <= 0.97 * 1000, hits
