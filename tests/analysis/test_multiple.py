"""Holm's adjustment: family-wise error controlled by simulation, and its rules."""

from __future__ import annotations

import math

import numpy as np

from tunebook.analysis.multiple import holm
from tunebook.analysis.stats import welch

ALPHA, STUDIES, M = 0.05, 2000, 26   # 26: the log's programme has 26 hypotheses


def test_holm_rules():
    assert holm([0.01, 0.04, 0.03], 0.05) == [True, False, False]   # 0.01 ≤ 0.05/3; 0.03 > 0.05/2
    assert holm([0.001, 0.02, 0.04], 0.05) == [True, True, True]    # 0.02 ≤ 0.025, 0.04 ≤ 0.05
    assert holm([math.nan, 0.01], 0.05) == [False, True]            # no test: not counted in m
    assert holm([], 0.05) == []


def test_family_wise_error_of_26_null_comparisons_is_at_most_alpha():
    """26 A/A comparisons of 5 seeds each (Welch): unadjusted, most studies call at least
    one "decided"; with Holm, at most alpha (+ two Monte Carlo standard errors)."""
    rng = np.random.default_rng(26)
    any_raw = any_holm = 0
    for _ in range(STUDIES):
        ps = [welch(rng.normal(0, 1, 5), rng.normal(0, 1, 5)).p for _ in range(M)]
        any_raw += min(ps) < ALPHA
        any_holm += any(holm(ps, ALPHA))
    mcse2 = 2 * math.sqrt(ALPHA * (1 - ALPHA) / STUDIES)
    assert any_holm / STUDIES <= ALPHA + mcse2, any_holm / STUDIES
    assert any_raw / STUDIES > 0.5, any_raw / STUDIES
