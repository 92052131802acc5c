"""Verdicts for a study run with ``--until-decided``: judged at planned looks, valid under
optional stopping, and the configurations that still need seeds.

The plan (:class:`~tunebook.spec.DecidePlan`) fixes the looks: the study's seeds, then
``round`` more per look, up to ``max_seeds``. At look j every configuration is judged on
its first nⱼ seeds (by seed number), so the verdict at any look can be recomputed from
the store and a run resumed at any point gives the same decisions.

By kind (all valid over every look, see :mod:`.sequential`):

- ``compare``: the anytime-valid paired t-test when pairing is meaningful — every
  configuration of both arms has the same seeds, batch size, dataset, split and subset
  (then trials with one seed share data order and dropout masks); a selector matching
  several configurations is paired on the per-seed mean over its configurations. Otherwise
  Welch's interval with alpha split over the planned looks. The interval decides:
  above 0 or below 0 (a difference), or inside ±margin (negligible: for ``a ~ b`` that is
  supported, for ``a > b`` or ``a < b`` refuted — no difference as large as the smallest
  effect of interest).
- ``threshold``: the anytime-valid t-interval of the selection's (per-seed) mean against
  the bound(s).
- ``trend`` and ``best``: their fixed-n tests (:mod:`.verdicts`) at alpha / looks.

A compare's arms are paired or not at each look from the data of that look; should a run
diverge or collapse later and break the pairing, the later looks use Welch's split-alpha
interval — each procedure is valid over all its looks, so a switch costs at most the sum
of their alphas (noted, not yet tightened).

A hypothesis is decided at its first decisive look and stays decided. Each verdict carries
a p-value valid at that look, for Holm's adjustment across the study: 1/e for the anytime
test (for "negligible", the larger of the two |Δ| = margin tests), looks × p for the
alpha-split tests.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np

from ..hypotheses import Hypothesis, matches
from ..spec import StudySpec
from ..store import Run
from .aggregate import ConfigStats, aggregate, config_key, describe, varying_params
from .sequential import Look, avt_evalue, avt_interval, decide, paired_look, welch_look
from .stats import tost, welch
from .verdicts import Verdict, _NoData, _pct, _usable, judge

PAIR_KEYS = ("batch_size", "dataset", "validation", "split_seed", "train_subset")


def first_seeds(runs: Sequence[Run], n: int) -> list[Run]:
    """Each configuration's runs on its first ``n`` seeds (by seed number)."""
    by_cfg: dict[str, list[Run]] = {}
    for r in runs:
        by_cfg.setdefault(config_key(r.config), []).append(r)
    return [r for rs in by_cfg.values() for r in sorted(rs, key=lambda r: r.config.seed)[:n]]


def stored_seeds(runs: Sequence[Run]) -> dict[str, int]:
    """Configuration key → number of seeds with a final result stored."""
    out: dict[str, int] = {}
    for r in runs:
        if r.result.done:
            out[config_key(r.config)] = out.get(config_key(r.config), 0) + 1
    return out


def involved(h: Hypothesis, configs: Sequence[ConfigStats]) -> list[ConfigStats]:
    """The configurations a hypothesis is judged on (those that get more seeds)."""
    if h.kind == "compare":
        return [c for c in configs if matches(h.a, c.config) or matches(h.b, c.config)]
    if h.kind == "threshold":
        return [c for c in configs if matches(h.select, c.config)]
    if h.kind == "trend":
        return [c for c in configs if matches(h.where, c.config) and c.value(h.param) is not None]
    return list(configs)  # best: every competitor


def sequential_verdicts(spec: StudySpec, runs: Sequence[Run], cost_models=None) -> list[Verdict]:
    looks = spec.decide.looks(len(spec.seeds))
    counts = stored_seeds(runs)
    per_look = {n: aggregate(first_seeds(runs, n), cost_models) for n in looks}
    return [_judge_sequential(h, spec, looks, per_look, counts) for h in spec.hypotheses]


def _judge_sequential(h: Hypothesis, spec: StudySpec, looks: list[int], per_look: dict, counts: dict) -> Verdict:
    everything = per_look[looks[-1]]
    cfgs = involved(h, everything)
    have = min((counts.get(c.key, 0) for c in cfgs), default=0)
    done_looks = [n for n in looks if n <= have] or [looks[0]]
    history: list[Look] = []
    verdict, p_final = None, 1.0
    for n in done_looks:
        try:
            verdict, look, p = _at_look(h, spec, per_look[n], len(looks))
        except _NoData as exc:
            return Verdict(h, "inconclusive", "none (no data to judge)", math.nan, math.nan, math.nan, math.nan, 0,
                           None, str(exc), no_data=True, looks_planned=len(looks))
        history.append(look)
        last_n, p_final = n, p  # the e-value (or split-alpha p) at the stopping look is valid
        if verdict.verdict != "inconclusive":
            break
    nxt = _next(looks, have)
    where = f"look {len(history)} of {len(looks)} ({last_n} seeds per configuration)"
    if verdict.verdict == "inconclusive":
        where += f"; next look at {nxt} seeds" if nxt else "; the plan's last look: no more seeds"
    need = None
    if verdict.verdict == "inconclusive":  # a fixed-n estimate at the observed effect, for planning
        need = judge(h, per_look[last_n], spec.alpha).seeds_needed
    return replace(verdict, detail=f"{where}: {verdict.detail}", p=p_final, looks=tuple(history),
                   looks_planned=len(looks), seeds_needed=need)


def _next(looks: list[int], have: int) -> int | None:
    later = [n for n in looks if n > have]
    return later[0] if later else None


def _per_seed(cs: Sequence[ConfigStats], metric: str) -> tuple[tuple[int, ...], list[float]] | None:
    """Per-seed mean over ``cs`` when they all share one seed set, else None."""
    seeds = {c.seeds for c in cs}
    if len(seeds) != 1:
        return None
    (common,) = seeds
    vals = np.mean([list(c.metric(metric)) for c in cs], axis=0)
    return common, [float(v) for v in vals]


def _pairing(a: Sequence[ConfigStats], b: Sequence[ConfigStats]) -> tuple[bool, str]:
    """Whether the arms are paired by seed, and why (or why not), in words."""
    keys = {tuple(getattr(c.config, k) for k in PAIR_KEYS) for c in (*a, *b)}
    if len(keys) > 1:
        return False, "unpaired: the arms differ in batch size or data, so a seed does not fix the data order"
    if len({c.seeds for c in (*a, *b)}) > 1:
        return False, ("unpaired: the arms' complete seeds differ (some runs diverged, collapsed or are missing)")
    return True, "paired by seed: same seeds, batch size and data in both arms"


def _at_look(h: Hypothesis, spec: StudySpec, configs: Sequence[ConfigStats], n_looks: int) -> tuple[Verdict, Look, float]:
    alpha, params = spec.alpha, varying_params(configs)
    if h.kind == "compare":
        return _compare_look(h, spec, configs, n_looks, params)
    if h.kind == "threshold":
        return _threshold_look(h, spec, configs, params)
    v = judge(h, configs, alpha / n_looks)
    if v.no_data:
        raise _NoData(v.detail)
    look = Look(f"{v.test}, at alpha / {n_looks} looks", v.n_seeds, v.effect, v.lo, v.hi,
                "decided" if v.verdict != "inconclusive" else "undecided", f"alpha {alpha / n_looks:.4g} at each look")
    return replace(v, test=look.test), look, min(1.0, v.p * n_looks) if math.isfinite(v.p) else 1.0


def _compare_look(h, spec, configs, n_looks, params) -> tuple[Verdict, Look, float]:
    a, b = _usable(configs, h.a, "a"), _usable(configs, h.b, "b")
    margin = h.margin or spec.margin
    paired, why = _pairing(a, b)
    pa, pb = _per_seed(a, h.metric), _per_seed(b, h.metric)
    if paired and pa and pb and len(pa[1]) >= 2:
        look = paired_look(pa[1], pb[1], spec.alpha, margin)
        p = _paired_p(np.asarray(pa[1]) - np.asarray(pb[1]), look.decision, margin)
    else:
        xa = [v for c in a for v in c.metric(h.metric)]
        xb = [v for c in b for v in c.metric(h.metric)]
        if len(xa) < 2 or len(xb) < 2:
            raise _NoData("each arm needs at least 2 complete seeds")
        look = welch_look(xa, xb, spec.alpha, margin, looks=n_looks)
        p = min(1.0, n_looks * (tost(xa, xb, margin) if look.decision == "negligible" else welch(xa, xb).p))
    verdict = _compare_verdict(h.expect, look, margin)
    names = lambda cs: ", ".join(sorted({describe(c, params) for c in cs}))  # noqa: E731
    detail = (f"{names(a)} − {names(b)}: Δ {h.metric} = {_pct(h.metric, look.estimate)} "
              f"[{_pct(h.metric, look.lo)}, {_pct(h.metric, look.hi)}] (valid over all looks; {why})"
              + (f", margin ±{_pct(h.metric, margin)[1:]}" if margin else "") + f" → {look.decision}")
    v = Verdict(h, verdict, f"{look.test}; {look.threshold}", look.estimate, look.lo, look.hi, p, look.n, None,
                detail, tuple(c.key for c in (*a, *b)))
    return v, look, p


def _paired_p(d: np.ndarray, decision: str, margin: float) -> float:
    """The anytime p-value (1 / e-value) of the decision reached: "negligible" rejects both
    |Δ| ≥ margin nulls; anything else is judged against Δ = 0."""
    if decision == "negligible":
        e = min(avt_evalue(d, margin), avt_evalue(d, -margin))
    else:
        e = avt_evalue(d)
    return min(1.0, 1.0 / max(e, 1e-300))


def _compare_verdict(expect: str, look: Look, margin: float) -> str:
    if expect == "a ~ b":
        if margin and -margin < look.lo and look.hi < margin:
            return "supported"
        if margin and (look.lo > margin or look.hi < -margin):
            return "refuted"
        return "inconclusive"
    claimed = expect  # "a > b" or "a < b"
    if look.decision == claimed:
        return "supported"
    if look.decision in ("a > b", "a < b", "negligible"):
        return "refuted"
    return "inconclusive"


def _threshold_look(h, spec, configs, params) -> tuple[Verdict, Look, float]:
    sel = _usable(configs, h.select, "the selection")
    per = _per_seed(sel, h.metric)
    x = per[1] if per else [v for c in sel for v in c.metric(h.metric)]
    if len(x) < 2:
        raise _NoData("the selection needs at least 2 complete seeds")
    mean, lo, hi = avt_interval(x, spec.alpha)
    checks, ps = [], []
    for bound, above in ((h.at_least, True), (h.at_most, False)):
        if bound is None:
            continue
        ok, bad = (lo > bound, hi < bound) if above else (hi < bound, lo > bound)
        checks.append("supported" if ok else "refuted" if bad else "inconclusive")
        ps.append(min(1.0, 1.0 / max(avt_evalue(x, bound), 1e-300)))
    verdict = "refuted" if "refuted" in checks else "supported" if all(c == "supported" for c in checks) else "inconclusive"
    look = Look("anytime-valid one-sample t-interval (Wang & Ramdas 2023)", len(x), mean, lo, hi,
                decide(mean, lo, hi), f"the {1 - spec.alpha:.0%} confidence sequence against the bound")
    bounds = " and ".join(f"{k} {_pct(h.metric, v)[1:]}" for k, v in (("≥", h.at_least), ("≤", h.at_most)) if v is not None)
    names = ", ".join(sorted({describe(c, params) for c in sel}))
    detail = (f"{names}: mean {h.metric} = {_pct(h.metric, mean)[1:]} [{_pct(h.metric, lo)[1:]}, "
              f"{_pct(h.metric, hi)[1:]}] (valid over all looks), claim {bounds}")
    p = max(ps)
    return (Verdict(h, verdict, f"{look.test}; {look.threshold}", mean, lo, hi, p, len(x), None, detail,
                    tuple(c.key for c in sel)), look, p)
