"""Synthetic ConfigStats (no training) for testing the statistics."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from tunebook.analysis.aggregate import SUMMARISED, ConfigStats, config_key
from tunebook.analysis.stats import summarize
from tunebook.records import History
from tunebook.spec import parse_spec


@lru_cache(maxsize=1)
def _default_config():
    return parse_spec('[study]\nname = "s"\n').configs()[0]


@lru_cache(maxsize=256)
def _summary(values: tuple):
    """summarize, once per distinct tuple (the constant metrics repeat in every simulation)."""
    return summarize(values)


def base_config(**kw):
    return replace(_default_config(), **kw)


def stats(values, params=100_000, seconds=1.0, share=None, metric="val_acc", **cfg) -> ConfigStats:
    """``seconds``: the configuration's time alone (its cost); ``share``: the recorded
    train_seconds (a share of its group's time), ``seconds`` unless given; ``values`` are
    the seeds' ``metric``."""
    share = seconds if share is None else share
    c = base_config(**cfg)
    vals = {m: tuple(values) if m == metric else tuple(share for _ in values) if m == "train_seconds"
            else tuple(0.5 for _ in values) for m in SUMMARISED}
    hist = History((1.0,), (0.5,), (1.0,), (0.5,), (seconds,))
    return ConfigStats(key=config_key(c), config=c, seeds=tuple(range(len(values))), n_complete=len(values),
                       n_diverged=0, n_failed=0, params=params, flops=1, values=vals,
                       stats={m: summarize(v) if m == metric else _summary(v) for m, v in vals.items()}, histories=(hist,) * len(values),
                       seconds_alone=seconds)


def hypothesis(**kw):
    from tunebook.hypotheses import Hypothesis
    base = dict(id="H", says="claim", kind="compare", metric="val_acc")
    base.update(kw)
    return Hypothesis(**base)
