"""Hypotheses judged over seeds: supported, refuted or inconclusive — with numbers.

Tests, by kind (alpha from the study, default 0.05):

- ``compare`` ``a > b`` / ``a < b``: Welch's two-sided t-test of mean(a) − mean(b);
  significant in the claimed direction → supported, in the other → refuted, else
  inconclusive. A two-sided test keeps A/A comparisons inconclusive 1 − alpha of the time.
- ``compare`` ``a ~ b``: two one-sided tests (TOST) within ``margin``: both significant →
  supported; the (1 − 2·alpha) interval entirely outside ±margin → refuted.
- ``trend``: Spearman's rank correlation between the parameter and the configuration
  means; its interval comes from a bootstrap over seeds (seeds resampled within each
  configuration), so seed noise is respected. ``increasing``/``decreasing`` is
  supported when the interval excludes zero on the claimed side *and* Welch's test
  finds the last value's mean differs from the first's in that direction (refuted: both
  on the other side). ``peaks``: the bootstrap probability that the best mean is at an
  interior value is ≥ 1 − alpha and the peak beats both ends by Welch's test.
- ``best``: the bootstrap probability that the selected configuration has the best mean
  is ≥ 1 − alpha *and* Welch's test puts it above the runner-up (refuted: probability
  ≤ alpha and another configuration significantly better).

The Welch conditions are there because a bootstrap over 3–5 seeds underestimates the
spread (it never sees values outside the few it has): alone it would call a
difference "supported" that a t-test calls noise.
- ``threshold``: one-sample t-interval of the selection's mean against the bound(s).

Selectors that match several configurations pool their seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .aggregate import HIGHER_IS_BETTER, ConfigStats, describe, varying_params
from ..hypotheses import Hypothesis, matches
from .stats import bootstrap_means, one_sample, seeds_needed, spearman, summarize, tost, welch

BOOTSTRAP_REPS = 2000


@dataclass(frozen=True)
class Verdict:
    """The judgement of one hypothesis, with the numbers behind it."""

    hypothesis: Hypothesis
    verdict: str                 # supported | refuted | inconclusive
    test: str                    # the test used, in words
    effect: float                # kind-specific effect (difference, rho, probability)
    lo: float
    hi: float
    p: float
    n_seeds: int                 # seeds per configuration (smallest among those used)
    seeds_needed: int | None     # for an inconclusive verdict: seeds that would resolve it
    detail: str                  # one sentence with the numbers
    configs: tuple[str, ...] = ()  # keys of the configurations involved
    no_data: bool = False          # inconclusive for want of data (nothing matched, all diverged...)
    looks: tuple = ()              # sequential mode: the analysis.sequential.Look of each look so far
    looks_planned: int = 0         # sequential mode: how many looks the plan allows


def _pooled(cs: Sequence[ConfigStats], metric: str) -> list[float]:
    return [v for c in cs for v in c.metric(metric)]


def _pct(metric: str, x: float) -> str:
    return f"{100 * x:+.2f} %" if metric.endswith("acc") else f"{x:+.4g}"


def _names(cs: Sequence[ConfigStats], params: Sequence[str]) -> str:
    """Configurations named by the hyperparameters that vary in the study."""
    return ", ".join(sorted({describe(c, params) for c in cs}))


def judge(h: Hypothesis, configs: Sequence[ConfigStats], alpha: float = 0.05, seed: int = 0) -> Verdict:
    fn = {"compare": _compare, "trend": _trend, "best": _best, "threshold": _threshold}[h.kind]
    rng = np.random.default_rng(seed)
    try:
        return fn(h, configs, alpha, rng, varying_params(configs))
    except _NoData as exc:
        return Verdict(h, "inconclusive", "none (no data to judge)", math.nan, math.nan, math.nan, math.nan, 0,
                       None, str(exc), no_data=True)


class _NoData(Exception):
    pass


def _usable(configs: Sequence[ConfigStats], selector, what: str) -> list[ConfigStats]:
    """The configurations ``selector`` matches that have complete runs; otherwise _NoData
    saying why (nothing matches, or only diverged / collapsed / failed runs)."""
    matched = [c for c in configs if matches(selector, c.config)]
    if not matched:
        raise _NoData(f"no stored runs match {what}")
    ok = [c for c in matched if c.n_complete]
    if not ok:
        counts = {"diverged": sum(c.n_diverged for c in matched), "collapsed": sum(c.n_collapsed for c in matched),
                  "failed": sum(c.n_failed for c in matched)}
        kinds = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
        raise _NoData(f"{what} has no complete runs, only {kinds or 'unfinished ones'}")
    return ok


def _need(cs: Sequence[ConfigStats], what: str, at_least: int = 2) -> None:
    n = min((c.n_complete for c in cs), default=0)
    if not cs or n < at_least:
        raise _NoData(f"{what} has {n} complete seed{'s' if n != 1 else ''} in a configuration; "
                      f"a test needs at least {at_least}")


def _compare(h, configs, alpha, rng, params) -> Verdict:
    a, b = _usable(configs, h.a, "a"), _usable(configs, h.b, "b")
    _need(a, "a")
    _need(b, "b")
    xa, xb = _pooled(a, h.metric), _pooled(b, h.metric)
    n = min(c.n_complete for c in a + b)
    keys = tuple(c.key for c in a + b)
    if h.expect == "a ~ b":
        d = welch(xa, xb, confidence=1 - 2 * alpha)
        p = tost(xa, xb, h.margin)
        if p < alpha:
            verdict = "supported"
        elif d.lo > h.margin or d.hi < -h.margin:
            verdict = "refuted"
        else:
            verdict = "inconclusive"
        need = None
        if verdict == "inconclusive":
            sd = math.sqrt((np.var(xa, ddof=1) + np.var(xb, ddof=1)) / 2)
            need = seeds_needed(abs(abs(d.diff) - h.margin), sd, alpha)  # to put |Δ| clearly on one side
        detail = (f"{_names(a, params)} vs {_names(b, params)}: Δ {h.metric} = {_pct(h.metric, d.diff)} "
                  f"[{_pct(h.metric, d.lo)}, {_pct(h.metric, d.hi)}] ({100 * (1 - 2 * alpha):.0f} % CI), "
                  f"margin ±{_pct(h.metric, h.margin)[1:]}, TOST p = {p:.3g}, {n} seeds")
        return Verdict(h, verdict, "two one-sided t-tests (TOST)", d.diff, d.lo, d.hi, p, n, need, detail, keys)
    d = welch(xa, xb)
    sign = 1 if h.expect == "a > b" else -1
    if d.p < alpha and sign * d.diff > 0:
        verdict = "supported"
    elif d.p < alpha:
        verdict = "refuted"
    else:
        verdict = "inconclusive"
    sd = math.sqrt((np.var(xa, ddof=1) + np.var(xb, ddof=1)) / 2)
    need = seeds_needed(d.diff, sd, alpha) if verdict == "inconclusive" else None
    detail = (f"{_names(a, params)} − {_names(b, params)}: Δ {h.metric} = {_pct(h.metric, d.diff)} "
              f"[{_pct(h.metric, d.lo)}, {_pct(h.metric, d.hi)}], Welch p = {d.p:.3g}, {n} seeds")
    return Verdict(h, verdict, "Welch's t-test (two-sided)", d.diff, d.lo, d.hi, d.p, n, need, detail, keys)


def _trend_groups(h, configs):
    pool = [c for c in configs if c.n_complete and matches(h.where, c.config) and c.value(h.param) is not None]
    by_value: dict = {}
    for c in pool:
        by_value.setdefault(c.value(h.param), []).append(c)
    xs = sorted(by_value)
    if len(xs) < 3:
        raise _NoData(f"{h.param} takes {len(xs)} value{'s' if len(xs) != 1 else ''} among configurations with "
                      "complete runs; a trend needs at least 3")
    return pool, xs, by_value


def _trend(h, configs, alpha, rng, params) -> Verdict:
    pool, xs, by_value = _trend_groups(h, configs)
    _need(pool, "the trend")
    groups = [_pooled(by_value[x], h.metric) for x in xs]
    ranks = list(range(len(xs)))  # parameter values in order (works for categorical too)
    means = [float(np.mean(g)) for g in groups]
    boots = bootstrap_means(groups, BOOTSTRAP_REPS, rng)
    n = min(c.n_complete for c in pool)
    keys = tuple(c.key for c in pool)
    if h.expect == "peaks":
        better = HIGHER_IS_BETTER.get(h.metric, True)
        arg = (boots.argmax(axis=1) if better else boots.argmin(axis=1))
        prob = float(np.mean((arg > 0) & (arg < len(xs) - 1)))
        best_i = int(np.argmax(means) if better else np.argmin(means))
        sgn = 1 if better else -1
        beats = [welch(groups[best_i], groups[e]) for e in (0, len(xs) - 1) if e != best_i]
        clear = len(beats) == 2 and all(d.p < alpha and sgn * d.diff > 0 for d in beats)
        verdict = "supported" if prob >= 1 - alpha and clear else "refuted" if prob <= alpha else "inconclusive"
        detail = (f"best {h.metric} at {h.param} = {xs[best_i]} ({_pct(h.metric, means[best_i])[1:]}); "
                  f"P(best inside the range) = {prob:.2f} by bootstrap over seeds; Welch p against the ends: "
                  f"{', '.join(f'{d.p:.3g}' for d in beats) or '—'}; {n} seeds")
        need = None
        if verdict == "inconclusive":
            need = seeds_needed(max(means) - sorted(means)[-2], float(np.mean([np.std(g, ddof=1) for g in groups])), alpha)
        return Verdict(h, verdict, "bootstrap over seeds (position of the best mean) and Welch's t-test",
                       prob, math.nan, math.nan, max((d.p for d in beats), default=math.nan), n, need, detail, keys)
    rho = spearman(ranks, means)
    rhos = np.array([spearman(ranks, row) for row in boots])
    lo, hi = np.quantile(rhos, [alpha / 2, 1 - alpha / 2])
    sign = 1 if h.expect == "increasing" else -1
    ends = welch(groups[-1], groups[0])
    p = max(float(min(1.0, 2 * min(np.mean(rhos <= 0), np.mean(rhos >= 0)))), ends.p)
    up = lo > 0 and ends.p < alpha and ends.diff > 0
    down = hi < 0 and ends.p < alpha and ends.diff < 0
    if (up and sign > 0) or (down and sign < 0):
        verdict = "supported"
    elif (up and sign < 0) or (down and sign > 0):
        verdict = "refuted"
    else:
        verdict = "inconclusive"
    need = None
    if verdict == "inconclusive":
        sd = float(np.mean([np.std(g, ddof=1) for g in groups]))
        need = seeds_needed(means[-1] - means[0], sd, alpha)
    detail = (f"{h.metric} over {h.param} = {', '.join(map(str, xs))}: means "
              f"{', '.join(_pct(h.metric, m)[1:] for m in means)}; Spearman ρ = {rho:+.2f} "
              f"[{lo:+.2f}, {hi:+.2f}] (bootstrap over seeds); last − first = {_pct(h.metric, ends.diff)}, "
              f"Welch p = {ends.p:.3g}; {n} seeds")
    return Verdict(h, verdict, "Spearman rank correlation (bootstrap CI over seeds) and Welch's t-test",
                   rho, float(lo), float(hi),
                   p, n, need, detail, keys)


def _best(h, configs, alpha, rng, params) -> Verdict:
    pool = [c for c in configs if c.n_complete]
    sel = [i for i, c in enumerate(pool) if matches(h.select, c.config)]
    _need(pool, "ranking")
    if not sel:
        _usable(configs, h.select, "the selection")  # raises, saying why
    better = HIGHER_IS_BETTER.get(h.metric, True)
    groups = [list(c.metric(h.metric)) for c in pool]
    boots = bootstrap_means(groups, BOOTSTRAP_REPS, rng)
    arg = boots.argmax(axis=1) if better else boots.argmin(axis=1)
    prob = float(np.mean(np.isin(arg, sel)))
    means = [float(np.mean(g)) for g in groups]
    sgn = 1 if better else -1
    others = [i for i in range(len(pool)) if i not in sel]
    n = min(c.n_complete for c in pool)
    need = None
    if not others:
        detail = "the selection is the whole study"
        d = None
        verdict = "supported"
    else:
        best_other = max(others, key=lambda i: sgn * means[i])
        best_sel = max(sel, key=lambda i: sgn * means[i])
        d = welch(groups[best_sel], groups[best_other])
        if prob >= 1 - alpha and d.p < alpha and sgn * d.diff > 0:
            verdict = "supported"
        elif prob <= alpha and d.p < alpha and sgn * d.diff < 0:
            verdict = "refuted"
        else:
            verdict = "inconclusive"
        detail = (f"P({_names([pool[i] for i in sel], params)} best) = {prob:.2f} by bootstrap over seeds; "
                  f"against the best other, {_names([pool[best_other]], params)}: Δ = {_pct(h.metric, d.diff)} "
                  f"[{_pct(h.metric, d.lo)}, {_pct(h.metric, d.hi)}], Welch p = {d.p:.3g}; {n} seeds")
        if verdict == "inconclusive":
            sd = math.sqrt((np.var(groups[best_sel], ddof=1) + np.var(groups[best_other], ddof=1)) / 2)
            need = seeds_needed(d.diff, sd, alpha)
    return Verdict(h, verdict, "bootstrap over seeds (probability of the best mean) and Welch's t-test",
                   prob, d.lo if d else math.nan, d.hi if d else math.nan, d.p if d else math.nan, n, need, detail,
                   tuple(pool[i].key for i in sel))


def _threshold(h, configs, alpha, rng, params) -> Verdict:
    sel = _usable(configs, h.select, "the selection")
    _need(sel, "the selection")
    x = _pooled(sel, h.metric)
    s = summarize(x, confidence=1 - alpha)
    checks, ps = [], []
    if h.at_least is not None:
        checks.append("supported" if s.lo > h.at_least else "refuted" if s.hi < h.at_least else "inconclusive")
        ps.append(one_sample(x, h.at_least)[1])
    if h.at_most is not None:
        checks.append("supported" if s.hi < h.at_most else "refuted" if s.lo > h.at_most else "inconclusive")
        ps.append(one_sample(x, h.at_most)[1])
    verdict = "refuted" if "refuted" in checks else "supported" if all(c == "supported" for c in checks) else "inconclusive"
    bound = h.at_least if h.at_least is not None else h.at_most
    n = min(c.n_complete for c in sel)
    need = seeds_needed(s.mean - bound, s.std, alpha, two_sample=False) if verdict == "inconclusive" else None
    bounds = " and ".join(f"{k} {_pct(h.metric, v)[1:]}" for k, v in (("≥", h.at_least), ("≤", h.at_most)) if v is not None)
    detail = (f"{_names(sel, params)}: mean {h.metric} = {_pct(h.metric, s.mean)[1:]} "
              f"[{_pct(h.metric, s.lo)[1:]}, {_pct(h.metric, s.hi)[1:]}] ({100 * (1 - alpha):.0f} % CI), "
              f"claim {bounds}, t-test p = {max(ps):.3g}; {n} seeds")
    return Verdict(h, verdict, "one-sample t-interval", s.mean, s.lo, s.hi, max(ps), n, need, detail,
                   tuple(c.key for c in sel))


def judge_all(hypotheses: Sequence[Hypothesis], configs: Sequence[ConfigStats], alpha: float = 0.05) -> list[Verdict]:
    return [judge(h, configs, alpha, seed=i) for i, h in enumerate(hypotheses)]
