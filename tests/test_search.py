"""Searched studies: the [search] table, Optuna's samplers in batches over seeds, resuming
to the same proposals, and the Optuna journal export read back by Optuna itself."""

from __future__ import annotations

import sys

import pytest

from tunebook.cli import EXIT_BAD_INPUT, EXIT_OK, main
from tunebook.errors import SpecError
from tunebook.loop import Budget
from tunebook.search import load_search, read_ledger, run_search
from tunebook.spec import load_spec, parse_spec

SEARCH = """
[study]
name = "srch"
seeds = 2
train_subset = 300
sampler = "{sampler}"
trials = {trials}
batch = 2
confirm = 2
confirm_seeds = 3
[defaults]
epochs = 1
layers = [16]
[search]
lr = {{ low = 1e-3, high = 3e-2, log = true }}
width = {{ low = 8, high = 32 }}
optimizer = {{ choices = ["adam", "momentum"] }}
momentum = {{ low = 0.5, high = 0.9, when = {{ optimizer = ["momentum"] }} }}
"""


def study(tmp_path, sampler="random", trials=4):
    f = tmp_path / "srch.toml"
    f.write_text(SEARCH.format(sampler=sampler, trials=trials))
    return load_spec(f)


# --- the study file ------------------------------------------------------------------------

def test_a_search_space_parses_with_conditions_last():
    s = parse_spec(SEARCH.format(sampler="tpe", trials=8))
    assert s.configs() == [] and s.seeds == (0, 1)
    assert [d.name for d in s.search.dimensions] == ["lr", "width", "optimizer", "momentum"]
    assert s.varying() == ("lr", "width", "optimizer", "momentum")
    lr, width, opt, mom = s.search.dimensions
    assert lr.log and lr.kind == "float" and width.kind == "int" and opt.choices == ("adam", "momentum")
    assert mom.when == (("optimizer", ("momentum",)),) and mom.applies({"optimizer": "momentum"})
    assert not mom.applies({"optimizer": "adam"})


BAD = """
[study]
name = "s"
sampler = "bayes"
trials = 0
batch = -1
sampler_seed = -3
objectives = ["val_acc:up", "flops:min", "flops:max"]
time_budget = "10 minutes"
[grid]
lr = [0.1]
[search]
lr = { low = 1e-1, high = 1e-4, log = true }
width = { low = 32.5, high = 1024 }
dropout = { choices = [0.1, 1.5, 0.1], when = { optimizr = ["sgd"] } }
layers = { choices = [[1]] }
eps = { low = 0, high = 1, log = true, step = 0.1 }
depth = { low = 1, high = 3, step = 0.5, bogus = 1 }
units1 = { low = 8, high = 16 }
batch_size = 64
optimizer = { choices = ["adam"], low = 1, high = 2 }
"""


@pytest.mark.parametrize("message", [
    "study.sampler: must be one of \"random\", \"tpe\", \"gp\", \"cmaes\", \"nsga2\", got \"bayes\"",
    "study.trials: must be a count of proposals from 1 to 100000 (required with [search]), got 0",
    "study.batch: must be a count of proposals trained at a time, from 1 to 4096, got -1",
    "study.sampler_seed: must be an integer in [0, 2^31), got -3",
    "study.objectives[0]: must be METRIC:max or METRIC:min, METRIC one of val_acc, val_loss, params, flops, val_rmse, "
    "val_mae, val_r2, "
    "got \"val_acc:up\"",
    "study.objectives: must not repeat a metric",
    "study.time_budget: must be a wall time such as \"30m\", \"90s\" or \"2h\", got \"10 minutes\"",
    "grid: a study has [grid] or [search], not both",
    "search.lr: low must be below high, got low = 0.1, high = 0.0001",
    "search.width.low: must be an integer (width is a count), got 32.5",
    "search.dropout.choices[1]: must be a number in [0, 1), got 1.5",
    "search.dropout.choices: must not repeat a value",
    "search.dropout.when.optimizr: must name a searched choice (a { choices = [..] } entry)",
    "search.layers: unknown hyperparameter (search width/depth or units1..3 instead)",
    "search.eps.low: must be a positive number, got 0",
    "search.depth.bogus: unknown key (expected low, high, log, step, choices, when)",
    "search.depth.step: must be a positive integer, got 0.5",
    "search: depth and units1..3 both set the layer list",
    "search.batch_size: must be a table: { low = .., high = .. } or { choices = [..] }, got 64",
    "search.optimizer: takes either choices or low/high, not both",
])
def test_every_problem_of_a_search_study_is_reported_at_once(message):
    with pytest.raises(SpecError) as e:
        parse_spec(BAD, "bad.toml")
    assert any(message in p for p in e.value.problems), "\n".join(e.value.problems)
    assert all(p.startswith("bad.toml: ") for p in e.value.problems)


@pytest.mark.parametrize("text, message", [
    ('[study]\nname = "g"\ntrials = 4\n[grid]\nlr = [0.1]\n', "study.trials: only with a [search] table"),
    ('[study]\nname = "s"\ntrials = 2\nsampler = "cmaes"\nobjectives = ["val_acc:max", "flops:min"]\n'
     '[search]\nlr = { low = 0.001, high = 0.1 }\n', "study.sampler: cmaes optimises one objective"),
    ('[study]\nname = "s"\ntrials = 2\n[search]\nmomentum = { low = 0.5, high = 0.9 }\n',
     "search.momentum: has no effect with optimizer \"adam\""),
    ('[study]\nname = "s"\ntrials = 2\n[search]\nbatch_size = { low = 16, high = 100000 }\n',
     "search.batch_size.high: must be at most the training split size 54000"),
    ('[study]\nname = "s"\ntrials = 2\n[search]\nlr = { low = 0.001, high = 0.1 }\n[[hypothesis]]\nid = "H"\n'
     'says = "x"\nkind = "best"\n', "hypothesis: a searched study tests no hypotheses (yet)"),
    ('[study]\nname = "s"\ntrials = 2\n[search]\n', "search: must search at least one hyperparameter"),
])
def test_search_rules_that_need_the_whole_file(text, message):
    with pytest.raises(SpecError) as e:
        parse_spec(text, "f.toml")
    assert any(message in p for p in e.value.problems), "\n".join(e.value.problems)


def test_without_optuna_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(SpecError, match=r"\[search\] needs Optuna: pip install 'tunebook\[search\]'"):
        run_search(study(tmp_path), tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists()


# --- searching -------------------------------------------------------------------------------

def test_a_search_trains_every_proposal_on_every_seed_and_tells_the_mean(tmp_path):
    spec = study(tmp_path, "tpe", trials=4)
    o = run_search(spec, tmp_path / "out", device="cpu")
    assert o.stopped == "trials" and len(o.results) == 4
    assert [p.batch for p in read_ledger(o.folder)] == [0, 0, 1, 1]
    for r in o.results:
        assert len(r.runs) == 2 and {run.config.seed for run in r.runs} == {0, 1}
        for run in r.runs:  # every seed is its own run folder, with the proposal's hyperparameters
            assert run.path.is_dir() and (run.path / "result.toml").is_file()
            assert run.config.lr == r.params["lr"] and run.config.layers == (r.params["width"],)
            assert (run.config.optimizer == "momentum") == ("momentum" in r.params)
        accs = [1 / 10 if run.result.collapsed or run.result.status == "diverged" else run.result.val_acc
                for run in r.runs]
        assert r.values == pytest.approx((sum(accs) / 2,))
    assert o.best().values[0] == max(r.values[0] for r in o.results)
    again = run_search(spec, tmp_path / "out", device="cpu")  # done: nothing asked, nothing trained
    assert again.last is None and len(read_ledger(o.folder)) == 4


@pytest.mark.parametrize("sampler", ["random", "tpe", "nsga2"])
def test_a_stopped_search_resumes_to_the_same_proposals(tmp_path, sampler):
    whole = run_search(study(tmp_path, sampler, trials=6), tmp_path / "a", device="cpu")
    spec = study(tmp_path, sampler, trials=6)
    first = run_search(spec, tmp_path / "b", device="cpu", budget=Budget(model_epochs=4))  # one batch: 2 × 2 seeds
    assert first.stopped == "budget" and len([r for r in first.results if r.values]) == 2
    resumed = run_search(spec, tmp_path / "b", device="cpu")
    assert [r.params for r in resumed.results] == [r.params for r in whole.results]
    assert len({tuple(sorted(r.params.items())) for r in resumed.results}) == 6  # none proposed twice


def test_a_search_stopped_inside_a_group_goes_on_from_its_checkpoint_to_the_same_values(tmp_path):
    """A budget that runs out at the first epoch's end of the first batch's group (4
    epochs each): the group keeps its state, and the search resumed gives the proposals
    and the values of a search never stopped, bit for bit."""
    from tunebook.checkpoints import FOLDER

    f = tmp_path / "srch.toml"
    f.write_text(SEARCH.format(sampler="tpe", trials=4).replace("epochs = 1", "epochs = 4"))
    whole = run_search(load_spec(f), tmp_path / "a", device="cpu")
    first = run_search(load_spec(f), tmp_path / "b", device="cpu", budget=Budget(model_epochs=1), checkpoint_every=0)
    assert first.stopped == "budget" and not [r for r in first.results if r.values]
    assert [p.suffix for p in sorted((tmp_path / "b" / FOLDER).iterdir())] == [".pt", ".toml"]
    resumed = run_search(load_spec(f), tmp_path / "b", device="cpu")
    assert [(r.params, r.values) for r in resumed.results] == [(r.params, r.values) for r in whole.results]
    assert list((tmp_path / "b" / FOLDER).iterdir()) == []


def test_an_interrupted_batch_is_finished_not_proposed_again(tmp_path):
    spec = study(tmp_path, "random", trials=4)
    o = run_search(spec, tmp_path / "out", device="cpu")
    lost = o.results[-1].runs[0].path  # as if the run had stopped before this run was saved
    import shutil
    shutil.rmtree(lost)
    assert load_search(spec, tmp_path / "out")[0][-1].values is None
    again = run_search(spec, tmp_path / "out", device="cpu")
    assert again.last.trained == 1 and [r.params for r in again.results] == [r.params for r in o.results]
    assert all(r.values is not None for r in again.results)


def test_export_optuna_journal_is_read_back_by_optuna(tmp_path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    spec = study(tmp_path, "random", trials=4)
    o = run_search(spec, tmp_path / "out", device="cpu")
    journal = tmp_path / "search.log"
    assert main(["export", str(o.folder), "--optuna", str(journal)]) == EXIT_OK
    loaded = optuna.load_study(study_name="srch", storage=JournalStorage(JournalFileBackend(str(journal))))
    assert len(loaded.trials) == 4
    for t, r in zip(loaded.trials, o.results):
        assert t.params == r.params and t.value == pytest.approx(r.values[0])
        assert t.user_attrs["seeds"] == sorted(t.user_attrs["seeds"]) and len(t.user_attrs["trial_ids"]) == 2
    assert loaded.best_value == pytest.approx(o.best().values[0])
    again = optuna.load_study(study_name="srch-confirmation", storage=JournalStorage(JournalFileBackend(str(journal))))
    assert len(again.trials) == len(o.confirmed) == 2  # the confirmation, on its 3 seeds
    for t, c in zip(again.trials, o.confirmed):
        assert t.params == c.result.params and t.value == pytest.approx(c.estimate.mean)
        assert len(t.user_attrs["val_acc_per_seed"]) == 3 and t.user_attrs["p_best"] == pytest.approx(c.estimate.p_best)


def test_optuna_dashboard_serves_the_exported_journal(tmp_path):
    """optuna-dashboard itself, on 127.0.0.1, reads the exported journal: both studies and
    every trial come back through its HTTP API."""
    import json
    import socket
    import subprocess
    import time
    import urllib.request

    import optuna_dashboard  # noqa: F401  (the dashboard extra; in the test extra too)
    spec = study(tmp_path, "random", trials=4)
    o = run_search(spec, tmp_path / "out", device="cpu")
    journal = tmp_path / "search.log"
    assert main(["export", str(o.folder), "--optuna", str(journal)]) == EXIT_OK
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from pathlib import Path

    dashboard = Path(sys.executable).with_name("optuna-dashboard")  # its console script, beside this python
    proc = subprocess.Popen([str(dashboard), str(journal), "--host", "127.0.0.1",
                             "--port", str(port), "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base, deadline, studies = f"http://127.0.0.1:{port}", time.time() + 60, None
        while studies is None and time.time() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/api/studies", timeout=5) as r:
                    studies = json.load(r)["study_summaries"]
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                time.sleep(0.2)
        assert studies is not None, "optuna-dashboard did not answer"
        by_name = {s["study_name"]: s["study_id"] for s in studies}
        assert set(by_name) == {"srch", "srch-confirmation"}
        with urllib.request.urlopen(f"{base}/api/studies/{by_name['srch']}", timeout=10) as r:
            detail = json.load(r)
        assert len(detail["trials"]) == 4
        assert sorted(t["values"][0] for t in detail["trials"]) == pytest.approx(sorted(r.values[0] for r in o.results))
        with urllib.request.urlopen(f"{base}/api/studies/{by_name['srch-confirmation']}", timeout=10) as r:
            assert len(json.load(r)["trials"]) == 2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stderr.close()


def test_export_optuna_refuses_an_existing_file_and_a_grid_study(tmp_path, capsys):
    spec = study(tmp_path, "random", trials=2)
    o = run_search(spec, tmp_path / "out", device="cpu")
    mine = tmp_path / "mine.log"
    mine.write_text("not tunebook's")
    assert main(["export", str(o.folder), "--optuna", str(mine)]) == EXIT_BAD_INPUT
    assert f"--optuna {mine}: exists; tunebook does not overwrite a journal" in capsys.readouterr().err
    assert mine.read_text() == "not tunebook's"
    grid = tmp_path / "g.toml"
    grid.write_text('[study]\nname = "g"\ntrain_subset = 300\n[defaults]\nlayers = [8]\nepochs = 1\n')
    assert main(["run", str(grid), "--out", str(tmp_path / "out"), "--quiet", "--no-report", "--device", "cpu"]) == 0
    assert main(["export", str(tmp_path / "out" / "g"), "--optuna", str(tmp_path / "g.log")]) == EXIT_BAD_INPUT
    assert "--optuna: a grid study has no sampler to export; it needs [search]" in capsys.readouterr().err


def test_cli_runs_a_search_and_writes_its_report(tmp_path, capsys):
    f = tmp_path / "srch.toml"
    f.write_text(SEARCH.format(sampler="tpe", trials=2))
    assert main(["run", str(f), "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu"]) == EXIT_OK
    o = capsys.readouterr().out
    assert "srch: 2 of 2 proposals done, each on 2 seeds (every proposal done)" in o
    assert "best mean so far: " in o and "(a candidate, not a confirmed winner)" in o
    report = (tmp_path / "out" / "srch" / "report" / "report.md").read_text()
    assert "## Search" in report and "Best mean so far: proposal" in report
    assert (tmp_path / "out" / "srch" / "report" / "figures" / "search-progress.png").is_file()
    assert "Expected best val\\_acc of a search of n proposals, for n up to the 2 done (Dodge et al. 2019" in report
    assert (tmp_path / "out" / "srch" / "report" / "figures" / "search-expected.png").is_file()
    assert main(["validate", str(f)]) == EXIT_OK
    assert "search of lr, width, optimizer, momentum by tpe, 2 proposals (2 at a time) × 2 seeds" in \
        capsys.readouterr().out


def test_a_folder_with_a_search_is_refused_before_anything_trains_without_optuna(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "studies"
    folder.mkdir()
    (folder / "a.toml").write_text('[study]\nname = "a"\ntrain_subset = 300\n[defaults]\nlayers = [8]\nepochs = 1\n')
    (folder / "b.toml").write_text(SEARCH.format(sampler="tpe", trials=2))
    monkeypatch.setitem(sys.modules, "optuna", None)
    assert main(["run", str(folder), "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu"]) == EXIT_BAD_INPUT
    assert "[search] needs Optuna: pip install 'tunebook[search]' (optuna 5)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_best_proposals_are_confirmed_on_more_seeds_and_ranked_by_p_best(tmp_path):
    spec = study(tmp_path, "random", trials=4)
    o = run_search(spec, tmp_path / "out", device="cpu")
    assert len(o.confirmed) == 2
    ranked = sorted((r for r in o.results), key=lambda r: -r.values[0])
    assert [c.result.proposal.number for c in o.confirmed] == [r.proposal.number for r in ranked[:2]]
    for c in o.confirmed:  # the search's two seeds and one more, each its own run
        assert sorted(run.config.seed for run in c.runs) == [0, 1, 2]
        assert all(run.config.lr == c.result.params["lr"] for run in c.runs)
    assert sum(c.estimate.p_best for c in o.confirmed) == pytest.approx(1.0)
    assert o.likely_best().estimate.p_best == max(c.estimate.p_best for c in o.confirmed)
    assert [r.values for r in o.results] == [r.values for r in load_search(spec, tmp_path / "out")[0]]  # search means unchanged
    again = run_search(spec, tmp_path / "out", device="cpu")
    assert again.last is None and again.confirmed == o.confirmed


@pytest.mark.parametrize("key, value, message", [
    ("confirm", 9, "study.confirm: must be a count of proposals from 0 to study.trials (4), got 9"),
    ("confirm_seeds", 2, "study.confirm_seeds: must be more than the study's 2 seeds per proposal (at most 10000), got 2"),
])
def test_confirmation_settings_are_checked(key, value, message):
    text = SEARCH.format(sampler="tpe", trials=4).replace(f"{key} = ", f"# {key} = ").replace(
        "[defaults]", f"{key} = {value}\n[defaults]")
    with pytest.raises(SpecError) as e:
        parse_spec(text, "c.toml")
    assert f"c.toml: {message}" in e.value.problems


# --- pruning -------------------------------------------------------------------------------

def test_asha_prunes_within_a_lock_step_batch_and_keeps_the_pruned_as_records(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text(SEARCH.format(sampler="random", trials=6).replace("batch = 2", "batch = 6\npruner = \"asha\"")
                 .replace("confirm = 2", "confirm = 0").replace("epochs = 1", "epochs = 6"))
    spec = load_spec(f)
    o = run_search(spec, tmp_path / "out", device="cpu")
    pruned = [r for r in o.results if r.pruned]
    finished = [r for r in o.results if r.values is not None]
    assert len(pruned) >= 3 and finished and len(pruned) + len(finished) == 6
    from tunebook.store import scan_runs
    stored = {run.trial_id: run.result for run in scan_runs(o.folder / "runs").runs}
    for r in pruned:  # every seed of a pruned proposal stopped at the same epoch, recorded "pruned"
        mine = [stored[c.trial_id] for c in r.configs]
        assert {m.status for m in mine} == {"pruned"} and len({m.epochs_run for m in mine}) == 1
        assert len(r.curve) == mine[0].epochs_run < 6
    statuses = {}
    for folder in (o.folder / "runs").iterdir():
        res = __import__("tomllib").loads((folder / "result.toml").read_text())
        statuses.setdefault(res["status"], []).append(res["epochs_run"])
    assert len(statuses["pruned"]) == 2 * len(pruned) and max(statuses["pruned"]) < 6
    assert set(statuses["complete"]) == {6}
    assert sum(sum(v) for v in statuses.values()) < 6 * 2 * 6  # fewer model-epochs than without pruning
    again = run_search(spec, tmp_path / "out", device="cpu")  # pruned is final for the search
    assert again.last is None


@pytest.mark.parametrize("text, message", [
    ('pruner = "early"', 'study.pruner: must be one of "none", "halving", "asha", "hyperband", "median", got "early"'),
    ('pruner = "asha"\nobjectives = ["val_acc:max", "flops:min"]',
     "study.pruner: prunes on one objective measured every epoch (val_acc, val_loss, or val_rmse — followed by its "
     "validation loss)"),
])
def test_pruner_settings_are_checked(text, message):
    with pytest.raises(SpecError) as e:
        parse_spec(SEARCH.format(sampler="tpe", trials=4).replace("batch = 2", "batch = 2\n" + text), "p.toml")
    assert any(message in p for p in e.value.problems), e.value.problems


# --- the report's search figures ---------------------------------------------------------

def test_pareto_front_of_two_objectives():
    from tunebook.analysis.search import ProposalResult, pareto_numbers
    from tunebook.ledger import Proposal

    spec = parse_spec(SEARCH.format(sampler="nsga2", trials=4).replace(
        "batch = 2", 'batch = 2\nobjectives = ["val_acc:max", "flops:min"]'))
    rows = [(0.80, 100.0), (0.85, 200.0), (0.84, 300.0), (0.70, 100.0), (0.85, 200.0)]
    results = [ProposalResult(Proposal(i, 0, (("lr", 0.01),)), (), (), v) for i, v in enumerate(rows)]
    assert pareto_numbers(spec, results) == {0, 1, 4}  # 2 is beaten by 1; 3 by 0; ties both stay


def test_a_two_objective_search_reports_its_front_slices_and_importances(tmp_path):
    f = tmp_path / "mo.toml"
    f.write_text(SEARCH.format(sampler="nsga2", trials=6).replace(
        "batch = 2", 'batch = 3\nobjectives = ["val_acc:max", "flops:min"]').replace("confirm = 2", "confirm = 0"))
    assert main(["run", str(f), "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu"]) == EXIT_OK
    report = tmp_path / "out" / "srch" / "report"
    md = (report / "report.md").read_text()
    assert "the Pareto front of" in md and "Confirmation: off." in md
    assert (report / "figures" / "search-pareto.png").is_file() and (report / "figures" / "search-slices.png").is_file()
    from tunebook.analysis.study import analyze

    full, lean = analyze(tmp_path / "out" / "srch"), analyze(tmp_path / "out" / "srch", importances=False)
    assert full.search.importances and lean.search.importances == {}  # what keep_best reads: no fANOVA
    assert lean.search.results == full.search.results and lean.search.pareto == full.search.pareto


def test_importance_finds_the_hyperparameter_that_decides():
    """12 proposals whose value is decided by lr alone (width is noise): lr dominates."""
    import random as random_module

    from tunebook.analysis.search import ProposalResult, importances
    from tunebook.ledger import Proposal

    spec = parse_spec(SEARCH.format(sampler="tpe", trials=12))
    rng = random_module.Random(0)
    results = []
    for i in range(12):
        lr, width = 10 ** rng.uniform(-3, -1.6), rng.randint(8, 32)
        results.append(ProposalResult(Proposal(i, 0, (("lr", lr), ("width", width), ("optimizer", "adam"))), (), (),
                                      (0.9 - abs(lr - 0.01) * 10,)))
    imp = importances(spec, results)
    assert set(imp) == {"lr", "width"} and sum(imp.values()) == pytest.approx(1.0)
    assert imp["lr"] > 0.6 > imp["width"]
    assert importances(spec, results[:3]) == {}  # too few to say anything


def test_the_report_counts_pruned_runs(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text(SEARCH.format(sampler="random", trials=6).replace("batch = 2", "batch = 6\npruner = \"asha\"")
                 .replace("confirm = 2", "confirm = 1").replace("epochs = 1", "epochs = 4"))
    assert main(["run", str(f), "--out", str(tmp_path / "out"), "--quiet", "--device", "cpu"]) == EXIT_OK
    md = (tmp_path / "out" / "srch" / "report" / "report.md").read_text()
    n = len(list((tmp_path / "out" / "srch" / "runs").glob("*_s*")))
    pruned = sum('status = "pruned"' in (p / "result.toml").read_text()
                 for p in (tmp_path / "out" / "srch" / "runs").iterdir())
    assert pruned >= 2 and n > pruned
    assert f", {pruned} pruned (stopped early by the search's pruner)" in md and "(+2 pruned)" in md


def test_confirmation_adds_seeds_look_by_look_until_decided_or_the_cap(tmp_path):
    from tunebook.analysis.search import confirmation_looks

    spec = parse_spec(SEARCH.format(sampler="random", trials=4).replace("confirm_seeds = 3",
                                                                          "confirm_seeds = 4\nconfirm_max_seeds = 9"))
    assert confirmation_looks(spec) == [4, 6, 8, 9]
    assert confirmation_looks(parse_spec(SEARCH.format(sampler="random", trials=4))) == [3]
    f = tmp_path / "seq.toml"
    f.write_text(SEARCH.format(sampler="random", trials=4).replace("confirm_seeds = 3",
                                                                     "confirm_seeds = 3\nconfirm_max_seeds = 5"))
    o = run_search(load_spec(f), tmp_path / "out", device="cpu")
    lead = o.likely_best()
    others = [c for c in o.confirmed if c is not lead]
    assert lead.versus is None and len(others) == 1
    v = others[0].versus
    assert v.test.startswith("anytime-valid paired t-test") or v.test.startswith("Welch")
    n = len(lead.runs)
    # seeds were added only while the comparison was open, and never past the cap
    assert (n == 3 and v.decision != "undecided") or n == 5, (n, v.decision)
    assert sorted(run.config.seed for run in lead.runs) == list(range(n))


def test_confirm_max_seeds_is_checked():
    text = SEARCH.format(sampler="tpe", trials=4).replace("confirm_seeds = 3", "confirm_seeds = 3\nconfirm_max_seeds = 2")
    with pytest.raises(SpecError) as e:
        parse_spec(text, "c.toml")
    assert "c.toml: study.confirm_max_seeds: must be at least study.confirm_seeds (3), at most 10000, got 2" in \
        e.value.problems


def test_an_edited_record_of_proposals_is_refused_on_read_naming_each_problem(tmp_path, capsys):
    from tunebook.cli import EXIT_BAD_INPUT, main

    spec = study(tmp_path, "random", trials=2)
    o = run_search(spec, tmp_path / "out", device="cpu")
    ledger = o.folder / "search" / "proposals.toml"
    text = ledger.read_text()
    first = read_ledger(o.folder)[0]
    lr = dict(first.params)["lr"]
    ledger.write_text(text.replace(repr(lr) if repr(lr) in text else str(lr), "5.0", 1))
    with pytest.raises(SpecError) as exc:
        read_ledger(o.folder, spec.search)
    assert exc.value.problems[0] == f"{ledger}: proposal {first.number}: lr = 5.0 is outside its range [0.001, 0.03]"
    assert main(["report", str(o.folder)]) == EXIT_BAD_INPUT            # exit 2, named; nothing written
    assert "lr = 5.0 is outside its range" in capsys.readouterr().err


def test_run_study_on_a_searched_study_runs_the_search(tmp_path):
    import tunebook

    spec = study(tmp_path, "random", trials=2)
    o = tunebook.run_study(spec, tmp_path / "out", device="cpu")
    assert len([r for r in o.results if r.values is not None]) == 2 and o.last is not None
    assert o.folder == tmp_path / "out" / "srch"


MEDIAN = """
[study]
name = "med"
seeds = 2
train_subset = 300
sampler = "random"
trials = 10
batch = 5
confirm = 0
pruner = "median"
[defaults]
epochs = 4
layers = [16]
[search]
lr = { choices = [0.00001, 0.0001, 0.01, 0.03] }
width = { low = 8, high = 32 }
"""


def test_a_median_pruner_decides_in_worker_processes_as_in_this_process(tmp_path):
    # median compares with finished proposals only: a copy of them travels with each group,
    # so the worker processes prune exactly the proposals the local executor prunes
    f = tmp_path / "med.toml"
    f.write_text(MEDIAN)
    spec = load_spec(f)
    assert not spec.search.prunes_in_driver
    here = run_search(spec, tmp_path / "here", device="cpu", executor="local")
    there = run_search(spec, tmp_path / "there", device="cpu", executor="process", workers=2)
    pruned = [r.proposal.number for r in here.results if r.pruned]
    assert pruned and all(n >= 5 for n in pruned)  # from the second batch, after 5 completed
    assert [r.proposal.number for r in there.results if r.pruned] == pruned
    assert [(r.params, r.curve, r.values) for r in there.results] == [(r.params, r.curve, r.values) for r in here.results]


def test_auto_trains_a_median_pruned_search_in_processes():
    from tunebook.options import RunOptions

    spec = parse_spec(MEDIAN)
    o = RunOptions(executor="auto", device="cpu").for_part(True, spec.search.prunes_in_driver)
    assert o.executor == ("process" if (__import__("os").cpu_count() or 1) >= 2 else "local")
    asha = parse_spec(MEDIAN.replace('"median"', '"asha"'))
    assert asha.search.prunes_in_driver
    assert RunOptions(executor="auto", device="cpu").for_part(True, asha.search.prunes_in_driver).executor == "local"


def test_the_median_stopper_pickles_without_its_optuna_study_and_decides_alike():
    import pickle

    from tunebook.analysis.search import ProposalResult
    from tunebook.engine.common import EpochEvent
    from tunebook.ledger import Proposal
    from tunebook.sampling import FinishedPruning

    spec = parse_spec(MEDIAN)
    done = [ProposalResult(Proposal(i, 0, (), "{}"), (), (), (0.5 + i / 100,), False, False,
                           (0.4, 0.45 + i / 100, 0.5 + i / 100), ()) for i in range(5)]
    stop = FinishedPruning(spec, done, {"a": 7, "b": 8})
    rows = {1: (("a", 0, 0, 0, 0.45), ("b", 0, 0, 0, 0.2)), 2: (("a", 0, 0, 0, 0.48),), 3: (("a", 0, 0, 0, 0.3),)}
    events = [EpochEvent("g [1/1]", e, 3, len(r), [], 0.0, members_detail=r) for e, r in rows.items()]
    copy = pickle.loads(pickle.dumps(stop))
    assert copy._study is None and copy.trials == {}
    assert [stop(e) for e in events] == [copy(e) for e in events] == [{"b"}, set(), {"a"}]
    # the finished medians are 0.4, 0.47, 0.52 at steps 1-3; a's best so far is 0.45, 0.48, 0.48


def test_a_search_over_norms_skips_and_schedules_trains_them(tmp_path):
    f = tmp_path / "deep.toml"
    f.write_text('[study]\nname = "ds"\nseeds = 1\ntrain_subset = 300\nsampler = "random"\ntrials = 6\nbatch = 6\n'
                 'confirm = 0\n[defaults]\nepochs = 2\n[search]\ndepth = { low = 2, high = 3 }\n'
                 'width = { low = 8, high = 16 }\nnorm = { choices = ["none", "batch", "layer"] }\n'
                 'residual = { choices = [true, false] }\nschedule = { choices = ["constant", "cosine", "onecycle"] }\n'
                 'warmup = { low = 0, high = 1 }\n')
    o = run_search(load_spec(f), tmp_path / "out", device="cpu")
    assert len(o.results) == 6 and all(r.values is not None for r in o.results)
    for r in o.results:
        params = dict(r.params)
        (run,) = r.runs
        assert isinstance(params["residual"], bool) and isinstance(params["warmup"], int)
        assert (run.config.norm, run.config.residual, run.config.schedule, run.config.warmup) == (
            params["norm"], params["residual"], params["schedule"], params["warmup"])


def test_a_smoke_test_of_a_search_confirms_on_one_seed_more_than_it_proposes():
    spec = parse_spec(SEARCH.format(sampler="tpe", trials=4), "srch.toml")
    assert (spec.search.confirm_seeds, spec.search.confirm_max_seeds) == (3, 3)
    smoke = spec.with_overrides(seeds=1)
    assert (smoke.search.confirm_seeds, smoke.search.confirm_max_seeds) == (2, 2)
    again = parse_spec(smoke.source, "srch.toml")  # what is stored as study.toml reads back the same
    assert (again.search.confirm_seeds, again.search.confirm_max_seeds, len(again.seeds)) == (2, 2, 1)


@pytest.mark.parametrize("pruner, says", [
    ("halving", "synchronous successive halving (Jamieson and Talwalkar 2016): each batch paused at epoch 1, 3; "),
    ("median", "Optuna's median pruner: a proposal stopped at the end of an epoch when its mean val_acc there was "
               "worse than the median of the completed proposals' at that epoch, once 5 had completed."),
    ("asha", "Optuna's successive-halving pruner, asked epoch by epoch as the batch trained in lock-step. It decides "
             "one proposal at a time against the values recorded at the rung before it, so within a batch its "
             "decisions depend on the order the proposals were asked"),
    ("hyperband", "Optuna's Hyperband pruner, asked epoch by epoch"),
])
def test_the_report_names_each_pruning_rule_and_what_it_assumes(pruner, says):
    """Each pruner is named in the report with what it assumes and that it claims no error
    rate; Optuna's successive halving and Hyperband also with their order-dependence."""
    from tunebook.report.document import pruner_note

    spec = parse_spec(SEARCH.format(sampler="random", trials=6).replace("batch = 2", f"batch = 6\npruner = \"{pruner}\"")
                      .replace("epochs = 1", "epochs = 6"))
    note = pruner_note(spec, "val_acc")
    assert note.startswith("Pruning rule: ") and says in note and "claims no error rate" in note
    assert ("depend on the order" in note) == (pruner in ("asha", "hyperband"))
