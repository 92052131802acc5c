"""The CLI in-process: bad input is a named error before anything is written, messages are
plain text, I/O failures have their own exit code, and the listing commands."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path

import pytest

from tunebook.cli import EXIT_BAD_INPUT, EXIT_IO, EXIT_OK, build_parser, main

TINY = """
[study]
name = "tiny"
seeds = 2
train_subset = 300
[defaults]
layers = [8]
epochs = 1
[grid]
optimizer = ["adam", "sgd"]
"""


@pytest.fixture
def tiny(tmp_path):
    f = tmp_path / "tiny.toml"
    f.write_text(TINY)
    return f


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny study, run once (4 trials), shared by the read-only tests below."""
    root = tmp_path_factory.mktemp("trained")
    f = root / "tiny.toml"
    f.write_text(TINY)
    assert main(["run", str(f), "--out", str(root / "logs"), "--quiet", "--no-report", "--device", "cpu"]) == 0
    return root / "logs"


def run(*args):
    return main(list(args))


# --- messages are text, not markup -------------------------------------------------------

def test_brackets_in_a_value_are_printed_not_interpreted(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text(TINY.replace('name = "tiny"', 'name = "Bad[Name]"').replace("[defaults]", '[defaults]\nactivation = "[/]"'))
    assert run("validate", str(f)) == EXIT_BAD_INPUT
    e = capsys.readouterr().err
    assert 'study.name: must match [a-z0-9][a-z0-9_-]* (at most 64 characters; it names a folder), got "Bad[Name]"' in e
    assert 'defaults.activation: must be one of "relu", "tanh", "gelu", "sigmoid", got "[/]"' in e


def test_an_out_path_with_brackets_runs_and_prints(tiny, tmp_path, capsys):
    out = tmp_path / "o[/]"
    assert run("run", str(tiny), "--out", str(out), "--quiet", "--seeds", "1") == EXIT_OK
    assert f"report: {out}/tiny.smoke/report/report.md" in capsys.readouterr().out


# --- every check before the first write ----------------------------------------------------

@pytest.mark.parametrize("device", ["mps", "xla", "meta", "gpu", "cuda:x"])
def test_unknown_devices_are_refused_before_anything_is_written(tiny, tmp_path, capsys, device):
    out = tmp_path / "o"
    assert run("run", str(tiny), "--out", str(out), "--device", device) == EXIT_BAD_INPUT
    assert f"--device: must be auto, cpu, cuda or cuda:N, got {device!r}" in capsys.readouterr().err
    assert not out.exists()


def _stored(tiny, out):
    assert run("run", str(tiny), "--out", str(out), "--quiet", "--no-report", "--seeds", "1", "--epochs", "1") == 0
    return out / "tiny.smoke"


def test_bad_input_rewrites_nothing_and_fresh_moves_nothing(tiny, tmp_path, capsys):
    out = tmp_path / "o"
    folder = _stored(tiny, out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    stored = (folder / "study.toml").read_text()
    tiny.write_text(TINY.replace("layers = [8]", "layers = [9]"))
    for extra in (["--data-dir", str(tmp_path / "nothing")], ["--device", "mps"], ["--device", "cuda:7"]):
        code = run("run", str(tiny), "--out", str(out), "--quiet", "--seeds", "1", "--epochs", "1", "--fresh", *extra)
        assert code == EXIT_BAD_INPUT, extra
    assert (folder / "study.toml").read_text() == stored
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_out_under_a_file_and_an_unwritable_out_are_named(tiny, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    assert run("run", str(tiny), "--out", str(tmp_path / "afile" / "logs")) == EXIT_BAD_INPUT
    assert f"--out {tmp_path / 'afile' / 'logs'}: {tmp_path / 'afile'} is a file, not a folder" in capsys.readouterr().err
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs here to stand for a folder nobody may write")
    assert run("run", str(tiny), "--out", "/sys/kernel/tunebook-out") == EXIT_BAD_INPUT  # refuses files, even to root
    assert "--out /sys/kernel/tunebook-out: cannot write in /sys/kernel" in capsys.readouterr().err


def test_a_full_disk_is_exit_74_with_nothing_half_written(tiny, tmp_path, capsys, monkeypatch):
    import errno

    from tunebook import tboard

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tboard, "write_events", full)
    out = tmp_path / "o"
    assert run("run", str(tiny), "--out", str(out), "--quiet", "--seeds", "1") == EXIT_IO
    assert "No space left on device; nothing of it was kept" in capsys.readouterr().err
    assert list((out / "tiny.smoke" / "runs").iterdir()) == []


def test_overrides_that_cannot_be_honoured_are_refused(tiny, tmp_path, capsys):
    out = tmp_path / "o"
    assert run("run", str(tiny), "--out", str(out), "--seeds", "100") == EXIT_BAD_INPUT
    assert "--seeds: must be at most the study's 2 seeds, got 100" in capsys.readouterr().err
    assert run("run", str(tiny), "--out", str(out), "--subset", "60000") == EXIT_BAD_INPUT
    assert "--subset: must be from 10 to the training split's 54000 samples, got 60000" in capsys.readouterr().err
    f = tmp_path / "big.toml"
    f.write_text(TINY.replace("train_subset = 300", "train_subset = 70000"))
    assert run("validate", str(f)) == EXIT_BAD_INPUT
    assert "study.train_subset: must be 0 or from 10 to the training split's 54000 samples, got 70000" in capsys.readouterr().err
    assert not out.exists()


def test_ls_report_and_export_of_a_missing_path_are_exit_2(tmp_path, capsys):
    for cmd in (["ls", str(tmp_path / "nope")], ["report", str(tmp_path / "nope")], ["export", str(tmp_path / "nope")]):
        assert run(*cmd) == EXIT_BAD_INPUT
        assert f"{tmp_path / 'nope'}: no such folder" in capsys.readouterr().err


# --- version and help ---------------------------------------------------------------------

def test_version_and_help_of_every_command(capsys):
    from tunebook import __version__

    with pytest.raises(SystemExit) as e:
        run("--version")
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"tunebook {__version__}"
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"run", "validate", "ls", "show", "report", "export", "demo", "calibrate",
                             "predict", "keep", "datasets"}
    for name in commands:
        with pytest.raises(SystemExit):
            run(name, "--help")
        text = capsys.readouterr().out
        assert "examples:" in text and "exit codes:" in text and "74" in text, name


# --- smoke tests apart, and telling runs apart ------------------------------------------------

def test_a_smoke_test_is_kept_apart_and_says_so(tiny, tmp_path, capsys):
    out = tmp_path / "o"
    assert run("run", str(tiny), "--out", str(out), "--quiet", "--seeds", "1") == EXIT_OK
    text = capsys.readouterr().out
    assert "tiny [smoke test: --seeds 1]: 2 trained" in text and not (out / "tiny").exists()
    report = (out / "tiny.smoke" / "report" / "report.md").read_text()
    assert "Smoke test (--seeds 1)" in report
    assert run("ls", str(out), "--format", "json") == EXIT_OK
    assert {r["study"] for r in json.loads(capsys.readouterr().out)} == {"tiny.smoke"}


def test_ls_shows_what_varies_filters_sorts_and_formats(trained, capsys):
    from tunebook.results import RUN_COLUMNS

    assert run("ls", str(trained)) == EXIT_OK
    header = capsys.readouterr().out.splitlines()[0].split()
    assert header[:4] == ["study", "trial", "layers", "optimizer"] and "seed" in header
    assert run("ls", str(trained), "--where", "optimizer=sgd", "--sort=-seed", "--format", "json") == EXIT_OK
    rows = json.loads(capsys.readouterr().out)
    assert [(r["optimizer"], r["seed"]) for r in rows] == [("sgd", 1), ("sgd", 0)]
    assert run("ls", str(trained), "--where", "val_acc>0.999", "--format", "csv") == EXIT_OK
    assert capsys.readouterr().out.strip() == ",".join(RUN_COLUMNS)  # the header, and no row matches
    assert run("ls", str(trained), "--where", "val_acc>2") == EXIT_BAD_INPUT  # a wrong unit is said, not empty
    assert "val_acc is a fraction from 0 to 1, so 2 matches nothing; write 0.02 or 2%" in capsys.readouterr().err
    assert run("ls", str(trained), "--where", "colour=red") == EXIT_BAD_INPUT
    assert "--where 'colour=red': unknown column 'colour'" in capsys.readouterr().err
    assert run("ls", str(trained), "--sort", "nope") == EXIT_BAD_INPUT


def test_show_takes_an_id_prefix_and_a_trial_shared_by_studies(trained, tmp_path, capsys):
    out = tmp_path / "logs"
    shutil.copytree(trained, out)
    other = out / "other"
    shutil.copytree(out / "tiny", other)  # a second study holding the same trials
    tid = next((out / "tiny" / "runs").iterdir()).name[-12:]
    assert run("show", tid[:6], "--out", str(out)) == EXIT_OK
    text = capsys.readouterr().out
    assert f"(trial {tid})" in text and "studies: other, tiny" in text
    assert run("show", "f" * 13, "--out", str(out)) == EXIT_BAD_INPUT
    assert "matches no trial" in capsys.readouterr().err


def test_export_csv_json_parquet_read_back(trained, tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    from tunebook.results import EPOCH_COLUMNS, RUN_COLUMNS

    for fmt in ("csv", "json", "parquet"):
        dest = tmp_path / f"runs.{fmt}"
        assert run("export", str(trained), "--format", fmt, "-o", str(dest)) == EXIT_OK
        df = {"csv": pd.read_csv, "json": pd.read_json, "parquet": pd.read_parquet}[fmt](dest)
        assert list(df.columns) == list(RUN_COLUMNS) and len(df) == 4
        assert set(df["optimizer"]) == {"adam", "sgd"} and df["val_acc"].between(0, 1).all()
    dest = tmp_path / "epochs.csv"
    assert run("export", str(trained), "--long", "-o", str(dest)) == EXIT_OK
    long = pd.read_csv(dest)
    assert list(long.columns) == list(EPOCH_COLUMNS) and len(long) == 4  # 4 runs × 1 epoch
    assert run("export", str(trained), "--format", "parquet") == EXIT_BAD_INPUT
    assert "needs -o FILE" in capsys.readouterr().err


def test_export_by_class_writes_each_run_s_accuracy_within_each_class(trained, tmp_path, capsys):
    """--by-class: one row per run and true class, the accuracies result.toml holds; a run
    stored without them (before tunebook kept them) is left out and named."""
    import csv
    import math
    import tomllib

    import tomli_w

    from tunebook.datasets import DATASETS
    from tunebook.results import CLASS_COLUMNS, load_runs

    dest = tmp_path / "classes.csv"
    assert run("export", str(trained), "--by-class", "-o", str(dest)) == EXIT_OK
    rows = list(csv.DictReader(dest.open()))
    classes = DATASETS["fashion-mnist"].classes
    assert list(rows[0]) == list(CLASS_COLUMNS) and len(rows) == 4 * len(classes)
    runs = {r.trial_id: r for r in load_runs(trained)}
    for row in rows:
        want = runs[row["trial"]].result.val_class_acc[int(row["class_index"])]
        assert row["class"] == classes[int(row["class_index"])]
        assert (row["val_class_acc"] == "") if math.isnan(want) else float(row["val_class_acc"]) == want
    out = tmp_path / "logs"
    shutil.copytree(trained, out)
    old = sorted((out / "tiny" / "runs").glob("*/result.toml"))[0]
    doc = tomllib.loads(old.read_text())
    del doc["val_class_acc"]
    old.write_text(tomli_w.dumps(doc))
    capsys.readouterr()
    assert run("export", str(out), "--by-class", "-o", str(tmp_path / "fewer.csv")) == EXIT_OK
    assert len(list(csv.DictReader((tmp_path / "fewer.csv").open()))) == 3 * len(classes)
    assert f"{old.parent}: no validation accuracy by class recorded" in " ".join(capsys.readouterr().err.split())
    with pytest.raises(SystemExit) as e:  # one shape at a time: argparse's usage error
        run("export", str(trained), "--by-class", "--long")
    assert e.value.code == EXIT_BAD_INPUT and "not allowed with argument --by-class" in capsys.readouterr().err


def test_two_reports_of_one_study_at_once_do_not_crash(trained, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "logs"
    shutil.copytree(trained, out)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    cmd = [sys.executable, "-m", "tunebook", "report", str(out / "tiny")]
    for _ in range(3):
        procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
        for p in procs:
            _, e = p.communicate(timeout=120)
            assert p.returncode == 0, e
    report = out / "tiny" / "report"
    assert (report / "report.html").is_file() and not list(report.parent.glob(".report.*staging*"))


def test_report_of_a_folder_keeps_smoke_tests_and_full_studies_on_separate_pages(trained, tiny, tmp_path, capsys):
    from tunebook.report import write_combined_report

    out = tmp_path / "logs"
    shutil.copytree(trained, out)
    other = tmp_path / "other.toml"
    other.write_text(TINY.replace('name = "tiny"', 'name = "other"'))
    for f in (tiny, other):
        assert run("run", str(f), "--out", str(out), "--quiet", "--no-report", "--seeds", "1") == EXIT_OK
    assert run("run", str(other), "--out", str(out), "--quiet", "--no-report") == EXIT_OK
    assert run("report", str(out)) == EXIT_OK
    full, smoke = (out / "report" / "report.md").read_text(), (out / "report.smoke" / "report.md").read_text()
    assert "tiny.smoke" not in full and "Smoke tests" not in full and "](../tiny/report/report.md)" in full
    assert "Smoke tests (--seeds 1)" in smoke and "](../tiny.smoke/report/report.md)" in smoke
    with pytest.raises(ValueError, match="mixes smoke tests and full studies"):
        write_combined_report([out / "tiny", out / "tiny.smoke"], out)


def test_export_to_a_path_under_a_file_is_named(trained, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    dest = tmp_path / "afile" / "runs.csv"
    assert run("export", str(trained), "-o", str(dest)) == EXIT_BAD_INPUT
    assert f"-o {dest}: {tmp_path / 'afile'} is a file, not a folder" in capsys.readouterr().err


# --- the planner's cost model ------------------------------------------------------------

def test_calibrate_measures_and_stores_the_step_cost(tmp_path, capsys):
    assert run("calibrate", "--out", str(tmp_path / "logs"), "--device", "cpu") == EXIT_OK
    o = capsys.readouterr().out
    assert "µs per step of a group" in o and "per TFLOP" in o and ".planner.toml" in o
    assert (tmp_path / "logs" / ".planner.toml").is_file()


@pytest.mark.parametrize("args, message", [
    (["--device", "mps"], "--device: must be auto, cpu, cuda or cuda:N, got 'mps'"),
    (["--out", "{file}/logs"], "--out {file}/logs: {file} is a file, not a folder"),
])
def test_calibrate_refuses_bad_input_before_writing(tmp_path, capsys, args, message):
    f = tmp_path / "a-file"
    f.write_text("mine")
    args = [a.replace("{file}", str(f)) for a in args]
    out_args = [] if "--out" in args else ["--out", str(tmp_path / "logs")]
    assert run("calibrate", *out_args, *args) == EXIT_BAD_INPUT
    assert message.replace("{file}", str(f)) in capsys.readouterr().err
    assert not (tmp_path / "logs").exists() and f.read_text() == "mine"


def test_run_with_no_pad_keeps_widths_apart(tmp_path):
    f = tmp_path / "w.toml"
    f.write_text(TINY.replace('optimizer = ["adam", "sgd"]', "units1 = [8, 12]"))
    logs = tmp_path / "logs"
    assert run("run", str(f), "--out", str(logs), "--quiet", "--no-report", "--device", "cpu", "--no-pad") == EXIT_OK
    assert not (logs / ".planner.toml").exists()  # nothing to choose: nothing measured
    sizes = {tomllib.loads(p.read_text())["group_size"] for p in (logs / "tiny" / "runs").glob("*/result.toml")}
    assert sizes == {2}


@pytest.mark.parametrize("extra", [[], ["--until-decided"]])
def test_an_empty_budget_is_refused_not_read_as_no_budget(tiny, tmp_path, capsys, extra):
    out = tmp_path / "o"
    assert run("run", str(tiny), "--out", str(out), "--budget", "", *extra) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "--budget: must be a number and a unit" in err
    assert not out.exists()
