"""Run study files as they are meant to run — the library's entry point, and the CLI's.

A grid study trains its grid × seeds (:func:`tunebook.execute.run_studies`); a searched
study (a ``[search]`` table) runs its search (:func:`tunebook.search.run_search`); with
``until_decided`` the grid studies add seeds until their hypotheses are decided
(:func:`tunebook.loop.run_all_until_decided`). :func:`run` makes that choice per study, so
``tunebook run`` and a notebook do the same thing with the same file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .budget import Budget
from .errors import SpecError
from .execute import StudyOutcome, holding, kept_open, load_specs, run_studies, warm_workers
from .live import default_reporter
from .options import CHECKPOINT_EVERY, MAX_FAILURES, RunOptions, picked
from .reporter import Reporter
from .spec import StudySpec
from .store import reading

if TYPE_CHECKING:
    from .loop import DecideOutcome
    from .search import SearchOutcome


@dataclass(frozen=True)
class Programme:
    """What :func:`run` did: the grid studies' outcomes (trained together), each searched
    study's, and with ``until_decided`` each decided study's; ``skipped``: searched studies
    that ``until_decided`` left alone (they have no hypotheses to decide)."""

    grid: tuple[StudyOutcome, ...] = ()
    searches: tuple["SearchOutcome", ...] = ()
    decided: tuple["DecideOutcome", ...] = ()
    skipped: tuple[StudySpec, ...] = ()

    @property
    def outcomes(self) -> list[StudyOutcome]:
        """Every call's last training outcome (for failures and aborts)."""
        return [*self.grid, *(o.last for o in self.searches if o.last), *(d.last for d in self.decided if d.last)]

    @property
    def failed(self) -> bool:
        return any(o.failed for o in self.outcomes)


def run_study(spec: StudySpec, out: str | Path = "modellogs", options: RunOptions | None = None, *,
              fresh: bool = False, reporter: Reporter | None = None, budget: Budget | None = None,
              device: str = "auto", engine: str = "stacked", executor="local", workers: int | None = None,
              ray_address: str | None = None, concurrent: int = 1, retries: int = 2, max_group: int | None = None,
              pad: "bool | str" = True, max_failures: int | None = MAX_FAILURES,
              data_dir: str | Path | None = None,
              checkpoint_every: float | None = CHECKPOINT_EVERY, quiet: bool = False) -> "StudyOutcome | SearchOutcome":
    """Train every trial of ``spec`` that has no final result under ``out``; return all.
    A searched study (a ``[search]`` table) runs its search — proposals, batches,
    confirmation — and returns :class:`tunebook.search.SearchOutcome` (its ``folder`` and
    ``last`` as here).

    How trials train: ``options`` (a :class:`tunebook.RunOptions`) or its fields as
    keywords (``device="cpu"``, ``executor="process", workers=4``). Trained weights are
    kept as ``[study] keep`` says (:func:`keep_best` once the study has run). It writes run folders
    only, no report: call ``tunebook.report.write_report(outcome.folder)`` for the
    lab-notebook page (the CLI does so after a run unless ``--no-report``), or
    ``tunebook.analysis.study.analyze(outcome.folder)`` for the numbers behind it.

    Progress: ``reporter``, else in Jupyter a table that updates in place and elsewhere a
    line per group on stderr (:mod:`tunebook.live`); ``quiet=True`` says nothing. Budget:
    ``budget``, else the study's ``[study] budget``, checked at every epoch's end.
    """
    opts = picked(options, locals())
    reporter = reporter or default_reporter(quiet)
    budget = budget or Budget.of_specs([spec])
    if spec.search is not None:
        from .search import run_search

        with kept_open(opts, spec.search.prunes_in_driver, search=True) as o, \
                holding([spec], out, o, fresh=fresh, pruning=spec.search.prunes_in_driver):
            outcome = run_search(spec, out, o, reporter=reporter, budget=budget)
            _kept([outcome])
            return outcome
    with kept_open(opts) as o, holding([spec], out, o, fresh=fresh):
        outcome = run_studies([spec], out, o, reporter=reporter, budget=budget)[0]
        _kept([outcome])
        return outcome


def run(studies: "str | Path | StudySpec | Sequence[StudySpec]", out: str | Path = "modellogs",
        options: RunOptions | None = None, *, until_decided: bool = False, fresh: bool = False,
        reporter: Reporter | None = None, budget: Budget | None = None, seeds: int | None = None,
        epochs: int | None = None, train_subset: int | None = None,
        on_done: Callable[[list], None] | None = None, quiet: bool = False) -> Programme:
    """Run a study file, a folder of them, or specs, each as it is meant to run: the grid
    studies as one programme (a trial several want trains once), then each searched study's
    search; with ``until_decided``, the grid studies round by round until decided.

    ``seeds``, ``epochs``, ``train_subset``: a smoke test's overrides (the studies'
    reports then judge nothing). ``on_done(outcomes)`` is called after each part — the
    grid's outcomes, a search's ``[outcome]``, the decided studies' outcomes — while that
    part's study locks are still held (the CLI writes the reports there, so no other
    process takes a study before its report is written). Every input is checked before
    anything trains. ``reporter``, ``quiet`` and the budget (``budget``, else the smallest
    ``[study] budget`` of the studies) as for :func:`run_study`.
    """
    options = options or RunOptions()
    specs = _specs(studies)
    reporter = reporter or default_reporter(quiet)
    overrides = {k: v for k, v in (("seeds", seeds), ("epochs", epochs), ("train_subset", train_subset))
                 if v is not None}
    specs = [s.with_overrides(**overrides) for s in specs]
    budget = budget or Budget.of_specs(specs)
    done = on_done or (lambda outcomes: None)
    if until_decided:
        return _until_decided(specs, out, options, fresh, reporter, budget, done)
    grid = [s for s in specs if s.search is None]
    searched = [s for s in specs if s.search is not None]
    if searched:  # checked before anything trains
        from .search import optuna_module

        optuna_module()
    outcomes: list[StudyOutcome] = []
    if grid:
        # the executor first (joining Ray checks its address before anything is written), then
        # the locks, held until on_done has run
        with kept_open(options) as opts, holding(grid, out, opts, fresh=fresh):
            outcomes = run_studies(grid, out, opts, reporter=reporter, budget=budget)
            _finished(outcomes, done)
    searches = []
    for spec in searched:
        pruning = spec.search.prunes_in_driver
        with kept_open(options, pruning, search=True) as opts:
            warm_workers(opts, spec)  # they start while this process imports and checks
            from .search import run_search

            with holding([spec], out, opts, fresh=fresh, pruning=pruning):
                searches.append(run_search(spec, out, opts, reporter=reporter, budget=budget))
                _finished([searches[-1]], done)
    return Programme(tuple(outcomes), tuple(searches))


def _until_decided(specs, out, options: RunOptions, fresh: bool, reporter, budget, done) -> Programme:
    from .loop import run_all_until_decided

    skipped = tuple(s for s in specs if s.search is not None)
    grid = [s for s in specs if s.search is None]
    if not grid:
        names = ", ".join(str(s.path) for s in skipped) or "no study"
        raise SpecError([f"{names}: --until-decided: no grid study to decide"])
    budget = budget if budget is not None else Budget()
    with kept_open(options) as opts, holding(grid, out, opts, fresh=fresh):
        decided = run_all_until_decided(grid, out, opts, reporter=reporter, budget=budget)
        _finished(decided, done)
    return Programme(decided=tuple(decided), skipped=skipped)


def keep_best(folder: str | Path) -> list[Path]:
    """``[study] keep = "best"``: the trained weights of the study's recommended
    configuration's runs stay (the accuracy winner of a grid; a search's likely best after
    confirmation, or its best mean before), every other run's ``weights.safetensors`` goes.
    Returns the run folders that keep weights. Other ``keep`` values change nothing."""
    from .analysis.aggregate import config_key
    from .analysis.study import analyze
    from .spec import load_spec
    from .store import RunStore
    from .weights import WEIGHTS

    folder = Path(folder)
    store = RunStore(folder.parent, folder.name)
    if load_spec(folder / "study.toml", check_selectors=False, recorded=True).keep != "best":  # nothing to choose
        return [r.path for r in store.iter_runs([]) if (r.path / WEIGHTS).is_file()]
    if not any(store.runs_dir.glob(f"*/{WEIGHTS}")):  # no run kept weights: the study is not analysed
        return []
    a = analyze(folder, importances=False)  # which runs keep weights needs no importances
    listed = Path(folder) / KEEP_LIST
    best: set[str] = set()
    if listed.is_file():  # runs named with `tunebook keep`
        from . import tomlio

        best |= set(tomlio.loads(listed.read_text(encoding="utf-8")).get("keep", []))
    if a.search is not None:
        confirmed = max(a.search.confirmed, key=lambda c: c.estimate.p_best, default=None)
        if confirmed is not None:
            best |= {r.trial_id for r in confirmed.runs}
        else:
            done = [r for r in a.search.results if r.values is not None]
            sign = 1 if a.spec.search.objectives[0][1] == "max" else -1
            if done:
                best |= {r.trial_id for r in max(done, key=lambda r: sign * r.values[0]).runs}
    elif a.winners is not None:
        best |= {r.trial_id for r in a.runs if config_key(r.config) == a.winners.accuracy.key}
    kept = []
    for run in a.runs:
        path = run.path / WEIGHTS
        if run.trial_id in best and path.is_file():
            kept.append(run.path)
        elif path.is_file():
            path.unlink()
    return kept


KEEP_LIST = "keep.toml"


@dataclass(frozen=True)
class Kept:
    """What :func:`keep_run` did for one run folder."""

    path: Path
    retrained: bool            # its weights were gone: the trial trained again, alone
    exact: bool                # the retrain's curves equal the stored run's bit for bit
    max_difference: float = 0.0  # else the largest difference of a stored loss or accuracy


def keep_run(run: str | Path, device: str = "cpu", data_dir: str | Path | None = None) -> Kept:
    """Keep one run's trained weights (``tunebook keep RUN``): the run is listed in its
    study's ``keep.toml``, which :func:`keep_best` never prunes; a run whose weights are gone
    trains again alone (same seed, same data order: the engines are deterministic) and its
    weights are written into its folder. A run that trained stacked with other trials retrains
    to float rounding of its stored curves (a stack's sums split differently), not bit for bit;
    what was found is returned."""
    import tomli_w

    from . import tomlio
    from .errors import StoreError
    from .store import RunStore, read_run, write_atomic
    from .weights import WEIGHTS

    folder = Path(run)
    try:
        r = read_run(folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{folder}: not a readable run folder ({type(exc).__name__}: {exc})") from None
    if r.result.status != "complete":
        raise StoreError(f"{folder}: a {r.result.status} run has no trained model to keep")
    study_dir = folder.parent.parent
    kept = Kept(folder, False, True)
    with RunStore(study_dir.parent, study_dir.name) as store:
        if not (folder / WEIGHTS).is_file():
            kept = _retrain(r, store, device, data_dir)
        path = study_dir / KEEP_LIST
        doc = tomlio.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        ids = sorted(set(doc.get("keep", [])) | {r.trial_id})
        write_atomic(path, "# tunebook keep: runs whose trained weights stay\n" + tomli_w.dumps({"keep": ids}))
    return kept


def _retrain(r, store, device: str, data_dir) -> Kept:
    """Train ``r``'s trial alone, keep its weights; compare its curves with the stored ones."""
    from .datasets import DATASETS
    from .engine.common import resolve_device
    from .errors import StoreError
    from .reporter import Reporter
    from .store import _write_weights
    from .training import train_group

    c = r.config
    if c.dataset not in DATASETS or not DATASETS[c.dataset].builtin:
        from .userdata import reread

        problem = reread(c.dataset, store.dir, c.split_seed)
        if problem:
            raise StoreError(f"{r.path}: cannot train it again: {problem}; set [study] keep = \"all\" and run the "
                             "study to keep every run's weights")
    (new,) = [x for x in train_group([c], r.result.engine or "stacked", resolve_device(device), data_dir, Reporter(),
                                     keep=True) if x.trial_id == c.trial_id]
    if new.status != "complete" or new.weights is None:
        raise StoreError(f"{r.path}: training it again gave a {new.status} run ({new.error.splitlines()[0] if new.error else ''})")
    old, now = r.result.history, new.history
    diffs = [abs(a - b) for key in ("train_loss", "train_acc", "val_loss", "val_acc")
             for a, b in zip(getattr(old, key), getattr(now, key))]
    _write_weights(r.path, c, new.weights)
    worst = max(diffs, default=0.0)
    return Kept(r.path, True, worst == 0.0, worst)


def _finished(outcomes, done) -> None:
    """A part of a run ended: keep_best, then ``on_done`` (the reports), in one
    :func:`~tunebook.store.reading` pass — they read the same runs again and again."""
    with reading():
        _kept(outcomes)
        done(outcomes)


def _kept(outcomes) -> None:
    """``keep_best`` for each study that ran to its end: one a budget stopped keeps every
    run's weights until a later call finishes it (its best may still change)."""
    for o in outcomes:
        if getattr(o, "stopped_by_budget", False) or getattr(o, "stopped", "") == "budget":
            continue
        keep_best(o.folder)


def _specs(studies) -> list[StudySpec]:
    if isinstance(studies, StudySpec):
        return [studies]
    if isinstance(studies, (str, Path)):
        return load_specs(studies)
    specs = list(studies)
    if not all(isinstance(s, StudySpec) for s in specs):
        raise TypeError("studies: a study file, a folder of them, a StudySpec or a list of StudySpecs")
    return specs


def run_path(path: str | Path, out: str | Path = "modellogs", options: RunOptions | None = None, *,
             seeds: int | None = None, epochs: int | None = None, train_subset: int | None = None,
             fresh: bool = False, reporter: Reporter | None = None) -> list[StudyOutcome]:
    """The grid studies of a study file or a folder of them, as one programme (the
    outcomes of :func:`run`'s grid part)."""
    return list(run(path, out, options, seeds=seeds, epochs=epochs, train_subset=train_subset, fresh=fresh,
                    reporter=reporter).grid)


__all__ = ["Programme", "run", "run_path", "run_study"]
