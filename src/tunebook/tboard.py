"""TensorBoard event files for a run folder: per-epoch scalars and an HParams entry.

Written from a trial's history (the engine never writes files). Scalars use ``step`` =
epoch (1-based): ``loss/train``, ``loss/val``, ``accuracy/train``, ``accuracy/val``,
``time/epoch_seconds``; each event carries the wall time at which its epoch ended, when the
record holds it. The HParams entry is written the way TensorBoard's HParams tab reads it:

- every run declares the same metric columns (``hparam/val_acc``, ``hparam/test_acc``),
  so no run (a diverged one, say) can hide a column from the whole dashboard;
- the experiment lists the study's varying hyperparameters (and the seed), each with
  ``differs`` set: TensorBoard sorts the experiment's columns by (not differs, name), so
  without it every column sorts alphabetically and reads as constant; the constants are
  left out of the experiment (each run's session still records them);
- ``group_name`` is the configuration in words without its seed (``units1=128 lr=0.01``),
  so a configuration's seeds group together under a name a person can read;
- the session's status is SUCCESS only for a complete run (diverged and failed: FAILURE).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Sequence

from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from .records import TrialResult
from .records import TrialConfig

SCALARS = {"loss/train": "train_loss", "loss/val": "val_loss", "accuracy/train": "train_acc",
           "accuracy/val": "val_acc", "time/epoch_seconds": "epoch_seconds"}
METRIC_TAGS = ("hparam/val_acc", "hparam/test_acc")
REGRESSION_TAGS = ("hparam/val_rmse", "hparam/test_rmse", "hparam/val_r2")  # a regression's runs
_STATUS = {"complete": api_pb2.STATUS_SUCCESS, "pruned": api_pb2.STATUS_SUCCESS,
           "diverged": api_pb2.STATUS_FAILURE, "failed": api_pb2.STATUS_FAILURE}


class SummaryWriter:
    """The events file of one folder, written by TensorBoard's own ``EventFileWriter``: the
    events ``torch.utils.tensorboard.SummaryWriter`` writes for the calls made here (a
    scalar as ``simple_value``), without importing torch — a driver process stores runs
    that its workers trained and need not load it."""

    def __init__(self, log_dir: str, flush_secs: float = 120) -> None:
        self._events = EventFileWriter(str(log_dir), max_queue_size=10, flush_secs=flush_secs)

    def add_scalar(self, tag: str, value: float, step: int, walltime: float | None = None) -> None:
        self.add_summary(Summary(value=[Summary.Value(tag=tag, simple_value=float(value))]), step, walltime)

    def add_summary(self, summary: Summary, step: int | None = None, walltime: float | None = None) -> None:
        event = Event(summary=summary, wall_time=time.time() if walltime is None else walltime)
        if step is not None:
            event.step = int(step)
        self._events.add_event(event)

    def flush(self) -> None:
        self._events.flush()

    def close(self) -> None:
        self._events.close()


def hparam_dict(config: TrialConfig) -> dict[str, float | int | str]:
    """The config's hyperparameters as TensorBoard's HParams columns (a user model's own
    ones beside tunebook's; the MLP's shape keys only for the MLP)."""
    d = config.to_dict()
    own = d.pop("model_params")
    if config.model:
        for k in ("layers", "activation", "dropout", "norm", "residual", "init", "label_smoothing"):
            d.pop(k)
        return d | own
    d.pop("model")
    d["layers"] = config.label
    d["depth"] = len(config.layers)
    d["validation"] = str(config.validation)
    for i, u in enumerate(config.layers[:3], start=1):
        d[f"units{i}"] = u
    return d


def ordered_hparams(config: TrialConfig, varying: Sequence[str] = ()) -> list[tuple[str, Any]]:
    """The varying hyperparameters first (in the study's order), then the constants."""
    d = hparam_dict(config)
    first = [k for k in varying if k in d]
    return [(k, d[k]) for k in first] + [(k, v) for k, v in d.items() if k not in first]


def group_name(config: TrialConfig, varying: Sequence[str] = ()) -> str:
    """A configuration's name without its seed: its varying hyperparameters in words."""
    d = hparam_dict(config)
    parts = [f"{k}={d[k]}" for k in varying if k in d and k != "seed"]
    return " ".join(parts) or config.label


def _plugin_summary(tag: str, data: plugin_data_pb2.HParamsPluginData) -> Summary:
    data.version = metadata.PLUGIN_DATA_VERSION
    md = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(
        plugin_name=metadata.PLUGIN_NAME, content=data.SerializeToString()))
    return Summary(value=[Summary.Value(tag=tag, metadata=md)])


def hparams_summaries(config: TrialConfig, result: TrialResult, varying: Sequence[str] = (),
                      start_time: float = 0.0) -> list[Summary]:
    """Experiment, session-start and session-end summaries of one run."""
    pairs = ordered_hparams(config, varying)
    tags = REGRESSION_TAGS if result.regression else METRIC_TAGS
    exp = api_pb2.Experiment(metric_infos=[api_pb2.MetricInfo(name=api_pb2.MetricName(tag=t)) for t in tags])
    start = plugin_data_pb2.SessionStartInfo(group_name=group_name(config, varying), start_time_secs=start_time)
    listed = [k for k in varying if k != "seed"] + ["seed"]
    for k, v in pairs:
        typ = api_pb2.DATA_TYPE_STRING if isinstance(v, str) else api_pb2.DATA_TYPE_FLOAT64
        if k in listed or not varying:  # a study with one configuration: everything, as constants
            exp.hparam_infos.add(name=k, type=typ, differs=k in listed and bool(varying))
        if isinstance(v, str):
            start.hparams[k].string_value = v
        else:
            start.hparams[k].number_value = float(v)
    end = plugin_data_pb2.SessionEndInfo(status=_STATUS[result.status])
    return [_plugin_summary(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=exp)),
            _plugin_summary(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=start)),
            _plugin_summary(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end))]



def write_events(folder: Path, config: TrialConfig, result: TrialResult, varying: Sequence[str] = (),
                 scalars: bool = True) -> None:
    """The run's events from its record; ``scalars=False`` when :class:`LiveScalars` already
    wrote the curves into ``folder`` as the epochs ended (then only the HParams entry and
    the final metrics are added)."""
    writer = SummaryWriter(log_dir=str(folder), flush_secs=3600)
    h = result.history
    ends = list(h.wall_time) if h.wall_time else [None] * len(h)
    try:
        for tag, key in SCALARS.items():
            for epoch, value in enumerate(getattr(h, key), start=1):
                if scalars and math.isfinite(value):
                    writer.add_scalar(tag, value, epoch, walltime=ends[epoch - 1])
        for epoch, norms in enumerate(h.grad_norm, start=1):  # not among the live curves: always here
            for k, value in enumerate(norms, start=1):
                if math.isfinite(value):
                    writer.add_scalar(f"grad_norm/layer{k}", value, epoch, walltime=ends[epoch - 1])
        last = ends[-1] if ends else None
        for tag, value in (("hparam/val_acc", result.val_acc), ("hparam/test_acc", result.test_acc),
                           ("hparam/val_rmse", result.val_rmse), ("hparam/test_rmse", result.test_rmse),
                           ("hparam/val_r2", result.val_r2)):  # NaN (not measured) is left out
            if math.isfinite(value):
                writer.add_scalar(tag, value, max(result.epochs_run, 1), walltime=last)
        start = (ends[0] - h.epoch_seconds[0]) if ends and ends[0] is not None else 0.0
        for summary in hparams_summaries(config, result, varying, start):
            writer.add_summary(summary, walltime=last)
    finally:
        writer.close()


class LiveScalars:
    """An epoch hook: writes each training run's scalars into its staging folder as the
    epoch ends, so a long run can be watched in TensorBoard while it trains (as the run
    ``.staging-<trial id>-<pid>``; it takes its final name when the run is saved)."""

    def __init__(self) -> None:
        self.writers: dict[str, SummaryWriter] = {}

    def open(self, trial_id: str, folder: Path) -> None:
        self.writers[trial_id] = SummaryWriter(log_dir=str(folder), flush_secs=3600)

    def __call__(self, event) -> None:
        now = time.time()
        share = event.seconds / max(event.members, 1)
        for trial_id, train_loss, train_acc, val_loss, val_acc in event.members_detail:
            w = self.writers.get(trial_id)
            if w is None:
                continue
            for tag, value in (("loss/train", train_loss), ("loss/val", val_loss), ("accuracy/train", train_acc),
                               ("accuracy/val", val_acc), ("time/epoch_seconds", share)):
                if math.isfinite(value):
                    w.add_scalar(tag, value, event.epoch, walltime=now)
            w.flush()

    def live(self, trial_id: str) -> bool:
        return trial_id in self.writers

    def close_all(self) -> None:
        """Close every writer (their threads stop writing); safe to call again after an
        interrupt cut the first call short."""
        while self.writers:
            _, w = self.writers.popitem()
            w.close()
