"""The notebook for a whole programme of studies, ending with the log's Final Summary."""

from __future__ import annotations

from typing import Sequence

from ..analysis.aggregate import aggregate, describe, varying_params
from ..analysis.study import StudyAnalysis
from ..analysis.winners import winners
from . import figures
from .document import pm, recommended_toml

def combined_blocks(analyses: Sequence[StudyAnalysis], fig, root=None) -> list[tuple]:
    metric = analyses[0].spec.metric if analyses else "val_acc"
    blocks: list[tuple] = [("h", 1, "Experiment log, re-run with seeds and statistics"),
                           ("p", f"{len(analyses)} studies. Each has its own page (report/report.md in its "
                                 "folder); this page gathers their verdicts and ends with the final summary.")]
    rows = []
    for a in analyses:
        for v in a.verdicts:
            rows.append([a.spec.name, v.hypothesis.id, v.hypothesis.says, v.verdict, v.detail])
    blocks += [("h", 2, "Verdicts"), ("table", ["study", "id", "hypothesis", "verdict", "numbers"], rows)]
    for a in analyses:
        n = len({r.trial_id for r in a.runs})
        blocks += [("h", 2, a.spec.title or a.spec.name),
                   ("p", f"{a.spec.description} — {n} trials, {len(a.configs)} configurations × "
                         f"{len(a.spec.seeds)} seeds. Full page: ../{a.folder.name}/report/report.md")]
        ranked = sorted([c for c in a.configs if c.n_complete], key=lambda c: -c.stats[metric].mean)
        blocks.append(("table", ["configuration", metric, "test_acc", "train s", "params"],
                       [[describe(c, a.params), pm(c, metric), pm(c, "test_acc"),
                         f"{c.stats['train_seconds'].mean:.2f}", f"{c.params:,}"] for c in ranked]))
    # --- the final summary over every distinct configuration of the programme ---
    runs = {r.trial_id: r for a in analyses for r in a.runs}
    configs = aggregate(list(runs.values()))
    w = winners(configs, metric)
    blocks.append(("h", 2, "Final summary"))
    if w is None:
        return blocks + [("p", "No complete runs yet.")]
    params = varying_params(configs)
    d = lambda c: describe(c, params)  # noqa: E731
    ranked = sorted([c for c in configs if c.n_complete], key=lambda c: -c.stats[metric].mean)
    blocks += [
        ("p", f"Accuracy rankings over all {len(ranked)} distinct configurations of the programme "
              f"(best 15; mean ± 95 % CI over seeds):"),
        ("table", ["rank", "configuration", metric, "test_acc", "train s", "params"],
         [[str(i + 1), d(c), pm(c, metric), pm(c, "test_acc"), f"{c.stats['train_seconds'].mean:.2f}",
           f"{c.params:,}"] for i, c in enumerate(ranked[:15])]),
        ("list", [
            f"Pure performance winner: {d(w.accuracy)} — {pm(w.accuracy, metric)}, "
            f"{w.accuracy.stats['train_seconds'].mean:.2f} s, {w.accuracy.params:,} params.",
            f"Within seed noise of it (Welch, alpha 0.05): {len(w.as_good)} configurations.",
            f"Efficiency winner (fewest parameters among those): {d(w.fewest_params)} — "
            f"{pm(w.fewest_params, metric)}, {w.fewest_params.params:,} params.",
            f"Efficiency winner (fastest among those): {d(w.fastest)} — {pm(w.fastest, metric)}, "
            f"{w.fastest.stats['train_seconds'].mean:.2f} s.",
            f"Practical winner (knee of the accuracy/time Pareto front): {d(w.practical)} — "
            f"{pm(w.practical, metric)}, {w.practical.stats['train_seconds'].mean:.2f} s.",
        ]),
        fig("programme-pareto", lambda: figures.pareto(configs, w), "All configurations: accuracy against time"),
        ("h", 3, "Documented optimal configuration"),
        ("p", f"{d(w.fastest)}: the fastest configuration whose {metric} is not significantly below the best "
              f"({pm(w.fastest, metric)} against {pm(w.accuracy, metric)}); test accuracy "
              f"{pm(w.fastest, 'test_acc')}."),
        ("code", recommended_toml(w.fastest.config)),
    ]
    return blocks
