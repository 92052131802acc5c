"""--executor ray on a real local Ray instance, started once for the test session
(tests/executors/conftest.py): a killed Ray worker's group retried, a killed driver
resumed, the planner measured on a worker. The contract every executor keeps (the local
numbers bit for bit among them) is tests/executors/test_contract.py."""

from __future__ import annotations

import signal
import subprocess
import tomllib

import pytest

from tunebook.errors import SpecError
from tunebook.execute import run_studies
from tests.executors.helpers import (KillFirst, Recorder, curves_are_whole, interrupt, kill_driver_mid_study, numbers,
                                     worker_threads,
                                     stored_once, study, twelve_trials_cli)

ray = pytest.importorskip("ray", reason="the Ray extra is part of the test install (pip install -e '.[test]')")


def test_a_killed_ray_worker_s_group_is_retried_and_each_trial_stored_once(tmp_path, ray_address):
    spec = study("kill", grid="units1 = [16, 24, 32]", epochs=4)
    kill = KillFirst()
    rec = Recorder(on_placed=kill)
    (o,) = run_studies([spec], tmp_path, device="cpu", pad=False, executor="ray", workers=2, reporter=rec)
    assert kill.killed and len(rec.retries) == 1  # Ray retried the task: a second start of the group
    assert rec.retries[0][0] == rec.placed[0][0]
    assert o.trained == 6 and {r.result.status for r in o.runs} == {"complete"}
    assert sorted(stored_once(o.folder / "runs")) == sorted(c.trial_id for c in spec.configs())
    with worker_threads(2):
        (local,) = run_studies([spec], tmp_path / "local", device="cpu", pad=False)
    assert numbers(o) == numbers(local)
    for run in o.runs:  # the killed attempt's live curves were dropped
        curves_are_whole(run)


def test_a_group_lost_beyond_ray_s_retries_is_recorded_failed(tmp_path, ray_address):
    spec = study("lost", grid="units1 = [16, 24]", epochs=4)
    kill = KillFirst()
    (o,) = run_studies([spec], tmp_path, device="cpu", pad=False, executor="ray", workers=1, retries=0,
                       reporter=Recorder(on_placed=kill))
    assert len(o.failed) == 2 and o.trained == 4
    assert o.failed[0].result.error.startswith("WorkerLost: the worker training this group died 1 time(s) (the "
                                               "last: ")
    assert {r.result.status for r in o.runs if r.result.status != "failed"} == {"complete"}
    stored_once(o.folder / "runs")


def test_killing_the_driver_mid_study_then_rerunning_resumes(tmp_path, cli_env, ray_address):
    cmd, runs = twelve_trials_cli(tmp_path, "drv", 3, "--executor", "ray", "--ray-address", ray_address,
                                  "--workers", "2")
    done_before, _ = kill_driver_mid_study(cmd, cli_env, runs, 12)
    p = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert f"drv: {12 - done_before} trained, {done_before} already done (12 complete)" in p.stdout
    assert len(stored_once(runs)) == 12


def test_the_planner_s_cost_model_is_measured_on_a_ray_worker(tmp_path, ray_address):
    spec = study("plan", grid="units1 = [16, 24, 32]", seeds=1, epochs=1)
    (o,) = run_studies([spec], tmp_path, device="cpu", executor="ray", workers=2, pad="measured")
    assert {r.result.status for r in o.runs} == {"complete"}
    doc = tomllib.loads((tmp_path / ".planner.toml").read_text())
    (machine,) = doc
    assert machine.endswith("cpu:1 threads")  # a worker's share of the 2 CPUs, not this process's
    assert doc[machine]["seconds_per_flop"] > 0 and len(doc[machine]["points"]) == 6  # measured there


def test_a_cuda_device_on_a_cluster_without_gpus_is_refused(tmp_path, ray_address):
    with pytest.raises(SpecError) as exc:
        run_studies([study("gpu")], tmp_path / "never", device="cuda", executor="ray")
    assert exc.value.problems == ["--device cuda: the Ray cluster has no GPUs (resources: 2 CPUs)"]
    assert not (tmp_path / "never").exists()


def test_sigterm_cancels_the_ray_tasks_and_keeps_finished_trials(tmp_path, cli_env, ray_address):
    cmd, runs = twelve_trials_cli(tmp_path, "int", 6, "--executor", "ray", "--ray-address", ray_address,
                                  "--workers", "2")
    code, stderr, _ = interrupt(cmd, cli_env, runs, signal.SIGTERM, group=False)
    assert code == 130, stderr
    assert len(list(runs.glob("[0-9]*"))) >= 2 and not list(runs.glob(".staging*"))
    assert (runs.parent / ".lock").read_text() == ""
    p = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=300)  # and it resumes
    assert p.returncode == 0, p.stderr
    assert len(stored_once(runs)) == 12


def test_a_local_ray_instance_leaves_no_session_folder_behind(tmp_path, cli_env):
    """`--executor ray` without an address starts a Ray instance of its own; when the run
    ends, its session folder (logs, sockets) goes too, instead of piling up in /tmp/ray."""
    import glob

    cmd, runs = twelve_trials_cli(tmp_path, "ses", 1, "--executor", "ray", "--workers", "2")
    before_ray = set(glob.glob("/tmp/ray/session_*"))
    before_own = set(glob.glob("/tmp/tunebook-ray-*"))
    r = subprocess.run(cmd, env=cli_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(list(runs.glob("[0-9]*"))) == 12
    assert set(glob.glob("/tmp/ray/session_*")) <= before_ray
    assert set(glob.glob("/tmp/tunebook-ray-*")) <= before_own


class _InterruptAtFirstEpoch(Recorder):
    """Ctrl-C in the driver as the first epoch of any group arrives."""

    def epoch(self, event):
        raise KeyboardInterrupt


def test_an_interrupt_stops_the_tasks_in_flight_without_ray_cancel(tmp_path, ray_address, monkeypatch):
    """The driver stays alive here (a notebook's kernel): the stopped tasks end at their
    next epoch through the mailbox — each of them, watched by its own reference, not by the
    cluster's free CPUs (which other tests' drivers share) — and ray.cancel (which can abort
    the driver, see tunebook.executors.raycluster) is never called."""
    from tunebook.executors import Options, open_executor

    monkeypatch.setattr(ray, "cancel", lambda *a, **k: pytest.fail("ray.cancel was called"))
    spec = study("stop", grid="units1 = [16, 24, 32, 40]", epochs=2000, subset=20000)  # hours, were it run out
    with open_executor(Options("ray", workers=2), "cpu") as ex:
        with pytest.raises(KeyboardInterrupt):
            run_studies([spec], tmp_path, device="cpu", pad=False, executor=ex, reporter=_InterruptAtFirstEpoch())
        stopped = ex.backend.stopped
        assert len(stopped) == 2  # the two groups in flight
        done, waiting = ray.wait(stopped, num_returns=len(stopped), timeout=300)  # a deadline for a hung task
        assert not waiting, "a stopped task went on training"
        for ref in done:  # each ended at its next epoch: recorded failed by Stopped, not 2000 epochs trained
            results = ray.get(ref).results
            assert {r.status for r in results} == {"failed"} and all("Stopped" in r.error for r in results)
    assert not list((tmp_path / "stop" / "runs").glob("[0-9]*"))  # nothing of the stopped groups stored


def test_a_task_stopped_before_its_group_began_returns_its_group_failed(ray_address):
    """The stop can reach a task before its first message (its Started is refused): the task
    returns the group recorded failed by Stopped, as one stopped at an epoch does, instead
    of raising (this raced under load in the interrupt test above)."""
    from tunebook.executors import raycluster
    from tunebook.executors.messages import Job

    spec = study("early", grid="units1 = [16, 24]", seeds=1, epochs=1)
    mailbox = raycluster.Mailbox.remote()
    ray.get(mailbox.stop.remote(["k"]))
    job = Job(1, tuple(spec.configs()), "stacked", "16 and 24")
    done = ray.get(raycluster._train.remote(job, "cpu", 1, None, mailbox, "k"))
    assert [r.trial_id for r in done.results] == [c.trial_id for c in spec.configs()]
    assert {r.status for r in done.results} == {"failed"} and all("Stopped" in r.error for r in done.results)
