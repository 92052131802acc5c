"""Running a study: plan groups, train what is not done, store every result.

``run_study`` is the function behind ``tunebook run``: a notebook calls it the same way.
The data flow is one way — spec → configs → groups → engine → results → store — and a
group's results are saved as soon as the group ends, so an interruption loses at most
the group in flight and a rerun resumes.
"""

from __future__ import annotations

import tempfile
import threading
import time
import traceback
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from .errors import SpecError, TrialError
from .datasets import io_sizes
from .model import param_count
from .planner import group_label, needs_cost, plan_groups
from .records import TrialResult
from .spec import StudySpec, TrialConfig, load_spec, model_epochs
from .store import Run, RunStore, remove_staging
from .tboard import LiveScalars

if TYPE_CHECKING:
    from .search import SearchOutcome
    from .executors import Executor, Options
    from .loop import Budget

#: Groups in a row that may fail entirely before a run starts no further group.
MAX_FAILURES = 3


class Reporter:
    """Progress callbacks; the default says nothing. The CLI draws progress bars."""

    def study_start(self, specs: Sequence[StudySpec], todo: int, done: int, groups: int) -> None: ...
    def group_start(self, label: str, trials: int, epochs: int) -> None: ...
    def epoch(self, event) -> None: ...
    def trial_saved(self, config: TrialConfig, result: TrialResult) -> None: ...
    def study_end(self, outcome: "StudyOutcome") -> None: ...
    def planner_measured(self, cost, seconds: float) -> None:
        """The planner's cost model of this device was measured (once per output root)."""
    def executor_ready(self, description: str) -> None:
        """Where groups will train, when not in this process (before each call's first group)."""
    def group_placed(self, label: str, where: str, pid: int = 0) -> None:
        """A worker (``where``: host, process, device; ``pid`` its process id on that host)
        began the group (process and ray executors)."""
    def group_retry(self, label: str, attempt: int, why: str) -> None:
        """The worker training a group was lost after ``attempt`` attempts; it is sent again."""
    def round_done(self, round_: int, decided: int, total: int, adding: int, configs: int, seeds: int) -> None:
        """--until-decided: a round was judged; ``adding`` trials (``configs`` configurations
        up to ``seeds`` seeds) train next."""


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

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if r.result.status == "failed"]

    @property
    def diverged(self) -> list[Run]:
        return [r for r in self.runs if r.result.status == "diverged"]


def run_study(spec: StudySpec, out: str | Path = "modellogs", **kwargs) -> "StudyOutcome | SearchOutcome":
    """Train every trial of ``spec`` that has no final result under ``out``; return all.
    A searched study (a ``[search]`` table) runs its search — proposals, batches,
    confirmation — and returns :class:`tunebook.search.SearchOutcome` (its ``folder`` and
    ``last`` as here); before, it trained nothing and said nothing.

    Options as for :func:`run_studies`. It writes run folders only, no report: call
    ``tunebook.report.write_report(outcome.folder)`` for the lab-notebook page (the CLI does
    so after a run unless ``--no-report``), or ``tunebook.analysis.study.analyze(outcome.folder)``
    for the numbers behind it.
    """
    if spec.search is not None:
        from .search import run_search

        return run_search(spec, out, **kwargs)
    return run_studies([spec], out, **kwargs)[0]


def check_inputs(specs: Sequence[StudySpec], out: str | Path, device: str, engine: str,
                 data_dir: str | Path | None, opts: "Options | None" = None, pruning: bool = False,
                 max_failures: int | None = MAX_FAILURES, pad: "bool | str" = True):
    """Every check that needs no lock, before anything is written: the engine, the device
    (with a Ray cluster, only its form: the cluster is asked when joined), the executor
    options, the output folder and the dataset files."""
    from .data import check_available
    from .engine import ENGINES
    from .engine.common import device_form_problem, resolve_device
    from .executors import Options, check_options

    opts = opts or Options()
    problems = []
    if engine not in ENGINES:
        problems.append(f"--engine: must be one of {', '.join(ENGINES)}, got {engine!r}")
    if opts.executor == "ray":
        problems += [p for p in [device_form_problem(device)] if p]
    else:
        try:
            resolve_device(device)
        except ValueError as exc:
            problems.append(str(exc))
    problems += check_options(opts, device, pruning)
    if max_failures is not None and (not isinstance(max_failures, int) or max_failures < 1):
        problems.append(f"--max-failures: must be a positive integer, got {max_failures!r}")
    if pad not in (True, False, "measured"):
        problems.append(f"pad: must be True (the reference cost model), \"measured\" or False, got {pad!r}")
    problems += check_out_dir(out)
    if problems:
        raise SpecError(problems)
    for name in sorted({s.dataset for s in specs}):
        check_available(name, data_dir)


@contextmanager
def holding(specs: Sequence[StudySpec], out: str | Path, run_kwargs: dict, pruning: bool = False):
    """Hold every study's lock for a whole command — the rounds of ``--until-decided``, the
    batches of a search, and the reports after them — so that no other process can take a
    study in a gap (a ``--fresh`` between two rounds once renamed a 48-run folder while the
    first run went on). The inputs are checked first, as :func:`run_studies` does, so a bad
    one writes nothing; with ``fresh`` the old folders are set aside here, once, and
    ``run_kwargs["fresh"]`` is cleared. The command's own :func:`run_studies` calls take the
    held locks again (re-entrant); another process is refused."""
    from .executors import options_of

    check_inputs(specs, out, run_kwargs.get("device", "auto"), run_kwargs.get("engine", "stacked"),
                 run_kwargs.get("data_dir"), options_of(run_kwargs), pruning=pruning,
                 max_failures=run_kwargs.get("max_failures", MAX_FAILURES), pad=run_kwargs.get("pad", True))
    with ExitStack() as stack:
        stores = [stack.enter_context(RunStore(out, s.folder, hold=True)) for s in specs]
        if run_kwargs.get("fresh"):
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for store in stores:
                store.start_over(stamp)
            run_kwargs["fresh"] = False
        yield stores


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


def run_studies(specs: Sequence[StudySpec], out: str | Path = "modellogs", *, device: str = "auto",
                engine: str = "stacked", max_group: int | None = None, fresh: bool = False,
                data_dir: str | Path | None = None, reporter: Reporter | None = None,
                extra: Mapping[str, Sequence[TrialConfig]] | None = None,
                budget: "Budget | None" = None, pad: "bool | str" = True, concurrent: int = 1,
                stop=None, executor: "str | Executor" = "local", workers: int | None = None,
                ray_address: str | None = None, retries: int = 2,
                max_failures: int | None = MAX_FAILURES) -> list[StudyOutcome]:
    """Run several studies as one programme.

    A trial (the same resolved config, hence the same trial id) wanted by several
    studies trains once and is stored in each; a trial already final in one study is
    copied into the others instead of trained again; and trials of all studies that
    can share a stacked group or an epoch stream do. Each study keeps its own folder.

    Order: inputs are checked (:func:`check_inputs`), then each study's lock is taken,
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
    from .executors import Executor, Options, open_executor

    opts = Options(executor if isinstance(executor, str) else executor.name, workers, ray_address,
                   concurrent if isinstance(executor, str) else 1, retries)
    check_inputs(specs, out, device, engine, data_dir, opts, pruning=stop is not None, max_failures=max_failures,
                 pad=pad)
    with ExitStack() as owned:
        if isinstance(executor, Executor):
            ex = executor
        else:
            ex = owned.enter_context(open_executor(opts, device, data_dir))
        return _run_studies(specs, out, ex, engine=engine, max_group=max_group, fresh=fresh, data_dir=data_dir,
                            reporter=reporter, extra=extra, budget=budget, pad=pad, stop=stop,
                            max_failures=max_failures)


def _run_studies(specs, out, ex, *, engine, max_group, fresh, data_dir, reporter, extra, budget, pad, stop,
                 max_failures) -> list[StudyOutcome]:
    dev = ex.plan_device
    reporter = reporter or Reporter()
    t0 = time.perf_counter()
    stores = {s.folder: RunStore(out, s.folder) for s in specs}
    study_configs = {s.folder: list({c.trial_id: c for c in [*s.configs(), *(extra or {}).get(s.folder, ())]}.values())
                     for s in specs}
    wanted: dict[str, list[str]] = {}      # trial id -> study folders that want it
    configs: dict[str, TrialConfig] = {}
    spec_of = {s.folder: s for s in specs}
    for s in specs:
        for c in study_configs[s.folder]:
            wanted.setdefault(c.trial_id, []).append(s.folder)
            configs[c.trial_id] = c
    problems: list[str] = []
    trained: dict[str, int] = {s.folder: 0 for s in specs}

    def save(name: str, c: TrialConfig, r: TrialResult, started: float | None = None) -> None:
        """Into study ``name``, its run folder named by that study's varying parameters."""
        spec = spec_of[name]
        stores[name].save(c, r, started, label=spec.run_label(c), varying=spec.varying())

    with ExitStack() as stack:
        for s in specs:
            stack.enter_context(stores[s.folder])
        if fresh:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for store in stores.values():
                store.start_over(stamp)
        for s in specs:
            stores[s.folder].save_study(s.source)
        done = {name: store.completed(problems) for name, store in stores.items()}
        restored = {name: sum(stores[name].restore_events(r) for r in runs.values()) for name, runs in done.items()}
        anywhere = {tid: run for d in done.values() for tid, run in d.items()}
        for tid, names in wanted.items():  # final elsewhere: copy, do not retrain
            for name in names:
                if tid not in done[name] and tid in anywhere:
                    save(name, anywhere[tid].config, anywhere[tid].result)
        skipped = {s.folder: sum(c.trial_id in anywhere for c in study_configs[s.folder]) for s in specs}
        todo = [configs[tid] for tid in wanted if tid not in anywhere]
        groups = (plan_groups(todo, dev, max_group, _cost_model(out, ex, todo, reporter, pad) if pad else None)
                  if engine == "stacked" else [[c] for c in todo])
        if ex.name != "local" and groups:
            reporter.executor_ready(ex.describe())
        reporter.study_start(specs, len(todo), len(wanted) - len(todo), len(groups))
        state = _Progress(budget, max_failures)

        def finish(slot: "_Slot", results: list[TrialResult]) -> None:
            for c, r in zip(_by_id(slot.group, results), results):
                for name in wanted[c.trial_id]:
                    save(name, c, r, slot.started)
                    trained[name] += 1
                reporter.trial_saved(c, r)
            if budget is not None:
                budget.spend(model_epochs(slot.group))
            state.record(group_label(slot.group), results)

        def slot_for(group: list[TrialConfig]) -> "_Slot":
            return _Slot(group, [(stores[wanted[c.trial_id][0]], c.trial_id) for c in
                                 {c.stream_key: c for c in sorted(group, key=lambda c: c.epochs)}.values()])

        labels = [_label(g, i, len(groups)) for i, g in enumerate(groups, 1)]
        ex.run(groups, slot_for, finish, state, engine=engine, data_dir=data_dir, reporter=reporter, labels=labels,
               stop=stop)
        outcomes = [StudyOutcome(s, stores[s.folder].dir,
                                 tuple(_runs_of(stores[s.folder], study_configs[s.folder], problems)),
                                 trained[s.folder], skipped[s.folder], time.perf_counter() - t0, tuple(problems),
                                 restored[s.folder], state.stopped and not state.aborted, state.aborted)
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


_DATA_CACHE: dict[tuple, object] = {}
_DATA_LOCK = threading.Lock()


def data_key(c: TrialConfig) -> tuple:
    """Trials equal here train on the same arrays."""
    return (c.dataset, c.validation, c.split_seed, c.train_subset)


def _device_data(c: TrialConfig, dev, data_dir, dataset=None):
    """The dataset split a config trains on, on the device (one at a time is kept per
    process; a group in flight keeps its own reference). ``dataset``: the split's arrays
    when the caller has them (a Ray worker gets them from the object store)."""
    from .data import load_dataset
    from .engine.common import DeviceData

    key = (*data_key(c), str(dev), str(data_dir))
    with _DATA_LOCK:
        if key not in _DATA_CACHE:
            _DATA_CACHE.clear()
            ds = dataset if dataset is not None else load_dataset(*data_key(c), data_dir)
            _DATA_CACHE[key] = DeviceData.from_dataset(ds, dev)
        return _DATA_CACHE[key]


def _train_group(group: Sequence[TrialConfig], engine: str, dev, data_dir, reporter: Reporter,
                 extra_hooks: Sequence = (), data=None, label: str = "", stop=None) -> list[TrialResult]:
    """Train one group; an exception becomes a failed result for each of its trials."""
    data = data if data is not None else _device_data(group[0], dev, data_dir)
    label = label or group_label(group)
    reporter.group_start(label, len(group), max(c.epochs for c in group))
    return train_safely(group, engine, data, [reporter.epoch, *extra_hooks], label, stop)


def train_safely(group: Sequence[TrialConfig], engine: str, data, hooks: Sequence, label: str,
                 stop=None) -> list[TrialResult]:
    """The engine on one group; an exception becomes a failed result (with its traceback)
    for each of its trials. ``data``: the device data, or a function that returns it (its
    errors are recorded the same way)."""
    from .engine import ENGINES

    try:
        data = data() if callable(data) else data
        return ENGINES[engine](group, data, hooks=list(hooks), label=label, stop=stop)
    except (KeyboardInterrupt, MemoryError, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - recorded as a failed trial (TrialError)
        return failed_group(group, exc, engine)


def failed_group(group: Sequence[TrialConfig], exc: BaseException | str, engine: str) -> list[TrialResult]:
    """A failed result for each trial of a group: the error's first line, then its traceback."""
    if isinstance(exc, str):
        text = exc
    else:
        text = f"{TrialError(f'{type(exc).__name__}: {exc}')}\n{''.join(traceback.format_exception(exc))}"
    return [failed_result(c, text, engine) for c in group]


@dataclass
class _Progress:
    budget: "Budget | None"
    max_failures: int | None = None
    stopped: bool = False  # no further group starts: the budget ran out, or too many failed
    failed_in_a_row: int = 0
    aborted: str = ""

    def may_start(self) -> bool:
        if self.budget is not None and self.budget.spent():
            self.stopped = True
        return not self.stopped

    def record(self, label: str, results: Sequence[TrialResult]) -> None:
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


class _Slot:
    """One group in training: its trials' live folders (``runs/.staging-*``, where their
    TensorBoard curves grow epoch by epoch) and when it started (it names the runs)."""

    def __init__(self, group: list[TrialConfig], leads: list[tuple[RunStore, str]]):
        self.group, self.leads = group, leads
        self.started = time.time()
        self.opened: list[Path] = []
        self.live = LiveScalars()

    def open(self) -> None:
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


def _label(group, i: int, n: int) -> str:
    return f"{group_label(group)} [{i}/{n}]" if n > 1 else group_label(group)


def _train_in_turn(groups, slot_for, finish, state: _Progress, *, engine, dev, data_dir, reporter, labels,
                   stop=None):
    """One group after another, in this thread."""
    for group, label in zip(groups, labels):
        if not state.may_start():
            return
        slot = slot_for(group)
        try:
            try:
                slot.open()
                results = _train_group(group, engine, dev, data_dir, reporter, extra_hooks=[slot.live],
                                       label=label, stop=stop)
            finally:
                slot.live.close_all()
            finish(slot, results)
        finally:  # interrupted: the live curves of trials that were not saved go too
            slot.close()


class _Stopped(BaseException):
    """Raised in a worker thread at an epoch's end once the run is being interrupted
    (a BaseException: not recorded as a failed trial)."""


class _Locked:
    """A reporter called from several threads, one call at a time."""

    def __init__(self, reporter: Reporter):
        self._reporter, self._lock = reporter, threading.Lock()

    def __getattr__(self, name):
        method = getattr(self._reporter, name)

        def locked(*args, **kwargs):
            with self._lock:
                return method(*args, **kwargs)
        return locked


def _train_concurrently(groups, workers: int, slot_for, finish, state: _Progress, *, engine, dev, data_dir,
                        reporter, labels, stop=None):
    """Up to ``workers`` groups at once, each in a thread of its own (and, on CUDA, a
    stream of its own); this thread opens live folders, loads data and saves results,
    so one writer touches the store. On an interrupt the workers stop at their next
    epoch's end and their groups are not saved (a rerun trains them)."""
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    interrupted = threading.Event()
    locked = _Locked(reporter)
    stop_lock = threading.Lock()

    def stopper(event) -> None:
        if interrupted.is_set():
            raise _Stopped

    def shared_stop(event):  # a pruner is asked by one worker at a time
        if stop is None:
            return set()
        with stop_lock:
            return stop(event)

    def work(group, slot, data, label):
        if dev.type != "cuda":
            return _train_group(group, engine, dev, data_dir, locked, [slot.live, stopper], data, label, shared_stop)
        import torch

        with torch.cuda.stream(torch.cuda.Stream(dev)):
            return _train_group(group, engine, dev, data_dir, locked, [slot.live, stopper], data, label, shared_stop)

    queue = deque(zip(groups, labels))
    running: dict = {}
    opening: list[_Slot] = []  # a slot being opened, closed by the finally if interrupted
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tunebook-group")
    try:
        while queue or running:
            while queue and len(running) < workers and state.may_start():
                group, label = queue.popleft()
                opening.append(slot_for(group))
                opening[0].open()
                data = _device_data(group[0], dev, data_dir)
                if dev.type == "cuda":  # the data's copy is done before another stream reads it
                    import torch
                    torch.cuda.current_stream(dev).synchronize()
                future = pool.submit(work, group, opening[0], data, label)
                running[future] = opening.pop()
            if not running:
                return
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                slot = running[future]
                try:
                    results = future.result()
                    slot.live.close_all()
                    with locked._lock:
                        finish(slot, results)
                finally:
                    running.pop(future)
                    slot.close()
    finally:
        interrupted.set()
        pool.shutdown(wait=True)  # each worker stops at its next epoch's end
        for slot in [*running.values(), *opening]:
            slot.close()


def _by_id(group: Sequence[TrialConfig], results: Sequence[TrialResult]) -> list[TrialConfig]:
    by_id = {c.trial_id: c for c in group}
    return [by_id[r.trial_id] for r in results]


def failed_result(c: TrialConfig, error: str, engine: str) -> TrialResult:
    return TrialResult(trial_id=c.trial_id, status="failed", params=param_count(c.layers, *io_sizes(c.dataset)), flops=0,
                       epochs_run=0, train_seconds=0.0, error=error, engine=engine)


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


def run_path(path: str | Path, out: str | Path = "modellogs", **kwargs) -> list[StudyOutcome]:
    """Run a study file or a folder of them as one programme (options: :func:`run_studies`,
    plus the smoke-test overrides ``seeds``, ``epochs``, ``train_subset``)."""
    overrides = {k: kwargs.pop(k) for k in ("seeds", "epochs", "train_subset") if k in kwargs}
    specs = [s.with_overrides(**overrides) for s in load_specs(path)]
    return run_studies(specs, out, **kwargs)


__all__ = ["run_study", "run_studies", "run_path", "load_specs", "StudyOutcome", "Reporter", "plan_groups"]
