"""What a notebook user does: plain function calls, records back, no CLI."""

from __future__ import annotations

import importlib.util

import pytest

import tunebook


def test_run_study_and_read_records_back(tmp_path):
    spec = tunebook.parse_spec('[study]\nname = "nb"\nseeds = 2\ntrain_subset = 600\n'
                               '[defaults]\nlayers = [8]\nepochs = 1\n')
    outcome = tunebook.run_study(spec, tmp_path, device="cpu")
    assert outcome.trained == 2 and len(outcome.runs) == 2
    runs = tunebook.load_runs(tmp_path)
    rows = tunebook.runs_table(runs)
    assert {r["trial"] for r in rows} == {c.trial_id for c in spec.configs()}
    assert all(0.0 < r["val_acc"] <= 1.0 and r["status"] == "complete" for r in rows)
    if importlib.util.find_spec("pandas") is None:
        with pytest.raises(ImportError, match="runs_dataframe needs pandas"):
            tunebook.runs_dataframe(runs)
    else:
        assert len(tunebook.runs_dataframe(runs)) == 2
    with pytest.raises(AttributeError):
        tunebook.no_such_thing  # noqa: B018
