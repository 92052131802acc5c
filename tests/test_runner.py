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
