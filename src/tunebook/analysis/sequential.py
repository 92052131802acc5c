"""Decisions that stay valid when seeds are added until a decision is reached.

Looking at a fixed-alpha test after every round of seeds and stopping at the first
"significant" look inflates false decisions (with 20 looks, a 5 % t-test errs in about a
quarter of null studies). The procedures here control the error over *all* looks.

**Paired (same seeds in both arms, pairing meaningful): the anytime-valid t-test.**
Wang & Ramdas (2023, arXiv 2310.03722, after Lai 1976) mix the Gaussian likelihood ratio
over the standardised effect δ = μ/σ with a N(0, 1/c²) prior and over σ with the right
Haar measure dσ/σ. For per-seed differences d₁…dₙ, with S = Σ(dᵢ − m) and V = Σ(dᵢ − m)²,
testing "the mean difference is m" gives the test martingale

    Mₙ(m) = √(c² / (n + c²)) · (1 − S² / ((n + c²) V))^(−n/2),

so by Ville's inequality P(∃ n: Mₙ(true mean) ≥ 1/α) ≤ α. Inverting it gives a
confidence *sequence* — an interval for every n, all of which hold at once with
probability ≥ 1 − α — and it has a closed form (:func:`avt_interval`): with
Q = Σ(dᵢ − d̄)², K = √((n + c²)/c²) / α and R = (n + c²)(1 − K^(−2/n)),

    d̄ ± √(R·Q / (n (n − R)))      (the whole line while R ≥ n).

Because the coverage holds for all n simultaneously, any stopping rule keeps it.

**Unpaired: Welch's interval with alpha split over the planned looks.** With at most
``looks`` looks, look k uses Welch's interval at level 1 − α/looks (Bonferroni over the
looks: valid for any stopping rule within them, conservative).

**The decision** (:func:`decide`), from the interval at the current look:
the interval above 0 → "a > b"; below 0 → "a < b"; inside (−margin, +margin) →
"negligible" (a difference smaller than the smallest effect of interest); otherwise
"undecided". All three decisions come from one time-uniform interval, so the chance of
any wrong decision over the whole adaptive run is at most α (proved by simulation in
``tests/analysis/test_sequential.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import special

#: Prior precision of the standardised effect in the mixture: c = 1 puts the prior's
#: spread at one standard deviation of the per-seed difference, the scale of the effects
#: worth deciding in a study of tens of seeds.
C_DEFAULT = 1.0
DECISIONS = ("a > b", "a < b", "negligible", "undecided")


def avt_evalue(d: Sequence[float], m: float = 0.0, c: float = C_DEFAULT) -> float:
    """The anytime-valid t-test's e-value Mₙ(m) for "the mean of ``d`` is m"."""
    x = np.asarray(d, float) - m
    n = len(x)
    if n < 2:
        return 1.0
    s, v = float(x.sum()), float((x * x).sum())
    if v == 0:
        return math.inf if s != 0 else 1.0
    ratio = max(1.0 - s * s / ((n + c * c) * v), 1e-300)
    log_e = 0.5 * math.log(c * c / (n + c * c)) - (n / 2) * math.log(ratio)
    return math.exp(log_e) if log_e < 700 else math.inf  # in logs: hundreds of seeds overflow a float


def avt_interval(d: Sequence[float], alpha: float = 0.05, c: float = C_DEFAULT) -> tuple[float, float, float]:
    """(mean, lo, hi): the 1 − alpha confidence sequence of the mean of ``d`` at this n."""
    x = np.asarray(d, float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return mean, -math.inf, math.inf
    q = float(((x - mean) ** 2).sum())
    r = _avt_r(n, alpha, c)
    if r >= n:
        return mean, -math.inf, math.inf
    h = math.sqrt(r * q / (n * (n - r)))
    return mean, mean - h, mean + h


def _avt_r(n: int, alpha: float, c: float) -> float:
    log_k = 0.5 * math.log((n + c * c) / (c * c)) - math.log(alpha)
    return (n + c * c) * -math.expm1(-2.0 * log_k / n)


def welch_interval(a: Sequence[float], b: Sequence[float], alpha: float) -> tuple[float, float, float]:
    """(mean(a) − mean(b), lo, hi) at level 1 − alpha, Welch's degrees of freedom."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return diff, -math.inf, math.inf
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    h = float(special.stdtrit(df, 1 - alpha / 2)) * se  # scipy.stats.t.ppf's own function
    return diff, diff - h, diff + h


@dataclass(frozen=True)
class Look:
    """One look at a comparison: the interval that holds over all looks, and the decision."""

    test: str             # which procedure, in words
    n: int                # seeds per arm (pairs for the paired test)
    estimate: float       # mean(a) − mean(b)
    lo: float
    hi: float
    decision: str         # one of DECISIONS
    threshold: str        # the per-look rule, e.g. "e ≥ 20" or "Welch at level 1 − 0.05/20"


def decide(estimate: float, lo: float, hi: float, margin: float = 0.0) -> str:
    if lo > 0:
        return "a > b"
    if hi < 0:
        return "a < b"
    if margin > 0 and -margin < lo and hi < margin:
        return "negligible"
    return "undecided"


def paired_look(a: Sequence[float], b: Sequence[float], alpha: float = 0.05, margin: float = 0.0,
                c: float = C_DEFAULT) -> Look:
    """``a`` and ``b`` are per-seed values of the two arms, in the same seed order."""
    if len(a) != len(b):
        raise ValueError(f"paired arms need the same seeds, got {len(a)} and {len(b)} values")
    d = np.asarray(a, float) - np.asarray(b, float)
    est, lo, hi = avt_interval(d, alpha, c)
    return Look(f"anytime-valid paired t-test (Wang & Ramdas 2023, c = {c:g})", len(d), est, lo, hi,
                decide(est, lo, hi, margin), f"e-value ≥ {1 / alpha:g} (interval: the {1 - alpha:.0%} confidence sequence)")


def welch_look(a: Sequence[float], b: Sequence[float], alpha: float = 0.05, margin: float = 0.0,
               looks: int = 20) -> Look:
    """Welch's interval at level 1 − alpha/looks: valid over at most ``looks`` looks."""
    est, lo, hi = welch_interval(a, b, alpha / looks)
    return Look(f"Welch's t-interval, alpha split over {looks} planned looks", min(len(a), len(b)), est, lo, hi,
                decide(est, lo, hi, margin), f"two-sided level {1 - alpha / looks:.4f} at each look")


def look_schedule(start: int, step: int, cap: int) -> list[int]:
    """Seeds per arm at each look: start, start + step, ... and the cap."""
    if not (2 <= start <= cap and step >= 1):
        raise ValueError(f"need 2 <= start <= cap and step >= 1, got start={start}, step={step}, cap={cap}")
    ns = list(range(start, cap + 1, step))
    return ns if ns[-1] == cap else ns + [cap]


def simulate(a: np.ndarray, b: np.ndarray, paired: bool, alpha: float = 0.05, margin: float = 0.0,
             start: int = 3, step: int = 3, c: float = C_DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """Run the adaptive procedure on many studies at once: ``a``, ``b`` are [studies, cap]
    per-seed values (seed i of a pairs with seed i of b). Each study looks at
    :func:`look_schedule` (start, step, cap) and stops at its first decision.

    Returns (decision index into DECISIONS, seeds per arm used) per study. The same
    intervals as :func:`paired_look` / :func:`welch_look`, vectorised (tested equal)."""
    studies, cap = a.shape
    ns = look_schedule(start, step, cap)
    decision = np.full(studies, DECISIONS.index("undecided"))
    used = np.full(studies, cap)
    open_ = np.ones(studies, bool)
    for n in ns:
        if paired:
            d = a[:, :n] - b[:, :n]
            est = d.mean(axis=1)
            q = ((d - est[:, None]) ** 2).sum(axis=1)
            r = _avt_r(n, alpha, c)
            h = np.sqrt(r * q / (n * (n - r))) if r < n else np.full(studies, np.inf)
        else:
            xa, xb = a[:, :n], b[:, :n]
            est = xa.mean(axis=1) - xb.mean(axis=1)
            va, vb = xa.var(axis=1, ddof=1) / n, xb.var(axis=1, ddof=1) / n
            se = np.sqrt(va + vb)
            with np.errstate(divide="ignore", invalid="ignore"):
                df = (va + vb) ** 2 / ((va ** 2 + vb ** 2) / (n - 1))
            h = special.stdtrit(np.nan_to_num(df, nan=n - 1.0), 1 - alpha / len(ns) / 2) * se
        lo, hi = est - h, est + h
        now = np.select([lo > 0, hi < 0, (margin > 0) & (lo > -margin) & (hi < margin)], [0, 1, 2], 3)
        newly = open_ & (now != 3)
        decision[newly], used[newly] = now[newly], n
        open_ &= ~newly
        if not open_.any():
            break
    return decision, used
