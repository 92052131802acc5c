"""Training one group where it runs: the dataset on the device, the engine, and an
exception turned into failed results.

The same few functions serve the local executor (this process), a worker process and a
Ray task. This module sits below the driver (:mod:`tunebook.execute`) and every executor
(:mod:`tunebook.executors`): both import it, it imports neither.
"""

from __future__ import annotations

import threading
import traceback
from typing import TYPE_CHECKING, Sequence

from .datasets import io_sizes
from .errors import TrialError
from .records import TrialConfig, TrialResult

if TYPE_CHECKING:
    from .reporter import Reporter
    from .spec import StudySpec

_DATA_CACHE: dict[tuple, object] = {}
_DATA_LOCK = threading.Lock()


def data_key(c: "TrialConfig | StudySpec") -> tuple:
    """Trials equal here train on the same arrays (a study's own fields name its split)."""
    return (c.dataset, c.validation, c.split_seed, c.train_subset)


def device_data(c: TrialConfig, dev, data_dir, dataset=None):
    """The dataset split a config trains on, on the device (one at a time is kept per
    process; a group in flight keeps its own reference). ``dataset``: the split's arrays
    when the caller has them (a Ray worker gets them from the object store)."""
    return split_on(data_key(c), dev, data_dir, dataset)


def split_on(split: tuple, dev, data_dir, dataset=None):
    """The split ``split`` (a :func:`data_key`) on the device, read once per process: a
    worker told of a search's split before its first group (:class:`~tunebook.executors.messages.Warm`)
    has it ready when the group comes."""
    from .data import load_dataset
    from .engine.common import DeviceData

    key = (*split, str(dev), str(data_dir))
    with _DATA_LOCK:
        if key not in _DATA_CACHE:
            _DATA_CACHE.clear()
            ds = dataset if dataset is not None else load_dataset(*split, data_dir)
            _DATA_CACHE[key] = DeviceData.from_dataset(ds, dev)
        return _DATA_CACHE[key]


def train_group(group: Sequence[TrialConfig], engine: str, dev, data_dir, reporter: "Reporter",
                extra_hooks: Sequence = (), data=None, label: str = "", stop=None,
                keep: bool = False, checkpoints: "tuple[str, float] | None" = None) -> list[TrialResult]:
    """Train one group, saying so to ``reporter``; an exception becomes a failed result for
    each of its trials."""
    from .planner import group_label

    data = data if data is not None else device_data(group[0], dev, data_dir)
    label = label or group_label(group)
    reporter.group_start(label, len(group), max(c.epochs for c in group))
    return train_safely(group, engine, data, [reporter.epoch, *extra_hooks], label, stop, keep, checkpoints)


def train_safely(group: Sequence[TrialConfig], engine: str, data, hooks: Sequence, label: str,
                 stop=None, keep: bool = False, checkpoints: "tuple[str, float] | None" = None) -> list[TrialResult]:
    """The engine on one group; an exception becomes a failed result (with its traceback)
    for each of its trials. ``data``: the device data, or a function that returns it (its
    errors are recorded the same way). Not caught: ``KeyboardInterrupt``, ``MemoryError``,
    ``SystemExit`` and any other ``BaseException`` (an executor's stop signal). ``keep``:
    complete results carry their trained weights (``result.weights``). ``checkpoints``:
    (folder, seconds between saves) — the group goes on from its checkpoint and keeps one
    (:mod:`tunebook.checkpoints`), where the engine can and no pruner stops members (a
    pruner of plain decisions, ``stop.pauses``, may: :mod:`tunebook.halving`)."""
    from .engine import ENGINES

    try:
        data = data() if callable(data) else data
        fn = ENGINES[engine]
        kwargs = {"keep": True} if keep and _takes(fn, "keep") else {}  # an engine that keeps no weights need not
        if checkpoints is not None and keeps_checkpoints(stop) and _takes(fn, "checkpoint"):  # know the word
            from .checkpoints import GroupCheckpoint

            kwargs["checkpoint"] = GroupCheckpoint(checkpoints[0], group, engine, checkpoints[1])
        return fn(group, data, hooks=list(hooks), label=label, stop=stop, **kwargs)
    except (KeyboardInterrupt, MemoryError, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - recorded as a failed trial (TrialError)
        return failed_group(group, exc, engine)


def keeps_checkpoints(stop) -> bool:
    """Whether groups keep checkpoints under this stopper: none, or one whose decisions are
    plain data that a resumed group reads again (``pauses``). A live pruner's state (Optuna
    trials, what it has seen) is not in a checkpoint, so a group it stops trains whole."""
    return stop is None or bool(getattr(stop, "pauses", False))


def _takes(fn, word: str) -> bool:
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return word in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def failed_group(group: Sequence[TrialConfig], exc: BaseException | str, engine: str) -> list[TrialResult]:
    """A failed result for each trial of a group: the error's first line, then its traceback."""
    if isinstance(exc, str):
        text = exc
    else:
        text = f"{TrialError(f'{type(exc).__name__}: {exc}')}\n{''.join(traceback.format_exception(exc))}"
    return [failed_result(c, text, engine) for c in group]


def failed_result(c: TrialConfig, error: str, engine: str) -> TrialResult:
    from .sizes import param_count

    return TrialResult(trial_id=c.trial_id, status="failed", params=param_count(c.layers, *io_sizes(c.dataset)), flops=0,
                       epochs_run=0, train_seconds=0.0, error=error, engine=engine)
