"""Running a study: plan groups, train what is not done, store every result.

``run_study`` is the function behind ``tunebook run``: a notebook calls it the same way.
The data flow is one way — spec → configs → groups → engine → results → store — and a
group's results are saved as soon as the group ends, so an interruption loses at most
the group in flight and a rerun resumes.
"""

from __future__ import annotations

import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

from .errors import SpecError
from .options import CHECKPOINT_EVERY, MAX_FAILURES, RunOptions, picked
from .planner import group_label, needs_cost, plan_groups
from .records import TrialConfig, TrialResult
from .reporter import Reporter
from .spec import StudySpec, load_spec
from .store import Run, RunStore, remove_staging
from .training import keeps_checkpoints
from .tboard import LiveScalars

if TYPE_CHECKING:
    from .budget import Budget
    from .executors import Executor

@dataclass(frozen=True)
class StudyOutcome:
    """What a call of :func:`run_study` did and what the study now holds."""

    spec: StudySpec
    folder: Path
    runs: tuple[Run, ...]          # every stored run of this study's configs
    trained: int                   # trials trained by this call
    skipped: int                   # trials already final before this call (here or in another study)
    seconds: float
    problems: tuple[str, ...] = () # run folders skipped (unreadable), ignored (duplicates), keys ignored
    restored: int = 0              # TensorBoard event files written again from stored results
    stopped_by_budget: bool = False  # the budget ran out before every trial was trained
    aborted: str = ""              # why no further group was started (too many failed in a row), or ""
    #: groups paused at a successive-halving rung (tunebook.halving): each trial's curves so
    #: far, by trial id; none of these is stored
    paused: Mapping[str, TrialResult] = field(default_factory=dict)

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if r.result.status == "failed"]

    def _repr_html_(self) -> str:
        from .htmlrepr import outcome_html

        return outcome_html(self)

    @property
    def diverged(self) -> list[Run]:
        return [r for r in self.runs if r.result.status == "diverged"]


def check_inputs(specs: Sequence[StudySpec], out: str | Path, options: RunOptions, pruning: bool = False) -> None:
    """The checks that need the studies, before anything is written (the options checked
    themselves when they were made): a pruner's executor, the output folder, the dataset
    files."""
    from .data import check_available
    from .executors import check_options

    options = options.for_part(search=pruning, pruning=pruning)  # "auto" with a pruner: this process
    problems = check_options(options.executor_options(), options.device, pruning=True) if pruning else []
    problems += check_out_dir(out)
    if problems:
        raise SpecError(list(dict.fromkeys(problems)))
    for name in sorted({s.dataset for s in specs}):
        check_available(name, options.data_dir, load=False)  # the digests; the data is read where it trains


@contextmanager
def holding(specs: Sequence[StudySpec], out: str | Path, options: RunOptions, fresh: bool = False,
            pruning: bool = False) -> Iterator[list[RunStore]]:
    """Hold every study's lock for a whole command — the rounds of ``--until-decided``, the
    batches of a search, and the reports after them — so that no other process can take a
    study in a gap (a ``--fresh`` between two rounds once renamed a 48-run folder while the
    first run went on). The inputs are checked first, as :func:`run_studies` does, so a bad
    one writes nothing; with ``fresh`` the old folders are set aside here, once (the
    command's runs then pass ``fresh=False``). The command's own :func:`run_studies` calls
    take the held locks again (re-entrant); another process is refused."""
    check_inputs(specs, out, options, pruning=pruning)
    with ExitStack() as stack:
        stores = [stack.enter_context(RunStore(out, s.folder, hold=True)) for s in specs]
        if fresh:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for store in stores:
                store.start_over(stamp)
        yield stores


@contextmanager
def kept_open(options: RunOptions, pruning: bool = False, search: bool = False) -> Iterator[RunOptions]:
    """``options`` with its executor opened once, for a caller that runs many rounds
    (``--until-decided``, a search): workers and a Ray instance start once, not per round.
    An executor already open is kept as it is (and not closed here); ``"auto"`` is made
    definite first (:meth:`RunOptions.for_part`; ``search``: for a searched study)."""
    from .executors import open_executor

    options = options.for_part(search, pruning)
    if not isinstance(options.executor, str):
        yield options
        return
    opts = replace(options.executor_options(), start=search)  # a search's workers start as it opens
    with open_executor(opts, options.device, options.data_dir, pruning) as ex:
        yield options.opened(ex)


def warm_workers(options: RunOptions, spec: StudySpec) -> None:
    """Start an opened executor's workers now, each reading the study's built-in dataset
    (a search: groups will come), so that their start overlaps this process's own."""
    from .datasets import DATASETS
    from .training import data_key

    ex = options.executor
    if not isinstance(ex, str) and spec.dataset in DATASETS and DATASETS[spec.dataset].builtin:
        ex.warm(data_key(spec), None if options.data_dir is None else str(options.data_dir))


def check_out_dir(out: str | Path, flag: str = "--out", shown: str | Path | None = None) -> list[str]:
    """Problems with ``out`` as a folder to write in: under a file, or not writable. Messages
    name the option (``flag``) and what the user gave (``shown``, default ``out``)."""
    out = Path(out)
    where = f"{flag} {shown if shown is not None else out}"
    probe = out
    while not probe.exists():
        if probe.is_symlink():
            return [f"{where}: {probe} is a broken symbolic link"]
        probe = probe.parent
    if not probe.is_dir():
        return [f"{where}: {probe} is a file, not a folder"]
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return [f"{where}: cannot write in {probe} ({exc.strerror or exc})"]
    return []


def run_studies(specs: Sequence[StudySpec], out: str | Path = "modellogs", options: RunOptions | None = None, *,
                fresh: bool = False, reporter: Reporter | None = None, budget: "Budget | None" = None,
                extra: Mapping[str, Sequence[TrialConfig]] | None = None, stop=None,
                device: str = "auto", engine: str = "stacked", executor: "str | Executor" = "local",
                workers: int | None = None, ray_address: str | None = None, concurrent: int = 1, retries: int = 2,
                max_group: int | None = None, pad: "bool | str" = True, max_failures: int | None = MAX_FAILURES,
                data_dir: str | Path | None = None,
                checkpoint_every: float | None = CHECKPOINT_EVERY) -> list[StudyOutcome]:
    """Run several studies as one programme.

    A trial (the same resolved config, hence the same trial id) wanted by several
    studies trains once and is stored in each; a trial already final in one study is
    copied into the others instead of trained again; and trials of all studies that
    can share a stacked group or an epoch stream do. Each study keeps its own folder.

    How they train is ``options`` (a :class:`tunebook.options.RunOptions`), or its fields
    as keywords (``device="cpu"``); a keyword that differs from its default overrides the
    record. Order: inputs are checked (the options as they are made, then
    :func:`check_inputs`), then each study's lock is taken,
    then (with ``fresh``) old folders are set aside, then the store is read and written.

    ``extra`` (study folder → configs) adds trials beyond the study file's grid × seeds
    (more seeds of its configurations, from ``--until-decided``). ``budget`` is consulted
    before every group: once it is spent, no further group starts.

    Groups are planned by :func:`tunebook.planner.plan_groups`; with ``pad`` (the
    default) trials of different widths share a stack where the device kind's fixed
    reference cost model says it saves time — the same trials give the same groups, hence
    bit-identical numbers, whatever the machine's load; ``pad="measured"`` uses this
    machine's measured model instead (measured once per output root,
    ``<out>/.planner.toml``); ``pad=False`` stacks only equal widths.
    With ``concurrent`` > 1, that many groups train at once, each in its own thread (and
    CUDA stream), while this thread saves finished groups: a GPU is not left idle while a
    small group launches kernels or results are written. Results are the same numbers.
    ``stop`` (an :data:`tunebook.engine.common.Stopper`, a search's pruner) is asked after
    every epoch which members to stop; they are stored ``pruned``.

    ``executor`` (:mod:`tunebook.executors`): ``local`` (this process), ``process``
    (``workers`` processes on this machine) or ``ray`` (Ray tasks; ``ray_address`` joins
    a cluster, by default a local instance is started) — or an executor opened with
    :func:`tunebook.executors.open_executor`, kept open across calls. Workers return
    results and this process stores them. A group whose worker dies is sent again up to
    ``retries`` times; after ``max_failures`` groups in a row fail entirely, no further
    group starts and the outcomes say why (``aborted``).
    """
    opts = picked(options, locals())
    here = stop is not None and not getattr(stop, "anywhere", False)  # a pruner that decides in this process
    check_inputs(specs, out, opts, pruning=here)
    with kept_open(opts, pruning=here) as opts:
        return _run_studies(specs, out, opts, fresh=fresh, reporter=reporter or Reporter(), extra=extra or {},
                            budget=budget, stop=stop)


def _run_studies(specs: Sequence[StudySpec], out, opts: RunOptions, *, fresh: bool, reporter: Reporter,
                 extra: Mapping[str, Sequence[TrialConfig]], budget: "Budget | None", stop) -> list[StudyOutcome]:
    from .executors import Work

    ex: "Executor" = opts.executor  # type: ignore[assignment]  (opened by kept_open)
    t0 = time.perf_counter()
    stores = {s.folder: RunStore(out, s.folder) for s in specs}
    study_configs = {s.folder: list({c.trial_id: c for c in [*s.configs(), *extra.get(s.folder, ())]}.values())
                     for s in specs}
    wanted: dict[str, list[str]] = {}      # trial id -> study folders that want it
    configs: dict[str, TrialConfig] = {}
    for s in specs:
        for c in study_configs[s.folder]:
            wanted.setdefault(c.trial_id, []).append(s.folder)
            configs[c.trial_id] = c
    problems: list[str] = []
    from . import checkpoints as ckpt

    saving = (opts.engine == "stacked" and keeps_checkpoints(stop) and ex.shares_disk
              and opts.checkpoint_every is not None)
    root = ckpt.root_of(out)
    sink = StudySink({s.folder: s for s in specs}, stores, wanted, reporter, budget, opts.max_failures,
                     root if saving else None)

    with ExitStack() as stack:
        for s in specs:
            stack.enter_context(stores[s.folder])
        if fresh:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for store in stores.values():
                store.start_over(stamp)
        for s in specs:
            stores[s.folder].save_study(s.source, _data_record(s), _model_record(s))
        done = {name: store.completed(problems) for name, store in stores.items()}
        restored = {name: sum(stores[name].restore_events(r) for r in runs.values()) for name, runs in done.items()}
        anywhere = {tid: run for d in done.values() for tid, run in d.items()}
        for tid, names in wanted.items():  # final elsewhere: copy, do not retrain
            for name in names:
                if tid not in done[name] and tid in anywhere:
                    sink.save(name, anywhere[tid].config, anywhere[tid].result)
        skipped = {s.folder: sum(c.trial_id in anywhere for c in study_configs[s.folder]) for s in specs}
        todo = [configs[tid] for tid in wanted if tid not in anywhere]
        resumed: list[list[TrialConfig]] = []
        if saving:  # groups with a checkpoint train first, as they were: they go on from it
            resumed, notes = ckpt.resumable(root, todo, set(anywhere), opts.engine)
            problems += notes
            again = {c.trial_id for g in resumed for c in g}
            todo = [c for c in todo if c.trial_id not in again]
        if opts.engine == "stacked":
            cost = _cost_model(out, ex, todo, reporter, opts.pad) if opts.pad and todo else None
            groups = resumed + plan_groups(todo, ex.plan_device, opts.max_group, cost)
        else:
            groups = [[c] for c in todo]
        todo = [c for g in groups for c in g]
        if ex.name != "local" and groups:
            reporter.executor_ready(ex.describe())
        reporter.study_start(specs, len(todo), len(wanted) - len(todo), len(groups))
        work = Work(tuple(tuple(g) for g in groups), tuple(_label(g, i, len(groups)) for i, g in enumerate(groups, 1)),
                    opts.engine, None if opts.data_dir is None else str(opts.data_dir), stop,
                    keep=any(s.keep != "none" for s in specs),
                    checkpoints=(str(root), float(opts.checkpoint_every)) if saving else None)
        from .budget import BudgetSpent

        try:
            with interrupts_at_epoch_end(sink):
                ex.run(work, sink)
        except BudgetSpent:  # at an epoch's end: groups in flight keep a checkpoint, or train again
            sink.stopped = True
        problems += _data_changed(specs)
        outcomes = [StudyOutcome(s, stores[s.folder].dir,
                                 tuple(_runs_of(stores[s.folder], study_configs[s.folder], problems)),
                                 sink.trained[s.folder], skipped[s.folder], time.perf_counter() - t0, tuple(problems),
                                 restored[s.folder], sink.stopped and not sink.aborted, sink.aborted,
                                 {t: r for t, r in sink.paused.items() if s.folder in wanted[t]})
                    for s in specs]
    for o in outcomes:
        reporter.study_end(o)
    return outcomes


def _cost_model(out, ex: "Executor", todo: Sequence[TrialConfig], reporter: Reporter, pad: "bool | str" = True):
    """The planner's cost model of the workers' device, when there is a choice to make: the
    kind's fixed reference model, or with ``pad="measured"`` the measured one (measured once
    per root and device, on a worker where they are elsewhere)."""
    from .planner import cost_for, reference_cost

    dev = ex.plan_device
    if not needs_cost(todo, dev):
        return None
    if pad != "measured":
        return reference_cost(dev)
    t0 = time.perf_counter()
    cost, measured = cost_for(out, dev, measure=ex.measure_cost)
    if measured:
        reporter.planner_measured(cost, time.perf_counter() - t0)
    return cost


@contextmanager
def interrupts_at_epoch_end(sink: "StudySink") -> Iterator[None]:
    """A first Ctrl-C (SIGINT) stops the run at the next epoch's end, where each group in
    flight saves its checkpoint; a second one stops it at once. In the main thread only
    (elsewhere, and for SIGTERM, an interrupt stops at once: the last checkpoint is used)."""
    import signal
    import sys
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def asked(signum, frame):  # noqa: ARG001
        if sink.interrupt_asked:
            raise KeyboardInterrupt
        sink.interrupt_asked = True
        print("tunebook: stopping at the next epoch's end, where each group keeps its state "
              "(Ctrl-C again: stop now)", file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, asked)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class StudySink:
    """The driver's side of the executor contract (:class:`tunebook.executors.Sink`): a
    group's live folders, its results stored into every study that wants its trials, and
    whether another group may start (the budget; ``max_failures`` groups in a row failed
    entirely stop a runaway study)."""

    def __init__(self, specs: Mapping[str, StudySpec], stores: Mapping[str, RunStore],
                 wanted: Mapping[str, list[str]], reporter: Reporter, budget: "Budget | None" = None,
                 max_failures: int | None = None, checkpoints: Path | None = None):
        self.specs, self.stores, self.wanted = specs, stores, wanted
        self.checkpoints = checkpoints  # where groups keep their checkpoints (None: they keep none)
        self.interrupt_asked = False    # a first Ctrl-C: stop at the next epoch's end
        self.reporter, self.budget, self.max_failures = reporter, budget, max_failures
        self.trained = {name: 0 for name in specs}
        self.stopped = False        # no further group starts: the budget ran out, or too many failed
        self.failed_in_a_row = 0
        self.aborted = ""
        self.paused: dict[str, TrialResult] = {}  # trial id -> its curves so far (a halving rung)

    def save(self, name: str, c: TrialConfig, r: TrialResult, started: float | None = None) -> None:
        """Into study ``name``, its run folder named by that study's varying parameters."""
        spec = self.specs[name]
        if spec.keep == "none" and r.weights is not None:  # another study of the call keeps them
            r = replace(r, weights=None)
        self.stores[name].save(c, r, started, label=spec.run_label(c), varying=spec.varying())

    def may_start(self) -> bool:
        if self.interrupt_asked:
            raise KeyboardInterrupt
        if self.budget is not None and self.budget.spent():
            self.stopped = True
        return not self.stopped

    def epoch(self, event) -> None:
        """Spend the epoch's model-epochs (one per member of the stack); stop the run
        once the budget is spent — unless this was the group's last epoch: then the group
        is stored, and no further group starts. A Ctrl-C asked for since the last epoch's end
        is raised here (:func:`interrupts_at_epoch_end`) — at a group's last epoch, not: the
        group is done and is stored, and ``may_start`` raises it before another starts."""
        if self.interrupt_asked and event.epoch < event.max_epochs:
            raise KeyboardInterrupt
        if self.budget is None:
            return
        self.budget.spend(event.members)
        if self.budget.spent() and event.epoch < event.max_epochs:
            from .budget import BudgetSpent

            self.stopped = True
            raise BudgetSpent

    def slot(self, group: Sequence[TrialConfig]) -> "LiveSlot":
        leads = {c.stream_key: c for c in sorted(group, key=lambda c: c.epochs)}.values()
        resumes = None
        if self.checkpoints is not None:
            from .checkpoints import group_key

            saved = self.checkpoints / f"{group_key(group, 'stacked')}.pt"
            resumes = saved.is_file
        return LiveSlot(list(group), [(self.stores[self.wanted[c.trial_id][0]], c.trial_id) for c in leads],
                        resumes)

    def finish(self, slot: "LiveSlot", results: Sequence[TrialResult]) -> None:
        if any(r.status == "paused" for r in results):  # at a halving rung: kept in its checkpoint, not stored
            self.paused.update((r.trial_id, r) for r in results)
            self._count(group_label(slot.group), results)
            return
        for c, r in zip(_by_id(slot.group, results), results):
            for name in self.wanted[c.trial_id]:
                self.save(name, c, r, slot.started)
                self.trained[name] += 1
            self.reporter.trial_saved(c, r)
        if self.checkpoints is not None:  # stored: its checkpoint is of no further use
            from .checkpoints import clear, group_key

            clear(self.checkpoints, group_key(slot.group, "stacked"))
        self._count(group_label(slot.group), results)

    def _count(self, label: str, results: Sequence[TrialResult]) -> None:
        """Count groups in a row whose every trial failed; at ``max_failures``, stop
        starting groups (a runaway study: a bad setting, a broken node)."""
        if not results or any(r.status != "failed" for r in results):
            self.failed_in_a_row = 0
            return
        self.failed_in_a_row += 1
        if self.max_failures and self.failed_in_a_row >= self.max_failures and not self.aborted:
            first = (results[0].error or "").splitlines()[0] if results[0].error else "no error recorded"
            self.aborted = (f"{self.failed_in_a_row} groups in a row failed entirely, so no further group was "
                            f"started (the last: {label}: {first}). Fix the cause and run the same command "
                            "again: finished trials are kept and failed ones train again")
            self.stopped = True


class LiveSlot:
    """One group in training (:class:`tunebook.executors.Slot`): its trials' live folders
    (``runs/.staging-*``, where their TensorBoard curves grow epoch by epoch) and when it
    started (it names the runs). ``leads``: the store and trial id of each stream's
    longest trial (the one whose curves are written live); none, for a caller without a
    store (a benchmark)."""

    def __init__(self, group: list[TrialConfig], leads: Sequence[tuple[RunStore, str]] = (),
                 resumes: "Callable[[], bool] | None" = None):
        self.group, self.leads = group, list(leads)
        self.started = time.time()
        self.opened: list[Path] = []
        self.live = LiveScalars()
        self.resumes = resumes  # true when the group will go on from a checkpoint

    def open(self) -> None:
        if self.resumes is not None and self.resumes():  # its curves so far are in the checkpoint, not in
            return                                        # a live file: the run folders are written whole
        for store, trial_id in self.leads:
            self.opened.append(store.staging_dir(trial_id))  # before it exists: a signal may
            self.live.open(trial_id, store.open_live(trial_id))  # come at any line

    def close(self) -> None:
        """Writers closed and unsaved live folders removed (idempotent; saved ones were
        renamed into place already)."""
        self.live.close_all()
        for staging in self.opened:
            remove_staging(staging)

    def discard_live(self) -> None:
        """Drop the live curves written so far (a retried or incomplete attempt's): the
        run folders are then written whole from the results."""
        self.close()
        self.opened.clear()


def _data_changed(specs: Sequence[StudySpec]) -> list[str]:
    """A warning for each user's data file that changed while its study ran."""
    from .userdata import changed_since_read

    out = []
    for key in dict.fromkeys(s.dataset for s in specs):
        path = changed_since_read(key)
        if path:
            out.append(f"{path}: changed while the study ran; its runs trained on the file as it was read at the "
                       f"start (dataset {key}); run the study again to train on the new version (new trials)")
    return out


def _model_record(spec: StudySpec) -> dict | None:
    """A user's model's record for the study folder (None for the built-in MLP)."""
    if not spec.model:
        return None
    from .usermodel import record_of, remembered

    return record_of(remembered(spec.model))


def _data_record(spec: StudySpec) -> dict | None:
    """A user's dataset's record for the study folder (None for a built-in dataset)."""
    from .datasets import DATASETS
    from .userdata import record_of

    info = DATASETS[spec.dataset]
    return None if info.builtin else record_of(info)


def _label(group, i: int, n: int) -> str:
    return f"{group_label(group)} [{i}/{n}]" if n > 1 else group_label(group)


def _by_id(group: Sequence[TrialConfig], results: Sequence[TrialResult]) -> list[TrialConfig]:
    by_id = {c.trial_id: c for c in group}
    return [by_id[r.trial_id] for r in results]


def _runs_of(store: RunStore, configs: Sequence[TrialConfig], problems: list[str]) -> list[Run]:
    wanted = {c.trial_id for c in configs}
    return [r for r in store.iter_runs(problems) if r.trial_id in wanted]


def study_files(path: str | Path) -> list[Path]:
    """A study file, or every ``*.toml`` in a folder (sorted by name)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.toml"))
        if not files:
            raise SpecError([f"{path}: no study files (*.toml) in this folder"])
        return files
    if not path.exists():
        raise SpecError([f"{path}: no such file or folder"])
    return [path]


def load_specs(path: str | Path) -> list[StudySpec]:
    """Every study at ``path``, all validated before any trains (all problems at once)."""
    specs, problems = [], []
    for f in study_files(path):
        try:
            specs.append(load_spec(f))
        except SpecError as exc:
            problems.extend(exc.problems)
    names = [s.name for s in specs]
    for name in {n for n in names if names.count(n) > 1}:
        problems.append(f"{path}: study.name {name!r} is used by more than one file")
    if problems:
        raise SpecError(problems)
    return specs


__all__ = ["run_studies", "load_specs", "StudyOutcome", "Reporter", "RunOptions", "StudySink", "LiveSlot"]
