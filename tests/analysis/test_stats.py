"""Each statistic against scipy on fixed data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from tunebook.analysis.stats import bootstrap_means, one_sample, seeds_needed, spearman, summarize, tost, welch

A = [0.871, 0.868, 0.874, 0.869, 0.872]
B = [0.866, 0.870, 0.861, 0.868, 0.864, 0.867]


def test_summarize_matches_scipy_t_interval():
    s = summarize(A)
    lo, hi = st.t.interval(0.95, len(A) - 1, loc=np.mean(A), scale=st.sem(A))
    assert s.mean == pytest.approx(np.mean(A)) and s.std == pytest.approx(np.std(A, ddof=1))
    assert (s.lo, s.hi) == pytest.approx((lo, hi))
    assert summarize([0.5]).n == 1 and math.isnan(summarize([0.5]).lo)
    assert summarize([float("nan"), 0.5, 0.7]).n == 2


def test_welch_matches_scipy():
    d = welch(A, B)
    ref = st.ttest_ind(A, B, equal_var=False)
    assert d.p == pytest.approx(ref.pvalue) and d.diff == pytest.approx(np.mean(A) - np.mean(B))
    ci = ref.confidence_interval(0.95)
    assert (d.lo, d.hi) == pytest.approx((ci.low, ci.high))


def test_tost_matches_two_one_sided_scipy_tests():
    margin = 0.01
    p_low = st.ttest_ind(np.array(A) + margin, B, equal_var=False, alternative="greater").pvalue
    p_high = st.ttest_ind(np.array(A) - margin, B, equal_var=False, alternative="less").pvalue
    assert tost(A, B, margin) == pytest.approx(max(p_low, p_high))


def test_one_sample_matches_scipy():
    t, p = one_sample(A, 0.86)
    ref = st.ttest_1samp(A, 0.86)
    assert (t, p) == pytest.approx((ref.statistic, ref.pvalue))


def test_seeds_needed_matches_the_textbook_value():
    # Two-sample t-test, d = 1, alpha 0.05 two-sided, power 0.8: 17 per group (Cohen 1988).
    assert seeds_needed(1.0, 1.0) == 17
    assert seeds_needed(0.5, 1.0) == 64
    assert seeds_needed(0.0, 1.0) is None and seeds_needed(1.0, float("nan")) is None


def test_spearman_matches_scipy():
    x, y = [1, 2, 3, 4, 5], [0.80, 0.85, 0.84, 0.88, 0.90]
    assert spearman(x, y) == pytest.approx(st.spearmanr(x, y).statistic)
    assert spearman([1, 1, 1], [1, 2, 3]) == 0.0


def test_bootstrap_means_resamples_each_group():
    rng = np.random.default_rng(0)
    out = bootstrap_means([A, B], 500, rng)
    assert out.shape == (500, 2)
    assert out[:, 0].min() >= min(A) and out[:, 0].max() <= max(A)
    assert abs(out[:, 0].mean() - np.mean(A)) < 0.001


def test_the_t_quantile_and_tail_are_scipy_s_own():
    from tunebook.analysis.stats import t_ppf, t_sf

    for df in (1, 2.5, 7, 29, 1e6):
        for q in (0.5, 0.9, 0.975, 0.9999):
            assert t_ppf(q, df) == st.t.ppf(q, df)
        for x in (-3.0, -0.2, 0.0, 1.7, 9.0):
            assert t_sf(x, df) == pytest.approx(st.t.sf(x, df), rel=1e-13, abs=1e-300)


def test_the_skewness_test_and_skewness_equal_scipy_s():
    from tunebook.analysis.bounded import _adjusted_skewness, skew_test_p

    rng = np.random.default_rng(3)
    for n in (8, 9, 20, 100):
        x = np.vstack([rng.normal(size=(5, n)), rng.exponential(size=(5, n)), -rng.lognormal(size=(2, n))])
        assert skew_test_p(x) == pytest.approx(st.skewtest(x, axis=1).pvalue, rel=1e-10)
        for row in x:
            assert _adjusted_skewness(row) == pytest.approx(st.skew(row, bias=False), rel=1e-10)
