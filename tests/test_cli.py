"""The CLI end to end, in subprocesses, reading back TOML and TensorBoard files."""

from __future__ import annotations

import signal
import subprocess
import time
import tomllib

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import tunebook_cmd

STUDY = """
[study]
name = "e2e"
seeds = 2
train_subset = 2000
[defaults]
layers = [32, 32]
epochs = 2
[grid]
units1 = [16, 32]
"""


def run(args, env, **kw):
    return subprocess.run(tunebook_cmd(*args), env=env, capture_output=True, text=True, timeout=300, **kw)


def test_run_writes_toml_and_tensorboard_then_resumes(tmp_path, cli_env):
    study = tmp_path / "e2e.toml"
    study.write_text(STUDY)
    out = tmp_path / "logs"
    p = run(["run", str(study), "--out", str(out), "--no-report", "--no-pad"], cli_env)  # with the progress display
    assert p.returncode == 0, p.stderr
    assert "4 trained, 0 already done (4 complete)" in p.stdout
    assert "e2e: 4 trials to train in 2 groups, 0 already done" in p.stderr
    runs = sorted((out / "e2e" / "runs").iterdir())
    assert len(runs) == 4 and (out / "e2e" / "study.toml").read_text() == STUDY
    for folder in runs:
        cfg = tomllib.loads((folder / "config.toml").read_text())
        res = tomllib.loads((folder / "result.toml").read_text())
        assert cfg["trial"]["id"] == res["trial_id"] == folder.name.split("_")[-1]
        assert set(res) >= {"status", "params", "epochs_run", "train_seconds", "flops", "val_acc", "val_loss",
                            "test_acc", "test_loss", "best_epoch", "history"}
        assert set(res["history"]) == {"train_loss", "train_acc", "val_loss", "val_acc", "epoch_seconds", "wall_time",
                                        "grad_norm"}
        acc = EventAccumulator(str(folder))
        acc.Reload()
        scalars = acc.Tags()["scalars"]
        assert {"loss/train", "loss/val", "accuracy/train", "accuracy/val"} <= set(scalars)
        vals = [e.value for e in acc.Scalars("accuracy/val")]
        assert [e.step for e in acc.Scalars("accuracy/val")] == [1, 2]
        assert all(abs(v - w) < 1e-6 for v, w in zip(vals, res["history"]["val_acc"]))
        # each epoch's event carries the wall time at which that epoch ended
        assert [e.wall_time for e in acc.Scalars("accuracy/val")] == pytest.approx(res["history"]["wall_time"])
        plugin = acc.PluginTagToContent("hparams")
        assert "_hparams_/experiment" in plugin and "_hparams_/session_start_info" in plugin
    again = run(["run", str(study), "--out", str(out), "--no-report", "--quiet"], cli_env)
    assert again.returncode == 0 and "0 trained, 4 already done" in again.stdout
    ls = run(["ls", str(out)], cli_env)
    assert ls.returncode == 0 and ls.stdout.count("complete") == 4 and "16-32" in ls.stdout
    show = run(["show", runs[0].name.split("_")[-1], "--out", str(out)], cli_env)
    assert show.returncode == 0 and "val_acc" in show.stdout and "epoch" in show.stdout
    fresh = run(["run", str(study), "--out", str(out), "--no-report", "--quiet", "--fresh"], cli_env)
    assert fresh.returncode == 0 and "4 trained" in fresh.stdout
    assert len(list(out.glob("e2e-*/runs/*"))) == 4  # the old folder is kept


def test_validate_reports_counts_and_errors(tmp_path, cli_env):
    good = tmp_path / "good.toml"
    good.write_text(STUDY)
    p = run(["validate", str(good)], cli_env)
    assert p.returncode == 0 and "4 trials (2 configurations × 2 seeds), 8 model-epochs" in p.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(STUDY.replace("units1 = [16, 32]", "units1 = [16, -32]").replace("epochs = 2", "epochs = 0"))
    out = tmp_path / "logs"
    p = run(["run", str(bad), "--out", str(out)], cli_env)
    assert p.returncode == 2
    assert f"{bad}: grid.units1[1]: must be a positive integer" in p.stderr
    assert f"{bad}: defaults.epochs: must be a positive integer, got 0" in p.stderr
    assert not out.exists()  # nothing written


def test_cuda_without_a_gpu_is_exit_2(tmp_path, cli_env):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    study = tmp_path / "e2e.toml"
    study.write_text(STUDY)
    p = run(["run", str(study), "--out", str(tmp_path / "o"), "--device", "cuda", "--quiet"], cli_env)
    assert p.returncode == 2 and "--device cuda: no CUDA device is available" in p.stderr


def test_missing_dataset_is_exit_2(tmp_path, cli_env):
    study = tmp_path / "e2e.toml"
    study.write_text(STUDY)
    p = run(["run", str(study), "--out", str(tmp_path / "o"), "--data-dir", str(tmp_path / "nothing"), "--quiet"], cli_env)
    assert p.returncode == 2 and "lacks train-images-idx3-ubyte.gz" in p.stderr


def test_sigkill_mid_study_then_resume_finds_each_trial_once(tmp_path, cli_env):
    study = tmp_path / "kill.toml"
    study.write_text(STUDY.replace('name = "e2e"', 'name = "kill"').replace("seeds = 2", "seeds = 3")
                     .replace("epochs = 2", "epochs = 3").replace("units1 = [16, 32]", "units1 = [16, 24, 32, 48]"))
    out = tmp_path / "logs"
    cmd = tunebook_cmd("run", str(study), "--out", str(out), "--no-report", "--quiet", "--max-group", "1")
    proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = out / "kill" / "runs"
    deadline = time.time() + 240
    while time.time() < deadline and len([p for p in runs.glob("*_*")]) < 3:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(runs.glob("[0-9]*")))
    assert 3 <= done_before < 12, done_before
    p = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    folders = list(runs.glob("[0-9]*"))
    ids = [f.name.split("_")[-1] for f in folders]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert not list(runs.glob(".*"))
    assert (out / "kill" / ".lock").read_text() == ""  # released: the lock file stays, empty
    for f in folders:
        # events: the curves written live as epochs ended, and the HParams entry written at the end
        names = {x.name.split(".")[0] for x in f.iterdir()}  # and the weights kept while the study runs
        assert {"config", "events", "result"} <= names <= {"config", "events", "result", "weights"}
        tomllib.loads((f / "result.toml").read_text())


@pytest.mark.parametrize("sig, concurrent", [(signal.SIGINT, "1"), (signal.SIGTERM, "1"), (signal.SIGTERM, "2")],
                         ids=["SIGINT", "SIGTERM", "SIGTERM-concurrent"])
def test_sigint_and_sigterm_exit_130_and_keep_finished_trials(tmp_path, cli_env, sig, concurrent):
    study = tmp_path / "int.toml"
    study.write_text(STUDY.replace('name = "e2e"', 'name = "int"').replace("seeds = 2", "seeds = 4")
                     .replace("epochs = 2", "epochs = 10"))  # long enough to be caught mid-way
    out = tmp_path / "logs"
    # A background job (as CI may be) inherits SIGINT ignored; a user at a terminal does not.
    proc = subprocess.Popen(tunebook_cmd("run", str(study), "--out", str(out), "--no-report", "--quiet", "--max-group", "1",
                                         "--concurrent", concurrent),
                            env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    runs = out / "int" / "runs"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(runs.glob("[0-9]*"))) < 2:
        time.sleep(0.05)
    assert proc.poll() is None, "the study finished before it could be interrupted"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    assert len(list(runs.glob("[0-9]*"))) >= 2 and not list(runs.glob(".staging*"))
    assert (out / "int" / ".lock").read_text() == ""  # released


def test_scalars_are_in_tensorboard_while_the_run_trains(tmp_path, cli_env):
    """A long run is watched live: each epoch's scalars are on disk before the run ends."""
    study = tmp_path / "live.toml"
    study.write_text(STUDY.replace('name = "e2e"', 'name = "live"').replace("seeds = 2", "seeds = 1")
                     .replace("epochs = 2", "epochs = 40").replace("units1 = [16, 32]", "units1 = [16]"))
    out = tmp_path / "logs"
    proc = subprocess.Popen(tunebook_cmd("run", str(study), "--out", str(out), "--no-report", "--quiet"),
                            env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = out / "live" / "runs"
    seen = []
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and len(seen) < 2:
        for staging in runs.glob(".staging-*"):
            acc = EventAccumulator(str(staging))
            acc.Reload()
            if "accuracy/val" in acc.Tags()["scalars"]:
                seen = [e.step for e in acc.Scalars("accuracy/val")]
        time.sleep(0.05)
    proc.wait(timeout=240)
    assert proc.returncode == 0
    assert len(seen) >= 2 and seen == list(range(1, len(seen) + 1)), seen  # epochs 1, 2, ... while training
    (folder,) = runs.glob("[0-9]*")
    acc = EventAccumulator(str(folder))
    acc.Reload()
    assert [e.step for e in acc.Scalars("accuracy/val")] == list(range(1, 41))
