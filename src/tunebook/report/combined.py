"""The notebook for a whole programme of studies, ending with the log's Final Summary.

Scannable first: one table of every verdict (coloured as on the study pages, each study
linked to its own page), then a short paragraph and the top configurations per study (the
per-hypothesis tables live on the study pages), then the programme's final summary.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Sequence

from ..analysis.aggregate import aggregate, describe, varying_params
from ..analysis.cost import reference_cost_models
from ..analysis.study import StudyAnalysis
from ..analysis.winners import score, winners
from ..spec import model_epochs
from . import figures
from .document import pm, recommended_toml, seconds_alone, seeds_cell, winner_lines

TOP = 5


def _page(a: StudyAnalysis, out_dir: Path | None) -> str:
    """The study page's path without extension, relative to the combined page's folder."""
    here = out_dir if out_dir is not None else a.folder.parent / "report"
    return os.path.relpath(a.folder / "report" / "report", here)


def combined_blocks(analyses: Sequence[StudyAnalysis], fig, out_dir: Path | None = None) -> list[tuple]:
    metric = analyses[0].spec.metric if analyses else "val_acc"
    tally = Counter(v.verdict for a in analyses for v in a.verdicts)
    blocks: list[tuple] = [("h", 1, "Experiment log, re-run with seeds and statistics"),
                           ("p", f"{len(analyses)} studies, {sum(tally.values())} hypotheses: "
                                 f"{tally['supported']} supported, {tally['refuted']} refuted, "
                                 f"{tally['inconclusive']} inconclusive. Each study has its own page "
                                 "(linked below) with the tables, figures and tests behind its verdicts.")]
    seq = [a for a in analyses if a.sequential]
    if seq:
        n_dec = sum(v.verdict != "inconclusive" for a in seq for v in a.verdicts)
        n_holm = sum(v.verdict != "inconclusive" and a.survives_holm(v.hypothesis.id) for a in seq for v in a.verdicts)
        n_all = sum(len(a.verdicts) for a in seq)
        spent = sum(model_epochs([r.config for r in a.runs]) for a in seq)
        still = [f"{v.hypothesis.id} (~{v.seeds_needed} seeds)" if v.seeds_needed else v.hypothesis.id
                 for a in seq for v in a.verdicts if v.verdict == "inconclusive"]
        blocks.append(("p", f"Run with --until-decided ({len(seq)} of {len(analyses)} studies): decided {n_dec} of "
                            f"{n_all} hypotheses at alpha, {n_holm} of them surviving Holm within their study; "
                            f"{spent} model-epochs stored"
                            + (f"; still open, with a fixed-n estimate of the seeds per configuration that would "
                               f"resolve each: {', '.join(still)}." if still else ".")))
    if analyses and all(a.spec.smoke for a in analyses):
        blocks.append(("verdict", "inconclusive", f"Smoke tests ({analyses[0].spec.smoke}): a quick check that the "
                       "programme runs, kept apart from the full studies. Not evidence."))
    rows = []
    for a in analyses:
        for v in a.verdicts:
            holm = "—" if v.verdict == "inconclusive" else ("yes" if a.survives_holm(v.hypothesis.id) else "no")
            rows.append([("link", a.spec.name, _page(a, out_dir)), v.hypothesis.id, v.hypothesis.says,
                         ("verdict", v.verdict), holm, v.detail])
    held = sum(1 for a in analyses for v in a.verdicts if v.verdict != "inconclusive" and a.survives_holm(v.hypothesis.id))
    blocks += [("h", 2, "Verdicts"),
               ("p", f"“Holm” says whether a decided verdict survives Holm's adjustment over its study's "
                     f"hypotheses (family-wise error at the study's alpha): {held} of "
                     f"{tally['supported'] + tally['refuted']} do."),
               ("table", ["study", "id", "hypothesis", "verdict", "Holm", "numbers"], rows)]
    blocks.append(("h", 2, "Studies"))
    for a in analyses:
        n = len({r.trial_id for r in a.runs})
        ranked = sorted([c for c in a.configs if c.n_complete], key=lambda c: -score(c, metric))
        ranked += [c for c in a.configs if not c.n_complete]  # diverged / collapsed / failed in every seed
        smoke = f" Smoke test ({a.spec.smoke}): not evidence." if a.spec.smoke else ""
        blocks += [("h", 3, a.spec.title or a.spec.name),
                   ("p", f"{a.spec.description} — {n} trials, {len(a.configs)} configurations × "
                         f"{len(a.spec.seeds)} seeds.{smoke}"),
                   ("table", ["study page", f"top {min(TOP, len(ranked))} of {len(ranked)} configurations by {metric}", "seeds",
                              metric, "test_acc", "s alone (model)", "params"],
                    [[("link", a.spec.name, _page(a, out_dir)) if i == 0 else "", describe(c, a.params), seeds_cell(c),
                      pm(c, metric), pm(c, "test_acc"), seconds_alone(c), f"{c.params:,}"]
                     for i, c in enumerate(ranked[:TOP])])]
    # --- the final summary over every distinct configuration of the programme ---
    runs = {r.trial_id: r for a in analyses for r in a.runs}
    configs = aggregate(list(runs.values()), reference_cost_models(list(runs.values())))
    w = winners(configs, metric)
    blocks.append(("h", 2, "Final summary"))
    if w is None:
        return blocks + [("p", "No complete runs yet.")]
    params = varying_params(configs)
    d = lambda c: describe(c, params)  # noqa: E731
    ranked = sorted([c for c in configs if c.n_complete], key=lambda c: -score(c, metric))
    blocks += [
        ("p", f"Accuracy rankings over all {len(ranked)} distinct configurations of the programme "
              f"(best 15; mean ± 95 % CI over seeds):"),
        ("table", ["rank", "configuration", metric, "test_acc", "s alone (model)", "params"],
         [[str(i + 1), d(c), pm(c, metric), pm(c, "test_acc"), seconds_alone(c), f"{c.params:,}"]
          for i, c in enumerate(ranked[:15])]),
        ("list", winner_lines(w, d, metric, 0.05)),
        fig("programme-pareto", lambda: figures.pareto(configs, w, params), "All configurations: accuracy against cost"),
        ("h", 3, "Documented optimal configuration"),
        ("p", (f"{d(w.fastest)}: the cheapest of the {len(w.as_good)} configurations not shown worse than the best "
               f"({pm(w.fastest, metric)} against {pm(w.accuracy, metric)}; not shown equivalent either — that needs "
               f"a margin and, usually, more seeds); test accuracy {pm(w.fastest, 'test_acc')}.")
         if len(w.as_good) > 1 else
         f"{d(w.fastest)}: ahead of every other configuration beyond seed noise ({pm(w.fastest, metric)}); test "
         f"accuracy {pm(w.fastest, 'test_acc')}."),
        ("code", recommended_toml(w.fastest.config)),
    ]
    return blocks
