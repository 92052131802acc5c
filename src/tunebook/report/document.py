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

from ..analysis.aggregate import ConfigStats, describe, heatmap_cells
from ..analysis.contrast import arm
from ..hypotheses import Hypothesis, matches
from ..analysis.study import StudyAnalysis
from ..analysis.verdicts import Verdict
from ..analysis.winners import score
from . import figures

Block = tuple
FigureFn = Callable[[], Any]


def pct(x: float, digits: int = 2) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f} %"


def value_text(metric: str, x: float) -> str:
    """A metric's value as the report writes it: accuracies in percent."""
    return pct(x) if metric.endswith("acc") else f"{x:.4g}"


def delta_text(metric: str, x: float) -> str:
    """A difference of a metric, signed: accuracies in points."""
    return f"{100 * x:+.2f}" if metric.endswith("acc") else f"{x:+.4g}"


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


def seeds_cell(c: ConfigStats) -> str:
    """Complete seeds, and what happened to the others (never silently averaged in)."""
    extra = [f"{n} {what}" for n, what in ((c.n_diverged, "diverged"), (c.n_collapsed, "collapsed"),
                                           (c.n_failed, "failed"), (c.n_pruned, "pruned")) if n]
    return f"{c.n_complete}" + (f" (+{', '.join(extra)})" if extra else "")


def seconds_alone(c: ConfigStats) -> str:
    return f"{c.seconds_alone:.2f}" if math.isfinite(c.seconds_alone) else "—"


def _regression(a: StudyAnalysis) -> bool:
    from ..datasets import DATASETS

    info = DATASETS.get(a.spec.dataset)
    return info is not None and info.task == "regression"


def config_rows(configs: Sequence[ConfigStats], a: StudyAnalysis, metric: str) -> list[list[str]]:
    """A row per configuration: the metric, the test split's (test_acc, or a regression's
    test_rmse), cost, and — for an accuracy — accuracy per million parameters."""
    rows = []
    regression = _regression(a)
    for c in configs:
        eff = c.stats[metric].mean / (c.params / 1e6) if c.params and c.n_complete else math.nan
        row = [describe(c, a.params), seeds_cell(c), pm(c, metric), pm(c, "test_rmse" if regression else "test_acc"),
               f"{c.flops / 1e12:.3g}" if c.flops else "—", seconds_alone(c), f"{c.params:,}"]
        if metric.endswith("acc"):
            row.append(f"{100 * eff:.1f}" if math.isfinite(eff) else "—")
        rows.append(row)
    return rows


CONFIG_HEADERS = ["configuration", "seeds", "{metric} (mean ± 95 % CI)", "{test}", "train TFLOP",
                  "s alone (model)", "params", "{metric} % per M params"]


def _headers(metric: str, regression: bool = False) -> list[str]:
    heads = [h.format(metric=metric, test="test_rmse" if regression else "test_acc") for h in CONFIG_HEADERS]
    return heads if metric.endswith("acc") else heads[:-1]


def _involved(v: Verdict, a: StudyAnalysis) -> list[ConfigStats]:
    keys = set(v.configs)
    return [c for c in a.configs if c.key in keys]


def insight(v: Verdict) -> str:
    h = v.hypothesis
    if v.no_data:
        return f"“{h.says}” cannot be judged yet, for want of data: {v.detail}."
    word = {"supported": "holds", "refuted": "does not hold", "inconclusive": "cannot be decided yet"}[v.verdict]
    text = f"“{h.says}” {word}: {v.detail}."
    if v.verdict == "inconclusive" and v.seeds_needed:
        text += f" About {v.seeds_needed} seeds per configuration would resolve a difference of this size."
    elif v.verdict == "inconclusive":
        text += " No realistic number of seeds would resolve a difference this small."
    return text


def holm_note(v: Verdict, a: StudyAnalysis) -> str:
    """Whether a decided verdict survives Holm's adjustment over the study's hypotheses."""
    if v.verdict == "inconclusive" or v.no_data:
        return ""
    m = sum(1 for x in a.verdicts if math.isfinite(x.p))
    if m < 2:
        return ""
    if a.survives_holm(v.hypothesis.id):
        return f" Holm-adjusted over the study's {m} tested hypotheses (family-wise alpha {a.spec.alpha}): still decided."
    return (f" Holm-adjusted over the study's {m} tested hypotheses (family-wise alpha {a.spec.alpha}): "
            f"not decided (p = {v.p:.3g} does not pass its step-down threshold).")


def hypothesis_blocks(v: Verdict, a: StudyAnalysis, fig: Callable[[str, FigureFn, str], Block]) -> list[Block]:
    h = v.hypothesis
    blocks: list[Block] = [("h", 3, f"{h.id}: {h.says}"),
                           ("p", f"Claim, as tested: {claim(h)}. Test: {v.test}; alpha = {a.spec.alpha}"
                                 + (f"; {v.looks_planned} planned looks" if v.looks_planned else "") + ".")]
    involved = _involved(v, a)
    if involved:
        blocks.append(("table", _headers(h.metric if h.metric in involved[0].stats else a.spec.metric, _regression(a)),
                       config_rows(involved, a, h.metric if h.metric in involved[0].stats else a.spec.metric)))
    if h.kind == "compare" and involved:
        side = {}
        for name, sel in (("a", h.a), ("b", h.b)):
            cs = [c for c in involved if matches(sel, c.config)]
            labels = sorted({describe(c, a.params) for c in cs})
            side[name] = (f"{name}: {labels[0]}" if len(labels) == 1 else f"{name}: mean of {len(labels)} configs",
                          list(arm(cs, h.metric).values()))  # per seed, as the test sees it
        blocks.append(fig(f"{h.id}-compare", lambda: figures.compare([side["a"], side["b"]], h.metric),
                          f"{h.id}: a = {_selector(h.a)}, b = {_selector(h.b)}"))
    elif h.kind == "trend" and involved:
        others = series_params(involved, h.param, [p for p in a.params if p not in h.where])
        by = "config" if others else None
        blocks.append(fig(f"{h.id}-trend", lambda: figures.metric_vs_param(involved, h.param, h.metric, by, others),
                          f"{h.id}: {h.metric} against {h.param}"))
    elif h.kind == "threshold" and involved:  # the selected configurations only, with the bar
        sel = sorted(involved, key=lambda c: -score(c, h.metric))
        bars = [(f"{k} {pct(x) if h.metric.endswith('acc') else f'{x:g}'}", x)
                for k, x in (("at least", h.at_least), ("at most", h.at_most)) if x is not None]
        blocks.append(fig(f"{h.id}-threshold", lambda: figures.compare(
            [(describe(c, a.params), c.metric(h.metric)) for c in sel], h.metric, bars),
            f"{h.id}: each selected configuration against the bound"))
    elif involved:
        ranked = sorted([c for c in a.configs if c.n_complete], key=lambda c: -score(c, h.metric))[:8]
        blocks.append(fig(f"{h.id}-ranking", lambda: figures.compare(
            [(describe(c, a.params), c.metric(h.metric)) for c in ranked], h.metric), f"{h.id}: top configurations"))
    if v.looks and any(math.isfinite(lk.lo) for lk in v.looks) and h.kind in ("compare", "threshold"):
        blocks.append(fig(f"{h.id}-looks", lambda: figures.looks(v, h.metric),
                          f"{h.id}: the estimate and its interval at each look (seeds per configuration)"))
    if v.caveat:
        blocks.append(("p", f"Assumption: the t-test assumes roughly Gaussian per-seed values; here {v.caveat}. "
                            "A study where a few seeds may train badly can set [study] test = \"bounded\"."))
    if a.spec.smoke:  # a smoke test judges nothing: its numbers are not evidence, so no verdict is shown
        blocks.append(("verdict", "inconclusive", f"Not judged: smoke test ({a.spec.smoke}). The numbers it would be "
                       f"judged on: {v.detail}."))
        return blocks
    need = f" Seeds that would resolve it: {v.seeds_needed}." if v.verdict == "inconclusive" and v.seeds_needed else ""
    blocks.append(("verdict", v.verdict, f"{v.detail}.{need}{holm_note(v, a)}"))
    blocks.append(("p", "Insight: " + insight(v)))
    return blocks


def methods_text(a: StudyAnalysis) -> str:
    """How this study's verdicts were judged, and what that assumes (named once, per report)."""
    spec = a.spec
    when = ("at every planned look of --until-decided, with intervals valid over all looks: the anytime-valid "
            "t-test of Wang & Ramdas (2023) for paired arms, Welch's at alpha / looks otherwise"
            if a.sequential else "at a fixed number of seeds: the paired t-test for paired arms, Welch's otherwise")
    test = {"auto": "where an arm's per-seed values (the differences, when paired) fail the Gaussian check "
                    "(with ≥ 8 seeds: D'Agostino's skewness test at p < 0.001, or a seed more than 7 robust SDs "
                    "from the median), the distribution-free betting confidence sequence for bounded values "
                    "(Waudby-Smith & Ramdas 2023) is used instead and the verdict says so",
            "t": "the t-tests are used throughout, as the study asks (test = \"t\")",
            "bounded": "the distribution-free betting confidence sequence for bounded values (Waudby-Smith & "
                       "Ramdas 2023) is used throughout, as the study asks (test = \"bounded\")"}[spec.test]
    return (f"How these verdicts are judged: each selector's configurations form an arm, averaged per seed "
            f"(configurations are not counted as seeds); two arms are paired by seed when they share batch size "
            f"and data. Judged {when}; alpha {spec.alpha:g}"
            + (f", margin {spec.margin:g} (smallest effect of interest)" if spec.margin else "")
            + f". Assumption: roughly Gaussian per-seed values; {test}. A threshold holds for each selected "
            "configuration, a monotone trend on every step, `best` within the margin. Holm's step-down procedure "
            "over the study's hypotheses says which decisions hold for the family.")


def seeds_line(a: StudyAnalysis) -> str:
    spec = a.spec
    listed = f"{', '.join(map(str, spec.seeds[:10]))}{'…' if len(spec.seeds) > 10 else ''}"
    if not a.sequential:
        return f"Seeds: {len(spec.seeds)} per configuration ({listed})."
    per = [c.n_runs for c in a.configs] or [0]
    return (f"Seeds: run with --until-decided — {len(spec.seeds)} at the first look ({listed}), then "
            f"{spec.decide.round} more per look up to {spec.decide.max_seeds} for the configurations of open "
            f"hypotheses ({len(spec.decide.looks(len(spec.seeds)))} planned looks); stored now: "
            f"{min(per)}–{max(per)} per configuration; margin (smallest effect of interest) {spec.margin:g}.")


def study_blocks(a: StudyAnalysis, fig: Callable[[str, FigureFn, str], Block], level: int = 1) -> list[Block]:
    spec, metric = a.spec, a.spec.metric
    statuses = [r.result.status for r in a.runs]
    env = a.runs[0].meta if a.runs else {}
    blocks: list[Block] = [("h", level, spec.title or spec.name)]
    if spec.smoke:
        blocks.append(("verdict", "inconclusive", f"Smoke test ({spec.smoke}): a quick check that the study runs, "
                       "kept apart from the full study. Its numbers are not evidence for or against anything."))
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
    collapsed = sum(c.n_collapsed for c in a.configs)
    blocks += [("h", level + 1, "Setup"), ("list", [
        f"Dataset: {spec.dataset}; validation on {val}" + (f"; training subset {spec.train_subset}" if spec.train_subset else "") + ".",
        *([model_line(spec)] if spec.model else []),
        f"Defaults: {defaults}.", f"Search: {search_line(a)}." if spec.search else f"Grid: {grid}.",
        seeds_line(a),
        f"Trials: {len(a.runs)} stored — {statuses.count('complete') - collapsed} complete, "
        f"{collapsed} collapsed ({'no better than predicting the mean, R² < 0.01' if _regression(a) else 'stuck at chance accuracy'}; counted, not averaged in), "
        f"{statuses.count('diverged')} diverged, {statuses.count('failed')} failed"
        + (f", {statuses.count('pruned')} pruned (stopped early by the search's pruner)" if 'pruned' in statuses else "")
        + f"; {len(a.configs)} configurations.",
        f"Training time: {total:.1f} s in all (trials trained stacked in groups); "
        f"engine {env.get('engine', '?')} on {env.get('device', '?')}, torch {env.get('torch', '?')}.",
        "Cost of a configuration (rankings, the accuracy-vs-cost figure): its training FLOPs and its time to "
        "train alone, modelled as a · steps + b · FLOPs + c · training images with fixed per-device-kind "
        "coefficients (never from this run's group times, which depend on how trials were grouped and on "
        "the machine's load) — " + ("; ".join(m.describe() for m in a.cost_models) or "no model (no runs)") + ".",
        f"Reproduce: tunebook run {spec.path}"])]
    blocks += data_card(spec.dataset, level + 1)
    if a.problems:
        blocks.append(("list", [f"Warning: {p}" for p in a.problems]))
    if a.search is not None:
        blocks += search_blocks(a, fig, level + 1)
    # --- hypotheses ---
    if a.verdicts:
        blocks.append(("h", level + 1, "Hypotheses"))
        blocks.append(("p", methods_text(a)))
        for v in a.verdicts:
            blocks += hypothesis_blocks(v, a, fig)
    # --- all results ---
    ranked = sorted([c for c in a.configs if c.n_complete], key=lambda c: -score(c, metric))  # best first
    unusable = [c for c in a.configs if not c.n_complete]  # diverged, collapsed or failed in every seed
    blocks += [("h", level + 1, "Results"), ("table", _headers(metric, _regression(a)), config_rows(ranked + unusable, a, metric))]
    if spec.search is None:  # a search's proposals are drawn by its slice figure instead
        blocks += overview_figures(a, ranked, fig)
    blocks += overfit_blocks(a, ranked, fig, level + 1)
    blocks += class_blocks(a, ranked, fig, level + 1)
    blocks += summary_blocks(a, ranked, fig, level + 1)
    return blocks


def class_blocks(a: StudyAnalysis, ranked, fig, level: int) -> list[Block]:
    """Validation accuracy within each class, by the dataset's own class names, for the
    configuration with the highest mean (and the recommended one, where it is another)."""
    from ..datasets import DATASETS

    info = DATASETS.get(a.spec.dataset)
    if info is None or not ranked:
        return []
    picks = [ranked[0]]
    w = a.winners
    if w is not None and not a.spec.smoke and a.spec.search is None and w.fastest.key != ranked[0].key:
        picks.append(next(c for c in ranked if c.key == w.fastest.key))
    picks = [c for c in picks if c.class_acc and all(len(x) == len(info.classes) for x in c.class_acc)]
    if not picks:
        return []
    d = lambda c: describe(c, a.params)  # noqa: E731
    names = ["highest mean", "recommended"]
    heads = ["class", "validation rows"] + [f"{names[i]}: {d(c)} ({len(c.class_acc)} seeds)"
                                            for i, c in enumerate(picks)]
    counts = info.class_counts or (info.n_train // info.n_classes,) * info.n_classes
    rows_per_class = [round(float(a.spec.validation) * n) for n in counts] if a.spec.validation != "test" else []
    rows = []
    for k, name in enumerate(info.classes):
        cells = [name, str(rows_per_class[k]) if rows_per_class else "—"]
        for c in picks:
            values = [x[k] for x in c.class_acc if math.isfinite(x[k])]
            cells.append((f"{pct(sum(values) / len(values))} (seeds {pct(min(values))}–{pct(max(values))})"
                          if values else "—"))
        rows.append(cells)
    worst = min(range(len(info.classes)), key=lambda k: sum(x[k] for x in picks[0].class_acc))
    blocks: list[Block] = [
        ("h", level, "By class"),
        ("p", "Validation accuracy within each true class (the share of its validation rows predicted as it), "
              f"mean over seeds and the seeds' range. Hardest class for {d(picks[0])}: {info.classes[worst]}. "
              "Descriptive only: no test is made on these numbers."),
        ("table", heads, rows),
        fig("by-class", lambda: figures.per_class(info.classes, picks[0].class_acc,
                                                  f"{d(picks[0])}: validation accuracy by class"),
            f"Validation accuracy within each class — {d(picks[0])} (seeds as dots)")]
    return blocks


def _space(d) -> str:
    if d.kind == "choice":
        text = f"{d.name} ∈ {{{', '.join(map(str, d.choices))}}}"
    else:
        text = f"{d.name} ∈ [{d.low:g}, {d.high:g}]" + (" (log)" if d.log else "") + (f" step {d.step:g}" if d.step else "")
    if d.when:
        text += " when " + " and ".join(f"{k} ∈ {{{', '.join(map(str, v))}}}" for k, v in d.when)
    return text


def model_line(spec) -> str:
    """A user's model: its factory, its file and its own hyperparameters' declarations."""
    from ..usermodel import remembered

    try:
        ms = remembered(spec.model)
    except KeyError:
        return f"Model: {spec.model} (a user's nn.Module)."
    declared = ", ".join(f"{name} ∈ {set(p.choices) if p.kind == 'choice' else f'[{p.low:g}, {p.high:g}]'} "
                         f"(default {p.default})" for name, p in ms.params)
    return (f"Model: {ms.ref} ({ms.file or 'its module'}), a user's nn.Module, its copies trained as one torch.func "
            f"stack where their shapes agree (engine `modules`; one by one, `modules-alone`, otherwise)"
            + (f"; its own hyperparameters: {declared}" if declared else "") + ". Its FLOPs are not counted "
            "(the cost columns say —).")


def data_card(key: str, level: int) -> list[Block]:
    """A user's dataset, as the study folder recorded it: where it came from, its rows per
    split, features, classes and their balance, its fingerprint (nothing for a built-in one)."""
    from ..datasets import DATASETS

    info = DATASETS.get(key)
    if info is None or info.builtin:
        return []
    total = sum(info.class_counts) or info.n_train
    features = ", ".join(info.features[:12]) + (f", … ({len(info.features)} in all)" if len(info.features) > 12 else "")
    return [("h", level, "Data"),
            ("list", [f"Source: {info.origin or 'arrays'} (key {info.name}).",
                      f"Rows: {info.n_train} for training and validation, {info.n_test} held out as the test split.",
                      f"Features: {info.n_features}" + (f" ({features})." if info.features else "."),
                      f"Fingerprint (SHA-256 of the arrays as read, and of the reading options): {info.fingerprint}; "
                      "a changed file is a new dataset, and its trials new trials."] + target_lines(info)),
            ("table", ["class", "training rows", "share"],
             [[c, str(n), pct(n / total, 1)] for c, n in zip(info.classes, info.class_counts)])
            ][: 2 if info.task == "regression" else 3]


def target_lines(info) -> list[str]:
    """A regression target: how it was recognised, and the scale its errors are in."""
    if info.task != "regression":
        return []
    import json

    pre = json.loads(info.preprocessing or "{}")
    name = f" {info.target!r}" if info.target else ""
    return [f"Target{name}: a number to predict (regression; {pre.get('task_from', 'data.task')}) — the network "
            f"learns it standardised by the training split's mean {info.target_mean:.4g} and standard deviation "
            f"{info.target_sd:.4g}; val_rmse, val_mae (and test_*) are in the target's own units, val_r2 is the share "
            "of the validation target's variance explained, val_loss the mean squared error of the standardised "
            "target. Hold-outs are stratified by the target's deciles."]


def search_line(a: StudyAnalysis) -> str:
    plan = a.spec.search
    objectives = ", ".join(f"{m} ({'higher' if d == 'max' else 'lower'} is better)" for m, d in plan.objectives)
    return (f"{'; '.join(_space(d) for d in plan.dimensions)} — sampler {plan.sampler} (seed {plan.sampler_seed}), "
            f"{plan.trials} proposals asked {plan.batch} at a time, each trained on every seed and told its mean; "
            f"objective: {objectives}")


def pruner_note(spec, metric: str) -> str:
    """The search's pruning rule, named, with what it assumes."""
    plan = spec.search
    if plan.pruner == "halving":
        from ..halving import ETA, rungs
        from ..hparams import BASE_DEFAULTS

        epochs = max([int(d.high) for d in plan.dimensions if d.name == "epochs"]
                     or [int(dict(spec.defaults).get("epochs", BASE_DEFAULTS["epochs"]))])
        at = ", ".join(str(r) for r in rungs(epochs)) or "none"
        return (f"Pruning rule: synchronous successive halving (Jamieson and Talwalkar 2016): each batch paused at "
                f"epoch {at}; its proposals still training were ranked by their mean {metric} over their seeds "
                f"and the best 1/{ETA} went on, the rest were stopped there (the ranks: search/rungs.toml). It "
                "assumes that the ranking at a rung predicts the ranking at the end, so a slow starter can be "
                "lost; it is a budget rule, not a test, and claims no error rate.")
    if plan.pruner == "median":
        from ..sampling import MEDIAN_STARTUP

        return (f"Pruning rule: Optuna's median pruner: a proposal stopped at the end of an epoch when its mean "
                f"{metric} there was worse than the median of the completed proposals' at that epoch, once "
                f"{MEDIAN_STARTUP} had completed. It assumes early epochs predict the end; it claims no error rate.")
    name = {"asha": "successive-halving", "hyperband": "Hyperband"}.get(plan.pruner, plan.pruner)
    return (f"Pruning rule: Optuna's {name} pruner, asked epoch by epoch as the batch trained in lock-step. It "
            "decides one proposal at a time against the values recorded at the rung before it, so within a batch "
            "its decisions depend on the order the proposals were asked (the first meets an empty rung); "
            "pruner = \"halving\" ranks a batch's rung at once. It assumes early epochs predict the end; it "
            "claims no error rate.")


def search_blocks(a: StudyAnalysis, fig, level: int) -> list[Block]:
    """Progress of a searched study: what was proposed, the best mean so far."""
    results, confirmed = list(a.search.results), list(a.search.confirmed)
    done = [r for r in results if r.values is not None]
    metric, direction = a.spec.search.objectives[0]
    pruned = [r for r in results if r.pruned]
    failed = [r for r in results if r.failed and not r.pruned]
    waiting = len(results) - len(done) - len(pruned) - len(failed)
    parts = [f"{len(pruned)} pruned (stopped early by the pruner)" if pruned else "",
             f"{len(failed)} failed" if failed else "", f"{waiting} not finished yet" if waiting else ""]
    blocks: list[Block] = [("h", level, "Search"), ("p", f"{len(done)} of {a.spec.search.trials} proposals "
                            "complete" + (f"; {', '.join(x for x in parts if x)}" if any(parts) else "") + ".")]
    if pruned:
        blocks.append(("p", pruner_note(a.spec, metric)))
        blocks.append(("table", ["proposal", "hyperparameters", "pruned at epoch", f"its last mean {metric}"],
                       [[str(r.proposal.number), r.describe(), str(len(r.curve)) if r.curve else "1",
                         value_text(metric, r.curve[-1]) if r.curve else "—"] for r in sorted(pruned, key=lambda r: r.proposal.number)]))
    if not done:
        return blocks
    spent, seconds, values, total, clock = [], [], [], 0, 0.0
    for r in sorted(results, key=lambda r: r.proposal.number):
        total += sum(run.result.epochs_run for run in r.tried)  # pruned runs cost their epochs too
        clock += sum(run.result.train_seconds for run in r.tried)
        if r.values is not None:
            spent.append(total)
            seconds.append(clock)
            values.append(r.values[0])
    blocks.append(fig("search-progress", lambda: figures.best_so_far(spent, seconds, values, metric, direction == "max"),
                      f"Each proposal's mean {metric} over its {len(a.spec.seeds)} seeds, and the best so far, "
                      "against the model-epochs and the training seconds spent (proposal order)"))
    blocks += search_figures(a, results, fig)
    best = max(done, key=lambda r: r.values[0] if direction == "max" else -r.values[0])
    blocks.append(("p", f"Best mean so far: proposal {best.proposal.number} ({best.describe()}): {metric} "
                        f"{value_text(metric, best.values[0])} over {len(best.runs)} seeds. The best of {len(done)} means is "
                        "biased upwards (it is partly the luckiest); it is a candidate, not yet a winner "
                        "confirmed with more seeds."))
    if not confirmed:
        plan = a.spec.search
        blocks.append(("p", f"Confirmation: the best {plan.confirm} proposals train on {plan.confirm_seeds} seeds "
                            "once every proposal is done (not yet)." if plan.confirm else "Confirmation: off."))
        return blocks
    n = confirmed[0].estimate.n
    rows = []
    for c in sorted(confirmed, key=lambda c: -c.estimate.p_best):
        e = c.estimate
        v = c.versus
        unit = " points" if metric.endswith("acc") else ""
        against = ("the likely best" if v is None else
                   f"{delta_text(metric, v.estimate)} [{delta_text(metric, v.lo)}, {delta_text(metric, v.hi)}]{unit}: " + _CONFIRM_WORDS[v.decision]
                   if math.isfinite(v.lo) and math.isfinite(v.hi) else
                   f"{delta_text(metric, v.estimate)}{unit}, no interval yet (too few seeds for this test)")
        interval = (f"{pct(e.mean)} [{100 * e.low:.2f}, {100 * e.high:.2f}]" if metric.endswith("acc") else
                    f"{e.mean:.4g} [{e.low:.4g}, {e.high:.4g}]")
        rows.append([str(c.result.proposal.number), c.result.describe(), value_text(metric, c.result.values[0]), interval,
                     f"{e.p_best:.2f} (±{(e.p_high - e.p_low) / 2:.2f})", against])
    likely = max(confirmed, key=lambda c: c.estimate.p_best)
    tests = sorted({c.versus.test for c in confirmed if c.versus is not None})
    open_ = [c for c in confirmed if c.versus is not None and c.versus.decision == "undecided"]
    blocks += [("h", level + 1, "Confirmed"),
               ("p", f"The {len(confirmed)} best proposals by their search mean, trained again on {n} seeds (the "
                     "search's and new ones; trials of a seed share data order and dropout masks, so the values are "
                     "paired by seed). P(best): how often each has the best mean when the seeds are resampled "
                     "together (paired bootstrap, 4 000 draws; ± its Monte Carlo error) — a measure of how "
                     "stable the ranking is on these seeds, not the probability that it is the true best."),
               ("table", ["proposal", "hyperparameters", f"search mean ({len(a.spec.seeds)} seeds)",
                          f"{metric} over {n} seeds [95 % CI]", "P(best)", "likely best minus this one"], rows),
               ("p", f"Likely best against each other confirmed proposal: {'; '.join(tests) or '—'}, at alpha "
                     f"{a.spec.alpha:g} / {len(confirmed)} (the likely best is chosen from the data), margin "
                     f"{a.spec.margin:g}, decided as for a `best` verdict (best within the margin); seeds "
                     f"added look by look ({', '.join(map(str, a.search.looks))}) until every comparison "
                     "is decided — valid however many looks were taken."),
               ("verdict", "supported" if not open_ else "inconclusive",
                f"Likely best: proposal {likely.result.proposal.number} (P(best) = {likely.estimate.p_best:.2f})"
                + (f", decided better than, or within the margin ({a.spec.margin:g}) of, every other confirmed "
                   f"proposal, each comparison at alpha {a.spec.alpha:g} / {len(confirmed)}. What this "
                   "guarantees: within the margin of the best *of the confirmed proposals*; which proposals were "
                   "confirmed was chosen from the search's own data, and a proposal the search never made is not "
                   "covered." if not open_ else
                   f"; not yet decided against proposal{'s' if len(open_) > 1 else ''} "
                   + ", ".join(str(c.result.proposal.number) for c in open_)
                   + f" at {n} seeds (confirm_max_seeds); more seeds may decide it."))]
    return blocks


_CONFIRM_WORDS = {"a > b": "better (decided)", "a < b": "worse (decided)",
                  "within margin": "not behind it by the margin (decided: best within margin)",
                  "negligible": "equivalent within the margin (decided)", "undecided": "not told apart yet"}


def expected_blocks(a: StudyAnalysis, fig) -> list[Block]:
    """The expected best against the number of proposals (Dodge et al. 2019): would more
    search pay?"""
    curve = a.search.expected
    if len(curve) < 2:
        return []
    metric, direction = a.spec.search.objectives[0]
    n = len(curve)
    half = curve[max(0, n // 2 - 1)]
    last = curve[-1]
    gain = (last[1] - half[1]) * (1 if direction == "max" else -1)
    return [("p", f"Expected best {metric} of a search of n proposals, for n up to the {n} done (Dodge et al. 2019, "
                  f"\"Show Your Work\": the best of n draws from the values seen, ± one standard deviation): "
                  f"{value_text(metric, half[1])} ± {value_text(metric, half[2])} at n = {half[0]}, "
                  f"{value_text(metric, last[1])} ± {value_text(metric, last[2])} at n = {last[0]} — doubling the "
                  f"search from {half[0]} to {last[0]} proposals bought {delta_text(metric, gain)}"
                  f"{' points' if metric.endswith('acc') else ''} in expectation. Assumes the proposals are independent "
                  "draws from one distribution: exact for random search; for an adaptive sampler (TPE), which "
                  "learns from earlier proposals, a description of what it found. Pruned proposals count at their "
                  "last epoch's value."),
            fig("search-expected", lambda: figures.expected_best(curve, metric),
                f"Expected best {metric} against the number of proposals (band: ± one standard deviation)")]


def search_figures(a: StudyAnalysis, results, fig) -> list[Block]:
    """Importances, one slice per hyperparameter, and the Pareto front of two objectives."""
    plan = a.spec.search
    done = [r for r in results if r.values is not None]
    metric = plan.objectives[0][0]
    out: list[Block] = expected_blocks(a, fig)
    imp = a.search.importances
    if imp:
        out.append(("table", ["hyperparameter", f"importance for {metric}"],
                    [[k, f"{v:.2f}"] for k, v in sorted(imp.items(), key=lambda kv: -kv[1])]))
        out.append(("p", f"Importance: how much each hyperparameter decides whether a proposal is in the best "
                         f"quarter of the {len(done)} completed ones by {metric} (Optuna's PED-ANOVA, normalised "
                         "to sum to 1); conditional hyperparameters are left out. With few proposals, a rough guide."))
    out.append(fig("search-slices", lambda: figures.search_slices(plan.dimensions, [(r.params, r.values[0]) for r in done],
                                                                  metric, plan.objectives[0][1] == "max"),
                   f"Each completed proposal's mean {metric} against each hyperparameter (colour: proposal order, "
                   "early dark to late light)"))
    if len(plan.objectives) == 2:
        front = a.search.pareto
        names = [m for m, _ in plan.objectives]
        out.append(fig("search-pareto", lambda: figures.search_pareto(
            [(r.values[0], r.values[1], r.proposal.number in front) for r in done], names,
            [d for _, d in plan.objectives]), f"{names[0]} against {names[1]}: the Pareto front of {len(front)} proposals"))
    return out


def overview_figures(a: StudyAnalysis, ranked, fig) -> list[Block]:
    """A heatmap over the first two numeric parameters that vary independently, and the
    metric against each parameter wherever that draws a line."""
    out = []
    metric = a.spec.metric
    numeric = [p for p in a.params if all(isinstance(c.value(p), (int, float)) and c.value(p) is not None for c in a.configs)]
    pair = next(((x, y) for i, x in enumerate(numeric) for y in numeric[i + 1:] if crossed(a.configs, x, y)), None)
    if pair is not None:
        x, y = pair
        over = heatmap_cells(a.configs, x, y, metric).over
        out.append(fig(f"heatmap-{x}-{y}", lambda: figures.heatmap(a.configs, x, y, metric),
                       f"Mean {metric} over {x} × {y}" + (f" (each cell: the mean over {', '.join(over)})" if over else "")))
    for i, p in enumerate(a.params):
        if any(same_axis(a.configs, q, p) for q in a.params[:i]):
            continue  # units2 where it moves with units1 in step: the figure against units1 again
        others = series_params(a.configs, p, a.params)
        if not draws_a_line(a.configs, p, others):
            continue
        out.append(fig(f"vs-{p}", lambda p=p, others=others: figures.metric_vs_param(
            a.configs, p, metric, "config" if others else None, others), f"{metric} against {p}"))
    return out


def series_params(configs, param: str, params) -> list[str]:
    """The parameters that name a series of a figure against ``param``: the other varying
    ones that every configuration has and that ``param`` does not settle. A depth grid's
    ``units3`` is set only where depth is 3, and in a grid of layer lists ``units2`` moves
    with ``units1``: as series keys they would give each configuration a series of its
    own, and the figure against depth or width no line."""
    return [q for q in params if q != param and all(c.value(q) is not None for c in configs)
            and not settles(configs, param, q)]


def settles(configs, a: str, b: str) -> bool:
    """Whether each value of ``a`` comes with one value of ``b`` only (where both are set)."""
    seen: dict = {}
    for c in configs:
        if c.value(a) is not None and c.value(b) is not None:
            seen.setdefault(repr(c.value(a)), set()).add(repr(c.value(b)))
    return all(len(v) == 1 for v in seen.values())


def same_axis(configs, a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` settle each other where both are set (a figure against one is
    one against the other: ``units2`` and ``units3`` in a grid of layer lists)."""
    return settles(configs, a, b) and settles(configs, b, a)


def draws_a_line(configs, param: str, others) -> bool:
    """Whether the metric against ``param`` has a series of two points or more: some
    configurations that agree on every parameter in ``others`` differ in ``param``. Where
    none do (``units1`` in a grid of layer lists, where ``units2`` moves with it), the
    figure is only scattered points that read as a trend which is not there."""
    values: dict = {}
    for c in configs:
        if c.n_complete and c.value(param) is not None:
            values.setdefault(tuple(repr(c.value(q)) for q in others), set()).add(repr(c.value(param)))
    return any(len(v) > 1 for v in values.values())


def crossed(configs, x: str, y: str) -> bool:
    """Whether ``x`` and ``y`` vary apart (a heatmap over them is more than a diagonal):
    neither settles the other."""
    return not settles(configs, x, y) and not settles(configs, y, x)


def overfit_blocks(a: StudyAnalysis, ranked, fig, level: int) -> list[Block]:
    rows, notes = [], []
    regression = _regression(a)  # no accuracies: the loss pattern alone
    for c in ranked:
        o = a.overfit[c.key]
        gaps = ([f"{o.final_loss_gap:.4f}", f"{o.max_loss_gap:.4f}"] if regression
                else [pct(o.final_gap), pct(o.max_gap)])
        rows.append([describe(c, a.params), *gaps, f"{o.best_val_loss_epoch:.1f}",
                     f"{o.flagged_seeds}/{o.n_seeds}" + (" ⚠" if o.flagged else "")])
        if o.flagged:
            notes.append(f"{describe(c, a.params)}: validation loss rose for 2+ epochs while training loss fell in "
                         f"{o.flagged_seeds} of {o.n_seeds} seeds (best validation loss at epoch "
                         f"{o.best_val_loss_epoch:.1f} on average) — overfitting.")
    blocks: list[Block] = [("h", level, "Overfitting"),
                           ("p", ("Validation − training loss (the training criterion on the standardised target) "
                                  "at the last epoch and at its largest; " if regression else
                                  "Train − validation accuracy gap at the last epoch and at its largest; ")
                            + "the epoch of lowest validation loss; seeds whose validation loss "
                              "rose 2+ epochs running while training loss fell."),
                           ("table", ["configuration"] + (["final loss gap", "max loss gap"] if regression
                                                          else ["final gap", "max gap"])
                            + ["best val-loss epoch", "flagged seeds"], rows)]
    blocks.append(("list", notes) if notes else ("p", "No configuration shows the rising-validation-loss pattern in most of its seeds."))
    picks = ranked[:2] + ([ranked[-1]] if len(ranked) > 2 else [])
    flagged = [c for c in ranked if a.overfit[c.key].flagged and c not in picks][:1]
    if picks:
        blocks.append(fig("curves-loss", lambda: figures.learning_curves(picks + flagged, "loss", a.params),
                          "Learning curves (loss) of the best, the runner-up and the worst configuration"))
    blocks += gradient_blocks(a, ranked, fig)
    return blocks


def gradient_blocks(a: StudyAnalysis, ranked, fig) -> list[Block]:
    """Gradient flow, where the study varies what decides it (depth, norm, residual,
    activation, init) and its runs recorded gradient norms (tunebook 0.3 on)."""
    if not {"depth", "norm", "residual", "activation", "init"} & set(a.params):
        return []
    shown = [c for c in ranked if any(h.grad_norm for h in c.histories)]
    if not shown:
        return []
    deep = sorted(shown, key=lambda c: -len(c.config.layers))[:4]
    ratios = []
    for c in deep:
        first = [h.grad_norm[0] for h in c.histories if h.grad_norm]
        ratios.append(f"{describe(c, a.params)}: first ÷ output layer "
                      f"{math.exp(sum(math.log(max(g[0], 1e-30) / max(g[-1], 1e-30)) for g in first) / len(first)):.2g}"
                      " in epoch 1")
    return [("p", "Gradient flow — each linear layer's weight-gradient norm (RMS over every 16th step of an epoch, "
                  "geometric mean over seeds) for the deepest configurations. Gradients that vanish with depth are "
                  "much smaller at layer 1 than at the output: " + "; ".join(ratios) + "."),
            fig("gradient-flow", lambda: figures.gradient_flow(deep, a.params), "Gradient flow by layer")]


def summary_blocks(a: StudyAnalysis, ranked, fig, level: int) -> list[Block]:
    w = a.winners
    if w is None:
        return [("h", level, "Final summary"), ("p", "No complete runs yet.")]
    metric = a.spec.metric
    d = lambda c: describe(c, a.params)  # noqa: E731
    rank_rows = [[str(i + 1), d(c), pm(c, metric), seconds_alone(c), f"{c.params:,}"]
                 for i, c in enumerate(ranked[:10])]
    sd = [c.stats[metric].std for c in ranked if math.isfinite(c.stats[metric].std)]
    noise = f"{100 * sum(sd) / len(sd):.2f} %" if sd and metric.endswith("acc") else (f"{sum(sd) / len(sd):.3g}" if sd else "—")
    items = winner_lines(w, d, metric, a.spec.alpha) + [
        f"Seed noise: the typical standard deviation of {metric} across seeds is {noise}; "
        f"differences smaller than about twice that are not resolved by {len(a.spec.seeds)} seeds."]
    tied = len(w.as_good) > 1
    blocks: list[Block] = [
        ("h", level, "Final summary"),
        ("table", ["rank", "configuration", f"{metric}", "s alone (model)", "params"], rank_rows),
        ("list", items),
    ]
    if any(c.cost > 0 for c in a.configs if c.n_complete):  # a user's model has no counted cost
        blocks.append(fig("pareto", lambda: figures.pareto(a.configs, w, a.params),
                          f"{metric} against cost; the Pareto front"))
    if a.spec.smoke:
        blocks.append(("p", "No recommendation: a smoke test's numbers are not evidence."))
    elif a.spec.search is not None:
        blocks.append(("p", "Recommendation: the likely best of the confirmed proposals (the Search section "
                            "above) — one recommendation per report; the table ranks proposals by their search "
                            "means, which favour the lucky."))
    else:
        why = ("the cheapest of the candidates above — not shown worse than the best, which is not the same as "
               "shown equivalent (that needs a margin and, usually, more seeds)" if tied else
               "the only configuration ahead beyond seed noise")
        blocks += [("p", f"Recommended configuration: {d(w.fastest)} — {why}."),
                   ("code", recommended_toml(w.fastest.config))]
    return blocks


def winner_lines(w, d, metric: str, alpha: float) -> list[str]:
    """What the intervals say about the best configuration, and nothing they do not: one
    leader only where every other is significantly below it, else the candidates."""
    tied = [c for c in w.as_good if c is not w.accuracy]
    if tied:
        lines = [f"No configuration is ahead beyond seed noise: {len(w.as_good)} configurations are not told apart "
                 f"from the best mean ({d(w.accuracy)}, {pm(w.accuracy, metric)}) by the t-test at alpha {alpha} "
                 f"(paired by seed where pairable) — candidates: {', '.join(d(c) for c in w.as_good[:12])}"
                 + (f" and {len(w.as_good) - 12} more" if len(w.as_good) > 12 else "") + ".",
                 f"Fewest parameters among the candidates: {d(w.fewest_params)} ({w.fewest_params.params:,} params, "
                 f"{pm(w.fewest_params, metric)}).",
                 f"Cheapest among the candidates: {d(w.fastest)} ({cost_text(w.fastest)}, {pm(w.fastest, metric)})."]
    else:
        lines = [f"Ahead beyond seed noise: {d(w.accuracy)} ({pm(w.accuracy, metric)}); every other configuration is "
                 f"significantly below it (t-test at alpha {alpha}, paired by seed where pairable)."]
    return lines + [f"Knee of the {metric}/cost Pareto front (a trade-off, not a verdict): {d(w.practical)} "
                    f"({pm(w.practical, metric)}, {cost_text(w.practical)})."]


def cost_text(c: ConfigStats) -> str:
    alone = f"{c.seconds_alone:.2f} s alone (modelled), " if math.isfinite(c.seconds_alone) else ""
    return f"{alone}{c.flops / 1e12:.3g} TFLOP"


def recommended_toml(c) -> str:
    lines = ["[defaults]", f"layers = {list(c.layers)}", f'activation = "{c.activation}"', f"dropout = {c.dropout}",
             f"epochs = {c.epochs}", f"batch_size = {c.batch_size}", f'optimizer = "{c.optimizer}"', f"lr = {c.lr}"]
    if c.weight_decay:
        lines.append(f"weight_decay = {c.weight_decay}")
    if c.optimizer in ("momentum", "nesterov", "rmsprop") and c.momentum:
        lines.append(f"momentum = {c.momentum}")
    if c.label_smoothing:
        lines.append(f"label_smoothing = {c.label_smoothing}")
    if c.init != "default":
        lines.append(f'init = "{c.init}"')
    if c.norm != "none":
        lines.append(f'norm = "{c.norm}"')
    if c.residual:
        lines.append("residual = true")
    if c.schedule != "constant":
        lines.append(f'schedule = "{c.schedule}"')
    if c.warmup:
        lines.append(f"warmup = {c.warmup}")
    if c.regression_loss != "mse":
        lines.append(f'regression_loss = "{c.regression_loss}"')
    return "\n".join(lines)
