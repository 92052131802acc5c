"""Winners and the Pareto front over (accuracy ↑, seconds ↓, parameters ↓)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .aggregate import HIGHER_IS_BETTER, ConfigStats
from .stats import welch


@dataclass(frozen=True)
class Winners:
    accuracy: ConfigStats          # highest mean accuracy
    fewest_params: ConfigStats     # fewest parameters among those as good as the best
    fastest: ConfigStats           # fewest seconds among those as good as the best
    practical: ConfigStats         # the knee of the accuracy/seconds Pareto front
    as_good: tuple[ConfigStats, ...]  # not significantly worse than the accuracy winner
    front: tuple[ConfigStats, ...]    # Pareto front, by seconds
    metric: str


def score(c: ConfigStats, metric: str) -> float:
    """The metric's mean, signed so that higher is better."""
    return c.stats[metric].mean * (1 if HIGHER_IS_BETTER.get(metric, True) else -1)


def dominates(a: ConfigStats, b: ConfigStats, metric: str) -> bool:
    ka = (score(a, metric), -a.stats["train_seconds"].mean, -a.params)
    kb = (score(b, metric), -b.stats["train_seconds"].mean, -b.params)
    return all(x >= y for x, y in zip(ka, kb)) and ka != kb


def pareto_front(configs: Sequence[ConfigStats], metric: str = "val_acc") -> list[ConfigStats]:
    ok = [c for c in configs if c.n_complete and math.isfinite(c.stats[metric].mean)]
    front = [c for c in ok if not any(dominates(o, c, metric) for o in ok if o is not c)]
    return sorted(front, key=lambda c: c.stats["train_seconds"].mean)


def knee(front: Sequence[ConfigStats], metric: str) -> ConfigStats:
    """The front's point farthest above the chord from its cheapest to its best point,
    on axes normalised to [0, 1] (the "kneedle" idea). Seconds on a log scale."""
    pts = sorted(front, key=lambda c: c.stats["train_seconds"].mean)
    if len(pts) <= 2:
        return max(pts, key=lambda c: score(c, metric))
    xs = [math.log(max(c.stats["train_seconds"].mean, 1e-9)) for c in pts]
    ys = [score(c, metric) for c in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    nx = [(x - x0) / (x1 - x0 or 1) for x in xs]
    ny = [(y - y0) / (y1 - y0 or 1) for y in ys]
    best = max(range(len(pts)), key=lambda i: ny[i] - nx[i])
    return pts[best]


def winners(configs: Sequence[ConfigStats], metric: str = "val_acc", alpha: float = 0.05) -> Winners | None:
    ok = [c for c in configs if c.n_complete and math.isfinite(c.stats[metric].mean)]
    if not ok:
        return None
    top = max(ok, key=lambda c: score(c, metric))
    sign = 1 if HIGHER_IS_BETTER.get(metric, True) else -1
    as_good = [top]
    for c in ok:
        if c is top:
            continue
        a, b = c.metric(metric), top.metric(metric)
        if len(a) >= 2 and len(b) >= 2:
            d = welch(a, b)
            if not (d.p < alpha and sign * d.diff < 0):
                as_good.append(c)
    front = pareto_front(ok, metric)
    return Winners(
        accuracy=top,
        fewest_params=min(as_good, key=lambda c: (c.params, c.stats["train_seconds"].mean)),
        fastest=min(as_good, key=lambda c: (c.stats["train_seconds"].mean, c.params)),
        practical=knee(front, metric), as_good=tuple(as_good), front=tuple(front), metric=metric)
