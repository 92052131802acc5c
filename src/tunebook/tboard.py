"""TensorBoard event files for a run folder: per-epoch scalars and an HParams entry.

Written once a trial is finished, from its history (the engine never writes files).
Scalars use ``step`` = epoch (1-based): ``loss/train``, ``loss/val``, ``accuracy/train``,
``accuracy/val``, ``time/epoch_seconds``. The HParams entry lists the trial's
hyperparameters with ``hparam/val_acc`` and ``hparam/test_acc`` as its metrics, so
TensorBoard's HParams tab shows one row per trial when pointed at ``runs/``.
"""

from __future__ import annotations

import math
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from .records import TrialResult
from .spec import TrialConfig

SCALARS = {"loss/train": "train_loss", "loss/val": "val_loss", "accuracy/train": "train_acc",
           "accuracy/val": "val_acc", "time/epoch_seconds": "epoch_seconds"}


def hparam_dict(config: TrialConfig) -> dict[str, float | int | str]:
    d = config.to_dict()
    d["layers"] = config.label
    d["depth"] = len(config.layers)
    d["validation"] = str(config.validation)
    return d


def write_events(folder: Path, config: TrialConfig, result: TrialResult) -> None:
    writer = SummaryWriter(log_dir=str(folder), flush_secs=3600)
    try:
        for tag, key in SCALARS.items():
            for epoch, value in enumerate(getattr(result.history, key), start=1):
                if math.isfinite(value):
                    writer.add_scalar(tag, value, epoch)
        metrics = {"hparam/val_acc": result.val_acc, "hparam/test_acc": result.test_acc}
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        for tag, value in finite.items():
            writer.add_scalar(tag, value, max(result.epochs_run, 1))
        exp, ssi, sei = hparams(hparam_dict(config), finite or {"hparam/val_acc": 0.0})
        for summary in (exp, ssi, sei):
            writer.file_writer.add_summary(summary)
    finally:
        writer.close()
