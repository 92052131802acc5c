"""The audit's cases, simulated (no training): each decision rule's error rate before the
fix (the old rule, written out here) and after (tunebook's own functions). The rates the
suite reaches are tabled in docs/results.md ("Error rates, simulated"); the printed line
of each test (pytest -s) is where those numbers come from.

Seeds are fixed, so every rate is a fixed number; bounds leave room for Monte Carlo error
at the stated number of studies (binomial SD ≈ √(α(1−α)/N), about 0.7 points at N = 1000).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as st

from tunebook.analysis.bounded import diagnose_many, simulate_betting
from tunebook.analysis.contrast import Mode, claim_verdict, contrast
from tunebook.analysis.multiple import holm
from tunebook.analysis.sequential import _avt_r, avt_evalue, look_schedule
from tunebook.analysis.verdicts import judge

from .helpers import hypothesis, stats

ALPHA = 0.05


def _report(name: str, **rates) -> None:
    print(f"\n[rates] {name}: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in rates.items()))


# -- configurations pooled as if they were seeds --------------------------------------

def _correlated_arms(rng, n_seeds: int, k: int, rho: float, shared: bool):
    """Two arms of k configurations on n seeds, no true difference; within a seed the
    configurations correlate by ``rho`` (a seed's data order); ``shared``: both arms see
    the same seed effects (same batch size: pairable)."""
    sa = rng.normal(size=(n_seeds, 1))
    sb = sa if shared else rng.normal(size=(n_seeds, 1))
    a = math.sqrt(rho) * sa + math.sqrt(1 - rho) * rng.normal(size=(n_seeds, k))
    b = math.sqrt(rho) * sb + math.sqrt(1 - rho) * rng.normal(size=(n_seeds, k))
    return 0.87 + 0.003 * a, 0.87 + 0.003 * b


def test_a_selector_of_several_configurations_is_not_counted_as_more_seeds_fixed_n():
    rng = np.random.default_rng(7)
    before = after = 0
    studies = 1000
    for _ in range(studies):
        a, b = _correlated_arms(rng, 5, 4, 0.6, shared=False)
        before += st.ttest_ind(a.ravel(), b.ravel(), equal_var=False).pvalue < ALPHA  # pooled, the old rule
        ca = [stats(a[:, j], layers=(w, 64)) for j, w in enumerate((32, 64, 128, 256))]
        cb = [stats(b[:, j], layers=(w, 128)) for j, w in enumerate((32, 64, 128, 256))]
        v = judge(hypothesis(a={"units2": 64}, b={"units2": 128}, expect="a > b"), ca + cb, ALPHA)
        after += v.verdict != "inconclusive"
        assert v.n_seeds == 5  # five seeds, not twenty runs
    _report("pooled selector, fixed n (4 configurations an arm, within-seed correlation 0.6, null)",
            before=before / studies, after=after / studies)
    assert before / studies > 0.10           # the audit: 15 %
    assert after / studies <= ALPHA + 0.015


def test_a_selector_of_several_configurations_is_not_counted_as_more_seeds_sequential():
    """Unpaired arms (the arms differ in batch size), 17 looks up to 50 seeds."""
    rng = np.random.default_rng(8)
    looks = look_schedule(5, 3, 50)
    mode = Mode(ALPHA, sequential=True, looks=len(looks), test="t")
    before = after = 0
    studies = 400
    for _ in range(studies):
        a, b = _correlated_arms(rng, 50, 4, 0.6, shared=False)
        old = new = False
        for n in looks:
            if not old:  # pooled runs, Welch at alpha / looks: the old unpaired rule
                old = st.ttest_ind(a[:n].ravel(), b[:n].ravel(), equal_var=False).pvalue < ALPHA / len(looks)
            if not new:
                c = contrast(dict(enumerate(a[:n].mean(axis=1))), dict(enumerate(b[:n].mean(axis=1))), False, mode,
                             "val_acc")
                new = c.p_equal(0.0) < ALPHA
        before, after = before + old, after + new
    _report("pooled selector, sequential (unpaired arms, 17 looks to 50 seeds, null)",
            before=before / studies, after=after / studies)
    assert before / studies > 0.15           # the audit: 35 %
    assert after / studies <= ALPHA


# -- threshold over several configurations ------------------------------------------

def test_a_threshold_holds_for_each_configuration_not_for_their_pool():
    rng = np.random.default_rng(9)
    before = after_supported = after_refuted = 0
    studies = 500
    for _ in range(studies):
        xs = [rng.normal(m, 0.003, 5) for m in (0.87, 0.87, 0.835)]   # the third misses the 84 % bar
        pooled = np.concatenate(xs)
        lo = pooled.mean() - st.t.ppf(1 - ALPHA / 2, len(pooled) - 1) * pooled.std(ddof=1) / math.sqrt(len(pooled))
        before += lo > 0.84                                            # the old rule: the pooled mean
        cs = [stats(x, layers=(w, 64)) for x, w in zip(xs, (32, 64, 128))]
        v = judge(hypothesis(kind="threshold", select={"units2": 64}, at_least=0.84), cs, ALPHA)
        after_supported += v.verdict == "supported"
        after_refuted += v.verdict == "refuted"
    _report("threshold over 3 configurations, one 0.5 points below the bar",
            before_supported=before / studies, after_supported=after_supported / studies,
            after_refuted=after_refuted / studies)
    assert before / studies > 0.9
    assert after_supported == 0 and after_refuted / studies > 0.5   # refuting is at alpha / 3


def test_a_threshold_met_by_every_configuration_is_supported_without_splitting_alpha():
    rng = np.random.default_rng(10)
    cs = [stats(rng.normal(0.86, 0.003, 5), layers=(w, 64)) for w in (32, 64, 128)]
    v = judge(hypothesis(kind="threshold", select={"units2": 64}, at_least=0.84), cs, ALPHA)
    assert v.verdict == "supported" and "each of the 3 configurations" in v.detail


# -- skewed seeds ----------------------------------------------------------------------

def _skewed(rng, sigma: float, studies: int, n: int) -> np.ndarray:
    """Per-seed differences with mean 0 and the skew of a log-normal (σ = 0.5: skewness
    1.75; σ = 1: 6.2), negative: a few seeds train badly. Scaled to accuracy points."""
    x = rng.lognormal(0.0, sigma, (studies, n))
    return -0.01 * (x - math.exp(sigma ** 2 / 2))


def _anytime_t_decides(d: np.ndarray, looks) -> np.ndarray:
    """Whether the anytime t's interval ever excludes 0, per study (vectorised)."""
    hit = np.zeros(len(d), bool)
    for n in looks:
        x = d[:, :n]
        m = x.mean(axis=1)
        q = ((x - m[:, None]) ** 2).sum(axis=1)
        r = _avt_r(n, ALPHA, 1.0)
        h = np.sqrt(r * q / (n * (n - r))) if r < n else np.full(len(d), np.inf)
        hit |= np.abs(m) > h
    return hit


def _auto_decides(d: np.ndarray, looks) -> tuple[np.ndarray, np.ndarray]:
    """tunebook's ``test = "auto"``: the anytime t at a look whose differences pass the
    Gaussian check, the betting sequence at one that fails it. (Decided?, bounded-only decided?)"""
    blo, bhi = simulate_betting(d, ALPHA, looks)
    hit = np.zeros(len(d), bool)
    for j, n in enumerate(looks):
        x = d[:, :n]
        unsafe = diagnose_many(x)
        m = x.mean(axis=1)
        q = ((x - m[:, None]) ** 2).sum(axis=1)
        r = _avt_r(n, ALPHA, 1.0)
        h = np.sqrt(r * q / (n * (n - r))) if r < n else np.full(len(d), np.inf)
        t_hit = np.abs(m) > h
        b_hit = (blo[:, j] > 0) | (bhi[:, j] < 0)
        hit |= np.where(unsafe, b_hit, t_hit)
    bounded = ((blo > 0) | (bhi < 0)).any(axis=1)
    return hit, bounded


def test_skewed_seeds_the_t_test_errs_and_the_bounded_test_does_not():
    looks = look_schedule(5, 3, 50)
    rng = np.random.default_rng(11)
    rates = {}
    for sigma in (0.5, 1.0):
        d = _skewed(rng, sigma, 2000, 50)
        t = _anytime_t_decides(d, looks).mean()
        auto, bounded = _auto_decides(d, looks)
        rates[sigma] = (t, auto.mean(), bounded.mean())
        _report(f"skewed null (log-normal σ = {sigma}), 17 looks to 50 seeds",
                anytime_t=t, auto=auto.mean(), bounded=bounded.mean())
    assert rates[1.0][0] > 0.10                          # the audit: 17.6 % at skewness 6.2
    for sigma, (t, auto, bounded) in rates.items():
        assert bounded <= ALPHA                          # valid whatever the distribution
        assert auto <= t                                 # the check catches some of the t-test's errors
    assert rates[0.5][1] <= ALPHA + 0.01
    # what the check cannot do: see bad seeds that have not happened yet. At skewness 6.2
    # "auto" still errs in about 16 % of null studies; such a study should ask for
    # test = "bounded" (README, "Assumptions").


def test_the_gaussian_check_rarely_flags_gaussian_seeds_and_the_t_test_keeps_its_power():
    rng = np.random.default_rng(12)
    for n, limit in ((8, 0.025), (20, 0.006), (50, 0.004)):
        assert diagnose_many(rng.normal(size=(20000, n))).mean() <= limit
    looks = look_schedule(5, 3, 50)
    d = rng.normal(0.003, 0.003, (2000, 50))             # a 1-SD effect
    t = _anytime_t_decides(d, looks).mean()
    auto, _ = _auto_decides(d, looks)
    _report("Gaussian 1-SD effect, 17 looks to 50 seeds", anytime_t=t, auto=auto.mean())
    assert auto.mean() >= t - 0.03


def test_the_bounded_sequence_is_the_products_own():
    """The vectorised simulation above and :func:`contrast` give the same interval."""
    rng = np.random.default_rng(13)
    d = _skewed(rng, 1.0, 3, 20)
    lo, hi = simulate_betting(d, ALPHA, [20], grid=4001)
    for i in range(3):
        c = contrast(dict(enumerate(d[i])), dict(enumerate(np.zeros(20))), True, Mode(ALPHA, True, 17, "bounded"),
                     "val_acc")
        assert c.kind == "bounded"
        assert abs(c.lo - lo[i, 0]) < 2e-3 and abs(c.hi - hi[i, 0]) < 2e-3


# -- p-values that match the claim, and Holm-aware stopping -------------------------------

def _paired_family(rng, studies, m, cap, effect):
    return rng.normal(effect, 1.0, (studies, m, cap))


def test_equivalence_claims_pass_holm_on_their_own_p_values():
    """10 ``a ~ b`` hypotheses whose true |Δ| is the margin (the claim is false, at its
    boundary), paired, looks of 5 to 50 seeds, each stopped at its first decision."""
    rng = np.random.default_rng(14)
    looks = look_schedule(5, 5, 50)
    margin = 0.5
    studies, m = 300, 10
    d = _paired_family(rng, studies, m, 50, margin)
    fwer_before = fwer_after = 0
    mode = Mode(ALPHA, sequential=True, looks=len(looks), test="t")
    for s in range(studies):
        p_old, p_new, sup = [], [], []
        for h in range(m):
            decided = None
            for n in looks:
                x = d[s, h, :n]
                c = contrast(dict(enumerate(x)), dict(enumerate(np.zeros(n))), True, mode, "val_loss")
                verdict, p, _ = claim_verdict(c, "a ~ b", margin)
                # the old p-value: 1/e(0) whenever the interval excluded 0 (its decision was
                # "a > b" even when the interval also lay inside the margin), the equivalence
                # one only when it said "negligible" and nothing else
                neg = -margin < c.lo and c.hi < margin
                if c.lo > 0 or c.hi < 0 or not neg:
                    old = min(1.0, 1 / max(avt_evalue(x), 1e-300))
                else:
                    old = min(1.0, 1 / min(avt_evalue(x, margin), avt_evalue(x, -margin)))
                decided = (verdict, p, old, neg)
                if verdict != "inconclusive":
                    break
            verdict, p, old, neg = decided
            sup.append(neg)
            p_old.append(old)
            p_new.append(p)
        fwer_before += any(r and s_ for r, s_ in zip(holm(p_old, ALPHA), sup))
        fwer_after += any(r and s_ for r, s_ in zip(holm(p_new, ALPHA), sup))
    _report("10 false equivalence claims at |Δ| = margin, family-wise error after Holm",
            before=fwer_before / studies, after=fwer_after / studies)
    assert fwer_after / studies <= ALPHA
    # (in this setting the old p-value's error did not show: the audit's 8.9 % came from a
    # design not reproduced here; the rule itself is pinned below)


def test_a_supported_equivalence_carries_the_equivalence_p_value_not_the_difference_one():
    """An interval inside (0, margin): the old rule passed 1/e(0) (a difference from 0) to
    Holm for an "a ~ b supported"; the claim is |Δ| < margin, and its p-value is that test's."""
    rng = np.random.default_rng(19)
    x = 0.3 + 0.3 * rng.normal(size=80)
    c = contrast(dict(enumerate(x)), dict(enumerate(np.zeros(80))), True, Mode(ALPHA, True, 20, "t"), "val_loss")
    margin = c.hi + 0.02
    assert 0 < c.lo
    verdict, p, decided = claim_verdict(c, "a ~ b", margin)
    assert verdict == "supported" and decided == "negligible"
    assert p == c.p_negligible(margin) and p > 1 / avt_evalue(x)   # the old p was the smaller 1/e(0)


def _holm_aware(e_running: np.ndarray) -> np.ndarray:
    """Holm over running anytime p-values (1 / max e so far), per study: [studies, m] → rejected."""
    out = np.zeros(e_running.shape, bool)
    for s in range(len(e_running)):
        out[s] = holm(list(np.minimum(1.0, 1.0 / np.maximum(e_running[s], 1e-300))), ALPHA)
    return out


def _family(d: np.ndarray, looks, keep_going: bool) -> np.ndarray:
    """Per study and hypothesis, whether its decision survives Holm at the end. Each
    hypothesis is looked at until decided at alpha (``keep_going=False``: the old rule) or
    until it survives Holm over the family's current p-values (``True``: tunebook's
    ``still_open``), by the plan's last look at most."""
    studies, m, cap = d.shape
    best_e = np.ones((studies, m))
    open_ = np.ones((studies, m), bool)
    for n in looks:
        x = d[:, :, :n]
        e = np.array([[avt_evalue(x[s, h]) if open_[s, h] else best_e[s, h] for h in range(m)]
                      for s in range(studies)])
        best_e = np.where(open_, np.maximum(best_e, e), best_e)
        if keep_going:
            open_ &= ~_holm_aware(best_e)
        else:
            open_ &= ~(best_e >= 1 / ALPHA)
        if not open_.any():
            break
    return _holm_aware(best_e)


def test_holm_aware_stopping_keeps_true_effects_that_stopping_at_alpha_loses():
    rng = np.random.default_rng(15)
    looks = look_schedule(5, 5, 100)
    d = _paired_family(rng, 150, 5, 100, 0.56)
    before = _family(d, looks, keep_going=False).mean()
    after = _family(d, looks, keep_going=True).mean()
    _report("5 true 0.56-SD effects, share decided after Holm", before=before, after=after)
    assert before < 0.4 and after > 0.85                  # the audit: 13.5 % before


def test_holm_aware_stopping_keeps_the_family_wise_error():
    rng = np.random.default_rng(16)
    looks = look_schedule(5, 5, 100)
    d = _paired_family(rng, 300, 5, 100, 0.0)
    fwer = _family(d, looks, keep_going=True).any(axis=1).mean()
    _report("5 null hypotheses, Holm-aware stopping, family-wise error", after=fwer)
    assert fwer <= ALPHA


# -- best within margin ----------------------------------------------------------------

def _best_sequential(rng, means, margin, studies, looks):
    """Sequential ``best`` of configuration 0 among ``means`` (in SDs of 0.3 points), the
    configurations correlated by 0.6 within a seed (the width grid's measured median)."""
    mode = Mode(ALPHA, sequential=True, looks=len(looks), test="t")
    h = hypothesis(kind="best", select={"units1": 16})
    decided = []
    for _ in range(studies):
        seed = rng.normal(size=(1, looks[-1]))
        noise = rng.normal(size=(len(means), looks[-1]))
        x = 0.87 + 0.003 * (np.asarray(means)[:, None] + math.sqrt(0.6) * seed + math.sqrt(0.4) * noise)
        out = ("inconclusive", looks[-1])
        for n in looks:
            cs = [stats(x[i, :n], layers=(16 * (i + 1), 64)) for i in range(len(means))]
            v = judge(h, cs, ALPHA, mode=mode, margin=0.003 * margin)
            if v.verdict != "inconclusive":
                out = (v.verdict, n)
                break
        decided.append(out)
    return decided


def test_best_within_margin_decides_a_tie_and_rarely_supports_a_claim_false_by_the_margin():
    rng = np.random.default_rng(17)
    looks = look_schedule(5, 5, 100)
    tie = _best_sequential(rng, [1.0, 1.0, 0.0], 0.5, 120, looks)         # the selection ties a rival
    sup = [v for v, _ in tie].count("supported") / len(tie)
    seeds = float(np.median([n for v, n in tie if v == "supported"] or [math.nan]))
    false = _best_sequential(rng, [0.5, 1.0, 0.0], 0.5, 120, looks)       # behind the best by the margin
    false_sup = [v for v, _ in false].count("supported") / len(false)
    _report("best within margin (0.5 SD)", tie_supported=sup, false_by_margin_supported=false_sup)
    print(f"[rates] best within margin: median seeds to support a tie = {seeds:.0f}")
    assert sup >= 0.9 and false_sup <= ALPHA


# -- trend -----------------------------------------------------------------------------

def test_an_inverted_u_is_not_increasing_but_peaks():
    rng = np.random.default_rng(18)
    inc = hypothesis(kind="trend", param="units1", expect="increasing")
    peak = hypothesis(kind="trend", param="units1", expect="peaks")
    studies = 300
    n_inc = n_peak = 0
    for _ in range(studies):
        cs = [stats(rng.normal(m, 0.003, 5), layers=(w, 64)) for w, m in
              zip((32, 64, 128, 256), (0.860, 0.872, 0.874, 0.866))]
        n_inc += judge(inc, cs, ALPHA).verdict == "supported"
        n_peak += judge(peak, cs, ALPHA).verdict == "supported"
    _report("inverted U over 4 values, 5 seeds", increasing_supported=n_inc / studies,
            peaks_supported=n_peak / studies)
    assert n_inc / studies <= ALPHA and n_peak / studies >= 0.5


def test_what_the_bounded_test_costs_large_effects_only():
    """Valid whatever the distribution, but an accuracy difference's range is 200 points:
    it decides a 10-point difference (SD 5) in a median of about 55 seeds, a 0.3-point one
    (SD 0.3) essentially never — the t-test does that in under 20."""
    rng = np.random.default_rng(20)
    looks = look_schedule(5, 5, 200)
    big = rng.normal(0.10, 0.05, (300, 200))
    lo, hi = simulate_betting(big, ALPHA, looks)
    decided = (lo > 0) | (hi < 0)
    seeds = float(np.median([looks[i] for i in decided.argmax(axis=1)[decided.any(axis=1)]]))
    small = rng.normal(0.003, 0.003, (300, 200))
    slo, shi = simulate_betting(small, ALPHA, looks)
    small_rate = ((slo > 0) | (shi < 0)).any(axis=1).mean()
    print(f"\n[rates] bounded test: a 10-point difference (SD 5) decided in {100 * decided.any(axis=1).mean():.0f} % "
          f"by 200 seeds, median {seeds:.0f} seeds; a 0.3-point one (SD 0.3) in {100 * small_rate:.1f} %")
    assert decided.any(axis=1).mean() > 0.95 and 30 <= seeds <= 90
    assert small_rate < 0.05


def test_a_failed_gaussian_check_switches_to_the_bounded_test_and_says_why():
    d = [0.004, 0.002, 0.003, 0.005, 0.003, 0.004, 0.002, 0.003, 0.004, -0.2]   # one seed trained badly
    c = contrast(dict(enumerate(d)), dict(enumerate([0.0] * 10)), True, Mode(ALPHA, test="auto"), "val_acc")
    assert c.kind == "bounded" and "robust SDs from the median" in c.caveat
    t = contrast(dict(enumerate(d)), dict(enumerate([0.0] * 10)), True, Mode(ALPHA, test="t"), "val_acc")
    assert t.kind == "paired-t" and t.caveat == c.caveat and "t-test kept as asked" in t.why
