"""Statistics over seeds: summaries, Welch's t-test, equivalence, power, bootstrap.

Pure functions on plain sequences of floats; scipy does the distributions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import special


def t_ppf(q: float, df: float) -> float:
    """Student's t quantile: ``scipy.stats.t.ppf(q, df)``'s own function (``stdtrit``)
    without the distribution wrapper's checks, which cost a simulation most of its time."""
    return float(special.stdtrit(df, q))


def t_sf(x: float, df: float) -> float:
    """Student's t survival function, ``scipy.stats.t.sf(x, df)`` (``stdtr(df, -x)``)."""
    return float(special.stdtr(df, -x))


@dataclass(frozen=True)
class Summary:
    """Mean, standard deviation and 95 % t-interval of the mean over ``n`` values."""

    mean: float
    std: float
    lo: float
    hi: float
    n: int

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=float)
    n = len(x)
    if n == 0:
        return Summary(math.nan, math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n == 1:
        return Summary(mean, math.nan, math.nan, math.nan, 1)
    sd = float(x.std(ddof=1))
    h = t_ppf(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n)
    return Summary(mean, sd, mean - h, mean + h, n)


@dataclass(frozen=True)
class Difference:
    """mean(a) − mean(b) with its confidence interval and Welch's two-sided p-value."""

    diff: float
    lo: float
    hi: float
    p: float
    df: float
    se: float


def welch(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> Difference:
    """Welch's unequal-variance t-test of mean(a) − mean(b) (two-sided)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        p = 1.0 if diff == 0 else 0.0
        return Difference(diff, diff, diff, p, math.inf, 0.0)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = diff / se
    p = 2 * t_sf(abs(t), df)
    h = t_ppf(0.5 + confidence / 2, df) * se
    return Difference(diff, diff - h, diff + h, p, float(df), se)


def tost(a: Sequence[float], b: Sequence[float], margin: float) -> float:
    """Two one-sided tests for |mean(a) − mean(b)| < margin; returns the larger p."""
    from scipy import stats as st  # imported when used: a search never needs it

    d = welch(a, b)
    if d.se == 0:
        return 0.0 if abs(d.diff) < margin else 1.0
    p_low = st.t.sf((d.diff + margin) / d.se, d.df)    # H0: diff <= -margin
    p_high = st.t.cdf((d.diff - margin) / d.se, d.df)  # H0: diff >= +margin
    return float(max(p_low, p_high))


def one_sample(x: Sequence[float], value: float) -> tuple[float, float]:
    """(t, two-sided p) of mean(x) against ``value``."""
    from scipy import stats as st  # imported when used: a search never needs it

    res = st.ttest_1samp(np.asarray(x, float), value)
    return float(res.statistic), float(res.pvalue)


def seeds_needed(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8,
                 two_sample: bool = True, cap: int = 10_000) -> int | None:
    """Seeds per configuration for a two-sided t-test to detect ``effect`` with ``power``.

    Exact power from the noncentral t distribution, searched upward from just below the
    normal approximation. ``None`` when the effect is zero, the noise unknown, or the
    answer above ``cap`` (nothing realistic would resolve it).
    """
    from scipy import stats as st  # imported when used: a search never needs it

    if not (math.isfinite(effect) and math.isfinite(sd)) or effect == 0 or sd == 0:
        return None
    d = abs(effect) / sd
    z = st.norm.ppf(1 - alpha / 2) + st.norm.ppf(power)
    approx = (2 if two_sample else 1) * (z / d) ** 2
    if approx > cap:
        return None
    for n in range(max(2, int(approx) - 2), cap + 1):
        df = 2 * n - 2 if two_sample else n - 1
        nc = d * math.sqrt(n / 2 if two_sample else n)
        crit = st.t.ppf(1 - alpha / 2, df)
        achieved = st.nct.sf(crit, df, nc) + st.nct.cdf(-crit, df, nc)
        if achieved >= power:
            return n
    return None


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    from scipy import stats as st  # imported when used: a search never needs it

    if len(set(x)) < 2 or len(set(y)) < 2:
        return 0.0
    return float(st.spearmanr(x, y).statistic)


def bootstrap_means(groups: Sequence[Sequence[float]], reps: int, rng: np.random.Generator) -> np.ndarray:
    """``[reps, len(groups)]`` means of each group resampled with replacement (seeds)."""
    out = np.empty((reps, len(groups)))
    for j, g in enumerate(groups):
        g = np.asarray(g, float)
        idx = rng.integers(0, len(g), size=(reps, len(g)))
        out[:, j] = g[idx].mean(axis=1)
    return out
