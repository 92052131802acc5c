"""What a notebook shows: records render as HTML tables (escaped), and a study's
configurations and verdicts come back as tables and DataFrames beside the runs'."""

from __future__ import annotations

import pytest

import tunebook

STUDY = '''[study]
name = "nb"
title = "Widths <and> things"
seeds = 3
train_subset = 800
[defaults]
layers = [16]
epochs = 2
[grid]
units1 = [8, 32]
[[hypothesis]]
id = "wide"
kind = "compare"
a = { units1 = 32 }
b = { units1 = 8 }
expect = "a > b"
says = "32 beats <8>"
'''


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    out = tmp_path_factory.mktemp("nb")
    spec = tunebook.parse_spec(STUDY)
    outcome = tunebook.run_study(spec, out, device="cpu")
    return spec, outcome, tunebook.analyze(outcome.folder)


def test_a_spec_an_outcome_an_analysis_and_a_verdict_render_as_escaped_html(ran):
    spec, outcome, a = ran
    html = spec._repr_html_()
    assert "study nb: Widths &lt;and&gt; things" in html and "6 (2 configurations)" in html
    assert "32 beats &lt;8&gt;" in html and "<8>" not in html
    o = outcome._repr_html_()
    assert "trained by this call</td><td style='padding:2px 8px'>6" in o and "6 complete" in o
    h = a._repr_html_()
    assert "<caption" in h and "verdicts" in h and "wide" in h and "best configurations" in h
    v = a.verdicts[0]._repr_html_()
    assert v.startswith("<p><b style='color:") and a.verdicts[0].verdict.upper() in v


def test_configurations_and_verdicts_come_back_as_tables(ran):
    _, _, a = ran
    from tunebook.results import configs_table, verdicts_table

    configs = configs_table(a)
    assert sorted(r["units1"] for r in configs) == [8, 32] and all(r["seeds"] == 3 for r in configs)
    assert all(r["val_acc_lo"] <= r["val_acc"] <= r["val_acc_hi"] for r in configs)
    (v,) = verdicts_table(a)
    assert v["hypothesis"] == "wide" and v["verdict"] == a.verdicts[0].verdict and v["lo"] <= v["effect"] <= v["hi"]
    pd = pytest.importorskip("pandas")
    assert isinstance(tunebook.configs_dataframe(a), pd.DataFrame) and len(tunebook.verdicts_dataframe(a)) == 1


def test_the_long_per_epoch_table_carries_the_hyperparameters(ran):
    _, outcome, _ = ran
    from tunebook.results import epochs_table

    rows = epochs_table(outcome.runs)
    assert len(rows) == 6 * 2  # 6 runs × 2 epochs
    assert {r["layers"] for r in rows} == {"8", "32"} and {r["lr"] for r in rows} == {0.001}
    assert all(r["epoch"] in (1, 2) and r["seed"] in (0, 1, 2) for r in rows)
