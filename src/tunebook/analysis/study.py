"""Everything the report says about one study, computed from its stored runs."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..spec import StudySpec, load_spec
from ..store import Run, RunStore, find_studies
from .cost import CostModel, reference_cost_models
from .multiple import holm
from .decide import sequential_verdicts
from .aggregate import config_key, ConfigStats, aggregate, varying_params
from .overfit import Overfit, overfitting
from .verdicts import Verdict, judge_all
from .winners import Winners, winners

if TYPE_CHECKING:
    from ..ledger import Proposal
    from .search import SearchAnalysis


@dataclass(frozen=True)
class StudyAnalysis:
    spec: StudySpec
    folder: Path
    runs: tuple[Run, ...]
    configs: tuple[ConfigStats, ...]
    verdicts: tuple[Verdict, ...]
    overfit: dict[str, Overfit]
    winners: Winners | None
    params: tuple[str, ...]          # hyperparameters that vary across configurations
    problems: tuple[str, ...] = ()   # run folders skipped or ignored, keys ignored
    cost_models: tuple[CostModel, ...] = ()
    holm: dict[str, bool] | None = None  # hypothesis id -> its test survives Holm over the study
    sequential: bool = False             # judged at the planned looks of --until-decided
    search: "SearchAnalysis | None" = None  # a searched study's proposals and confirmation

    def survives_holm(self, hypothesis_id: str) -> bool:
        return bool(self.holm and self.holm.get(hypothesis_id))

    def _repr_html_(self) -> str:
        from ..htmlrepr import analysis_html

        return analysis_html(self)


def analyze_runs(spec: StudySpec, runs: Sequence[Run], folder: Path = Path("."),
                 problems: Sequence[str] = (), cost_runs: Sequence[Run] = (),
                 sequential: bool = False, proposals: "Sequence[Proposal] | None" = None,
                 importances: bool = True) -> StudyAnalysis:
    """``cost_runs``: more runs (other studies under the same root) whose stacked groups
    the cost model may learn from, besides this study's own. ``sequential``: the study
    runs with ``--until-decided``; its verdicts are judged at the planned looks
    (:mod:`.decide`), valid however many seeds were added. ``proposals``: a searched
    study's record of proposals (its search is then analysed too). ``importances``: as
    :func:`analyze`."""
    if spec.search is None:  # a searched study's folder holds only its proposals' runs
        wanted = {config_key(c) for c in spec.configs()}  # any seed of the study's configurations
        runs = [r for r in runs if config_key(r.config) in wanted]
    runs = list({r.trial_id: r for r in runs}.values())  # one trial, one observation
    models = reference_cost_models(list({r.path: r for r in [*runs, *cost_runs]}.values()))
    configs = aggregate(runs, models)
    if sequential:
        verdicts = tuple(sequential_verdicts(spec, runs, models))
    else:
        verdicts = tuple(judge_all(spec.hypotheses, configs, spec.alpha, spec.margin, spec.test))
    survives = holm([v.p for v in verdicts], spec.alpha)
    searched = None
    if spec.search is not None and proposals is not None:
        from .search import search_analysis

        searched = search_analysis(spec, proposals, {r.trial_id: r for r in runs}, importances)
    return StudyAnalysis(
        spec=spec, folder=folder, runs=tuple(runs), configs=tuple(configs),
        verdicts=verdicts, holm={v.hypothesis.id: r for v, r in zip(verdicts, survives)},
        overfit={c.key: overfitting(c) for c in configs},
        winners=winners(configs, spec.metric, spec.alpha),
        params=tuple(varying_params(configs)), problems=(*problems, *mixed_versions(runs)),
        cost_models=tuple(models.values()), sequential=sequential, search=searched)


def mixed_versions(runs: Sequence[Run]) -> list[str]:
    """A problem to state where the study's runs were trained by more than one version of
    tunebook or of torch (``[env]`` of each run's config.toml): their numbers are pooled as
    seeds of one configuration although an engine's arithmetic may differ between
    versions — as a checkpoint of another version is not trusted to go on from."""
    out = []
    for name in ("tunebook", "torch"):
        seen = Counter(str(r.meta.get(name, "unrecorded")) for r in runs)
        if len(seen) > 1:
            shown = ", ".join(f"{v} ({n} run{'s' if n != 1 else ''})" for v, n in sorted(seen.items()))
            out.append(f"the runs of this study were trained by more than one {name} version: {shown}; they are "
                       "analysed together, though numbers may differ between versions (`tunebook run --fresh` trains "
                       "the study again under one)")
    return out


def analyze(folder: str | Path, importances: bool = True) -> StudyAnalysis:
    """Analyse a study folder (``modellogs/<study>``) as stored on disk. ``importances=False``:
    a search's hyperparameter importances are left out (their fANOVA forest loads
    scikit-learn, ~1.6 s, which a caller that only ranks the proposals does not need)."""
    folder = Path(folder)
    spec = load_spec(folder / "study.toml", check_selectors=False, recorded=True)
    problems: list[str] = []
    runs = list(RunStore(folder.parent, folder.name).iter_runs(problems))  # copies are listed once
    sequential = is_decided(folder)
    if not sequential and spec.search is None and spec.hypotheses:
        extra = sorted({r.config.seed for r in runs} - set(spec.seeds))
        if extra:  # seeds were added adaptively: a fixed-n test on them would not be valid
            sequential = True
            shown = ", ".join(map(str, extra[:8])) + ("…" if len(extra) > 8 else "")
            problems.append(f"{folder / DECIDE_MARK} is missing, but runs on seeds beyond the study's are stored "
                            f"({shown}): added by --until-decided, so the verdicts are judged at its planned looks "
                            "(a fixed-n test on adaptively added seeds would not be valid); `tunebook run "
                            "--until-decided` writes the file again")
    proposals = None
    if spec.search is not None:
        from ..ledger import read_ledger

        proposals = read_ledger(folder, spec.search)
    return analyze_runs(spec, runs, folder, problems, sibling_runs(folder), sequential=sequential,
                        proposals=proposals, importances=importances)


#: Written by ``--until-decided`` into the study folder: the study's verdicts are sequential.
DECIDE_MARK = "decide.toml"


def is_decided(folder: Path) -> bool:
    return (Path(folder) / DECIDE_MARK).is_file()


def sibling_runs(folder: Path) -> list[Run]:
    """The runs of the other studies under ``folder``'s parent: the cost model fits on every
    stacked group a machine recorded there, not only this study's few."""
    others = [s for s in find_studies(folder.parent) if s.resolve() != folder.resolve()] if folder.parent != folder else []
    return [r for s in others for r in RunStore(s.parent, s.name).iter_runs()]
