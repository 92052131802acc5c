"""Callers that train in rounds (--until-decided, a search) open the executor once: the
same workers serve every round, and the decisions are the local executor's."""

from __future__ import annotations

from tunebook.loop import run_until_decided
from tunebook.search import run_search
from tunebook.spec import parse_spec
from tests.executors.helpers import Recorder, stored_once
from tests.test_loop import STUDY as DECIDE


class Rounds(Recorder):
    def __init__(self):
        super().__init__()
        self.rounds = 0

    def round_done(self, *args):
        self.rounds += 1


def test_until_decided_keeps_one_worker_for_every_round_and_decides_as_local(tmp_path):
    spec = parse_spec(DECIDE, where="dec.toml")
    rec = Rounds()
    res = run_until_decided(spec, tmp_path / "proc", device="cpu", executor="process", workers=1, reporter=rec,
                            pad=False)
    local = run_until_decided(spec, tmp_path / "local", device="cpu", pad=False)
    assert rec.rounds >= 1 and len(rec.placed) > rec.rounds  # groups in several rounds...
    assert len({pid for _, _, pid in rec.placed}) == 1       # ...all on the one worker started for them
    assert (res.decided, res.stopped, res.rounds) == (local.decided, local.stopped, local.rounds)
    assert res.undecided == local.undecided
    stored_once(res.folder / "runs")


def test_a_search_runs_its_batches_on_one_set_of_workers(tmp_path):
    spec = parse_spec('[study]\nname = "srch"\nseeds = 2\ntrain_subset = 1000\nsampler = "random"\ntrials = 4\n'
                      'batch = 2\n[defaults]\nlayers = [16]\nepochs = 1\n'
                      '[search]\nlr = { low = 0.0001, high = 0.1, log = true }\n', where="srch.toml")
    rec = Recorder()
    o = run_search(spec, tmp_path / "proc", device="cpu", executor="process", workers=1, reporter=rec)
    local = run_search(spec, tmp_path / "local", device="cpu")
    assert len([r for r in o.results if r.values is not None]) == 4
    assert len({pid for _, _, pid in rec.placed}) == 1 and len(rec.placed) >= 2
    assert [r.values for r in o.results] == [r.values for r in local.results]  # same proposals, same numbers
