"""Shared by the executor tests: small real studies, the numbers a run must reproduce,
and a check that each trial is stored exactly once."""

from __future__ import annotations

import os
import re
import tomllib
from contextlib import contextmanager
from pathlib import Path

from tunebook.reporter import Reporter
from tunebook.spec import parse_spec

FAULTY = Path(__file__).parent / "faulty"  # a sitecustomize that injects a training fault


def study_text(name: str, grid: str = "units1 = [16, 24, 32]", seeds: int = 2, epochs: int = 3,
               subset: int = 3000) -> str:
    return (f'[study]\nname = "{name}"\nseeds = {seeds}\ntrain_subset = {subset}\n'
            f'[defaults]\nlayers = [16]\nepochs = {epochs}\nbatch_size = 64\n[grid]\n{grid}\n')


def study(name: str, **kwargs):
    return parse_spec(study_text(name, **kwargs), where=f"{name}.toml")


@contextmanager
def worker_threads(workers: int = 2):
    """This process's torch at the CPU threads each of ``workers`` workers gets
    (cores // workers), for the local run a worker's numbers are compared with: on some
    CPUs (AVX-512 kernels) a matrix product splits its sums by thread count, so
    bit-for-bit holds only between runs at the same number of threads."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def numbers(outcome) -> dict:
    """Every number of every run that does not depend on the clock or the machine."""
    out = {}
    for run in outcome.runs:
        r = run.result
        h = r.history
        out[run.trial_id] = (r.status, r.epochs_run, r.params, r.flops, r.val_acc, r.val_loss, r.test_acc,
                             r.test_loss, r.best_epoch, h.train_loss, h.train_acc, h.val_loss, h.val_acc)
    return out


def stored_once(runs_dir: Path) -> list[str]:
    """Trial ids of the run folders under ``runs_dir``; asserts none is there twice and no
    staging folder is left."""
    assert not [p for p in runs_dir.iterdir() if p.name.startswith(".")], list(runs_dir.iterdir())
    ids = [tomllib.loads((f / "config.toml").read_text())["trial"]["id"] for f in runs_dir.iterdir()]
    assert len(ids) == len(set(ids)), sorted(ids)
    return ids


class Recorder(Reporter):
    """Remembers where groups were placed and which were retried; ``on_placed`` may act
    (kill the worker) when a group starts."""

    def __init__(self, on_placed=None):
        self.placed: list[tuple[str, str, int]] = []
        self.retries: list[tuple[str, int, str]] = []
        self.on_placed = on_placed

    def group_placed(self, label, where, pid=0):
        self.placed.append((label, where, pid))
        if self.on_placed is not None:
            self.on_placed(label, where, pid)

    def group_retry(self, label, attempt, why):
        self.retries.append((label, attempt, why))


class KillFirst:
    """Kills (SIGKILL) the worker of the first group placed, once."""

    def __init__(self):
        self.killed: list[int] = []

    def __call__(self, label, where, pid):
        import os
        import signal

        if not self.killed:
            assert pid > 0 and re.search(rf"pid {pid}\b", where), where
            os.kill(pid, signal.SIGKILL)
            self.killed.append(pid)


def children_of(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def curves_are_whole(run) -> None:
    """The run's TensorBoard curves (read back with TensorBoard's own reader) hold each
    epoch exactly once, with the stored numbers: no lost attempt's epochs stayed."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run.path))
    acc.Reload()
    events = acc.Scalars("accuracy/val")
    assert [e.step for e in events] == list(range(1, run.result.epochs_run + 1)), [e.step for e in events]
    assert [round(e.value, 6) for e in events] == [round(v, 6) for v in run.result.history.val_acc]


def interrupt(cmd: list[str], env: dict, runs: Path, sig: int, group: bool) -> tuple[int, str, list[int]]:
    """Start ``cmd`` in a session of its own, wait for two stored runs, send ``sig`` (to
    the whole process group when ``group``, as a terminal's Ctrl-C does); return its exit
    code, its stderr and the worker processes it had."""
    import os
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and len(list(runs.glob("[0-9]*"))) < 2:
        time.sleep(0.05)
    assert proc.poll() is None, "the study finished before it could be interrupted"
    workers = [p for p in children_of(proc.pid) if alive(p)]
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr, workers


def kill_driver_mid_study(cmd: list[str], env: dict, runs: Path, total: int,
                          stderr: Path | None = None) -> tuple[int, list[int]]:
    """Start ``cmd``, SIGKILL it once two runs are stored; return how many were stored
    and the worker processes it had (asserting it was caught mid-study). ``stderr``: a file
    that gets the driver's and its workers' standard error."""
    import signal
    import subprocess
    import time

    err = open(stderr, "wb") if stderr is not None else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
    deadline = time.time() + 180
    while time.time() < deadline and len(list(runs.glob("[0-9]*"))) < 2:
        time.sleep(0.05)
    workers = [p for p in children_of(proc.pid) if alive(p)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if stderr is not None:
        err.close()
    done_before = len(list(runs.glob("[0-9]*")))
    assert 2 <= done_before < total, done_before
    return done_before, workers


def still_alive_after(pids: list[int], seconds: float) -> list[int]:
    """The processes of ``pids`` still running after waiting up to ``seconds`` for them to go."""
    import time

    deadline = time.time() + seconds
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def twelve_trials_cli(tmp_path: Path, name: str, epochs: int, *executor_args: str) -> tuple[list[str], Path]:
    """A `tunebook run` command for a 12-trial study (6 widths × 2 seeds) with these
    executor flags, and the runs folder it fills."""
    from conftest import tunebook_cmd

    f = tmp_path / f"{name}.toml"
    f.write_text(study_text(name, grid="units1 = [16, 24, 32, 48, 64, 96]", seeds=2, epochs=epochs))
    out = tmp_path / "logs"
    cmd = tunebook_cmd("run", str(f), "--out", str(out), "--no-report", "--quiet", "--no-pad", *executor_args)
    return cmd, out / name / "runs"
