"""--executor process: worker processes on this machine give the local executor's
numbers, survive a killed worker, record a raising group, and leave with the driver."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tunebook_cmd
from tunebook.execute import run_studies
from tests.executors.helpers import (FAULTY, KillFirst, Recorder, curves_are_whole, interrupt, kill_driver_mid_study,
                                     numbers, still_alive_after, worker_threads, stored_once, study, study_text, twelve_trials_cli)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda:0", marks=pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="needs a CUDA device"))])
def test_process_workers_give_the_local_numbers(tmp_path, device):
    spec = study("same", grid="units1 = [16, 32]\noptimizer = [\"adam\", \"sgd\"]")
    with worker_threads(2):
        (local,) = run_studies([spec], tmp_path / "local", device=device, pad=False)
    rec = Recorder()
    (proc,) = run_studies([spec], tmp_path / "proc", device=device, pad=False, executor="process", workers=2,
                          reporter=rec)
    assert proc.trained == local.trained == 8
    if device == "cpu":  # bit for bit
        assert numbers(proc) == numbers(local)
    else:  # on CUDA, to float rounding (as for threads and streams: tests/engine/test_cuda.py)
        by_id = {r.trial_id: r.result for r in local.runs}
        for r in proc.runs:
            assert r.result.history.train_loss == pytest.approx(by_id[r.trial_id].history.train_loss, rel=1e-6,
                                                                abs=1e-7)
    assert len({pid for _, _, pid in rec.placed}) == 2  # both workers trained groups
    assert all(pid != os.getpid() and device.split(":")[0] in where for _, where, pid in rec.placed)
    # live TensorBoard curves came back through the driver: each run folder has them
    for run in proc.runs:
        assert run.events


def test_a_killed_worker_s_group_is_retried_and_each_trial_stored_once(tmp_path):
    spec = study("kill", grid="units1 = [16, 24, 32]", epochs=4)
    kill = KillFirst()
    rec = Recorder(on_placed=kill)
    (o,) = run_studies([spec], tmp_path, device="cpu", pad=False, executor="process", workers=2, reporter=rec)
    assert kill.killed and len(rec.retries) == 1
    label, attempt, why = rec.retries[0]
    assert attempt == 1 and f"worker process {kill.killed[0]} on cpu died (killed by signal SIGKILL)" in why
    assert o.trained == 6 and {r.result.status for r in o.runs} == {"complete"}
    assert sorted(stored_once(o.folder / "runs")) == sorted(c.trial_id for c in spec.configs())
    with worker_threads(2):
        (local,) = run_studies([spec], tmp_path / "local", device="cpu", pad=False)
    assert numbers(o) == numbers(local)
    for run in o.runs:  # the retried group's curves are its second attempt's, whole
        curves_are_whole(run)


def test_a_killed_worker_s_group_goes_on_from_its_checkpoint(tmp_path):
    """The worker killed as its group's third epoch ends: the group is sent again and the
    new worker goes on from the checkpoint the dead one left, to the same numbers."""
    spec = study("resume", grid="units1 = [16, 24]", epochs=30, subset=2000)  # long enough to be caught mid-way
    killed: list[int] = []

    class KillAtEpoch3(Recorder):
        seen: dict = {}

        def epoch(self, event):
            self.seen.setdefault(event.label, []).append(event.epoch)
            if event.epoch == 3 and not killed:
                pid = [p for label, _, p in self.placed if label == event.label][-1]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    rec = KillAtEpoch3()
    (o,) = run_studies([spec], tmp_path, device="cpu", pad=False, executor="process", workers=1, reporter=rec,
                       checkpoint_every=0)
    assert killed and len(rec.retries) == 1
    label = rec.retries[0][0]
    epochs = rec.seen[label]
    again = epochs[epochs.index(3) + 1:]  # what the second worker trained (and any epoch the first sent late)
    assert again and again[-1] == 30 and 1 not in again and min(again) >= 3  # it went on, not from epoch 1
    with worker_threads(1):
        (local,) = run_studies([spec], tmp_path / "local", device="cpu", pad=False)
    assert numbers(o) == numbers(local)
    for run in o.runs:
        curves_are_whole(run)
    assert not list((tmp_path / ".checkpoints").iterdir())


@pytest.mark.parametrize("retries", [0, 1])
def test_a_group_lost_more_often_than_retries_allow_is_recorded_failed(tmp_path, retries):
    spec = study("lost", grid="units1 = [16, 24]", epochs=4)
    doomed, killed = [], []

    def kill_every_attempt(label, where, pid):  # the first group's worker dies every time
        doomed[:] = doomed or [label]
        if label == doomed[0]:
            killed.append(pid)
            os.kill(pid, signal.SIGKILL)

    rec = Recorder(on_placed=kill_every_attempt)
    (o,) = run_studies([spec], tmp_path, device="cpu", pad=False, executor="process", workers=1, retries=retries,
                       reporter=rec)
    assert len(killed) == retries + 1 and len(rec.retries) == retries
    assert len(o.failed) == 2 and o.trained == 4  # the other group trained on a fresh worker
    error = o.failed[0].result.error
    assert error.startswith(f"WorkerLost: the worker training this group died {retries + 1} time(s) (the last: "
                            f"worker process {killed[-1]} on cpu died (killed by signal SIGKILL)); the group was "
                            "not retried again")
    stored_once(o.folder / "runs")


def test_a_worker_that_dies_before_it_begins_says_what_to_check(tmp_path):
    script = tmp_path / "unguarded.py"  # no `if __name__ == "__main__":`: each spawned worker re-runs it
    script.write_text("import sys\n"
                      f"from tunebook.execute import run_studies\nfrom tunebook.spec import parse_spec\n"
                      f"spec = parse_spec({study_text('ug', grid='units1 = [16]', seeds=1, epochs=1, subset=500)!r})\n"
                      f"(o,) = run_studies([spec], {str(tmp_path / 'o')!r}, device='cpu', executor='process', "
                      "workers=1, retries=0)\n"
                      "print(o.failed[0].result.error.splitlines()[0])\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2] / "src")
    p = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "died before it began: see its error above — a Python script that starts worker processes must guard " \
           "its entry point with `if __name__ == \"__main__\":`" in p.stdout


def test_a_group_that_raises_in_a_worker_is_recorded_with_its_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", f"{FAULTY}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    monkeypatch.setenv("TUNEBOOK_TEST_FAIL_WIDTH", "24")
    spec = study("raise", grid="units1 = [16, 24, 32]")
    (o,) = run_studies([spec], tmp_path, device="cpu", pad=False, executor="process", workers=2)
    assert o.trained == 6 and len(o.failed) == 2 and not o.aborted
    for run in o.failed:
        assert run.config.layers == (24,)
        assert run.result.error.startswith("RuntimeError: injected fault for width 24\nTraceback")
    assert {r.result.status for r in o.runs if r.config.layers != (24,)} == {"complete"}


def test_killing_the_driver_stops_its_workers_and_a_rerun_resumes(tmp_path, cli_env):
    cmd, runs = twelve_trials_cli(tmp_path, "drv", 3, "--executor", "process", "--workers", "2")
    _, workers = kill_driver_mid_study(cmd, cli_env, runs, 12, stderr=tmp_path / "stderr")
    assert workers, "the driver had no worker processes"
    # an orphaned worker leaves at its next epoch's end (multiprocessing's resource tracker at once)
    assert not still_alive_after(workers, 30), "workers outlived their driver"
    said = (tmp_path / "stderr").read_text(errors="replace")
    assert "BrokenPipeError" not in said and "Traceback" not in said, said  # orphans leave quietly
    p = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert len(stored_once(runs)) == 12


@pytest.mark.parametrize("flag", ["--executor", "--workers"])
def test_cli_runs_a_study_on_worker_processes(tmp_path, cli_env, flag):
    f = tmp_path / "cli.toml"
    f.write_text(study_text("cli", grid="units1 = [16, 24]", seeds=1, epochs=1, subset=1000))
    args = ["--executor", "process"] + (["--workers", "2"] if flag == "--workers" else [])
    p = subprocess.run(tunebook_cmd("run", str(f), "--out", str(tmp_path / "o"), "--no-report", *args),
                       env=cli_env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "executor: " in p.stderr and "worker processes (cpu" in p.stderr
    assert "cli: 2 trained, 0 already done (2 complete)" in p.stdout


@pytest.mark.parametrize("sig, group", [(signal.SIGINT, True), (signal.SIGTERM, False)],
                         ids=["ctrl-c-to-the-process-group", "SIGTERM-to-the-driver"])
def test_an_interrupt_stops_the_workers_and_keeps_finished_trials(tmp_path, cli_env, sig, group):
    cmd, runs = twelve_trials_cli(tmp_path, "int", 6, "--executor", "process", "--workers", "2")
    code, stderr, workers = interrupt(cmd, cli_env, runs, sig, group)
    assert code == 130, stderr
    assert "interrupted: finished trials are kept" in stderr
    assert len(list(runs.glob("[0-9]*"))) >= 2 and not list(runs.glob(".staging*"))
    assert (runs.parent / ".lock").read_text() == ""  # released
    assert workers and not still_alive_after(workers, 15), "workers outlived the interrupted driver"
    for folder in runs.glob("[0-9]*"):  # whole run folders only
        names = {x.name.split(".")[0] for x in folder.iterdir()}  # and the weights kept while the study runs
        assert {"config", "events", "result"} <= names <= {"config", "events", "result", "weights"}


def test_workers_start_only_as_groups_need_them(tmp_path):
    from tunebook.executors import Options, open_executor

    spec = study("few", grid="units1 = [16, 32]", seeds=1, epochs=1)   # 2 groups
    ex = open_executor(Options("process", workers=8), "cpu")
    try:
        assert not [w for w in ex.backend.workers if w is not None]   # none before a group comes
        (o,) = run_studies([spec], tmp_path, device="cpu", pad=False, executor=ex)
        started = [w for w in ex.backend.workers if w is not None]
        assert o.trained == 2 and 1 <= len(started) <= 2
    finally:
        ex.close()


def test_an_absurd_worker_count_is_refused_before_anything_starts(tmp_path):
    import pytest as _pytest

    from tunebook.errors import SpecError

    most = 4 * (os.cpu_count() or 1)
    with _pytest.raises(SpecError) as exc:
        run_studies([study("many")], tmp_path / "never", device="cpu", executor="process", workers=10_000)
    assert exc.value.problems == [f"--workers 10000: at most {most} worker processes on this machine (4 per CPU "
                                  "core; each loads torch and the dataset); workers start only as groups need "
                                  "them, so a larger number gains nothing"]
    assert not (tmp_path / "never").exists()


def test_the_unguarded_script_hint_is_not_given_under_tunebook_s_own_command(monkeypatch):
    import sys

    from tunebook.executors.process import _entry_point_is_tunebook

    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/tunebook", "run", "x.toml"])
    assert _entry_point_is_tunebook()
    monkeypatch.setattr(sys, "argv", ["my_script.py"])
    monkeypatch.setattr(sys.modules["__main__"], "__spec__", None, raising=False)
    assert not _entry_point_is_tunebook()


def test_a_warmed_worker_has_the_split_ready_before_its_first_group(monkeypatch):
    """What a worker does with Warm (run here, in this process): the study's split is made
    ready on its device, and the first group's data is that very object — nothing is read
    again (the dataset's reader is made to fail after the warm)."""
    from tunebook import data, training
    from tunebook.executors.messages import Warm
    from tunebook.executors.worker import warm
    from tunebook.spec import parse_spec

    spec = parse_spec('[study]\nname = "w"\nseeds = 1\ntrain_subset = 300\n[defaults]\nlayers = [8]\n')
    (config,) = spec.configs()
    training._DATA_CACHE.clear()
    warm(Warm(training.data_key(config), None), "cpu")
    ready = [v for k, v in training._DATA_CACHE.items() if k[:4] == training.data_key(config)]
    assert len(ready) == 1 and ready[0].x_train.shape == (300, 784)
    monkeypatch.setattr(data, "load_dataset", lambda *a, **k: pytest.fail("read again"))
    assert training.device_data(config, __import__("torch").device("cpu"), None) is ready[0]
    monkeypatch.undo()
    warm(Warm(("no-such-dataset", 0.1, 0, 0), None), "cpu")  # a failure is left for the first job to record
