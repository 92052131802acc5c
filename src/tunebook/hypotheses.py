"""``[[hypothesis]]`` tables: parsed and checked against the study's configurations.

A hypothesis is a claim in the person's words (``says``) plus a machine-checkable form:

- ``compare``: selectors ``a`` and ``b``; ``expect = "a > b" | "a < b" | "a ~ b"``
  (``~`` = equivalent within ``margin``);
- ``trend``: ``param``, ``expect = "increasing" | "decreasing" | "peaks"``, optional
  ``where`` selector;
- ``best``: ``select`` should be the best configuration of the study;
  (a selection of several configurations: the best is one of them);
- ``threshold``: ``select`` and ``at_least`` and/or ``at_most``.

A selector is a partial configuration (``{units1 = 256, epochs = 10}``); besides the
hyperparameters it may use ``units1..3``, ``width``, ``depth`` and ``balanced`` (all
hidden layers equally wide). One that matches no configuration of the study is an
error before any training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Collection, Mapping, Sequence

from .hparams import METRICS
from .hparams import fmt_value as _fmt
from .problems import Problems

if TYPE_CHECKING:
    from .records import TrialConfig

KINDS = ("compare", "trend", "best", "threshold")
#: A hypothesis id: it names figure files, so no path separators, no markup, no "..".
ID_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEYS = {
    "compare": {"a", "b", "expect", "margin"},
    "trend": {"param", "expect", "where"},
    "best": {"select"},
    "threshold": {"select", "at_least", "at_most"},
}
_COMMON = {"id", "says", "kind", "metric"}
_EXPECT = {"compare": ("a > b", "a < b", "a ~ b"), "trend": ("increasing", "decreasing", "peaks")}
#: Parameters a selector or a trend may name, beyond TrialConfig's own fields.
DERIVED_PARAMS = ("units1", "units2", "units3", "width", "depth", "balanced")


@dataclass(frozen=True)
class Hypothesis:
    id: str
    says: str
    kind: str
    metric: str
    expect: str = ""
    a: Mapping[str, Any] = field(default_factory=dict)
    b: Mapping[str, Any] = field(default_factory=dict)
    margin: float = 0.0
    param: str = ""
    where: Mapping[str, Any] = field(default_factory=dict)
    select: Mapping[str, Any] = field(default_factory=dict)
    at_least: float | None = None
    at_most: float | None = None


def param_value(cfg: "TrialConfig", key: str) -> Any:
    """A configuration's value for a selector/trend key (``units2``, ``depth``, ``lr``...)."""
    if key.startswith("units") and key[5:].isdigit():
        k = int(key[5:])
        return cfg.layers[k - 1] if len(cfg.layers) >= k else None
    if key == "depth":
        return len(cfg.layers)
    if key == "width":
        return cfg.layers[0] if len(set(cfg.layers)) == 1 else None
    if key == "balanced":  # every hidden layer equally wide (the log's "diagonal")
        return len(set(cfg.layers)) == 1
    value = cfg.get(key)  # a field, or a user model's own hyperparameter
    return list(value) if isinstance(value, tuple) else value


def matches(selector: Mapping[str, Any], cfg: "TrialConfig") -> bool:
    return all(_equal(param_value(cfg, k), v) for k, v in selector.items())


def _equal(x: Any, y: Any) -> bool:
    if isinstance(x, float) or isinstance(y, float):
        return x is not None and y is not None and abs(float(x) - float(y)) <= 1e-12 * max(1.0, abs(float(y)))
    return x == y


def selector_keys(config_fields: Collection[str]) -> set[str]:
    return set(config_fields) | set(DERIVED_PARAMS)


def parse_hypotheses(raw: Any, configs: Sequence["TrialConfig"], default_metric: str, p: Problems,
                     config_fields: Collection[str], check_selectors: bool = True,
                     default_margin: float = 0.0) -> list[Hypothesis]:
    """Every ``[[hypothesis]]`` table, checked against the study's ``configs``; problems go to ``p``.
    A compare without its own ``margin`` takes the study's (``[study] margin``)."""
    if not isinstance(raw, list):
        p.add("hypothesis", "must be an array of tables ([[hypothesis]])", raw)
        return []
    keys = selector_keys(config_fields)
    out: list[Hypothesis] = []
    seen: set[str] = set()
    for i, h in enumerate(raw):
        where = f"hypothesis[{i}]"
        if not isinstance(h, dict):
            p.add(where, "must be a table", h)
            continue
        hid = h.get("id")
        if not isinstance(hid, str) or not hid:
            p.add(f"{where}.id", "is required (a short name such as \"H1\")", hid)
            hid = f"#{i}"
        elif not ID_RULE.fullmatch(hid):
            p.add(f"{where}.id", "must be 1–64 letters, digits, '_', '-' or '.', starting with a letter or digit "
                  "(it names the hypothesis's figures)", hid)
        elif hid in seen:
            p.add(f"{where}.id", "must be unique in the study", hid)
        seen.add(hid)
        where = f"hypothesis[{i}] ({hid})"
        says = h.get("says")
        if not isinstance(says, str) or not says.strip():
            p.add(f"{where}.says", "is required: the claim in your own words", says)
        kind = h.get("kind")
        if kind not in KINDS:
            p.add(f"{where}.kind", "must be one of " + ", ".join(_fmt(k) for k in KINDS), kind)
            continue
        for key in h:
            if key not in _COMMON | _KEYS[kind]:
                p.add(f"{where}.{key}", f"unknown key for kind {_fmt(kind)} (expected "
                      + ", ".join(sorted(_COMMON | _KEYS[kind])) + ")")
        metric = h.get("metric", default_metric)
        if metric not in METRICS:
            p.add(f"{where}.metric", "must be one of " + ", ".join(_fmt(m) for m in METRICS), metric)
        args: dict[str, Any] = {}
        if kind in _EXPECT:
            expect = h.get("expect")
            if expect not in _EXPECT[kind]:
                p.add(f"{where}.expect", "must be one of " + ", ".join(_fmt(e) for e in _EXPECT[kind]), expect)
            args["expect"] = expect
        for key in ("a", "b", "select", "where"):
            if key in _KEYS[kind]:
                required = key != "where"
                args[key] = _selector(h.get(key), f"{where}.{key}", required, configs if check_selectors else None, keys, p)
        if kind == "compare":
            margin = h.get("margin", default_margin)
            if isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin < 0:
                p.add(f"{where}.margin", "must be a non-negative number", margin)
            elif args.get("expect") == "a ~ b" and margin <= 0:
                p.add(f"{where}.margin", 'is required (> 0) with expect = "a ~ b" (here or as [study] margin)', margin)
            args["margin"] = float(margin) if isinstance(margin, (int, float)) else 0.0
        if kind == "trend":
            param = h.get("param")
            if param not in keys - {"dataset", "seed", "validation", "split_seed", "train_subset"}:
                p.add(f"{where}.param", "must name a hyperparameter (e.g. \"units1\", \"epochs\", \"lr\")", param)
            else:
                pool = [c for c in configs if matches(args.get("where") or {}, c)]
                values = {_hashable(param_value(c, param)) for c in pool} - {None}
                if len(values) < 3 and check_selectors:
                    p.add(f"{where}.param", "must take at least 3 values among the configurations it covers", param)
            args["param"] = param if isinstance(param, str) else ""
        if kind == "threshold":
            for key in ("at_least", "at_most"):
                v = h.get(key)
                if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
                    p.add(f"{where}.{key}", "must be a number", v)
                args[key] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
            if args["at_least"] is None and args["at_most"] is None:
                p.add(where, "needs at_least or at_most")
        out.append(Hypothesis(id=hid, says=says if isinstance(says, str) else "", kind=kind,
                              metric=metric if metric in METRICS else default_metric, **args))
    return out


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _selector(raw: Any, where: str, required: bool, configs: Sequence["TrialConfig"] | None,
              known: set[str], p: Problems) -> dict[str, Any]:
    if raw is None:
        if required:
            p.add(where, "is required: a partial configuration such as {units1 = 256, units2 = 256}")
        return {}
    if not isinstance(raw, dict) or (required and not raw):
        p.add(where, "must be a non-empty inline table of hyperparameters", raw)
        return {}
    bad = [k for k in raw if k not in known]
    for k in bad:
        p.add(f"{where}.{k}", "unknown hyperparameter in selector")
    if bad:
        return {}
    if configs is not None and not any(matches(raw, c) for c in configs):
        exist = []
        for k in raw:
            found = {_hashable(param_value(c, k)) for c in configs} - {None}
            try:
                values = sorted(found)
            except TypeError:
                values = sorted(found, key=repr)
            exist.append(f"{k} takes {', '.join(_fmt(list(v) if isinstance(v, tuple) else v) for v in values[:12])}"
                         + (f" and {len(values) - 12} more" if len(values) > 12 else ""))
        p.add(where, f"matches no configuration of the study ({'; '.join(exist)})", raw)
    return dict(raw)
