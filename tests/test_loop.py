"""--until-decided on a real (tiny) study: seeds only where a hypothesis is open, resumable,
within a budget."""

from __future__ import annotations

import tomllib

import pytest

from tunebook.analysis.study import analyze
from tunebook.errors import SpecError
from tunebook.loop import Budget, run_until_decided
from tunebook.options import RunOptions
from tunebook.spec import parse_spec

STUDY = """
[study]
name = "dec"
seeds = 3
train_subset = 1500
margin = 0.05
[study.decide]
max_seeds = 9
round = 3
[defaults]
layers = [16]
epochs = 2
[grid]
units1 = [4, 64]
lr = [0.001, 0.0011]
[[hypothesis]]
id = "wide"
says = "64 units beat 4"
kind = "compare"
a = { units1 = 64, lr = 0.001 }
b = { units1 = 4, lr = 0.001 }
expect = "a > b"
[[hypothesis]]
id = "same"
says = "lr 0.001 and 0.0011 are the same within 5 points for 64 units"
kind = "compare"
a = { units1 = 64, lr = 0.001 }
b = { units1 = 64, lr = 0.0011 }
expect = "a ~ b"
[[hypothesis]]
id = "tiny-gap"
says = "lr 0.0011 beats 0.001 for 4 units by more than 0.1 points"
kind = "compare"
a = { units1 = 4, lr = 0.0011 }
b = { units1 = 4, lr = 0.001 }
expect = "a > b"
margin = 0.001
"""


def _seeds(folder):
    """(configuration → seeds stored, hypothesis id → verdict) of a study folder."""
    from tunebook.analysis.decide import stored_seeds

    a = analyze(folder)
    counts = stored_seeds(list(a.runs))
    return ({f"{c.label} lr={c.config.lr:g}": counts[c.key] for c in a.configs},
            {v.hypothesis.id: v for v in a.verdicts})


def test_seeds_go_only_where_a_hypothesis_is_open_and_a_rerun_resumes(tmp_path):
    spec = parse_spec(STUDY, where="dec.toml")
    res = run_until_decided(spec, tmp_path, device="cpu")
    assert res.hypotheses == 3 and res.stopped in ("decided", "max_seeds")
    seeds, verdicts = _seeds(res.folder)
    assert verdicts["wide"].verdict == "supported" and verdicts["same"].verdict == "supported"
    assert "negligible" in verdicts["same"].detail and "paired by seed" in verdicts["same"].detail
    for v in verdicts.values():  # every verdict says which look and which test
        assert v.looks and v.looks_planned == 3 and v.detail.startswith("look ")
    # the undecided hypothesis's configurations got seeds up to the cap; the rest stopped earlier
    assert verdicts["tiny-gap"].verdict == "inconclusive"  # a 0.1-point margin: not decidable in 9 seeds
    assert res.stopped == "max_seeds" and res.undecided == ("tiny-gap",)
    assert seeds["4 lr=0.0011"] == seeds["4 lr=0.001"] == 9
    assert seeds["64 lr=0.0011"] <= 6
    plan = tomllib.loads((res.folder / "decide.toml").read_text())["decide"]
    assert plan["looks"] == [3, 6, 9] and plan["max_seeds"] == 9
    again = run_until_decided(spec, tmp_path, device="cpu")  # resumes: nothing left to train
    assert again.model_epochs == 0 and again.last.trained == 0
    assert {k: v.verdict for k, v in _seeds(again.folder)[1].items()} == {k: v.verdict for k, v in verdicts.items()}


def test_a_budget_stops_within_a_group_and_the_same_call_resumes(tmp_path):
    spec = parse_spec(STUDY, where="dec.toml")
    first = run_until_decided(spec, tmp_path / "a", device="cpu", budget=Budget(model_epochs=1))
    assert first.stopped == "budget" and first.last.stopped_by_budget
    n_first = len(first.last.runs)
    assert n_first < 12  # stopped at the first epoch's end of the first group: not all
    done = run_until_decided(spec, tmp_path / "a", device="cpu")
    fresh = run_until_decided(spec, tmp_path / "b", device="cpu")
    assert done.stopped == fresh.stopped and done.undecided == fresh.undecided
    va, vb = _seeds(done.folder), _seeds(fresh.folder)
    assert va[0] == vb[0]  # the same seeds went to the same configurations
    assert {k: (v.verdict, v.effect) for k, v in va[1].items()} == {k: (v.verdict, v.effect) for k, v in vb[1].items()}


def test_budget_parsing():
    assert Budget.parse("10m").seconds == 600 and Budget.parse("1.5h").seconds == 5400
    assert Budget.parse("90s").seconds == 90 and Budget.parse("2000me").model_epochs == 2000
    for bad in ("10", "ten minutes", "0m", ""):
        with pytest.raises(SpecError, match="--budget: must be"):
            Budget.parse(bad)


def test_until_decided_needs_hypotheses(tmp_path):
    with pytest.raises(SpecError, match="--until-decided needs \\[\\[hypothesis\\]\\] tables"):
        run_until_decided(parse_spec('[study]\nname = "x"\n'), tmp_path)


def test_cli_until_decided_with_a_budget(tmp_path, capsys):
    from tunebook.cli import main

    f = tmp_path / "dec.toml"
    f.write_text(STUDY)
    out = tmp_path / "logs"
    assert main(["run", str(f), "--out", str(out), "--quiet", "--until-decided", "--budget", "10m"]) == 0
    text = capsys.readouterr().out
    assert "dec: decided " in text and "of 3 hypotheses (surviving Holm over the study) after" in text and "budget used" in text and "model-epochs trained" in text
    report = (out / "dec" / "report" / "report.md").read_text()
    assert "3 planned looks" in report and "wide-looks.png" in report


def test_fresh_starts_over_once_not_every_round(tmp_path):
    spec = parse_spec(STUDY, where="dec.toml")
    run_until_decided(spec, tmp_path, device="cpu", budget=Budget(model_epochs=1))
    res = run_until_decided(spec, tmp_path, device="cpu", fresh=True)
    assert len(list(tmp_path.glob("dec-*"))) == 1  # the old folder, kept once
    assert res.rounds >= 1 and (res.folder / "decide.toml").is_file()


def test_studies_decided_together_train_a_shared_trial_once(tmp_path):
    from tunebook.loop import run_all_until_decided

    a = parse_spec(STUDY, where="dec.toml")
    b = parse_spec(STUDY.replace('name = "dec"', 'name = "dec-b"').replace("units1 = [4, 64]", "units1 = [8, 64]")
                   .replace("units1 = 4,", "units1 = 8,"), where="dec-b.toml")
    ra, rb = run_all_until_decided([a, b], tmp_path, RunOptions(device="cpu"))
    runs_a = {r.trial_id: r.result for r in analyze(ra.folder).runs}
    runs_b = {r.trial_id: r.result for r in analyze(rb.folder).runs}
    shared = runs_a.keys() & runs_b.keys()
    assert len(shared) >= 6  # 64 units at both learning rates, every seed either study asked for
    assert all(runs_a[t] == runs_b[t] for t in shared)  # one training, stored in both


def test_configurations_closest_to_a_decision_are_queued_first():
    from types import SimpleNamespace

    from tunebook.analysis.sequential import Look
    from tunebook.loop import _priority

    def verdict(est, lo, hi, margin=0.0):
        h = SimpleNamespace(margin=margin)
        return SimpleNamespace(looks=(Look("t", 5, est, lo, hi, "undecided", ""),), hypothesis=h)

    near = verdict(0.9, -0.1, 1.9)       # estimate 0.9 half-widths... of 1.0: close to deciding
    far = verdict(0.1, -0.9, 1.1)
    assert _priority(near, 0.0) > _priority(far, 0.0)
    assert _priority(verdict(0.0, -float("inf"), float("inf")), 0.0) == 0.0
    assert _priority(far, 0.5) == pytest.approx(0.5)  # a margin can make a small estimate decidable


def test_trials_that_keep_failing_stop_the_loop(tmp_path, monkeypatch):
    from tunebook import engine

    def broken(group, data, hooks=(), label="", stop=None):
        raise RuntimeError("out of luck")

    monkeypatch.setitem(engine.ENGINES, "stacked", broken)
    res = run_until_decided(parse_spec(STUDY, where="dec.toml"), tmp_path, device="cpu")
    assert res.stopped == "failed" and res.decided == 0 and res.rounds <= 2
    assert res.last.failed and "out of luck" in res.last.failed[0].result.error


def test_the_study_lock_is_held_across_every_round_and_the_report(tmp_path, cli_env):
    """A second process tries the study's lock over and over while `run --until-decided`
    goes through its rounds and writes its report: it never gets it (before, it got it
    140 times in one run, and a `--fresh` in a gap renamed the folder mid-run)."""
    import fcntl
    import os
    import subprocess

    from conftest import tunebook_cmd

    study = tmp_path / "dec.toml"
    study.write_text(STUDY)
    out = tmp_path / "logs"
    proc = subprocess.Popen(tunebook_cmd("run", str(study), "--until-decided", "--out", str(out), "--quiet"),
                            env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = out / "dec" / ".lock"
    tries = taken = 0
    while proc.poll() is None:
        # Probe only once the command has held the lock (its owner note is written after its
        # flock): between its creating the file and locking it, a probe of ours would win and
        # the command would rightly refuse to start (seen once in CI).
        if lock.exists() and (tries or lock.stat().st_size):
            fd = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                tries += 1
            else:  # free: fine only once the command is done (report written, the process exiting)
                if not (out / "dec" / "report" / "report.md").exists():
                    taken += 1
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert "after 2 added rounds" in stdout or "added round" in stdout
    assert tries > 0 and taken == 0


def test_a_deleted_decide_toml_does_not_turn_decisions_into_fixed_n_ones(tmp_path):
    spec = parse_spec(STUDY, where="dec.toml")
    res = run_until_decided(spec, tmp_path, device="cpu")
    before = {v.hypothesis.id: (v.verdict, v.looks_planned) for v in analyze(res.folder).verdicts}
    (res.folder / "decide.toml").unlink()
    a = analyze(res.folder)
    assert a.sequential and {v.hypothesis.id: (v.verdict, v.looks_planned) for v in a.verdicts} == before
    assert any("decide.toml is missing, but runs on seeds beyond the study's are stored" in p for p in a.problems)


def test_a_budget_stops_a_one_group_study_within_an_epoch_and_a_rerun_equals_an_unstopped_run(tmp_path):
    """Budget(model_epochs=1) on 4 trials that stack into one group: before, the budget was
    asked only between groups and all 4 trained; now the run stops at the first epoch's end
    (nothing of the group stored), and the same call without a budget trains them, with the
    numbers of a run that was never stopped."""
    from tunebook import run_study

    spec = parse_spec('[study]\nname = "b"\nseeds = 2\ntrain_subset = 800\n[defaults]\nlayers = [16]\n'
                      'epochs = 4\n[grid]\nlr = [0.001, 0.003]\n')
    budget = Budget(model_epochs=1)
    stopped = run_study(spec, tmp_path / "a", device="cpu", budget=budget)
    assert stopped.stopped_by_budget and stopped.trained == 0 and not stopped.runs
    assert budget.used_model_epochs == 4  # one epoch of the 4-member stack, then the stop
    resumed = run_study(spec, tmp_path / "a", device="cpu")
    never = run_study(spec, tmp_path / "b", device="cpu")
    assert resumed.trained == never.trained == 4 and not resumed.stopped_by_budget
    by_id = {r.trial_id: r.result for r in never.runs}
    for r in resumed.runs:
        assert r.result.history.train_loss == by_id[r.trial_id].history.train_loss
        assert (r.result.val_acc, r.result.test_acc) == (by_id[r.trial_id].val_acc, by_id[r.trial_id].test_acc)


def test_cli_budget_on_a_grid_is_its_own_outcome_and_the_same_command_goes_on(tmp_path, capsys):
    from tunebook.cli import main

    f = tmp_path / "g.toml"
    f.write_text('[study]\nname = "g"\nseeds = 2\ntrain_subset = 800\n[defaults]\nlayers = [16]\nepochs = 3\n'
                 '[grid]\nlr = [0.001, 0.003]\n')
    out = tmp_path / "logs"
    other = tmp_path / "other.toml"  # another study under the same root, stopped too: its checkpoint is not g's
    other.write_text(f.read_text().replace('name = "g"', 'name = "other"').replace("[0.001, 0.003]", "[0.01, 0.03]"))
    assert main(["run", str(other), "--out", str(out), "--quiet", "--device", "cpu", "--budget", "2me"]) == 0
    assert "1 group of this study kept its state at the last epoch" in capsys.readouterr().out
    assert main(["run", str(f), "--out", str(out), "--quiet", "--device", "cpu", "--budget", "2me"]) == 0
    text = capsys.readouterr().out
    assert "g: 0 trained" in text
    assert "budget spent: 4 trials of the study are still to train" in text and "run the same command to go on" in text
    assert "1 group of this study kept its state at the last epoch" in text  # before: "2 groups in flight"
    assert len(list((out / ".checkpoints").glob("*.pt"))) == 2  # both studies' are there
    assert main(["run", str(f), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    assert "g: 4 trained, 0 already done (4 complete)" in capsys.readouterr().out
