"""The lab-notebook page as plain blocks, built from a StudyAnalysis.

The same blocks render to Markdown and to HTML (``render.py``), so both say the same.
A block is a small tuple: ("h", level, text), ("p", text), ("list", [text]),
("table", headers, rows), ("figure", filename, caption), ("code", text),
("verdict", verdict, text).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Sequence

from ..analysis.aggregate import ConfigStats, describe
from ..hypotheses import Hypothesis, matches
from ..analysis.study import StudyAnalysis
from ..analysis.verdicts import Verdict
from . import figures

Block = tuple
FigureFn = Callable[[], Any]


def pct(x: float, digits: int = 2) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f} %"


def pm(c: ConfigStats, metric: str) -> str:
    s = c.stats[metric]
    if not math.isfinite(s.mean):
        return "—"
    if metric.endswith("acc"):
        ci = "" if math.isnan(s.half_width) else f" ± {100 * s.half_width:.2f}"
        return f"{100 * s.mean:.2f}{ci} %"
    ci = "" if math.isnan(s.half_width) else f" ± {s.half_width:.3g}"
    return f"{s.mean:.4g}{ci}"


def _selector(sel) -> str:
    return "{" + ", ".join(f"{k} = {v}" for k, v in sel.items()) + "}" if sel else "all configurations"


def claim(h: Hypothesis) -> str:
    if h.kind == "compare":
        rel = {"a > b": ">", "a < b": "<", "a ~ b": "≈"}[h.expect]
        extra = f" (within ±{pct(h.margin) if h.metric.endswith('acc') else h.margin})" if h.expect == "a ~ b" else ""
        return f"{h.metric}: {_selector(h.a)} {rel} {_selector(h.b)}{extra}"
    if h.kind == "trend":
        where = f" where {_selector(h.where)}" if h.where else ""
        return f"{h.metric} is {h.expect} in {h.param}{where}"
    if h.kind == "best":
        return f"{_selector(h.select)} has the best {h.metric}"
    bounds = " and ".join(f"{k} {v:g}" for k, v in (("≥", h.at_least), ("≤", h.at_most)) if v is not None)
    return f"{h.metric} of {_selector(h.select)} {bounds}"


def config_rows(configs: Sequence[ConfigStats], a: StudyAnalysis, metric: str) -> list[list[str]]:
    rows = []
    for c in configs:
        secs = c.stats["train_seconds"].mean
        eff = c.stats[metric].mean / (c.params / 1e6) if c.params else math.nan
        rows.append([describe(c, a.params), f"{c.n_complete}" + (f" (+{c.n_diverged} diverged)" if c.n_diverged else ""),
                     pm(c, metric), pm(c, "test_acc"), f"{secs:.2f}", f"{c.params:,}",
                     f"{100 * eff:.1f}" if math.isfinite(eff) else "—"])
    return rows


CONFIG_HEADERS = ["configuration", "seeds", "{metric} (mean ± 95 % CI)", "test_acc", "train s", "params",
                  "{metric} % per M params"]


def _headers(metric: str) -> list[str]:
    return [h.format(metric=metric) for h in CONFIG_HEADERS]


def _involved(v: Verdict, a: StudyAnalysis) -> list[ConfigStats]:
    keys = set(v.configs)
    return [c for c in a.configs if c.key in keys]


def insight(v: Verdict) -> str:
    h = v.hypothesis
    word = {"supported": "holds", "refuted": "does not hold", "inconclusive": "cannot be decided yet"}[v.verdict]
    text = f"“{h.says}” {word}: {v.detail}."
    if v.verdict == "inconclusive" and v.seeds_needed:
        text += f" About {v.seeds_needed} seeds per configuration would resolve a difference of this size."
    elif v.verdict == "inconclusive":
        text += " No realistic number of seeds would resolve a difference this small."
    return text


def hypothesis_blocks(v: Verdict, a: StudyAnalysis, fig: Callable[[str, FigureFn, str], Block]) -> list[Block]:
    h = v.hypothesis
    blocks: list[Block] = [("h", 3, f"{h.id}: {h.says}"),
                           ("p", f"Claim, as tested: {claim(h)}. Test: {v.test}; alpha = {a.spec.alpha}.")]
    involved = _involved(v, a)
    if involved:
        blocks.append(("table", _headers(h.metric if h.metric in involved[0].stats else a.spec.metric),
                       config_rows(involved, a, h.metric if h.metric in involved[0].stats else a.spec.metric)))
    if h.kind == "compare" and involved:
        side = {}
        for name, sel in (("a", h.a), ("b", h.b)):
            cs = [c for c in involved if matches(sel, c.config)]
            labels = sorted({describe(c, a.params) for c in cs})
            side[name] = (f"{name}: {labels[0]}" if len(labels) == 1 else f"{name}: {len(labels)} configs",
                          [x for c in cs for x in c.metric(h.metric)])
        blocks.append(fig(f"{h.id}-compare", lambda: figures.compare([side["a"], side["b"]], h.metric),
                          f"{h.id}: a = {_selector(h.a)}, b = {_selector(h.b)}"))
    elif h.kind == "trend" and involved:
        others = [p for p in a.params if p != h.param and p not in h.where]
        by = "layers" if any(p.startswith("units") or p == "depth" for p in others) and not h.param.startswith("units") else (others[0] if others else None)
        blocks.append(fig(f"{h.id}-trend", lambda: figures.metric_vs_param(involved, h.param, h.metric, by),
                          f"{h.id}: {h.metric} against {h.param}"))
    elif involved:
        ranked = sorted([c for c in a.configs if c.n_complete], key=lambda c: -c.stats[h.metric].mean)[:8]
        blocks.append(fig(f"{h.id}-ranking", lambda: figures.compare(
            [(describe(c, a.params), c.metric(h.metric)) for c in ranked], h.metric), f"{h.id}: top configurations"))
    need = f" Seeds that would resolve it: {v.seeds_needed}." if v.verdict == "inconclusive" and v.seeds_needed else ""
    blocks.append(("verdict", v.verdict, f"{v.detail}.{need}"))
    blocks.append(("p", "Insight: " + insight(v)))
    return blocks


def study_blocks(a: StudyAnalysis, fig: Callable[[str, FigureFn, str], Block], level: int = 1) -> list[Block]:
    spec, metric = a.spec, a.spec.metric
    statuses = [r.result.status for r in a.runs]
    env = a.runs[0].meta if a.runs else {}
    blocks: list[Block] = [("h", level, spec.title or spec.name)]
    blocks.append(("p", f"Study {spec.name} · written {time.strftime('%Y-%m-%d %H:%M')} by tunebook "
                        f"from {len(a.runs)} stored runs in {a.folder}."))
    if spec.description:
        blocks.append(("p", spec.description))
    # --- setup ---
    show = lambda v: str(list(v)) if isinstance(v, tuple) else str(v)  # noqa: E731
    grid = "; ".join(f"{k} ∈ {{{', '.join(map(show, v))}}}" for k, v in spec.grid) or "none (one configuration)"
    defaults = ", ".join(f"{k} = {list(v) if isinstance(v, tuple) else v}" for k, v in spec.defaults) or "built-in"
    val = ("the official test set (the log's habit: validation and test are the same images)"
           if spec.validation == "test" else f"a stratified {pct(float(spec.validation), 0)} hold-out of the training set (split seed {spec.split_seed})")
    total = sum(r.result.train_seconds for r in a.runs)
    blocks += [("h", level + 1, "Setup"), ("list", [
        f"Dataset: {spec.dataset}; validation on {val}" + (f"; training subset {spec.train_subset}" if spec.train_subset else "") + ".",
        f"Defaults: {defaults}.", f"Grid: {grid}.",
        f"Seeds: {len(spec.seeds)} per configuration ({', '.join(map(str, spec.seeds[:10]))}{'…' if len(spec.seeds) > 10 else ''}).",
        f"Trials: {len(a.runs)} stored — {statuses.count('complete')} complete, {statuses.count('diverged')} diverged, "
        f"{statuses.count('failed')} failed; {len(a.configs)} configurations.",
        f"Training time: {total:.1f} s in all (each trial's share of its stacked group); "
        f"engine {env.get('engine', '?')} on {env.get('device', '?')}, torch {env.get('torch', '?')}.",
        f"Reproduce: tunebook run {spec.path}"])]
    if a.problems:
        blocks.append(("list", [f"Skipped unreadable run: {p}" for p in a.problems]))
    # --- hypotheses ---
    if a.verdicts:
        blocks.append(("h", level + 1, "Hypotheses"))
        for v in a.verdicts:
            blocks += hypothesis_blocks(v, a, fig)
    # --- all results ---
    ranked = sorted([c for c in a.configs if c.n_complete], key=lambda c: -c.stats[metric].mean)
    blocks += [("h", level + 1, "Results"), ("table", _headers(metric), config_rows(ranked, a, metric))]
    blocks += overview_figures(a, ranked, fig)
    blocks += overfit_blocks(a, ranked, fig, level + 1)
    blocks += summary_blocks(a, ranked, fig, level + 1)
    return blocks


def overview_figures(a: StudyAnalysis, ranked, fig) -> list[Block]:
    out = []
    metric = a.spec.metric
    numeric = [p for p in a.params if all(isinstance(c.value(p), (int, float)) and c.value(p) is not None for c in a.configs)]
    if len(numeric) >= 2:
        x, y = numeric[0], numeric[1]
        out.append(fig(f"heatmap-{x}-{y}", lambda: figures.heatmap(a.configs, x, y, metric),
                       f"Mean {metric} over {x} × {y}"))
    for p in a.params:
        others = [q for q in a.params if q != p]
        by = None
        if others:
            by = "layers" if any(q.startswith("units") or q == "depth" for q in others) and not (p.startswith("units") or p == "depth") else others[0]
        out.append(fig(f"vs-{p}", lambda p=p, by=by: figures.metric_vs_param(a.configs, p, metric, by),
                       f"{metric} against {p}"))
    return out


def overfit_blocks(a: StudyAnalysis, ranked, fig, level: int) -> list[Block]:
    rows, notes = [], []
    for c in ranked:
        o = a.overfit[c.key]
        rows.append([describe(c, a.params), pct(o.final_gap), pct(o.max_gap), f"{o.best_val_loss_epoch:.1f}",
                     f"{o.flagged_seeds}/{o.n_seeds}" + (" ⚠" if o.flagged else "")])
        if o.flagged:
            notes.append(f"{describe(c, a.params)}: validation loss rose for 2+ epochs while training loss fell in "
                         f"{o.flagged_seeds} of {o.n_seeds} seeds (best validation loss at epoch "
                         f"{o.best_val_loss_epoch:.1f} on average) — overfitting.")
    blocks: list[Block] = [("h", level, "Overfitting"),
                           ("p", "Train − validation accuracy gap at the last epoch and at its largest; the epoch of "
                                 "lowest validation loss; seeds whose validation loss rose 2+ epochs running while "
                                 "training loss fell."),
                           ("table", ["configuration", "final gap", "max gap", "best val-loss epoch", "flagged seeds"], rows)]
    blocks.append(("list", notes) if notes else ("p", "No configuration shows the rising-validation-loss pattern in most of its seeds."))
    picks = ranked[:2] + ([ranked[-1]] if len(ranked) > 2 else [])
    flagged = [c for c in ranked if a.overfit[c.key].flagged and c not in picks][:1]
    if picks:
        blocks.append(fig("curves-loss", lambda: figures.learning_curves(picks + flagged, "loss"),
                          "Learning curves (loss) of the best, the runner-up and the worst configuration"))
    return blocks


def summary_blocks(a: StudyAnalysis, ranked, fig, level: int) -> list[Block]:
    w = a.winners
    if w is None:
        return [("h", level, "Final summary"), ("p", "No complete runs yet.")]
    metric = a.spec.metric
    d = lambda c: describe(c, a.params)  # noqa: E731
    rank_rows = [[str(i + 1), d(c), pm(c, metric), f"{c.stats['train_seconds'].mean:.2f}", f"{c.params:,}"]
                 for i, c in enumerate(ranked[:10])]
    sd = [c.stats[metric].std for c in ranked if math.isfinite(c.stats[metric].std)]
    noise = f"{100 * sum(sd) / len(sd):.2f} %" if sd and metric.endswith("acc") else (f"{sum(sd) / len(sd):.3g}" if sd else "—")
    blocks: list[Block] = [
        ("h", level, "Final summary"),
        ("table", ["rank", "configuration", f"{metric}", "train s", "params"], rank_rows),
        ("list", [
            f"Pure performance winner: {d(w.accuracy)} ({pm(w.accuracy, metric)}).",
            f"Configurations not significantly worse than it (Welch, alpha {a.spec.alpha}): "
            f"{', '.join(d(c) for c in w.as_good)}.",
            f"Efficiency winner by parameters: {d(w.fewest_params)} ({w.fewest_params.params:,} params, {pm(w.fewest_params, metric)}).",
            f"Efficiency winner by time: {d(w.fastest)} ({w.fastest.stats['train_seconds'].mean:.2f} s, {pm(w.fastest, metric)}).",
            f"Practical winner (knee of the accuracy/time Pareto front): {d(w.practical)} ({pm(w.practical, metric)}, "
            f"{w.practical.stats['train_seconds'].mean:.2f} s).",
            f"Seed noise: the typical standard deviation of {metric} across seeds is {noise}; "
            f"differences smaller than about twice that are not resolved by {len(a.spec.seeds)} seeds.",
        ]),
        fig("pareto", lambda: figures.pareto(a.configs, w), "Accuracy against training time; the Pareto front"),
        ("p", f"Recommended configuration: {d(w.fastest)} — the fastest configuration whose {metric} is within "
              f"seed noise of the best."),
        ("code", recommended_toml(w.fastest.config)),
    ]
    return blocks


def recommended_toml(c) -> str:
    lines = ["[defaults]", f"layers = {list(c.layers)}", f'activation = "{c.activation}"', f"dropout = {c.dropout}",
             f"epochs = {c.epochs}", f"batch_size = {c.batch_size}", f'optimizer = "{c.optimizer}"', f"lr = {c.lr}"]
    if c.weight_decay:
        lines.append(f"weight_decay = {c.weight_decay}")
    if c.optimizer in ("momentum", "nesterov", "rmsprop") and c.momentum:
        lines.append(f"momentum = {c.momentum}")
    return "\n".join(lines)
