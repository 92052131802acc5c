"""Which of a few configurations is best, and how sure: a paired bootstrap over seeds.

After a search, the proposal with the best mean over its few seeds is partly the
luckiest (the maximum of many noisy means is biased upwards). Confirmed proposals train
on the same, larger set of seeds; trials of one seed share their data order and dropout
masks, so their values are paired by seed. Resampling the *seeds* (all proposals
together, keeping the pairing) and counting how often each proposal has the best mean
estimates its probability of being the best — the chance that, re-run on fresh seeds of
this size, it would come out on top. Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .stats import t_ppf


@dataclass(frozen=True)
class BestEstimate:
    """One candidate: its mean over the common seeds with a 95 % t-interval, and its
    probability of being the best with the bootstrap's 95 % Monte Carlo interval."""

    index: int
    n: int
    mean: float
    low: float
    high: float
    p_best: float
    p_low: float
    p_high: float


def prob_best(values: Sequence[Sequence[float]], maximize: bool = True, n_boot: int = 4000,
              seed: int = 0) -> list[BestEstimate]:
    """``values[i][j]``: candidate ``i`` on seed ``j`` (the same seeds for all, in one
    order). Ties split the win evenly."""
    x = np.asarray(values, dtype=float)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError("prob_best needs every candidate on the same two or more seeds")
    k, n = x.shape
    sign = 1.0 if maximize else -1.0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    means = x[:, idx].mean(axis=2) * sign                       # [k, n_boot]
    top = means.max(axis=0)
    winners = (means == top)                                     # ties: shared
    wins = (winners / winners.sum(axis=0)).sum(axis=1) / n_boot
    out = []
    t = t_ppf(0.975, n - 1)
    for i in range(k):
        m, sd = float(x[i].mean()), float(x[i].std(ddof=1))
        half = t * sd / math.sqrt(n)
        p = float(wins[i])
        mc = 1.96 * math.sqrt(max(p * (1 - p), 1e-12) / n_boot)  # Monte Carlo error of the estimate
        out.append(BestEstimate(i, n, m, m - half, m + half, p, max(0.0, p - mc), min(1.0, p + mc)))
    return out
