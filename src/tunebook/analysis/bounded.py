"""A confidence sequence for the mean of bounded values, whatever their distribution.

The anytime t-test (:mod:`.sequential`) assumes Gaussian per-seed values; on skewed ones —
a study where a few seeds train badly — it errs more often than alpha. An accuracy lies
in [0, 1] and a difference of two in [−1, 1], and for bounded values a test needs no
distributional assumption at all: Waudby-Smith & Ramdas (2023, "Estimating means of
bounded random variables by betting", JRSS-B) bet against each candidate mean m and
reject it once the bettor's capital reaches 1/alpha. On values rescaled to [0, 1],

    K⁺ₙ(m) = ∏ (1 + λᵢ⁺ (xᵢ − m)),   K⁻ₙ(m) = ∏ (1 − λᵢ⁻ (xᵢ − m)),
    Kₙ(m) = max(½ K⁺ₙ(m), ½ K⁻ₙ(m))                 (the "hedged" capital),

with bets chosen from the values before i (predictable plug-in: λᵢ = √(2 log(2/α) /
(σ̂²ᵢ₋₁ i log(1 + i))), truncated to [0, c/m] and [0, c/(1 − m)], c = ¾). Under the true
mean both products are non-negative martingales, so by Ville's inequality the set
{m : Kₙ(m) < 1/α} covers it at every n at once with probability ≥ 1 − α: a confidence
sequence, valid under any stopping rule and any distribution on the range.

The price of assuming nothing is width: the bet can never exceed ~1/range, so an
interval narrows like range · log(1/α) / n rather than σ / √n. For accuracy differences
whose seed-to-seed spread is a few tenths of a point on a range of 200 points it decides
only large effects; tunebook uses it where the t-test's assumption visibly fails
(:func:`diagnose`) or where a study asks for it, and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import special

BET_CAP = 0.75         # c: the largest fraction of the capital bet at once (any c < 1 is valid)
GRID = 4001            # candidate means (per unit of the rescaled range) for the vectorised simulation
#: The diagnostic's rules (see :func:`diagnose`), chosen so that Gaussian values are
#: flagged rarely (1.5 % at 8 seeds, 0.2 % at 20, 0.1 % at 50 and more: measured in
#: tests/analysis/test_skew.py) while a few bad seeds are caught.
MIN_N = 8              # fewer values cannot be checked
SKEW_P = 0.001         # D'Agostino's skewness test below this p-value...
OUTLIER_MADS = 7.0     # ...or a value this many (normal-consistent) MADs from the median


def _bets(x: np.ndarray, alpha: float) -> np.ndarray:
    """Predictable plug-in bets λᵢ (before truncation) for values ``x`` in [0, 1], along the last axis."""
    n = x.shape[-1]
    i = np.arange(1, n + 1)
    csum = np.cumsum(x, axis=-1)
    mu = (0.5 + csum) / (i + 1)                                  # μ̂ᵢ from x₁..xᵢ
    mu_prev = np.concatenate([np.full(x.shape[:-1] + (1,), 0.5), mu[..., :-1]], axis=-1)
    sq = np.cumsum((x - mu_prev) ** 2, axis=-1)
    var = (0.25 + sq) / (i + 1)                                  # σ̂²ᵢ
    var_prev = np.concatenate([np.full(x.shape[:-1] + (1,), 0.25), var[..., :-1]], axis=-1)
    return np.sqrt(2 * math.log(2 / alpha) / (var_prev * i * np.log1p(i)))


def _gains(x01: np.ndarray, lam: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One step's log gains of the two bettors, at candidate means ``m`` (broadcast)."""
    dev = x01 - m
    return (np.log1p(np.minimum(lam, BET_CAP / m) * dev),
            np.log1p(-np.minimum(lam, BET_CAP / (1 - m)) * dev))


def _hedged(lp: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """log Kₙ(m) of the hedged capital from the two bettors' log capitals."""
    return np.logaddexp(lp, lm) + math.log(0.5)


def _capital_path(x01: np.ndarray, m: np.ndarray, alpha: float) -> np.ndarray:
    """log Kₙ(m) after each value: [n, len(m)]."""
    up, down = _gains(x01[:, None], _bets(x01, alpha)[:, None], m[None, :])
    return _hedged(np.cumsum(up, axis=0), np.cumsum(down, axis=0))


def _scaled(x: Sequence[float], low: float, high: float) -> np.ndarray:
    v = np.asarray(x, float)
    if len(v) and (v.min() < low or v.max() > high):
        raise ValueError(f"values outside the declared range [{low:g}, {high:g}]")
    return (v - low) / (high - low)


def betting_interval(x: Sequence[float], alpha: float = 0.05, low: float = -1.0, high: float = 1.0,
                     grid: int = GRID) -> tuple[float, float, float]:
    """(mean, lo, hi): the 1 − alpha betting confidence sequence of the mean of ``x`` (values in
    [low, high]) at this n, intersected over every earlier n (all hold at once)."""
    x01 = _scaled(x, low, high)
    if len(x01) == 0:
        return math.nan, low, high
    mean = float(np.mean(x))
    m = (np.arange(grid) + 0.5) / grid                             # open grid over (0, 1)
    keep = (_capital_path(x01, m, alpha) < math.log(1 / alpha)).all(axis=0)  # never rejected up to n
    if not keep.any():  # every candidate rejected: the values sit on one point of the grid
        return mean, mean, mean
    step = 0.5 / grid
    lo01, hi01 = max(0.0, m[keep].min() - step), min(1.0, m[keep].max() + step)
    return mean, low + lo01 * (high - low), low + hi01 * (high - low)


def betting_pvalue(x: Sequence[float], value: float, alpha_for_bets: float = 0.05, low: float = -1.0,
                   high: float = 1.0) -> float:
    """An anytime-valid p-value for "the mean of ``x`` is ``value``": 1 / the largest capital so far."""
    x01 = _scaled(x, low, high)
    if len(x01) == 0:
        return 1.0
    m = np.array([min(max((value - low) / (high - low), 1e-9), 1 - 1e-9)])
    top = float(_capital_path(x01, m, alpha_for_bets).max())
    return float(min(1.0, math.exp(-top))) if top > 0 else 1.0


def simulate_betting(x: np.ndarray, alpha: float, looks: Sequence[int], low: float = -1.0, high: float = 1.0,
                     grid: int = 801) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) of the betting confidence sequence at each look, for many studies at once:
    ``x`` is [studies, n] (values in [low, high]); returns two [studies, len(looks)] arrays.
    The same capital as :func:`betting_interval`, step by step (a [studies, n, grid] array
    would not fit in memory)."""
    x01 = (np.clip(x, low, high) - low) / (high - low)
    studies, n = x01.shape
    m = (np.arange(grid) + 0.5) / grid
    lam = _bets(x01, alpha)                                        # [studies, n]
    lp = np.zeros((studies, grid))
    lm = np.zeros((studies, grid))
    alive = np.ones((studies, grid), bool)
    lo = np.empty((studies, len(looks)))
    hi = np.empty((studies, len(looks)))
    thresh = math.log(1 / alpha)
    j = 0
    for i in range(n):
        up, down = _gains(x01[:, i:i + 1], lam[:, i:i + 1], m[None, :])
        lp += up
        lm += down
        alive &= _hedged(lp, lm) < thresh
        while j < len(looks) and looks[j] == i + 1:
            any_ = alive.any(axis=1)
            first = np.where(any_, alive.argmax(axis=1), grid // 2)
            last = np.where(any_, grid - 1 - alive[:, ::-1].argmax(axis=1), grid // 2)
            lo[:, j] = low + (m[first] - 0.5 / grid) * (high - low)
            hi[:, j] = low + (m[last] + 0.5 / grid) * (high - low)
            j += 1
    return lo, hi


@dataclass(frozen=True)
class Diagnosis:
    """Whether per-seed values look Gaussian enough for the t-test, and why not."""

    n: int
    skewness: float
    outliers: int          # values more than OUTLIER_MADS robust deviations from the median
    unsafe: bool
    why: str               # in words ("" when safe)


def _checks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(skewness-test p-value, values beyond :data:`OUTLIER_MADS` robust SDs) for each row of
    ``x`` [studies, n ≥ MIN_N]. The robust SD is 1.4826 · MAD, or 1.2533 · the mean absolute
    deviation where more than half the values are equal (MAD 0)."""
    med = np.median(x, axis=1, keepdims=True)
    dev = np.abs(x - med)
    mad = 1.4826 * np.median(dev, axis=1, keepdims=True)
    mad = np.where(mad > 0, mad, 1.2533 * dev.mean(axis=1, keepdims=True))
    outliers = ((dev > OUTLIER_MADS * mad) & (mad > 0)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.nan_to_num(skew_test_p(x), nan=1.0)
    return np.where(x.std(axis=1) > 0, p, 1.0), outliers


def _adjusted_skewness(v: np.ndarray) -> float:
    """The adjusted Fisher–Pearson skewness G1 = g1 · √(n(n−1)) / (n−2) (``scipy.stats.skew``
    with ``bias=False``)."""
    n = len(v)
    d = v - v.mean()
    g1 = (d ** 3).mean() / (d ** 2).mean() ** 1.5
    return float(g1 * math.sqrt(n * (n - 1)) / (n - 2))


def skew_test_p(x: np.ndarray) -> np.ndarray:
    """D'Agostino's (1970) test of zero skewness, two-sided p-value per row of ``x``
    [rows, n ≥ 8]: the sample skewness g1 = m3 / m2^1.5 transformed to a standard normal
    Z (D'Agostino, Belanger & D'Agostino 1990, eqs. 2–4) — what ``scipy.stats.skewtest``
    computes, written out here because its wrapper's checks cost a simulation most of its
    time (``tests/analysis/test_stats.py`` holds the two equal)."""
    n = x.shape[1]
    d = x - x.mean(axis=1, keepdims=True)
    m2, m3 = (d ** 2).mean(axis=1), (d ** 3).mean(axis=1)
    g1 = m3 / m2 ** 1.5
    y = g1 * math.sqrt((n + 1) * (n + 3) / (6.0 * (n - 2)))
    beta2 = 3.0 * (n * n + 27 * n - 70) * (n + 1) * (n + 3) / ((n - 2.0) * (n + 5) * (n + 7) * (n + 9))
    w2 = -1.0 + math.sqrt(2.0 * (beta2 - 1.0))
    delta = 1.0 / math.sqrt(0.5 * math.log(w2))
    alpha = math.sqrt(2.0 / (w2 - 1.0))
    y = np.where(y == 0, 1.0, y)
    z = delta * np.log(y / alpha + np.sqrt((y / alpha) ** 2 + 1.0))
    return special.erfc(np.abs(z) / math.sqrt(2.0))


def diagnose(x: Sequence[float]) -> Diagnosis:
    """The t-test's assumption checked on per-seed values (differences, for a comparison):
    unsafe when, with at least :data:`MIN_N` seeds, D'Agostino's skewness test gives
    p < :data:`SKEW_P`, or a seed lies more than :data:`OUTLIER_MADS` robust SDs from the
    median (a few bad seeds). Fewer seeds cannot be checked (said, not flagged)."""
    v = np.asarray(x, float)
    n = len(v)
    if n < MIN_N:
        return Diagnosis(n, math.nan, 0, False, "")
    (p,), (outliers,) = _checks(v[None, :])
    skew = _adjusted_skewness(v) if v.std() > 0 else 0.0
    why = []
    if p < SKEW_P:
        why.append(f"skewness {skew:+.2f}, skewness test p = {p:.2g}")
    if outliers:
        why.append(f"{outliers} seed{'s' if outliers != 1 else ''} more than {OUTLIER_MADS:g} robust SDs from "
                   "the median")
    return Diagnosis(n, skew, int(outliers), bool(why), "; ".join(why))


def diagnose_many(x: np.ndarray) -> np.ndarray:
    """:func:`diagnose`'s verdict (unsafe or not) for each row of ``x`` [studies, n], vectorised."""
    if x.shape[1] < MIN_N:
        return np.zeros(len(x), bool)
    p, outliers = _checks(x)
    return (p < SKEW_P) | (outliers > 0)
