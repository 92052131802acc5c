"""One comparison of two arms, the same way in every verdict: per-seed arms, then one
interval and the p-values of the claims it can decide.

**Arms, never pooled runs.** An arm is a selector's configurations. Its value on a seed is
the mean over its configurations *on that seed* (on the seeds all of them completed), so
an arm of four configurations observed on five seeds is five observations, not twenty:
configurations are not seeds, and trials of one seed share their data order and dropout
masks, so they are correlated. (Counting them as independent decided a true null in 35 %
of sequential studies at a within-seed correlation of 0.6; ``tests/analysis`` measures it.)

**Paired or not.** Two arms are paired by seed when every configuration of both shares the
batch size and the data (then a seed fixes the data order): the test is on the per-seed
differences over the seeds both arms have. Otherwise the arms are compared by Welch.

**Which interval** (:class:`Mode`), the one rule for a plain run and ``--until-decided``:

============  =====================================  ============================================
              fixed n (a plain run)                  sequential (``--until-decided``, looks)
============  =====================================  ============================================
paired        paired t-interval                      anytime-valid t (Wang & Ramdas 2023)
unpaired      Welch                                  Welch at alpha / looks (Bonferroni)
bounded       betting confidence sequence            the same (valid at every look)
============  =====================================  ============================================

``bounded`` (:mod:`.bounded`) assumes only that the metric lies in its range (an accuracy
in [0, 1]); it is used where the study asks (``[study] test = "bounded"``) or, with
``test = "auto"`` (the default), where the per-seed values fail the t-test's Gaussian
check (:func:`.bounded.diagnose`) — for paired arms on the differences, otherwise on each
arm.

**Decisions and their p-values** (:meth:`Contrast.p`): "a > b" / "a < b" test Δ = 0;
"negligible" tests |Δ| ≥ margin (two one-sided tests); "beyond the margin" tests
|Δ| ≤ margin on the side of the estimate. Each decision's p-value tests the claim it makes,
so Holm's adjustment over a study's hypotheses works on the right numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .aggregate import ConfigStats
from .bounded import betting_interval, betting_pvalue, diagnose
from .sequential import avt_evalue, avt_interval
from .stats import t_ppf, t_sf, welch

#: Fields two configurations must share for a seed to fix the same data order.
PAIR_KEYS = ("batch_size", "dataset", "validation", "split_seed", "train_subset")
#: Metrics with a known range (for the bounded test).
RANGES = {"val_acc": (0.0, 1.0), "test_acc": (0.0, 1.0), "train_acc": (0.0, 1.0)}
TESTS = ("auto", "t", "bounded")


@dataclass(frozen=True)
class Mode:
    """How a verdict is judged: at a fixed n, or at one of ``looks`` planned looks."""

    alpha: float = 0.05
    sequential: bool = False
    looks: int = 1
    test: str = "auto"          # auto | t | bounded

    @property
    def split(self) -> float:
        """The alpha of an unpaired t-test at one look (Bonferroni over the looks)."""
        return self.alpha / self.looks if self.sequential else self.alpha


def arm(cs: Sequence[ConfigStats], metric: str) -> dict[int, float]:
    """Seed → the arm's value on that seed: the mean over its configurations, on the seeds
    every one of them completed."""
    if not cs:
        return {}
    common = set(cs[0].seeds)
    for c in cs[1:]:
        common &= set(c.seeds)
    at = [dict(zip(c.seeds, c.metric(metric))) for c in cs]
    if len(cs) == 1:
        return {s: float(at[0][s]) for s in sorted(common)}
    return {s: float(np.mean([a[s] for a in at])) for s in sorted(common)}


def pairable(a: Sequence[ConfigStats], b: Sequence[ConfigStats]) -> bool:
    return len({tuple(getattr(c.config, k) for k in PAIR_KEYS) for c in (*a, *b)}) == 1


@dataclass(frozen=True)
class Contrast:
    """mean(a) − mean(b) over seeds, its interval, and how it was obtained."""

    estimate: float
    lo: float
    hi: float
    n: int                      # pairs (paired) or the smaller arm's seeds
    paired: bool
    test: str                   # the procedure, in words
    kind: str                   # paired-t | anytime-t | welch | bounded
    why: str                    # pairing and the Gaussian check, in words
    mode: Mode
    _d: tuple = ()              # the per-seed differences (paired) ...
    _a: tuple = ()              # ... or the arms (unpaired)
    _b: tuple = ()
    _range: tuple = (-1.0, 1.0)
    caveat: str = ""            # the Gaussian check that failed, in words ("" when it passed)

    # -- p-values -------------------------------------------------------------
    def p_equal(self, m: float = 0.0) -> float:
        """Two-sided p-value of Δ = m."""
        return self._p(m, "two")

    def p_above(self, m: float) -> float:
        """p-value of Δ ≤ m (small when Δ is clearly above m)."""
        return self._p(m, "above")

    def p_below(self, m: float) -> float:
        """p-value of Δ ≥ m (small when Δ is clearly below m)."""
        return self._p(m, "below")

    def p_negligible(self, margin: float) -> float:
        """p-value of |Δ| ≥ margin (two one-sided tests)."""
        if margin <= 0:
            return 1.0
        return max(self.p_above(-margin), self.p_below(margin))

    def p_beyond(self, margin: float) -> float:
        """p-value of |Δ| ≤ margin on the side of the estimate."""
        return self.p_above(margin) if self.estimate >= 0 else self.p_below(-margin)

    def _p(self, m: float, side: str) -> float:
        est = self.estimate
        if side == "above" and est <= m or side == "below" and est >= m:
            return 1.0  # a one-sided claim needs the estimate on its side (the anytime e-value is two-sided)
        if self.kind == "anytime-t":
            return min(1.0, 1.0 / max(avt_evalue(self._d, m), 1e-300))
        if self.kind == "bounded":
            if not self.paired:  # two sequences at alpha / 2 each: all that is known is "p < alpha"
                return 1.0 if not self._decides(m, side) else math.nextafter(self.mode.alpha, 0.0)
            return betting_pvalue(self._d, m, self.mode.alpha, *self._range)
        est, se, df = _t_stats(self._d, self._a, self._b)  # paired t or Welch
        if se == 0:
            hit = {"two": est != m, "above": est > m, "below": est < m}[side]
            p = 0.0 if hit else 1.0
        else:
            t = (est - m) / se
            p = {"two": 2 * t_sf(abs(t), df), "above": t_sf(t, df), "below": t_sf(-t, df)}[side]
        scale = self.mode.looks if self.mode.sequential and self.kind == "welch" else 1
        return float(min(1.0, scale * p))

    def _decides(self, m: float, side: str) -> bool:
        if side == "two":
            return self.lo > m or self.hi < m
        return self.lo > m if side == "above" else self.hi < m


def contrast(a: dict[int, float], b: dict[int, float], paired: bool, mode: Mode, metric: str,
             pairing_why: str = "", value_range: tuple[float, float] | None = None) -> Contrast:
    """Compare two arms (seed → value). Raises ValueError when an arm has fewer than 2 seeds.
    ``value_range``: the range of a paired difference for the bounded test (by default the
    metric's range minus itself; a one-sample mean against 0 passes the metric's own)."""
    if paired:
        seeds = sorted(set(a) & set(b))
        if len(seeds) < 2:
            paired = False
            pairing_why = "unpaired: fewer than 2 seeds complete in both arms"
    if paired:
        d = np.array([a[s] - b[s] for s in seeds])
        diag = diagnose(d)
        caveat = f"per-seed differences fail the Gaussian check ({diag.why})" if diag.unsafe else ""
        rng = value_range or _diff_range(metric)
        if rng is not None and (mode.test == "bounded" or (mode.test == "auto" and diag.unsafe)):
            est, lo, hi = betting_interval(d, mode.alpha, *rng)
            why = _joined(pairing_why, f"{caveat}: distribution-free test" if caveat else "bounded test asked for")
            return Contrast(est, lo, hi, len(d), True, f"betting confidence sequence for bounded values "
                            f"(Waudby-Smith & Ramdas 2023; Δ in [{rng[0]:g}, {rng[1]:g}])", "bounded", why, mode,
                            _d=tuple(d), _range=rng, caveat=caveat)
        kept = ("no range is known for this metric, so the t-test is kept" if rng is None else "t-test kept as asked")
        why = _joined(pairing_why, f"{caveat}; {kept}" if caveat else "")
        if mode.sequential:
            est, lo, hi = avt_interval(d, mode.alpha)
            return Contrast(est, lo, hi, len(d), True, "anytime-valid paired t-test (Wang & Ramdas 2023)",
                            "anytime-t", why, mode, _d=tuple(d), caveat=caveat)
        est, half = _t_interval(d, (), (), mode.alpha)
        return Contrast(est, est - half, est + half, len(d), True, "paired t-test", "paired-t", why, mode,
                        _d=tuple(d), caveat=caveat)
    xa, xb = np.array(list(a.values())), np.array(list(b.values()))
    if len(xa) < 2 or len(xb) < 2:
        raise ValueError("each arm needs at least 2 complete seeds")
    rng = RANGES.get(metric)
    unsafe = [dg for dg in (diagnose(xa), diagnose(xb)) if dg.unsafe]
    caveat = f"an arm fails the Gaussian check ({unsafe[0].why})" if unsafe else ""
    if rng is not None and (mode.test == "bounded" or (mode.test == "auto" and unsafe)):
        # each arm's betting sequence at alpha / 2; the difference's interval from their ends
        _, la, ha = betting_interval(xa, mode.alpha / 2, *rng)
        _, lb, hb = betting_interval(xb, mode.alpha / 2, *rng)
        why = _joined(pairing_why, f"{caveat}: distribution-free test" if caveat else "bounded test asked for")
        return Contrast(float(xa.mean() - xb.mean()), la - hb, ha - lb, min(len(xa), len(xb)), False,
                        "betting confidence sequences for bounded values, one per arm at alpha / 2 "
                        "(Waudby-Smith & Ramdas 2023)", "bounded", why, mode, _a=tuple(xa), _b=tuple(xb),
                        _range=rng, caveat=caveat)
    why = _joined(pairing_why, f"{caveat}; t-test kept" if caveat else "")
    est, half = _t_interval((), xa, xb, mode.split)
    test = "Welch's t-test" + (f", alpha split over {mode.looks} planned looks" if mode.sequential else "")
    return Contrast(est, est - half, est + half, min(len(xa), len(xb)), False, test, "welch", why, mode,
                    _a=tuple(xa), _b=tuple(xb), caveat=caveat)


def _joined(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _t_stats(d, a, b) -> tuple[float, float, float]:
    """(estimate, standard error, degrees of freedom): of the mean of the differences ``d``
    (paired), else of mean(a) − mean(b) by Welch (:func:`.stats.welch`)."""
    if len(d):
        x = np.asarray(d, float)
        return float(x.mean()), float(x.std(ddof=1)) / math.sqrt(len(x)), len(x) - 1.0
    w = welch(a, b)
    return w.diff, w.se, w.df


def _t_interval(d, a, b, alpha: float) -> tuple[float, float]:
    """(estimate, half-width) of the two-sided 1 − alpha t-interval."""
    est, se, df = _t_stats(d, a, b)
    return est, (t_ppf(1 - alpha / 2, df) * se if se > 0 else 0.0)


def _diff_range(metric: str) -> tuple[float, float] | None:
    r = RANGES.get(metric)
    return None if r is None else (r[0] - r[1], r[1] - r[0])


def arms_contrast(a: Sequence[ConfigStats], b: Sequence[ConfigStats], metric: str, mode: Mode) -> Contrast:
    """:func:`contrast` of two selectors' configurations, paired where pairing holds."""
    paired = pairable(a, b)
    why = ("paired by seed: same batch size and data in both arms" if paired else
           "unpaired: the arms differ in batch size or data, so a seed does not fix the data order")
    return contrast(arm(a, metric), arm(b, metric), paired, mode, metric, why)


# -- decisions ------------------------------------------------------------------

def claim_verdict(c: Contrast, expect: str, margin: float) -> tuple[str, float, str]:
    """(verdict, p-value of the decision it makes, the decision in words) for a compare claim."""
    alpha = c.mode.alpha
    p0, pn = c.p_equal(0.0), c.p_negligible(margin)
    if expect == "a ~ b":
        if margin > 0 and pn < alpha:
            return "supported", pn, "negligible"
        pb = c.p_beyond(margin) if margin > 0 else p0
        if pb < alpha:
            return "refuted", pb, "beyond the margin"
        return "inconclusive", min(pn, pb), "undecided"
    sign = 1 if expect == "a > b" else -1
    if p0 < alpha and sign * c.estimate > 0:
        return "supported", p0, expect
    if p0 < alpha:
        return "refuted", p0, "a < b" if sign > 0 else "a > b"
    if margin > 0 and pn < alpha:
        return "refuted", pn, "negligible"
    return "inconclusive", min(p0, pn), "undecided"
