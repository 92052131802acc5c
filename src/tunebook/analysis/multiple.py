"""Many hypotheses in one study: Holm's step-down adjustment.

A study of 26 hypotheses judged each at alpha = 0.05 calls at least one of them decided by
chance in most studies where none is true. Holm (1979): sort the p-values p₍₁₎ ≤ … ≤ p₍ₘ₎
and keep rejecting while p₍ᵢ₎ ≤ alpha / (m − i + 1); the chance of any false decision
(the family-wise error rate) is then at most alpha, whatever the dependence between the
tests, and no test is weaker than Bonferroni's alpha / m.

tunebook reports each verdict as judged *and* whether it survives Holm over the study's
decided-or-not hypotheses with a p-value (a verdict decided for want of data has none).
"""

from __future__ import annotations

import math
from typing import Sequence


def holm(p_values: Sequence[float], alpha: float = 0.05) -> list[bool]:
    """For each p-value, whether Holm's procedure at ``alpha`` rejects its null.
    NaN p-values (no test was run) are not rejected and do not count in m."""
    idx = [i for i, p in enumerate(p_values) if isinstance(p, float) and not math.isnan(p)]
    m = len(idx)
    reject = [False] * len(p_values)
    for rank, i in enumerate(sorted(idx, key=lambda i: p_values[i])):
        if p_values[i] > alpha / (m - rank):
            break
        reject[i] = True
    return reject
