"""Hypotheses judged over seeds: supported, refuted or inconclusive — with numbers.

Every kind is built from one comparison (:mod:`.contrast`): an arm is a selector's
configurations averaged *per seed* (configurations are never counted as seeds), two arms
are paired by seed where a seed fixes the data order, and the interval is the paired t,
Welch's, the anytime-valid t or the distribution-free bounded one by :class:`~.contrast.Mode`
— the same rule for a plain run (fixed n) and ``--until-decided`` (every look). Alpha is
the study's (default 0.05); each rule below says how it is shared.

- ``compare`` ``a > b`` / ``a < b``: supported when the interval of Δ = a − b excludes 0
  on the claimed side; refuted when it excludes 0 on the other side, or when Δ is shown
  smaller than ``margin`` either way (negligible: two one-sided tests).
- ``compare`` ``a ~ b``: supported when |Δ| < margin is shown (two one-sided tests);
  refuted when |Δ| > margin is shown.
- ``threshold`` over k configurations claims the bound for *each* of them: supported when
  every one clears it at alpha (an intersection–union test: no alpha is split), refuted
  when any one falls short at alpha / k (Bonferroni over the k).
- ``trend`` ``increasing`` / ``decreasing`` claims monotone: *every* step between adjacent
  values of the parameter goes the claimed way at alpha (intersection–union); refuted when
  any step goes the other way at alpha / (steps). ``peaks``: the best interior value beats
  both ends, each at alpha / (interior values) (Bonferroni over which interior value is
  best); refuted when the better end beats every interior value, each at alpha / 2.
- ``best``: "the selection is best within margin": supported when one selected
  configuration's interval against every competitor lies above −margin (each at
  alpha / selected: which of the selected is tried is chosen from the data); refuted when a
  competitor is ahead of every selected one by more than the margin (each at
  alpha / competitors). With no margin, "within margin" is "ahead".

Each verdict's p-value is the p-value of the decision it makes (the larger of the p-values
an intersection–union test needs; a Bonferroni-scaled one for a union), so Holm's
adjustment over a study works on the claims as made.

Descriptive numbers beside the tests — Spearman's ρ of the means for a trend, how often
a selection has the best mean when the seeds are resampled for ``best`` — decide nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .aggregate import HIGHER_IS_BETTER, ConfigStats, describe, varying_params
from ..hypotheses import Hypothesis, matches
from .contrast import RANGES, Contrast, Mode, arm, arms_contrast, claim_verdict, contrast, pairable
from .stats import bootstrap_means, seeds_needed, spearman

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

    def _repr_html_(self) -> str:
        from ..htmlrepr import verdict_html

        return verdict_html(self)
    caveat: str = ""               # an assumption that failed (skewed seeds...), in words
    decision: str = ""             # what was decided, in words ("a > b", "negligible", ...)


def _pct(metric: str, x: float) -> str:
    return f"{100 * x:+.2f} %" if metric.endswith("acc") else f"{x:+.4g}"


def _names(cs: Sequence[ConfigStats], params: Sequence[str]) -> str:
    """Configurations named by the hyperparameters that vary in the study."""
    return ", ".join(sorted({describe(c, params) for c in cs}))


def judge(h: Hypothesis, configs: Sequence[ConfigStats], alpha: float = 0.05, seed: int = 0,
          mode: Mode | None = None, margin: float | None = None) -> Verdict:
    """Judge ``h`` on ``configs``. ``mode``: fixed n (default) or a look of a sequential
    plan; ``margin``: the smallest effect of interest for ``best`` (a compare has its own)."""
    mode = mode or Mode(alpha)
    fn = {"compare": _compare, "trend": _trend, "best": _best, "threshold": _threshold}[h.kind]
    rng = np.random.default_rng(seed)
    try:
        return fn(h, configs, mode, rng, varying_params(configs), margin or 0.0)
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


def _contrast(a: Sequence[ConfigStats], b: Sequence[ConfigStats], metric: str, mode: Mode, what: str) -> Contrast:
    try:
        return arms_contrast(a, b, metric, mode)
    except ValueError as exc:
        raise _NoData(f"{what}: {exc}") from None


def _sd(c: Contrast) -> float:
    """Seed-to-seed standard deviation behind a contrast (of the differences when paired)."""
    if c.paired and len(c._d) > 1:
        return float(np.std(c._d, ddof=1))
    if len(c._a) > 1 and len(c._b) > 1:
        return math.sqrt((np.var(c._a, ddof=1) + np.var(c._b, ddof=1)) / 2)
    return math.nan


def _interval(metric: str, c: Contrast) -> str:
    return f"[{_pct(metric, c.lo)}, {_pct(metric, c.hi)}]"


def _level(c: Contrast) -> str:
    if c.kind in ("anytime-t", "bounded") and c.mode.sequential:
        return "valid over all looks"
    if c.kind == "welch" and c.mode.sequential:
        return f"{100 * (1 - c.mode.split):.2f} % CI"
    return f"{100 * (1 - c.mode.alpha):.0f} % CI"


def _compare(h, configs, mode, rng, params, _margin) -> Verdict:
    a, b = _usable(configs, h.a, "a"), _usable(configs, h.b, "b")
    _need(a, "a")
    _need(b, "b")
    c = _contrast(a, b, h.metric, mode, "the arms")
    verdict, p, decided = claim_verdict(c, h.expect, h.margin)
    need = None
    if verdict == "inconclusive":
        target = abs(abs(c.estimate) - h.margin) if h.expect == "a ~ b" else c.estimate
        need = seeds_needed(target, _sd(c), mode.alpha, two_sample=not c.paired)
    margin = f", margin ±{_pct(h.metric, h.margin)[1:]}" if h.margin else ""
    detail = (f"{_names(a, params)} − {_names(b, params)}: Δ {h.metric} = {_pct(h.metric, c.estimate)} "
              f"{_interval(h.metric, c)} ({_level(c)}; {c.why}){margin}, p = {p:.3g} for "
              f"{_claim_words(decided, h)}, {c.n} {'pairs' if c.paired else 'seeds'} → {decided}")
    return Verdict(h, verdict, c.test, c.estimate, c.lo, c.hi, p, c.n, need, detail, tuple(x.key for x in a + b),
                   caveat=c.caveat, decision=decided)


def _claim_words(decided: str, h: Hypothesis) -> str:
    return {"negligible": "|Δ| < margin", "beyond the margin": "|Δ| > margin", "undecided": "the nearest decision",
            "a > b": "Δ > 0", "a < b": "Δ < 0"}.get(decided, decided)


# -- threshold ---------------------------------------------------------------------

def _one_sample(cs: ConfigStats, metric: str, mode: Mode) -> Contrast:
    """A configuration's mean as a paired "contrast" against zero (its values are the
    differences), so that every test of :class:`Contrast` applies to it; the bounded test
    takes the metric's own range (a value, not a difference)."""
    x = arm([cs], metric)
    if len(x) < 2:
        raise _NoData(f"{cs.label} has fewer than 2 complete seeds")
    return contrast(x, {s: 0.0 for s in x}, True, mode, metric, value_range=RANGES.get(metric))


def _threshold(h, configs, mode, rng, params, _margin) -> Verdict:
    sel = _usable(configs, h.select, "the selection")
    _need(sel, "the selection")
    k = len(sel)
    per = [(c, _one_sample(c, h.metric, mode)) for c in sel]
    ok_ps, bad_ps = [], []
    for c, s in per:
        ok, bad = [], []
        if h.at_least is not None:
            ok.append(s.p_above(h.at_least))
            bad.append(s.p_below(h.at_least))
        if h.at_most is not None:
            ok.append(s.p_below(h.at_most))
            bad.append(s.p_above(h.at_most))
        ok_ps.append(max(ok))
        bad_ps.append(min(bad))
    p_ok = max(ok_ps)                        # intersection–union: every configuration clears the bound
    p_bad = min(1.0, k * min(bad_ps))        # Bonferroni: some configuration falls short
    verdict, p = _three_way(p_ok < mode.alpha, p_ok, p_bad < mode.alpha, p_bad)
    # the configuration that falls short, or the one nearest to failing
    wc, ws = per[int(np.argmin(bad_ps))] if verdict == "refuted" else per[int(np.argmax(ok_ps))]
    bound = h.at_least if h.at_least is not None else h.at_most
    n = min(s.n for _, s in per)
    need = seeds_needed(ws.estimate - bound, _sd(ws), mode.alpha, two_sample=False) if verdict == "inconclusive" else None
    bounds = " and ".join(f"{key} {_pct(h.metric, v)[1:]}" for key, v in (("≥", h.at_least), ("≤", h.at_most))
                          if v is not None)
    each = "; ".join(f"{describe(c, params)} {_pct(h.metric, s.estimate)[1:]} [{_pct(h.metric, s.lo)[1:]}, "
                     f"{_pct(h.metric, s.hi)[1:]}]" for c, s in per)
    rule = (f"each of the {k} configurations must clear the bound at alpha {mode.alpha:g}; one falling short at "
            f"alpha / {k} refutes" if k > 1 else f"alpha {mode.alpha:g}")
    detail = (f"claim {bounds} for every selected configuration ({rule}): mean {h.metric} {each} "
              f"({_level(ws)}); p = {p:.3g}; {n} seeds"
              + (f"; {describe(wc, params)} falls short" if verdict == "refuted" else ""))
    test = f"{ws.test.replace('paired t-test', 'one-sample t-test').replace('paired ', 'one-sample ')} per configuration" + (
        " (intersection–union for supported, Bonferroni for refuted)" if k > 1 else "")
    return Verdict(h, verdict, test, ws.estimate, ws.lo, ws.hi, p, n, need, detail, tuple(c.key for c in sel),
                   caveat=next((s.caveat for _, s in per if s.caveat), ""))


# -- trend -------------------------------------------------------------------------

def _three_way(supported: bool, p_sup: float, refuted: bool, p_ref: float) -> tuple[str, float]:
    """The verdict and the p-value of the decision it makes (for inconclusive: the nearer one)."""
    if supported:
        return "supported", p_sup
    if refuted:
        return "refuted", p_ref
    return "inconclusive", min(p_sup, p_ref)


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


def _trend(h, configs, mode, rng, params, _margin) -> Verdict:
    pool, xs, by_value = _trend_groups(h, configs)
    _need(pool, "the trend")
    arms = [by_value[x] for x in xs]
    means = [float(np.mean(list(arm(g, h.metric).values()) or [math.nan])) for g in arms]
    n = min(c.n_complete for c in pool)
    keys = tuple(c.key for c in pool)
    rho = spearman(list(range(len(xs))), means)
    better = HIGHER_IS_BETTER.get(h.metric, True)
    sgn = 1 if better else -1
    k = len(xs)
    if h.expect == "peaks":
        interior = list(range(1, k - 1))
        best_i = max(interior, key=lambda i: sgn * means[i])
        sub = Mode(mode.alpha / len(interior), mode.sequential, mode.looks, mode.test)
        vs_ends = [_contrast(arms[best_i], arms[e], h.metric, sub, f"{h.param} = {xs[best_i]} against {xs[e]}")
                   for e in (0, k - 1)]
        up = [sgn * c.estimate > 0 and c.p_equal(0.0) < sub.alpha for c in vs_ends]
        end = max((0, k - 1), key=lambda i: sgn * means[i])
        sub_end = Mode(mode.alpha / 2, mode.sequential, mode.looks, mode.test)
        end_vs = [_contrast(arms[end], arms[i], h.metric, sub_end, f"{h.param} = {xs[end]} against {xs[i]}")
                  for i in interior]
        end_wins = [sgn * c.estimate > 0 and c.p_equal(0.0) < sub_end.alpha for c in end_vs]
        p_sup = min(1.0, len(interior) * max(c.p_equal(0.0) for c in vs_ends))
        p_ref = min(1.0, 2 * max(c.p_equal(0.0) for c in end_vs))
        verdict, p = _three_way(all(up), p_sup, all(end_wins), p_ref)
        need = None
        if verdict == "inconclusive":
            weakest = min(vs_ends, key=lambda c: abs(c.estimate))
            need = seeds_needed(weakest.estimate, _sd(weakest), sub.alpha, two_sample=not weakest.paired)
        ends = ", ".join(f"vs {h.param} = {xs[e]}: {_pct(h.metric, c.estimate)} {_interval(h.metric, c)}"
                         for e, c in zip((0, k - 1), vs_ends))
        detail = (f"best {h.metric} inside the range at {h.param} = {xs[best_i]} "
                  f"({_pct(h.metric, means[best_i])[1:]}); against the ends, each at alpha / {len(interior)} "
                  f"({_level(vs_ends[0])}): {ends}; p = {p:.3g}; {n} seeds")
        return Verdict(h, verdict, f"{vs_ends[0].test}: the best interior value against both ends "
                       f"(Bonferroni over {len(interior)} interior values)", min(sgn * c.estimate for c in vs_ends),
                       math.nan, math.nan, p, n, need, detail, keys, caveat=next((c.caveat for c in vs_ends if c.caveat), ""),
                       decision=verdict)
    sign = 1 if h.expect == "increasing" else -1
    steps = [_contrast(arms[i + 1], arms[i], h.metric, mode, f"{h.param} {xs[i]} → {xs[i + 1]}") for i in range(k - 1)]
    n_steps = len(steps)
    with_claim = [sign * c.estimate > 0 and c.p_equal(0.0) < mode.alpha for c in steps]
    against = [sign * c.estimate < 0 and c.p_equal(0.0) < mode.alpha / n_steps for c in steps]
    p_sup = max(c.p_equal(0.0) if sign * c.estimate > 0 else 1.0 for c in steps)
    p_ref = min(1.0, n_steps * min(c.p_equal(0.0) if sign * c.estimate < 0 else 1.0 for c in steps))
    verdict, p = _three_way(all(with_claim), p_sup, any(against), p_ref)
    need = None
    if verdict == "inconclusive":
        weakest = min(steps, key=lambda c: sign * c.estimate)
        need = seeds_needed(weakest.estimate, _sd(weakest), mode.alpha, two_sample=not weakest.paired)
    step_words = "; ".join(f"{xs[i]} → {xs[i + 1]}: {_pct(h.metric, c.estimate)} {_interval(h.metric, c)}"
                           for i, c in enumerate(steps))
    detail = (f"{h.metric} over {h.param} = {', '.join(map(str, xs))}: means "
              f"{', '.join(_pct(h.metric, m)[1:] for m in means)} (Spearman ρ of the means = {rho:+.2f}, "
              f"descriptive); every step must go the claimed way at alpha {mode.alpha:g}, one step the other way "
              f"at alpha / {n_steps} refutes ({_level(steps[0])}): {step_words}; p = {p:.3g}; {n} seeds")
    lo = min(sign * c.lo if sign > 0 else -c.hi for c in steps)
    return Verdict(h, verdict, f"{steps[0].test} on each step between adjacent values (intersection–union)",
                   rho, lo, math.nan, p, n, need, detail, keys, caveat=next((c.caveat for c in steps if c.caveat), ""),
                   decision=verdict)


# -- best --------------------------------------------------------------------------

def _best(h, configs, mode, rng, params, margin) -> Verdict:
    pool = [c for c in configs if c.n_complete]
    sel = [c for c in pool if matches(h.select, c.config)]
    _need(pool, "ranking")
    if not sel:
        _usable(configs, h.select, "the selection")  # raises, saying why
    better = HIGHER_IS_BETTER.get(h.metric, True)
    sgn = 1 if better else -1
    others = [c for c in pool if c not in sel]
    n = min(c.n_complete for c in pool)
    keys = tuple(c.key for c in sel)
    prob = _resampled_wins(pool, sel, h.metric, better, rng)
    if not others:
        return Verdict(h, "supported", "none needed", prob, math.nan, math.nan, 0.0, n, None,
                       "the selection is the whole study", keys, decision="the whole study")
    # supported: one selected configuration within margin of (or ahead of) every competitor
    sub_s = Mode(mode.alpha / len(sel), mode.sequential, mode.looks, mode.test)
    best_try, p_sup = None, 1.0
    for s in sel:
        cs = [_contrast([s], [o], h.metric, sub_s, "best") for o in others]
        ps = [(c.p_above(-margin) if sgn > 0 else c.p_below(margin)) if margin > 0 else
              (c.p_equal(0.0) if sgn * c.estimate > 0 else 1.0) for c in cs]
        p_s = min(1.0, len(sel) * max(ps))
        if best_try is None or p_s < p_sup:
            best_try, p_sup = (s, cs), p_s
    # refuted: a competitor ahead of every selected configuration by more than the margin
    sub_r = Mode(mode.alpha / len(others), mode.sequential, mode.looks, mode.test)
    p_ref, lead = 1.0, None
    for o in sorted(others, key=lambda c: -sgn * c.stats[h.metric].mean)[:3]:  # the likeliest leaders
        cs = [_contrast([o], [s], h.metric, sub_r, "best") for s in sel]
        ps = [(c.p_above(margin) if sgn > 0 else c.p_below(-margin)) if sgn * c.estimate > 0 else 1.0 for c in cs]
        p_o = min(1.0, len(others) * max(ps))
        if p_o < p_ref or lead is None:
            p_ref, lead = p_o, (o, cs)
    verdict, p = _three_way(p_sup < mode.alpha, p_sup, p_ref < mode.alpha, p_ref)
    s, cs = best_try
    worst = min(cs, key=lambda c: sgn * c.estimate)
    rival = others[cs.index(worst)]
    need = None
    if verdict == "inconclusive":
        need = seeds_needed(abs(worst.estimate) + margin if margin else worst.estimate, _sd(worst), sub_s.alpha,
                            two_sample=not worst.paired)
    within = f"within ±{_pct(h.metric, margin)[1:]} of" if margin else "ahead of"
    detail = (f"{describe(s, params)} {within} every other configuration? nearest rival {describe(rival, params)}: "
              f"Δ = {_pct(h.metric, worst.estimate)} {_interval(h.metric, worst)} ({_level(worst)}, alpha / "
              f"{len(sel)}); p = {p:.3g}; the selection has the best mean in {100 * prob:.0f} % of seed "
              f"resamplings (descriptive, not the probability of being the true best); {n} seeds")
    return Verdict(h, verdict, f"{worst.test}: the selection against every competitor "
                   + (f"(best within margin ±{margin:g})" if margin else "(ahead of each)"),
                   prob, worst.lo, worst.hi, p, n, need, detail, keys, caveat=worst.caveat, decision=verdict)


def _resampled_wins(pool, sel, metric, better, rng) -> float:
    """How often a selected configuration has the best mean when each configuration's
    seeds are resampled (descriptive)."""
    groups = [list(c.metric(metric)) for c in pool]
    boots = bootstrap_means(groups, BOOTSTRAP_REPS, rng)
    arg = boots.argmax(axis=1) if better else boots.argmin(axis=1)
    idx = [i for i, c in enumerate(pool) if c in sel]
    return float(np.mean(np.isin(arg, idx)))


def judge_all(hypotheses: Sequence[Hypothesis], configs: Sequence[ConfigStats], alpha: float = 0.05,
              margin: float = 0.0, test: str = "auto") -> list[Verdict]:
    mode = Mode(alpha, test=test)
    return [judge(h, configs, alpha, seed=i, mode=mode, margin=margin) for i, h in enumerate(hypotheses)]


__all__ = ["Verdict", "judge", "judge_all", "pairable"]
