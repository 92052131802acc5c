"""Winners and the Pareto front of accuracy against cost.

Cost is what belongs to a configuration (:attr:`ConfigStats.cost`: its modelled time to
train alone on its device, see :mod:`.cost`; its FLOPs when no time model exists), never a
trial's share of its group's wall time. The front is computed in the plane that is drawn:
the metric (↑) against cost (↓).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from .aggregate import HIGHER_IS_BETTER, ConfigStats


@dataclass(frozen=True)
class Winners:
    accuracy: ConfigStats          # highest mean accuracy
    fewest_params: ConfigStats     # fewest parameters among those as good as the best
    fastest: ConfigStats           # lowest cost among those as good as the best
    practical: ConfigStats         # the knee of the accuracy/cost Pareto front
    as_good: tuple[ConfigStats, ...]  # not significantly worse than the accuracy winner (paired where pairable)
    front: tuple[ConfigStats, ...]    # Pareto front of (metric, cost), by cost
    metric: str


def score(c: ConfigStats, metric: str) -> float:
    """The metric's mean, signed so that higher is better."""
    return c.stats[metric].mean * (1 if HIGHER_IS_BETTER.get(metric, True) else -1)


def dominates(a: ConfigStats, b: ConfigStats, metric: str) -> bool:
    """``a`` is at least as good in the metric and as cheap, and better in one of them."""
    ka, kb = (score(a, metric), -a.cost), (score(b, metric), -b.cost)
    return all(x >= y for x, y in zip(ka, kb)) and ka != kb


def pareto_front(configs: Sequence[ConfigStats], metric: str = "val_acc") -> list[ConfigStats]:
    """Configurations no other beats in both the metric and cost, cheapest first."""
    ok = [c for c in configs if c.n_complete and math.isfinite(c.stats[metric].mean)]
    front = [c for c in ok if not any(dominates(o, c, metric) for o in ok if o is not c)]
    return sorted(front, key=lambda c: c.cost)


def knee(front: Sequence[ConfigStats], metric: str) -> ConfigStats:
    """The front's point farthest above the chord from its cheapest to its best point,
    on axes normalised to [0, 1] (the "kneedle" idea). Cost on a log scale."""
    pts = sorted(front, key=lambda c: c.cost)
    if len(pts) <= 2:
        return max(pts, key=lambda c: score(c, metric))
    xs = [math.log(max(c.cost, 1e-12)) for c in pts]
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
    from .contrast import Mode, arms_contrast

    mode = Mode(alpha, test="t")
    for c in ok:
        if c is top:
            continue
        if len(c.metric(metric)) >= 2 and len(top.metric(metric)) >= 2:
            try:  # paired by seed where the two share batch size and data, as the verdicts are
                d = arms_contrast([c], [top], metric, mode)
            except ValueError:
                continue
            if not (d.p_equal(0.0) < alpha and sign * d.estimate < 0):
                as_good.append(c)
    front = pareto_front(ok, metric)
    return Winners(
        accuracy=top,
        fewest_params=min(as_good, key=lambda c: (c.params, c.cost)),
        fastest=min(as_good, key=lambda c: (c.cost, c.params)),
        practical=knee(front, metric), as_good=tuple(as_good), front=tuple(front), metric=metric)
