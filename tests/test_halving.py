"""Synchronous successive halving (``pruner = "halving"``): the rule, its record, groups that
pause at a rung and go on from their checkpoints to the numbers of a run never paused, and
searches that prune the same proposals in this process, in worker processes and after a
stop."""

from __future__ import annotations

import math
import tomllib

import pytest

from tunebook.budget import Budget
from tunebook.data import load_dataset
from tunebook.engine.common import DeviceData
from tunebook.errors import SpecError
from tunebook.halving import (Halving, decide, read_decisions, rung_curves, rungs, survivors,
                              write_decisions)
from tunebook.reporter import Reporter
from tunebook.search import read_ledger, run_search
from tunebook.spec import load_spec, parse_spec

SEARCH = """
[study]
name = "sh"
seeds = 2
train_subset = 300
sampler = "random"
trials = {trials}
batch = {batch}
confirm = 0
pruner = "halving"
[defaults]
epochs = {epochs}
layers = [16]
[search]
lr = {{ choices = [0.00001, 0.0003, 0.003, 0.03] }}
width = {{ low = 8, high = 32 }}
"""


def spec_file(tmp_path, trials=8, batch=4, epochs=3):
    f = tmp_path / "sh.toml"
    f.write_text(SEARCH.format(trials=trials, batch=batch, epochs=epochs))
    return load_spec(f)


# --- the rule ---------------------------------------------------------------------------

def test_rungs_stand_at_powers_of_three_below_the_last_epoch():
    assert rungs(1) == () and rungs(2) == (1,) and rungs(3) == (1,) and rungs(4) == (1, 3)
    assert rungs(10) == (1, 3, 9) and rungs(27) == (1, 3, 9)


def test_the_best_third_goes_on_nan_last_ties_to_the_lower_number():
    values = {0: 0.5, 1: 0.9, 2: 0.7, 3: math.nan, 4: 0.9, 5: 0.1, 6: 0.8}
    assert survivors(values, maximize=True) == {1, 4}                 # 7 // 3 = 2; 1 and 4 tie at 0.9
    assert survivors(values, maximize=False) == {5, 0}                # lower is better; NaN is still last
    assert survivors({7: math.nan}, maximize=True) == {7}             # at least one goes on
    assert survivors({0: 0.2, 1: 0.2, 2: 0.2}, maximize=True) == {0}  # a three-way tie: the lowest number
    assert survivors({}, maximize=True) == set()


def test_decisions_are_written_and_read_back(tmp_path):
    d = decide(2, 1, {5: (0.4,), 6: (0.7,), 7: (math.nan,), 8: (0.6,)}, maximize=True)
    assert d.kept == (6,) and d.pruned == (5, 7, 8) and d.values[6] == 0.7
    write_decisions(tmp_path, [d])
    (back,) = read_decisions(tmp_path)
    assert (back.batch, back.epoch, back.kept, back.pruned) == (2, 1, (6,), (5, 7, 8))
    assert back.values[5] == 0.4 and math.isnan(back.values[7])
    assert read_decisions(tmp_path / "elsewhere") == []


@pytest.mark.parametrize("text, why", [
    ("[[decision]]\nbatch = 0\n", "'epoch'"),  # no epoch, curves, kept
    ("[[decision]]\nbatch = 0\nepoch = 1\nkept = [3]\n[decision.curves]\n1 = [0.5]\n",
     "batch 0, epoch 1: kept [3] were not ranked"),
])
def test_an_unreadable_record_of_decisions_is_named(tmp_path, text, why):
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "rungs.toml").write_text(text)
    with pytest.raises(SpecError) as e:
        read_decisions(tmp_path)
    assert e.value.problems[0].startswith(f"{tmp_path / 'search' / 'rungs.toml'}: cannot read the record of "
                                          f"successive-halving decisions ({why}")
    assert "move it aside to decide the paused batch again" in e.value.problems[0]


def test_a_batch_paused_short_of_its_rung_is_not_ranked():
    from types import SimpleNamespace

    from tunebook.records import History, TrialResult

    def paused(tid, curve):
        h = History(curve, curve, curve, curve, [1.0] * len(curve))
        return TrialResult(tid, "paused", 10, 10, len(curve), 1.0, history=h)

    configs = [SimpleNamespace(trial_id=t, epochs=9) for t in ("a", "b")]
    batch = [SimpleNamespace(proposal=SimpleNamespace(number=0), configs=configs)]
    assert rung_curves(batch, {"a": paused("a", [0.5, 0.6, 0.7]), "b": paused("b", [0.3, 0.4, 0.5])}, 3,
                       "val_acc") == {0: pytest.approx((0.4, 0.5, 0.6))}  # the mean over the seeds
    assert rung_curves(batch, {"a": paused("a", [0.5]), "b": paused("b", [0.3, 0.4, 0.5])}, 3, "val_acc") is None


def test_a_paused_result_is_never_stored(tmp_path):
    from tunebook.records import TrialResult
    from tunebook.store import RunStore

    c = _group(1)[0]
    with RunStore(tmp_path, "sh") as store:
        with pytest.raises(ValueError, match=f"{c.trial_id}: a paused result is not stored"):
            store.save(c, TrialResult(c.trial_id, "paused", 1, 1, 0, 0.0))
    assert not list((tmp_path / "sh").rglob("result.toml"))


# --- groups that pause and go on --------------------------------------------------------

def _group(n=3):
    """Three learning rates of one MLP with dropout, one seed, 3 epochs."""
    return parse_spec('[study]\nname = "g"\nseeds = 1\n[defaults]\nlayers = [16]\nepochs = 3\ndropout = 0.1\n'
                      '[grid]\nlr = [0.003, 0.001, 0.01]\n').configs()[:n]


def _data(c):
    return DeviceData.from_dataset(load_dataset(train_subset=300), "cpu")


def _numbers(r):
    h = r.history
    return (r.status, r.epochs_run, h.train_loss, h.val_loss, h.val_acc, r.val_acc, r.test_acc)


@pytest.mark.parametrize("engine", ["stacked", "reference"])
def test_a_group_paused_at_a_rung_goes_on_to_the_numbers_of_a_run_never_paused(tmp_path, engine):
    """Paused at epoch 1 (the stacked engine keeps a checkpoint; the reference trainer
    trains again), then one member pruned there by the decision: every number equals a
    run whose pruner stopped that member at epoch 1 without a pause."""
    from tunebook.checkpoints import GroupCheckpoint
    from tunebook.engine import ENGINES

    group = _group()
    data = _data(group[0])
    ids = [c.trial_id for c in group]
    fn = ENGINES[engine]
    kw = (lambda: {"checkpoint": GroupCheckpoint(tmp_path, group, engine, every=3600)}) if engine == "stacked" \
        else (lambda: {})
    first = fn(group, data, stop=Halving(pause_at=1), **kw())
    assert [r.status for r in first] == ["paused"] * 3 and {r.epochs_run for r in first} == {1}
    assert bool(list(tmp_path.glob("*.pt"))) == (engine == "stacked")
    then = fn(group, data, stop=Halving(decided={ids[1]: 1}), **kw())
    plain = fn(group, data, stop=lambda event: {ids[1]} if event.epoch == 1 else set())
    assert [_numbers(r) for r in then] == [_numbers(r) for r in plain]
    status = {r.trial_id: (r.status, r.epochs_run) for r in then}
    assert status == {ids[0]: ("complete", 3), ids[1]: ("pruned", 1), ids[2]: ("complete", 3)}
    assert [r.history.val_acc[0] for r in first] == [r.history.val_acc[0] for r in plain]


def test_a_group_resumed_at_its_rung_before_the_decision_pauses_again_without_training(tmp_path):
    from tunebook.checkpoints import GroupCheckpoint
    from tunebook.engine.stacked import train_group

    group = _group(2)
    data = _data(group[0])
    stop = Halving(pause_at=1)
    first = train_group(group, data, stop=stop, checkpoint=GroupCheckpoint(tmp_path, group, "stacked", 3600))
    seen = []
    again = train_group(group, data, hooks=[seen.append], stop=stop,
                        checkpoint=GroupCheckpoint(tmp_path, group, "stacked", 3600))
    assert seen == [] and [_numbers(r) for r in again] == [_numbers(r) for r in first]


# --- searches ---------------------------------------------------------------------------

class Calls(Reporter):
    """Each run_studies call's epochs: (trial id, epoch) pairs, call by call."""

    def __init__(self):
        self.calls: list[set] = []
        self.rungs: list[tuple] = []

    def study_start(self, specs, todo, done, groups):
        self.calls.append(set())

    def epoch(self, event):
        self.calls[-1].update((row[0], event.epoch) for row in event.members_detail)

    def rung_done(self, batch, epoch, kept, ranked):
        self.rungs.append((batch, epoch, kept, ranked))


def _stored(folder):
    out = {}
    for f in (folder / "runs").glob("*/result.toml"):
        r = tomllib.loads(f.read_text())
        out[f.parent.name.rsplit("_", 1)[-1]] = (r["status"], r["epochs_run"], r["history"]["val_acc"])
    return out


def test_a_halving_search_pauses_each_batch_at_its_rung_and_prunes_all_but_the_best_third(tmp_path):
    spec = spec_file(tmp_path)
    calls = Calls()
    o = run_search(spec, tmp_path / "out", device="cpu", reporter=calls)
    assert o.stopped == "trials" and len(o.results) == 8
    assert [p.batch for p in read_ledger(o.folder)] == [0] * 4 + [1] * 4
    decisions = read_decisions(o.folder)
    assert [(d.batch, d.epoch) for d in decisions] == [(0, 1), (1, 1)]
    for d in decisions:  # 4 // 3 = 1 goes on; the rest pruned at epoch 1, every seed
        assert len(d.kept) == max(1, len(d.curves) // 3)
        best = max(d.values.values())
        assert d.values[d.kept[0]] == best
    assert [(b, e, k) for b, e, k, _ in calls.rungs] == [(d.batch, d.epoch, len(d.kept)) for d in decisions]
    stored = _stored(o.folder)
    gone = {n for d in decisions for n in d.pruned}
    for r in o.results:
        mine = [stored[c.trial_id] for c in r.configs]
        if r.proposal.number in gone:
            assert r.pruned and {(s, e) for s, e, _ in mine} == {("pruned", 1)}
        else:
            assert r.values is not None and {(s, e) for s, e, _ in mine} <= {("complete", 3), ("diverged", 1),
                                                                              ("diverged", 2), ("diverged", 3)}
    # a call per phase: each batch's first epoch, then its survivor's last two (pruned seeds train no further)
    batch = {c.trial_id: r.proposal.batch for r in o.results for c in r.configs}
    kept = {c.trial_id for r in o.results if r.proposal.number not in gone for c in r.configs}
    assert [sorted({(batch[t], e) for t, e in call}) for call in calls.calls] == [
        [(0, 1)], [(0, 2), (0, 3)], [(1, 1)], [(1, 2), (1, 3)]]
    assert all(t in kept for call in calls.calls[1::2] for t, _ in call)
    assert run_search(spec, tmp_path / "out", device="cpu").last is None  # done: nothing trained again


def test_halving_prunes_alike_in_worker_processes_and_after_a_stop(tmp_path):
    spec = spec_file(tmp_path)
    here = run_search(spec, tmp_path / "here", device="cpu", executor="local")
    there = run_search(spec, tmp_path / "there", device="cpu", executor="process", workers=2)
    first = run_search(spec, tmp_path / "stopped", device="cpu", budget=Budget(model_epochs=10))
    assert first.stopped == "budget"
    resumed = run_search(spec, tmp_path / "stopped", device="cpu")
    want = [(r.params, r.pruned, r.curve, r.values) for r in here.results]
    assert [(r.params, r.pruned, r.curve, r.values) for r in there.results] == want
    assert [(r.params, r.pruned, r.curve, r.values) for r in resumed.results] == want
    assert read_decisions(there.folder) == read_decisions(here.folder) == read_decisions(resumed.folder)
    assert _stored(there.folder) == _stored(here.folder) == _stored(resumed.folder)
    assert not list((tmp_path / "stopped" / ".checkpoints").glob("*"))  # every checkpoint used and removed


def test_halving_with_several_objectives_is_refused():
    with pytest.raises(SpecError) as e:
        parse_spec(SEARCH.format(trials=4, batch=2, epochs=3).replace('pruner = "halving"', 'pruner = "halving"\n'
                   'objectives = ["val_acc:max", "flops:min"]'), "sh.toml")
    assert any(p.startswith("sh.toml: study.pruner: prunes on one objective") for p in e.value.problems), \
        e.value.problems


def test_the_cli_says_each_rung_and_the_report_names_the_rule(tmp_path, capsys):
    from tunebook.cli import EXIT_OK, main

    spec_file(tmp_path)
    assert main(["run", str(tmp_path / "sh.toml"), "--out", str(tmp_path / "out"), "--device", "cpu"]) == EXIT_OK
    said = capsys.readouterr()
    out, progress = " ".join(said.out.split()), " ".join(said.err.split())
    decisions = read_decisions(tmp_path / "out" / "sh")
    for d in decisions:  # progress, on stderr
        assert (f"batch {d.batch}: at epoch 1, {len(d.kept)} of {len(d.curves)} proposals go on (successive halving; "
                f"{len(d.pruned)} pruned)") in progress
    pruned = sum(len(d.pruned) for d in decisions)
    assert f"sh: 8 of 8 proposals done ({pruned} pruned), each on 2 seeds (every proposal done)" in out
    report = " ".join((tmp_path / "out" / "sh" / "report" / "report.md").read_text().split())
    assert ("Pruning rule: synchronous successive halving (Jamieson and Talwalkar 2016): each batch paused at epoch 1; "
            "its proposals still training were ranked by their mean val\\_acc") in report
    assert "claims no error rate" in report and f"{pruned} pruned (stopped early by the pruner)" in report


def test_a_search_with_an_unreadable_record_of_decisions_stops_before_it_writes(tmp_path, capsys):
    from tunebook.cli import EXIT_BAD_INPUT, main

    spec = spec_file(tmp_path)
    run_search(spec, tmp_path / "out", device="cpu", budget=Budget(model_epochs=10))  # stopped mid-search
    rungs = tmp_path / "out" / "sh" / "search" / "rungs.toml"
    rungs.write_text("[[decision]]\nbatch = 'zero'\n")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert main(["run", str(tmp_path / "sh.toml"), "--out", str(tmp_path / "out"), "--quiet", "--device",
                 "cpu"]) == EXIT_BAD_INPUT
    err = " ".join(capsys.readouterr().err.split())
    assert f"{rungs}: cannot read the record of successive-halving decisions" in err
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == {p: t for p, t in before.items() if p.name != ".lock"}  # the lock: taken and let go


def test_proposals_stacked_in_one_group_are_halved_at_every_rung(tmp_path):
    """One shape: the batch's six proposals train as one stack. At epoch 1 two go on (the
    four pruned leave the stack); at epoch 3 the stack pauses again holding the pruned four
    with the survivors, and only the survivors are ranked: one goes on to epoch 4."""
    f = tmp_path / "one.toml"
    text = SEARCH.format(trials=6, batch=6, epochs=4).replace("seeds = 2", "seeds = 1")
    text = text[:text.index("[search]")] + "[search]\nlr = { low = 1e-4, high = 3e-2, log = true }\n"
    f.write_text(text)
    spec = load_spec(f)
    calls = Calls()
    o = run_search(spec, tmp_path / "out", device="cpu", reporter=calls, pad=False)
    assert [(d.epoch, len(d.curves), len(d.kept)) for d in read_decisions(o.folder)] == [(1, 6, 2), (3, 2, 1)]
    epochs = sorted(run.result.epochs_run for r in o.results for run in r.tried)
    assert epochs == [1, 1, 1, 1, 3, 4]
    assert [r.values is not None for r in o.results].count(True) == 1
