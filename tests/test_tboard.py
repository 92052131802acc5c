"""The events writer: TensorBoard's own EventFileWriter, writing the very events that
torch.utils.tensorboard.SummaryWriter writes for the same calls (read back with
TensorBoard's own loader), without importing torch."""

from __future__ import annotations

import subprocess
import sys

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto.summary_pb2 import Summary

from tunebook import tboard


def _events(folder):
    (path,) = folder.glob("events.out.tfevents.*")
    return [e for e in EventFileLoader(str(path)).Load()]


def _write(writer) -> None:
    writer.add_scalar("loss/train", 0.25, 1, walltime=1000.5)
    writer.add_scalar("accuracy/val", 0.8123456789, 2, walltime=1001.25)
    writer.add_scalar("x", float("inf"), 3, walltime=1002.0)
    summary = Summary(value=[Summary.Value(tag="hparam/val_acc", simple_value=0.5)])
    (writer.file_writer if hasattr(writer, "file_writer") else writer).add_summary(summary, walltime=1003.0)
    writer.close()


def test_the_events_are_torch_summarywriter_s_own(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    _write(SummaryWriter(log_dir=str(tmp_path / "torch")))
    _write(tboard.SummaryWriter(str(tmp_path / "ours")))
    theirs, ours = _events(tmp_path / "torch"), _events(tmp_path / "ours")
    assert len(ours) == len(theirs) == 5
    assert ours[0].file_version == theirs[0].file_version == "brain.Event:2"
    for a, b in zip(ours[1:], theirs[1:]):
        assert a.SerializeToString() == b.SerializeToString()
    assert [(e.step, e.summary.value[0].tag) for e in ours[1:]] == [(1, "loss/train"), (2, "accuracy/val"),
                                                                    (3, "x"), (0, "hparam/val_acc")]


def test_storing_a_run_s_events_needs_no_torch():
    """A driver whose workers train stores their runs without importing torch."""
    code = ("import sys, tunebook.execute, tunebook.search, tunebook.runner, tunebook.tboard, tunebook.planner; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
