"""Executor options: every wrong combination is refused, by name, before anything starts
or is written; group resources follow the group's size; a runaway study stops."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tunebook.errors import SpecError
from tunebook.execute import run_studies
from tunebook.executors import Options, check_options, group_resources
from tunebook.spec import parse_spec

from conftest import tunebook_cmd
from tests.executors.helpers import stored_once, study, study_text


@pytest.mark.parametrize("kwargs, message", [
    (dict(executor="threads"), "--executor: must be one of local, process, ray, got 'threads'"),
    (dict(workers=2), "--workers: only with --executor process or ray (local trains in this process"),
    (dict(executor="process", workers=0), "--workers: must be a positive integer, got 0"),
    (dict(executor="process", ray_address="auto"), "--ray-address: only with --executor ray, got --executor process"),
    (dict(executor="process", concurrent=2), "--concurrent: only with --executor local (--executor process trains"),
    (dict(executor="process", retries=-1), "retries: must be a whole number ≥ 0, got -1"),
    (dict(executor="ray", device="cuda:1"), "--device cuda:1: with --executor ray, Ray gives each group its GPU"),
    (dict(max_failures=0), "--max-failures: must be a positive integer, got 0"),
])
def test_wrong_executor_options_are_refused_before_anything_is_written(tmp_path, kwargs, message):
    out = tmp_path / "never"
    with pytest.raises(SpecError) as exc:
        run_studies([study("opt")], out, **{"device": "cpu", **kwargs})
    assert any(p.startswith(message) for p in exc.value.problems), exc.value.problems
    assert not out.exists()


def test_a_search_whose_pruner_decides_here_refuses_remote_executors_before_writing(tmp_path):
    from tunebook.search import run_search

    spec = parse_spec('[study]\nname = "pr"\nseeds = 1\ntrain_subset = 800\nsampler = "random"\ntrials = 4\n'
                      'pruner = "asha"\n[defaults]\nlayers = [16]\nepochs = 2\n'
                      '[search]\nlr = { low = 0.0001, high = 0.1, log = true }\n', where="pr.toml")
    with pytest.raises(SpecError) as exc:
        run_search(spec, tmp_path / "never", device="cpu", executor="process", workers=1)
    assert exc.value.problems == ["--executor process: a search with [study] pruner = \"asha\" or \"hyperband\" "
                                  "trains with --executor local only (the pruner compares the proposals still "
                                  "training, in this process); use pruner = \"median\" (decided in any worker), "
                                  "remove [study] pruner, or use --executor local"]
    assert not (tmp_path / "never").exists()


def test_without_ray_installed_the_error_says_how_to_install_it(tmp_path, cli_env):
    study_file = tmp_path / "s.toml"
    study_file.write_text(study_text("noray"))
    code = ("import sys; sys.modules['ray'] = None  # as if Ray were not installed\n"
            "from tunebook.cli import main; sys.exit(main(sys.argv[1:]))")
    p = subprocess.run([sys.executable, "-c", code, "run", str(study_file), "--out", str(tmp_path / "o"),
                        "--executor", "ray"], env=cli_env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "--executor ray: Ray is not installed; install it with pip install 'tunebook[ray]'" in p.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, message", [
    (["--retries", "-1"], "argument --retries: must be a whole number ≥ 0, got '-1'"),
    (["--workers", "0", "--executor", "process"], "argument --workers: must be a positive integer, got '0'"),
    (["--executor", "dask"], "argument --executor: invalid choice: 'dask'"),
    (["--max-failures", "0"], "argument --max-failures: must be a positive integer, got '0'"),
])
def test_cli_executor_flags_are_checked(tmp_path, cli_env, argv, message):
    p = subprocess.run(tunebook_cmd("run", "x.toml", "--out", str(tmp_path / "o"), *argv), env=cli_env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and message in p.stderr, p.stderr


def test_check_options_accepts_the_documented_combinations():
    assert check_options(Options("local", concurrent=4), "auto") == []
    assert check_options(Options("process", workers=3, retries=0), "cpu") == []
    assert check_options(Options("ray", workers=2, ray_address="auto"), "cuda") == []


def test_group_resources_come_from_the_groups_size():
    small = study("r", grid="units1 = [16]").configs()
    # CPU: the threads a worker gets
    assert group_resources(small, "cpu", 4, 1, 0).options() == {"num_cpus": 4.0}
    # GPU: a small group gets its share of a GPU shared by 4 workers
    assert group_resources(small, "cuda", 1, 4, 80 << 30).options() == {"num_cpus": 1.0, "num_gpus": 0.25}
    # a group that needs more memory than a quarter gets half, then the whole GPU, never more
    from tunebook.planner import member_bytes

    need = len(small) * member_bytes(small[0].layers, small[0].batch_size, 2)
    assert group_resources(small, "cuda", 1, 4, int(need / 0.4)).gpus == 0.5
    assert group_resources(small, "cuda", 1, 4, int(need / 0.9)).gpus == 1.0
    assert group_resources(small, "cuda", 1, 4, need // 10).gpus == 1.0
    assert group_resources(None, "cuda", 1, 3, 1).gpus == 0.3333


def test_consecutive_failed_groups_stop_a_runaway_study_and_a_rerun_recovers(tmp_path, monkeypatch):
    from tunebook import engine

    real = engine.ENGINES["stacked"]

    def broken(group, data, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access")

    spec = study("runaway", grid="units1 = [8, 16, 24, 32]", seeds=1, epochs=1)
    monkeypatch.setitem(engine.ENGINES, "stacked", broken)
    (o,) = run_studies([spec], tmp_path, device="cpu", pad=False, max_failures=2)
    assert o.aborted.startswith("2 groups in a row failed entirely, so no further group was started (the last: ")
    assert "RuntimeError: CUDA error: an illegal memory access" in o.aborted
    assert o.aborted.endswith("Fix the cause and run the same command again: finished trials are kept and failed "
                              "ones train again")
    assert o.trained == 2 and len(o.failed) == 2 and not o.stopped_by_budget
    assert all("Traceback" in r.result.error for r in o.failed)
    monkeypatch.setitem(engine.ENGINES, "stacked", real)
    (o,) = run_studies([spec], tmp_path, device="cpu", pad=False, max_failures=2)
    assert not o.aborted and o.trained == 4 and {r.result.status for r in o.runs} == {"complete"}
    assert len(stored_once(o.folder / "runs")) == 4


def test_a_failure_between_successes_does_not_count_towards_the_limit(tmp_path, monkeypatch):
    from tunebook import engine

    real = engine.ENGINES["stacked"]

    def every_other(group, data, **kwargs):
        if group[0].layers[0] in (8, 24):
            raise RuntimeError("flaky")
        return real(group, data, **kwargs)

    monkeypatch.setitem(engine.ENGINES, "stacked", every_other)
    (o,) = run_studies([study("flaky", grid="units1 = [8, 16, 24, 32]", seeds=1, epochs=1)], tmp_path,
                       device="cpu", pad=False, max_failures=2)
    assert not o.aborted and o.trained == 4 and len(o.failed) == 2


def test_cli_says_why_a_runaway_study_stopped_and_exits_1(tmp_path, cli_env):
    from tests.executors.helpers import FAULTY

    f = tmp_path / "run.toml"  # three groups (batch sizes do not stack), every one of them raises
    f.write_text(study_text("runaway", grid="units1 = [24]\nbatch_size = [32, 64, 128]", seeds=1, epochs=1,
                            subset=500))
    env = dict(cli_env, PYTHONPATH=f"{FAULTY}:{cli_env['PYTHONPATH']}", TUNEBOOK_TEST_FAIL_WIDTH="24")
    p = subprocess.run(tunebook_cmd("run", str(f), "--out", str(tmp_path / "o"), "--quiet", "--no-report",
                                    "--max-failures", "2"), env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, p.stderr
    assert "error: 2 groups in a row failed entirely, so no further group was started" in p.stderr
    assert "RuntimeError: injected fault for width 24" in p.stderr
    assert "runaway: 2 trained, 0 already done (2 failed)" in p.stdout


def test_a_ray_address_nothing_answers_at_is_said_at_once(tmp_path, cli_env):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    f = tmp_path / "s.toml"
    f.write_text(study_text("far"))
    p = subprocess.run(tunebook_cmd("run", str(f), "--out", str(tmp_path / "o"), "--executor", "ray",
                                    "--ray-address", f"127.0.0.1:{port}"),
                       env=cli_env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2, p.stderr
    assert (f"error: --ray-address 127.0.0.1:{port}: nothing answers at 127.0.0.1:{port} (Connection refused); "
            f"start the cluster's head there (ray start --head --port={port}) or give the address it printed"
            ) in p.stderr
    assert not (tmp_path / "o").exists()
