"""Records a person touched are never lost nor counted twice, on a real (tiny) study."""

from __future__ import annotations

import shutil

import pytest

from tunebook.analysis.study import analyze
from tunebook import run_study
from tunebook.spec import parse_spec

STUDY = """
[study]
name = "kept"
seeds = 3
train_subset = 1000
[defaults]
layers = [16]
epochs = 1
[grid]
units1 = [16, 32]
"""


def _tree(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != ".lock"}


def test_a_copied_run_and_a_hand_edited_result_change_nothing(tmp_path):
    spec = parse_spec(STUDY)
    outcome = run_study(spec, tmp_path, device="cpu")
    folder = outcome.folder
    before = analyze(folder)
    runs = sorted((folder / "runs").iterdir())
    shutil.copytree(runs[0], folder / "runs" / f"backup_{runs[0].name[-12:]}")  # a backup
    shutil.copytree(runs[1], folder / "runs" / f"{runs[1].name} copy")          # a file-manager copy
    edited = runs[2] / "result.toml"
    edited.write_text('reviewed_by = "ana"\n' + edited.read_text())              # a note a person added
    files = _tree(folder / "runs")

    after = analyze(folder)
    for b, a in zip(before.configs, after.configs):
        assert (a.key, a.n_complete, a.seeds) == (b.key, b.n_complete, b.seeds) and a.n_complete == 3
        assert a.stats["val_acc"] == b.stats["val_acc"]  # same n, same mean, same CI
    assert len(after.runs) == 6
    assert sum("is stored 2 times" in p for p in after.problems) == 2
    assert any("ignored keys reviewed_by" in p for p in after.problems)

    again = run_study(spec, tmp_path, device="cpu")  # a rerun trains nothing, deletes nothing
    assert again.trained == 0 and again.skipped == 6 and len(again.runs) == 6
    assert _tree(folder / "runs") == files


def test_a_deleted_events_file_is_noticed_and_restored_by_run(tmp_path):
    spec = parse_spec(STUDY)
    folder = run_study(spec, tmp_path, device="cpu").folder
    victim = next((folder / "runs").iterdir())
    for f in victim.glob("events.out.tfevents.*"):
        f.unlink()
    again = run_study(spec, tmp_path, device="cpu")
    assert again.restored == 1 and again.trained == 0
    assert list(victim.glob("events.out.tfevents.*"))


def test_a_run_stuck_at_chance_is_flagged_and_not_averaged_in(tmp_path):
    """SGD at lr 1e-7 learns nothing in an epoch: a finite loss at chance accuracy."""
    spec = parse_spec(STUDY.replace("[grid]\nunits1 = [16, 32]", '[grid]\nlr = [1e-7, 0.1]')
                      .replace("[defaults]", '[defaults]\noptimizer = "sgd"'))
    outcome = run_study(spec, tmp_path, device="cpu")
    stuck = [r for r in outcome.runs if r.config.lr == 1e-7]
    assert all(r.result.status == "complete" and r.result.collapsed for r in stuck)
    assert not any(r.result.collapsed for r in outcome.runs if r.config.lr == 0.1)
    a = analyze(outcome.folder)
    (c,) = [c for c in a.configs if c.config.lr == 1e-7]
    assert c.n_complete == 0 and c.n_collapsed == 3
    from tunebook.report import write_report

    md = write_report(outcome.folder)[0].read_text()
    assert "lr=1e-07 | 0 (+3 collapsed) |" in md  # in the results table, not only a footnote
    assert "3 collapsed (stuck at chance accuracy" in md


def test_runs_dataframe_wide_and_long(tmp_path):
    pd = pytest.importorskip("pandas")
    import tunebook
    from tunebook.results import EPOCH_COLUMNS, RUN_COLUMNS

    outcome = run_study(parse_spec(STUDY.replace("epochs = 1", "epochs = 2")), tmp_path, device="cpu")
    wide = tunebook.runs_dataframe(outcome.runs)
    assert list(wide.columns) == list(RUN_COLUMNS) and len(wide) == 6
    assert set(wide["status"]) == {"complete"} and wide["flops"].gt(0).all()
    long = tunebook.runs_dataframe(outcome.runs, long=True)
    assert list(long.columns) == list(EPOCH_COLUMNS) and len(long) == 12
    assert isinstance(long, pd.DataFrame) and sorted(set(long["epoch"])) == [1, 2]
