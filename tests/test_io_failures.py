"""I/O failures on real file systems (a small tmpfs, a read-only remount): exit 74, a
message that names the path, no traceback, nothing half-written, nothing lost.

Needs mount(8) (root on Linux); skipped where the machine does not allow it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import tunebook_cmd

STUDY = """
[study]
name = "io"
seeds = 2
train_subset = 600
[defaults]
layers = [8]
epochs = 1
[grid]
units1 = [8, 16]
[[hypothesis]]
id = "H1"
says = "16 units beat 8"
kind = "compare"
a = { units1 = 16 }
b = { units1 = 8 }
expect = "a > b"
"""


def _tmpfs(where: Path, options: str):
    import shutil

    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount(8) on this machine")
    where.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def small_fs(tmp_path):
    """A tmpfs of 2 MiB at tmp_path/fs, unmounted afterwards; skip without mount rights."""
    yield from _tmpfs(tmp_path / "fs", "size=2m")


@pytest.fixture
def few_inodes(tmp_path):
    """A tmpfs with room for bytes but only a few dozen files (inodes)."""
    yield from _tmpfs(tmp_path / "fsi", "size=8m,nr_inodes=48")


def _fill(folder: Path, leave: int) -> None:
    """Fill the file system of ``folder`` until about ``leave`` bytes are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(folder / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))


def _cli(env, *args):
    return subprocess.run(tunebook_cmd(*args), env=env, capture_output=True, text=True)


def _study(tmp_path) -> Path:
    p = tmp_path / "io.toml"
    p.write_text(STUDY)
    return p


def test_a_report_on_a_full_disk_is_74_and_the_previous_report_stays(tmp_path, small_fs, cli_env):
    out = small_fs / "logs"
    r = _cli(cli_env, "run", str(_study(tmp_path)), "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    before = (out / "io" / "report" / "report.md").read_text()
    _fill(small_fs, 8 * 1024)                         # too little for a report's figures
    r = _cli(cli_env, "report", str(out / "io"))
    assert r.returncode == 74, r.stderr
    assert "cannot write the report" in r.stderr and "Traceback" not in r.stderr
    assert (out / "io" / "report" / "report.md").read_text() == before
    assert not list((out / "io").glob(".report.staging-*")) and not list((out / "io").glob(".report.old-*"))


def test_a_run_on_a_full_disk_is_74_with_nothing_half_written(tmp_path, small_fs, cli_env):
    out = small_fs / "logs"
    out.mkdir()
    _fill(small_fs, 4 * 1024)
    r = _cli(cli_env, "run", str(_study(tmp_path)), "--out", str(out), "--quiet")
    assert r.returncode == 74, r.stderr
    assert "Traceback" not in r.stderr and "No space left on device" in r.stderr
    runs = out / "io" / "runs"
    assert not runs.exists() or not list(runs.glob(".staging-*"))


def test_report_on_a_read_only_study_is_74_and_changes_nothing(tmp_path, small_fs, cli_env):
    out = small_fs / "logs"
    r = _cli(cli_env, "run", str(_study(tmp_path)), "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    listing = sorted(str(p) for p in (out / "io").rglob("*"))
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    try:
        r = _cli(cli_env, "report", str(out / "io"))
        assert r.returncode == 74, r.stderr
        assert "Read-only file system" in r.stderr and "Traceback" not in r.stderr
        r = _cli(cli_env, "run", str(_study(tmp_path)), "--out", str(out), "--quiet")
        assert r.returncode in (2, 74) and "Traceback" not in r.stderr
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
    assert sorted(str(p) for p in (out / "io").rglob("*")) == listing


def test_a_planner_file_that_is_not_utf8_is_said_not_a_traceback(tmp_path, cli_env):
    out = tmp_path / "logs"
    out.mkdir()
    (out / ".planner.toml").write_bytes(b"\xff\xfe not toml \x80")
    r = _cli(cli_env, "run", str(_study(tmp_path)), "--out", str(out), "--quiet", "--plan", "measured")
    assert r.returncode == 74, r.stderr
    assert ".planner.toml: cannot be read (UnicodeDecodeError" in r.stderr and "Traceback" not in r.stderr
    assert (out / ".planner.toml").read_bytes() == b"\xff\xfe not toml \x80"   # not overwritten



def test_inodes_running_out_mid_run_is_74_keeps_finished_trials_and_no_staging(tmp_path, few_inodes, cli_env):
    study = tmp_path / "io.toml"
    study.write_text(STUDY.replace("units1 = [8, 16]", "units1 = [8, 16, 24, 32, 40, 48]"))  # 12 trials, 6 groups
    out = few_inodes / "logs"
    r = _cli(cli_env, "run", str(study), "--out", str(out), "--quiet", "--no-report", "--no-pad")
    assert r.returncode == 74, r.stderr
    assert "Traceback" not in r.stderr and "No space left on device" in r.stderr
    runs = out / "io" / "runs"
    kept = [p for p in runs.iterdir() if not p.name.startswith(".")]
    assert 0 < len(kept) < 12                                   # it failed mid-run, after some trials
    for p in kept:                                              # each kept run folder is whole
        assert (p / "config.toml").is_file() and (p / "result.toml").is_file()
    assert not list(runs.glob(".staging-*"))
