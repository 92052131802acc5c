"""tunebook.run: a study file or folder run as it is meant to run — grid studies together,
each searched study's search, or --until-decided — the library call the CLI makes."""

from __future__ import annotations

import pytest

import tunebook
from tunebook.errors import SpecError
from tunebook.options import RunOptions

GRID = ('[study]\nname = "g"\nseeds = 1\ntrain_subset = 500\n[defaults]\nlayers = [8]\nepochs = 1\n'
        '[grid]\nunits1 = [8, 16]\n')
SEARCH = ('[study]\nname = "s"\nseeds = 1\ntrain_subset = 500\nsampler = "random"\ntrials = 2\nconfirm = 0\n'
          '[defaults]\nlayers = [8]\nepochs = 1\n[search]\nlr = { low = 0.0001, high = 0.01, log = true }\n')
DECIDE = GRID.replace('name = "g"', 'name = "d"') + ('[[hypothesis]]\nid = "h"\nkind = "compare"\n'
                                                     'a = { units1 = 16 }\nb = { units1 = 8 }\n'
                                                     'expect = "a > b"\nsays = "16 beats 8"\n')


def test_a_folder_runs_its_grids_then_its_search_with_the_locks_held_while_each_part_is_done(tmp_path):
    pytest.importorskip("optuna")
    (tmp_path / "g.toml").write_text(GRID)
    (tmp_path / "s.toml").write_text(SEARCH)
    held = []

    def on_done(outcomes):
        held.append([(o.folder / ".lock").read_text() != "" for o in outcomes])  # the lock is held here

    p = tunebook.run(tmp_path, tmp_path / "out", RunOptions(device="cpu"), on_done=on_done)
    assert [o.spec.name for o in p.grid] == ["g"] and [o.spec.name for o in p.searches] == ["s"]
    assert p.grid[0].trained == 2 and len([r for r in p.searches[0].results if r.values is not None]) == 2
    assert held == [[True], [True]] and not p.failed
    assert (tmp_path / "out" / "g" / ".lock").read_text() == ""   # released after


def test_until_decided_runs_the_grid_studies_and_skips_a_searched_one(tmp_path):
    pytest.importorskip("optuna")
    specs = [tunebook.parse_spec(DECIDE, where="d.toml"), tunebook.parse_spec(SEARCH, where="s.toml")]
    p = tunebook.run(specs, tmp_path, RunOptions(device="cpu"), until_decided=True,
                     budget=tunebook.Budget(model_epochs=2))
    assert [d.spec.name for d in p.decided] == ["d"] and [s.name for s in p.skipped] == ["s"]
    assert not p.searches and not p.grid


def test_until_decided_without_a_grid_study_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(SpecError, match="--until-decided: no grid study to decide"):
        tunebook.run([tunebook.parse_spec(SEARCH, where="s.toml")], tmp_path / "never", until_decided=True)
    assert not (tmp_path / "never").exists()


def test_studies_of_the_wrong_kind_are_a_type_error(tmp_path):
    with pytest.raises(TypeError, match="studies: a study file, a folder of them, a StudySpec"):
        tunebook.run([GRID], tmp_path)


BUDGETED = '''[study]
name = "budgeted"
seeds = 2
train_subset = 600
budget = "{budget}"
[defaults]
layers = [8]
epochs = 3
batch_size = 100
[grid]
units1 = [4, 8]
'''


def test_a_study_budget_stops_the_run_and_the_next_call_goes_on(tmp_path):
    """[study] budget is the run's budget when none is given: 4 model-epochs stop a study of
    four 3-epoch trials at the first epoch end past them; a call with a larger one finishes it
    and equals a run that was never stopped."""
    small = tunebook.parse_spec(BUDGETED.format(budget="4me"), where="b.toml")
    first = tunebook.run_study(small, tmp_path / "a", device="cpu", quiet=True)
    assert first.stopped_by_budget and first.trained < 4
    rest = tunebook.run_study(tunebook.parse_spec(BUDGETED.format(budget="1h"), where="b.toml"), tmp_path / "a",
                              device="cpu", quiet=True)
    assert not rest.stopped_by_budget and rest.trained + first.trained == 4
    whole = tunebook.run_study(tunebook.parse_spec(BUDGETED.format(budget="1h"), where="b.toml"), tmp_path / "b",
                               device="cpu", quiet=True)
    numbers = lambda runs: {r.config.trial_id: [getattr(r.result.history, k) for k in  # noqa: E731
                                                ("train_loss", "train_acc", "val_loss", "val_acc")]
                            + [r.result.test_acc, r.result.val_class_acc] for r in runs}
    assert numbers(rest.runs) == numbers(whole.runs)  # bit for bit
    explicit = tunebook.run_study(small, tmp_path / "c", device="cpu", quiet=True, budget=tunebook.Budget())
    assert not explicit.stopped_by_budget and explicit.trained == 4  # a given budget replaces the study's


def test_studies_run_together_take_the_smallest_of_their_budgets():
    specs = [tunebook.parse_spec(BUDGETED.format(budget=b), where=f"{i}.toml")
             for i, b in enumerate(("10m", "90s", "500me", "2000me"))]
    budget = tunebook.Budget.of_specs(specs)
    assert (budget.seconds, budget.model_epochs) == (90, 500)
    assert tunebook.Budget.of_specs([tunebook.parse_spec(GRID, where="g.toml")]) is None


def test_a_library_run_says_a_line_per_group_and_nothing_when_quiet(tmp_path, capsys):
    spec = tunebook.parse_spec(BUDGETED.format(budget="1h"), where="b.toml")
    tunebook.run_study(spec, tmp_path / "loud", device="cpu")
    err = capsys.readouterr().err
    assert "tunebook: budgeted: 4 trials to train in" in err and "tunebook:   group " in err
    assert "tunebook: budgeted: 4 trained, 0 already done" in err
    tunebook.run_study(spec, tmp_path / "quiet", device="cpu", quiet=True)
    assert capsys.readouterr().err == ""
