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
from scipy import stats as st

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


def log_capital(x01: Sequence[float], m: np.ndarray, alpha: float) -> np.ndarray:
    """log Kₙ(m) of values ``x01`` in [0, 1] at each candidate mean ``m`` (an array in (0, 1))."""
    x = np.asarray(x01, float)
    m = np.asarray(m, float)
    lam = _bets(x, alpha)[:, None]                               # [n, 1]
    up = np.minimum(lam, BET_CAP / m[None, :])
    down = np.minimum(lam, BET_CAP / (1 - m[None, :]))
    dev = x[:, None] - m[None, :]
    with np.errstate(divide="ignore"):
        lp = np.log1p(up * dev).sum(axis=0)
        lm = np.log1p(-down * dev).sum(axis=0)
    return np.logaddexp(lp, lm) + math.log(0.5)


def betting_interval(x: Sequence[float], alpha: float = 0.05, low: float = -1.0, high: float = 1.0,
                     grid: int = GRID) -> tuple[float, float, float]:
    """(mean, lo, hi): the 1 − alpha betting confidence sequence of the mean of ``x`` (values in
    [low, high]) at this n, intersected over every earlier n (all hold at once)."""
    v = np.asarray(x, float)
    n = len(v)
    mean = float(v.mean()) if n else math.nan
    if n == 0:
        return mean, low, high
    if v.min() < low or v.max() > high:
        raise ValueError(f"values outside the declared range [{low:g}, {high:g}]")
    x01 = (v - low) / (high - low)
    m = (np.arange(grid) + 0.5) / grid                             # open grid over (0, 1)
    keep = np.ones(grid, bool)
    lam = _bets(x01, alpha)
    up = np.minimum(lam[:, None], BET_CAP / m[None, :])
    down = np.minimum(lam[:, None], BET_CAP / (1 - m[None, :]))
    dev = x01[:, None] - m[None, :]
    lp = np.cumsum(np.log1p(up * dev), axis=0)
    lm = np.cumsum(np.log1p(-down * dev), axis=0)
    cap = np.logaddexp(lp, lm) + math.log(0.5)                      # [n, grid]
    keep = (cap < math.log(1 / alpha)).all(axis=0)                 # never rejected up to n
    if not keep.any():  # every candidate rejected: the values sit on one point of the grid
        return mean, mean, mean
    inside = m[keep]
    step = 0.5 / grid
    lo01, hi01 = max(0.0, inside.min() - step), min(1.0, inside.max() + step)
    return mean, low + lo01 * (high - low), low + hi01 * (high - low)


def betting_pvalue(x: Sequence[float], value: float, alpha_for_bets: float = 0.05, low: float = -1.0,
                   high: float = 1.0) -> float:
    """An anytime-valid p-value for "the mean of ``x`` is ``value``": 1 / the largest capital so far."""
    v = np.asarray(x, float)
    if len(v) == 0:
        return 1.0
    x01 = (v - low) / (high - low)
    m = min(max((value - low) / (high - low), 1e-9), 1 - 1e-9)
    lam = _bets(x01, alpha_for_bets)
    up = np.minimum(lam, BET_CAP / m)
    down = np.minimum(lam, BET_CAP / (1 - m))
    lp = np.cumsum(np.log1p(up * (x01 - m)))
    lm = np.cumsum(np.log1p(-down * (x01 - m)))
    top = float((np.logaddexp(lp, lm) + math.log(0.5)).max())
    return float(min(1.0, math.exp(-top))) if top > 0 else 1.0


def simulate_betting(x: np.ndarray, alpha: float, looks: Sequence[int], low: float = -1.0, high: float = 1.0,
                     grid: int = 801) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) of the betting confidence sequence at each look, for many studies at once:
    ``x`` is [studies, n] (values in [low, high]); returns two [studies, len(looks)] arrays."""
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
        up = np.minimum(lam[:, i:i + 1], BET_CAP / m[None, :])
        down = np.minimum(lam[:, i:i + 1], BET_CAP / (1 - m[None, :]))
        dev = x01[:, i:i + 1] - m[None, :]
        lp += np.log1p(up * dev)
        lm += np.log1p(-down * dev)
        alive &= (np.logaddexp(lp, lm) + math.log(0.5)) < thresh
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


def diagnose(x: Sequence[float]) -> Diagnosis:
    """The t-test's assumption checked on per-seed values (differences, for a comparison):
    unsafe when, with at least :data:`MIN_N` seeds, D'Agostino's skewness test gives
    p < :data:`SKEW_P`, or a seed lies more than :data:`OUTLIER_MADS` normal-consistent
    median absolute deviations from the median (a few bad seeds). Fewer seeds cannot be
    checked (said, not flagged)."""
    v = np.asarray(x, float)
    n = len(v)
    if n < MIN_N:
        return Diagnosis(n, math.nan, 0, False, "")
    spread = v.std() > 0
    skew = float(st.skew(v, bias=False)) if spread else 0.0
    p = float(st.skewtest(v).pvalue) if spread else 1.0
    med = float(np.median(v))
    mad = 1.4826 * float(np.median(np.abs(v - med))) or 1.2533 * float(np.mean(np.abs(v - med)))
    outliers = int((np.abs(v - med) > OUTLIER_MADS * mad).sum()) if mad > 0 else 0
    why = []
    if p < SKEW_P:
        why.append(f"skewness {skew:+.2f}, skewness test p = {p:.2g}")
    if outliers:
        why.append(f"{outliers} seed{'s' if outliers != 1 else ''} more than {OUTLIER_MADS:g} robust SDs from "
                   "the median")
    return Diagnosis(n, skew, outliers, bool(why), "; ".join(why))


def diagnose_many(x: np.ndarray) -> np.ndarray:
    """:func:`diagnose`'s verdict (unsafe or not) for each row of ``x`` [studies, n], vectorised."""
    n = x.shape[1]
    if n < MIN_N:
        return np.zeros(len(x), bool)
    med = np.median(x, axis=1, keepdims=True)
    mad = 1.4826 * np.median(np.abs(x - med), axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = ((np.abs(x - med) > OUTLIER_MADS * mad) & (mad > 0)).any(axis=1)
        p = st.skewtest(x, axis=1).pvalue
    return out | (np.nan_to_num(p, nan=1.0) < SKEW_P)
