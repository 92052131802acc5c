"""Running a study: plan groups, train what is not done, store every result.

``run_study`` is the function behind ``tunebook run``: a notebook calls it the same way.
The data flow is one way — spec → configs → groups → engine → results → store — and a
group's results are saved as soon as the group ends, so an interruption loses at most
the group in flight and a rerun resumes.
"""

from __future__ import annotations

import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .errors import SpecError, TrialError
from .model import param_count
from .records import TrialResult
from .spec import StudySpec, TrialConfig, load_spec
from .store import Run, RunStore

CPU_GROUP_BYTES = 4 << 30  # at most 4 GiB of stacked state per group on the CPU
# On the CPU, throughput per model stops growing past a few dozen members (the batch
# gather falls out of cache; see docs/performance.md) while a bigger group delays the
# first saved result, so CPU groups are capped by count as well.
CPU_MAX_MEMBERS = 64


class Reporter:
    """Progress callbacks; the default says nothing. The CLI draws progress bars."""

    def study_start(self, spec: StudySpec, todo: int, done: int, groups: int) -> None: ...
    def group_start(self, label: str, trials: int, epochs: int) -> None: ...
    def epoch(self, event) -> None: ...
    def trial_saved(self, config: TrialConfig, result: TrialResult) -> None: ...
    def study_end(self, outcome: "StudyOutcome") -> None: ...


@dataclass(frozen=True)
class StudyOutcome:
    """What a call of :func:`run_study` did and what the study now holds."""

    spec: StudySpec
    folder: Path
    runs: tuple[Run, ...]          # every stored run of this study's configs
    trained: int                   # trials trained by this call
    skipped: int                   # trials already done before this call
    seconds: float
    problems: tuple[str, ...] = () # unreadable run folders that were skipped

    @property
    def failed(self) -> list[Run]:
        return [r for r in self.runs if r.result.status == "failed"]

    @property
    def diverged(self) -> list[Run]:
        return [r for r in self.runs if r.result.status == "diverged"]


def group_key(c: TrialConfig) -> tuple:
    """Trials equal here can train as one stacked model."""
    return (c.layers, c.activation, c.batch_size, c.optimizer, c.dataset, c.validation,
            c.split_seed, c.train_subset)


def member_bytes(c: TrialConfig, n_in: int = 784, n_out: int = 10) -> int:
    """Memory one stacked member needs: weights, gradients, optimizer state, activations."""
    states = 1 if c.optimizer in ("sgd", "momentum", "nesterov") else 2
    acts = c.batch_size * (n_in + 4 * sum(c.layers) + 3 * n_out)
    return 4 * (param_count(c.layers, n_in, n_out) * (2 + states) + acts)


def group_budget(device) -> int:
    if device.type == "cuda":
        import torch

        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.6)
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        avail = CPU_GROUP_BYTES
    return min(CPU_GROUP_BYTES, avail // 3)


def max_members(c: TrialConfig, device, max_group: int | None = None) -> int:
    """The largest stacked group of ``c``'s shape that fits this device's budget."""
    cap = max(1, group_budget(device) // member_bytes(c))
    if device.type == "cpu":
        cap = min(cap, CPU_MAX_MEMBERS)
    return min(cap, max_group) if max_group else cap


def plan_groups(configs: Sequence[TrialConfig], device, max_group: int | None = None) -> list[list[TrialConfig]]:
    """Split configs into stackable groups no larger than the memory budget allows.

    Trials that differ only in ``epochs`` count once (they are one member) and are
    never split apart.
    """
    by_key: dict[tuple, dict[tuple, list[TrialConfig]]] = {}
    for c in configs:
        by_key.setdefault(group_key(c), {}).setdefault(c.stream_key, []).append(c)
    groups = []
    for streams in by_key.values():
        members = list(streams.values())
        cap = max_members(members[0][0], device, max_group)
        n_groups = -(-len(members) // cap)
        size = -(-len(members) // n_groups)  # even split: 10 members, cap 8 -> 5 + 5
        for i in range(0, len(members), size):
            groups.append([c for m in members[i:i + size] for c in m])
    return groups


def _group_label(group: Sequence[TrialConfig]) -> str:
    c = group[0]
    return f"{c.label} b{c.batch_size} {c.optimizer} ×{len({g.stream_key for g in group})}"


def run_study(spec: StudySpec, out: str | Path = "modellogs", *, device: str = "auto",
              engine: str = "stacked", max_group: int | None = None, fresh: bool = False,
              data_dir: str | Path | None = None, reporter: Reporter | None = None) -> StudyOutcome:
    """Train every trial of ``spec`` that has no final result under ``out``; return all."""
    from .data import load_dataset
    from .engine import ENGINES
    from .engine.common import DeviceData, resolve_device

    if engine not in ENGINES:
        raise SpecError([f"--engine: must be one of {', '.join(ENGINES)}, got {engine!r}"])
    try:
        dev = resolve_device(device)
    except (ValueError, RuntimeError) as exc:
        raise SpecError([str(exc)]) from None
    reporter = reporter or Reporter()
    t0 = time.perf_counter()
    configs = spec.configs()
    store = RunStore(out, spec.name)
    if fresh and store.dir.exists():
        store.dir.rename(store.dir.with_name(f"{spec.name}-{time.strftime('%Y%m%d-%H%M%S')}"))
    problems: list[str] = []
    trained = 0
    with store:
        store.save_study(spec.source)
        done = store.completed(problems)
        todo = [c for c in configs if c.trial_id not in done]
        groups = plan_groups(todo, dev, max_group) if engine == "stacked" else [[c] for c in todo]
        reporter.study_start(spec, len(todo), len(configs) - len(todo), len(groups))
        if todo:
            ds = load_dataset(spec.dataset, spec.validation, spec.split_seed, spec.train_subset, data_dir)
            data = DeviceData.from_dataset(ds, dev)
            train = ENGINES[engine]
            for group in groups:
                label = _group_label(group)
                reporter.group_start(label, len(group), max(c.epochs for c in group))
                started = time.time()
                try:
                    results = train(group, data, hooks=[reporter.epoch], label=label)
                except (KeyboardInterrupt, MemoryError):
                    raise
                except Exception as exc:  # noqa: BLE001 - recorded as a failed trial (TrialError)
                    err = TrialError(f"{type(exc).__name__}: {exc}")
                    tb = "".join(traceback.format_exception(exc))
                    results = [failed_result(c, f"{err}\n{tb}", engine) for c in group]
                for c, r in zip(_by_id(group, results), results):
                    store.save(c, r, started, val_is_test=spec.validation == "test")
                    reporter.trial_saved(c, r)
                    trained += 1
        runs = _runs_of(store, configs, problems)
    outcome = StudyOutcome(spec, store.dir, tuple(runs), trained, len(configs) - len(todo),
                           time.perf_counter() - t0, tuple(problems))
    reporter.study_end(outcome)
    return outcome


def _by_id(group: Sequence[TrialConfig], results: Sequence[TrialResult]) -> list[TrialConfig]:
    by_id = {c.trial_id: c for c in group}
    return [by_id[r.trial_id] for r in results]


def failed_result(c: TrialConfig, error: str, engine: str) -> TrialResult:
    return TrialResult(trial_id=c.trial_id, status="failed", params=param_count(c.layers), flops=0,
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


def run_path(path: str | Path, **kwargs) -> list[StudyOutcome]:
    """Run a study file or a folder of them (see :func:`run_study` for the options)."""
    overrides = {k: kwargs.pop(k) for k in ("seeds", "epochs", "train_subset") if k in kwargs}
    specs = [s.with_overrides(**overrides) for s in load_specs(path)]
    return [run_study(s, **kwargs) for s in specs]


__all__ = ["run_study", "run_path", "load_specs", "StudyOutcome", "Reporter", "plan_groups"]
