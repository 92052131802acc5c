"""The sequential procedures, proved by simulation: error rates over up to 20 looks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunebook.analysis.sequential import (DECISIONS, avt_evalue, avt_interval, look_schedule, paired_look,
                                          simulate, welch_interval, welch_look)

STUDIES = 5000
ALPHA = 0.05
MCSE2 = 2 * math.sqrt(ALPHA * (1 - ALPHA) / STUDIES)   # two Monte Carlo standard errors
CAP, START, STEP = 50, 3, 3                            # 17 looks: 3, 6, ..., 48, 50


def draws(rng, kind: str, shift: float = 0.0, rho: float = 0.6):
    """[studies, CAP] per-seed values of two arms with unit standard deviation; seed i of
    both arms shares a component (correlation rho), as common random numbers give."""
    def noise():
        if kind == "normal":
            return rng.standard_normal((STUDIES, CAP))
        x = rng.lognormal(0.0, 1.0, (STUDIES, CAP))      # skewed: lognormal, standardised
        return (x - math.exp(0.5)) / math.sqrt((math.e - 1) * math.e)
    common = noise()
    a = math.sqrt(rho) * common + math.sqrt(1 - rho) * noise() + shift
    b = math.sqrt(rho) * common + math.sqrt(1 - rho) * noise()
    return a, b


def test_the_schedule_has_at_most_20_looks():
    assert look_schedule(START, STEP, CAP) == list(range(3, 49, 3)) + [50]
    with pytest.raises(ValueError, match="need 2 <= start <= cap"):
        look_schedule(1, 3, 50)


@pytest.mark.parametrize("paired", [True, False], ids=["paired", "welch"])
@pytest.mark.parametrize("kind", ["normal", "skewed"])
def test_null_studies_decide_a_difference_in_at_most_alpha(paired, kind):
    rng = np.random.default_rng(2023 + paired + 10 * (kind == "skewed"))
    a, b = draws(rng, kind, rho=0.6 if paired else 0.0)
    decision, _ = simulate(a, b, paired, ALPHA, margin=0.0, start=START, step=STEP)
    wrong = np.isin(decision, [DECISIONS.index("a > b"), DECISIONS.index("a < b")]).mean()
    assert wrong <= ALPHA + MCSE2, wrong
    # the same looks with a fixed 5 % test would err far more often: the control matters
    naive = naive_error(a, b, paired)
    assert naive > 2 * ALPHA, naive


def naive_error(a, b, paired):
    """Stop at the first look where an unadjusted 95 % t-interval excludes 0."""
    from scipy import stats as st

    hit = np.zeros(len(a), bool)
    for n in look_schedule(START, STEP, CAP):
        if paired:
            d = a[:, :n] - b[:, :n]
            t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
            hit |= np.abs(t) > st.t.ppf(0.975, n - 1)
        else:
            t = (a[:, :n].mean(1) - b[:, :n].mean(1)) / np.sqrt((a[:, :n].var(1, ddof=1) + b[:, :n].var(1, ddof=1)) / n)
            hit |= np.abs(t) > st.t.ppf(0.975, 2 * n - 2)
    return hit.mean()


@pytest.mark.parametrize("paired", [True, False], ids=["paired", "welch"])
def test_a_one_sd_effect_is_decided_within_50_seeds(paired):
    rng = np.random.default_rng(7 + paired)
    a, b = draws(rng, "normal", shift=1.0, rho=0.0)  # no help from pairing: the hard case
    decision, used = simulate(a, b, paired, ALPHA, start=START, step=STEP)
    supported = (decision == DECISIONS.index("a > b")).mean()
    assert supported >= 0.90, supported
    assert (decision == DECISIONS.index("a < b")).mean() <= ALPHA


@pytest.mark.parametrize("paired", [True, False], ids=["paired", "welch"])
def test_no_difference_with_a_one_sd_margin_is_decided_negligible(paired):
    rng = np.random.default_rng(11 + paired)
    a, b = draws(rng, "normal", rho=0.0)
    decision, used = simulate(a, b, paired, ALPHA, margin=1.0, start=START, step=STEP)
    negligible = (decision == DECISIONS.index("negligible")).mean()
    assert negligible >= 0.80, negligible
    assert np.isin(decision, [0, 1]).mean() <= ALPHA + MCSE2


def test_true_difference_at_the_margin_is_rarely_called_negligible():
    """A real difference of exactly the margin: "negligible" is then a wrong decision."""
    rng = np.random.default_rng(5)
    a, b = draws(rng, "normal", shift=1.0, rho=0.6)
    decision, _ = simulate(a, b, True, ALPHA, margin=1.0, start=START, step=STEP)
    assert (decision == DECISIONS.index("negligible")).mean() <= ALPHA + MCSE2


def test_scalar_looks_match_the_vectorised_simulation():
    rng = np.random.default_rng(3)
    a, b = draws(rng, "normal", shift=0.4)
    a, b = a[:200], b[:200]
    for paired in (True, False):
        dec, used = simulate(a, b, paired, ALPHA, margin=0.5, start=START, step=STEP)
        n_looks = len(look_schedule(START, STEP, CAP))
        for i in range(0, 200, 7):
            for n in look_schedule(START, STEP, CAP):
                look = (paired_look(a[i, :n], b[i, :n], ALPHA, 0.5) if paired
                        else welch_look(a[i, :n], b[i, :n], ALPHA, 0.5, looks=n_looks))
                if look.decision != "undecided":
                    break
            assert (DECISIONS[dec[i]], used[i]) == (look.decision, look.n if look.decision != "undecided" else CAP)


def test_the_interval_is_where_the_e_value_crosses_1_over_alpha():
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1.0, 30)
    mean, lo, hi = avt_interval(d, ALPHA)
    assert lo < mean < hi
    for edge in (lo, hi):
        assert avt_evalue(d, edge) == pytest.approx(1 / ALPHA, rel=1e-9)
    assert avt_evalue(d, mean) < 1 / ALPHA and avt_evalue(d, lo - 0.01) > 1 / ALPHA
    assert avt_interval(d[:2], ALPHA)[1:] == (-math.inf, math.inf)  # two seeds decide nothing


def test_the_anytime_interval_is_wider_than_the_fixed_n_interval():
    rng = np.random.default_rng(2)
    d = rng.normal(0.0, 1.0, 40)
    _, lo, hi = avt_interval(d, ALPHA)
    _, wlo, whi = welch_interval(d, np.zeros(40), ALPHA)
    assert hi - lo > whi - wlo  # the price of looking as often as one likes


def test_paired_arms_need_the_same_seeds():
    with pytest.raises(ValueError, match="paired arms need the same seeds, got 3 and 2 values"):
        paired_look([1.0, 2.0, 3.0], [1.0, 2.0])
