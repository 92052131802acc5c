"""Verdicts for a study run with ``--until-decided``: judged at planned looks, valid under
optional stopping, and the configurations that still need seeds.

The plan (:class:`~tunebook.spec.DecidePlan`) fixes the looks: the study's seeds, then
``round`` more per look, up to ``max_seeds``. At look j every configuration is judged on
its first nⱼ seeds (by seed number), so the verdict at any look can be recomputed from
the store and a run resumed at any point gives the same decisions.

Every kind is judged by :mod:`.verdicts` with a sequential :class:`~.contrast.Mode`: paired
arms by the anytime-valid t-test (its interval holds at every look at once), unpaired ones
by Welch's interval at alpha / looks, bounded ones by the betting confidence sequence — the
same rules as a plain run, with intervals valid over all looks.

**Decided, and decided after Holm.** A hypothesis is decided at its first decisive look;
its p-value is the smallest, over that look and every later one, of the p-value of the
decision it made — an anytime p-value (1 / e-value, or looks × p for the split-alpha
tests) stays valid however long one goes on looking. Holm's step-down procedure over the
study's hypotheses then says which decisions survive the family's correction. A decision
that does not yet survive is *not* closed: ``--until-decided`` keeps adding seeds to its
configurations until its p-value clears its Holm threshold (or the plan ends), so a study
ends with decisions that hold for the family, and the report says which.

A compare's arms are paired or not at each look from the data of that look; should a run
diverge or collapse later and break the pairing, the later looks use Welch's split-alpha
interval — each procedure is valid over all its looks, so a switch costs at most the sum
of their alphas (noted, not yet tightened).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

from ..hypotheses import Hypothesis, matches
from ..spec import StudySpec
from ..store import Run
from .aggregate import ConfigStats, aggregate, config_key
from .contrast import Mode
from .sequential import Look
from .verdicts import Verdict, judge


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


def mode_of(spec: StudySpec) -> Mode:
    """The sequential mode of ``spec``'s plan."""
    return Mode(spec.alpha, sequential=True, looks=len(spec.decide.looks(len(spec.seeds))), test=spec.test)


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
    mode = mode_of(spec)
    history: list[Look] = []
    first: Verdict | None = None
    first_look = 0
    p_run = 1.0
    last: Verdict | None = None
    for i, n in enumerate(done_looks, 1):
        v = judge(h, per_look[n], spec.alpha, mode=mode, margin=spec.margin)
        if v.no_data:
            return replace(v, looks_planned=len(looks))
        history.append(Look(v.test, v.n_seeds, v.effect, v.lo, v.hi,
                            "decided" if v.verdict != "inconclusive" else "undecided",
                            f"alpha {spec.alpha:g} over {len(looks)} planned looks"))
        last = v
        if first is None and v.verdict != "inconclusive":
            first, first_look = v, i
        if first is not None and v.verdict == first.verdict and math.isfinite(v.p):
            p_run = min(p_run, v.p)   # an anytime p-value: its running minimum stays valid
    chosen = first or last
    at = first_look or len(history)
    n_at = done_looks[at - 1]
    nxt = _next(looks, have)
    where = f"look {at} of {len(looks)} ({n_at} seeds per configuration)"
    if first is not None and len(history) > at:
        where += f"; p-value updated through look {len(history)} ({done_looks[-1]} seeds)"
    if chosen.verdict == "inconclusive":
        where += f"; next look at {nxt} seeds" if nxt else "; the plan's last look: no more seeds"
    need = None
    if chosen.verdict == "inconclusive":  # a fixed-n estimate at the observed effect, for planning
        need = judge(h, per_look[n_at], spec.alpha, margin=spec.margin).seeds_needed
    p = p_run if first is not None else chosen.p
    return replace(chosen, detail=f"{where}: {chosen.detail}", p=p, looks=tuple(history),
                   looks_planned=len(looks), seeds_needed=need)


def _next(looks: list[int], have: int) -> int | None:
    later = [n for n in looks if n > have]
    return later[0] if later else None
