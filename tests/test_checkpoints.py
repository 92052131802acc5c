"""Checkpoints: a group stopped mid-way (a budget, Ctrl-C, SIGKILL) goes on from its last
saved epoch, and its numbers equal a run that was never stopped, bit for bit on the CPU."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
import tomllib
import warnings
from types import SimpleNamespace

import pytest

import tunebook
from tunebook.budget import Budget
from tunebook.checkpoints import FOLDER, CheckpointWarning
from tunebook.reporter import Reporter
from tests.conftest import tunebook_cmd
from tests.executors.helpers import curves_are_whole, numbers

STUDY = '''[study]
name = "ck"
seeds = 2
train_subset = 1200
keep = "{keep}"
[defaults]
layers = [16, 8]
epochs = 5
batch_size = 100
dropout = 0.1
[grid]
units1 = [8, 16]
optimizer = ["adam", "sgd"]
'''


def spec(keep: str = "none"):
    return tunebook.parse_spec(STUDY.format(keep=keep), where="ck.toml")


class Epochs(Reporter):
    """The epochs each group trains in this call, by group label."""

    def __init__(self, then=None):
        self.seen: dict[str, list[int]] = {}
        self.then = then

    def epoch(self, event):
        self.seen.setdefault(event.label, []).append(event.epoch)
        if self.then is not None:
            self.then(event)


def stopped_mid_group(out, checkpoint_every=0):
    """The study run with 9 model-epochs of budget: its first group (4 members) stops at
    the end of epoch 3."""
    return tunebook.run_study(spec(), out, device="cpu", quiet=True, pad=False, checkpoint_every=checkpoint_every,
                              budget=Budget(model_epochs=9))


def saved(out):
    return [tomllib.loads(p.read_text()) for p in sorted((out / FOLDER).glob("*.toml"))]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The study, never stopped."""
    return tunebook.run_study(spec("all"), tmp_path_factory.mktemp("whole"), device="cpu", quiet=True, pad=False)


def test_a_budget_stop_keeps_the_group_s_state_and_the_next_run_goes_on_from_it(tmp_path, whole):
    first = stopped_mid_group(tmp_path)
    assert first.stopped_by_budget and first.trained == 0
    (state,) = saved(tmp_path)  # the group in flight, at the epoch the budget ran out
    assert state["epoch"] == 3 and state["engine"] == "stacked" and len(state["trials"]) == 4  # 4 members
    assert state["bytes"] == (tmp_path / FOLDER / f"{next((tmp_path / FOLDER).glob('*.pt')).stem}.pt").stat().st_size
    seen = Epochs()
    second = tunebook.run_study(spec(), tmp_path, device="cpu", reporter=seen, pad=False, checkpoint_every=0)
    assert second.trained == 8 and not second.stopped_by_budget
    epochs = sorted(seen.seen.values())
    assert epochs[0] == [1, 2, 3, 4, 5] and [4, 5] in epochs  # that group went on from epoch 4
    assert numbers(second) == numbers(whole)  # bit for bit
    assert list((tmp_path / FOLDER).iterdir()) == []  # stored: its checkpoint is gone
    for run in second.runs:  # curves written whole from the results, read back by TensorBoard
        curves_are_whole(run)


def test_weights_kept_before_the_stop_come_back_from_the_checkpoint(tmp_path, whole):
    """A configuration that ends before the stop (epoch sharing: 2 of 5 epochs) keeps the
    weights it had at its end; they travel in the checkpoint."""
    from safetensors.torch import load_file

    text = STUDY.format(keep="all").replace('optimizer = ["adam", "sgd"]', "epochs = [2, 5]")
    s = tunebook.parse_spec(text, where="ck.toml")
    tunebook.run_study(s, tmp_path / "a", device="cpu", quiet=True, pad=False, checkpoint_every=0,
                       budget=Budget(model_epochs=5))  # two streams: 4 after epoch 2, 6 after epoch 3
    (state,) = saved(tmp_path / "a")
    assert state["epoch"] == 3
    seen = Epochs()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)  # the checkpoint is used, not set aside
        resumed = tunebook.run_study(s, tmp_path / "a", device="cpu", reporter=seen, pad=False, checkpoint_every=0)
    assert [4, 5] in seen.seen.values()
    plain = tunebook.run_study(s, tmp_path / "b", device="cpu", quiet=True, pad=False)
    assert numbers(resumed) == numbers(plain)
    by_id = {r.trial_id: r for r in plain.runs}
    short = [r for r in resumed.runs if r.config.epochs == 2]
    assert short
    for run in resumed.runs:
        a, b = load_file(run.path / "weights.safetensors"), load_file(by_id[run.trial_id].path / "weights.safetensors")
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def ctrl_c_at(epoch: int) -> tuple[Epochs, list[str]]:
    """A reporter that presses Ctrl-C (a real SIGINT) once, in the hooks of the first
    group's ``epoch``; and the label of the group it pressed it in."""
    pressed: list[str] = []

    def press_ctrl_c(event):
        if event.epoch == epoch and not pressed:
            pressed.append(event.label)
            os.kill(os.getpid(), signal.SIGINT)
    return Epochs(press_ctrl_c), pressed


def test_ctrl_c_stops_at_the_epoch_s_end_and_the_next_run_goes_on(tmp_path, whole):
    reporter, pressed = ctrl_c_at(2)  # in the middle of the first group's second epoch's hooks
    with pytest.raises(KeyboardInterrupt):
        tunebook.run_study(spec(), tmp_path, device="cpu", reporter=reporter, pad=False,
                           checkpoint_every=3600)  # not due: saved because of the Ctrl-C
    (state,) = saved(tmp_path)
    assert state["epoch"] == 2
    seen = Epochs()
    again = tunebook.run_study(spec(), tmp_path, device="cpu", reporter=seen, pad=False)
    assert [3, 4, 5] in seen.seen.values() and numbers(again) == numbers(whole)


def test_ctrl_c_at_a_group_s_last_epoch_stores_that_group_and_starts_no_other(tmp_path, whole):
    reporter, pressed = ctrl_c_at(5)
    with pytest.raises(KeyboardInterrupt):
        tunebook.run_study(spec(), tmp_path, device="cpu", reporter=reporter, pad=False,
                           checkpoint_every=3600)
    assert len(tunebook.load_runs(tmp_path / "ck")) == 4  # the first group (4 trials), kept whole
    assert saved(tmp_path) == []  # nothing in flight
    seen = Epochs()
    again = tunebook.run_study(spec(), tmp_path, device="cpu", reporter=seen, pad=False)
    assert again.trained == 4 and list(seen.seen.values()) == [[1, 2, 3, 4, 5]]
    assert numbers(again) == numbers(whole)


def test_an_unreadable_checkpoint_is_not_used_and_says_so(tmp_path, whole):
    stopped_mid_group(tmp_path)
    (pt,) = (tmp_path / FOLDER).glob("*.pt")
    pt.write_bytes(pt.read_bytes()[:100])  # cut short
    seen = Epochs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = tunebook.run_study(spec(), tmp_path, device="cpu", reporter=seen, pad=False)
    (w,) = [w for w in caught if issubclass(w.category, CheckpointWarning)]
    assert f"{pt}: checkpoint not used (" in str(w.message) and "the group trains from its first epoch" in str(w.message)
    assert all(e[0] == 1 for e in seen.seen.values()) and numbers(again) == numbers(whole)


def test_a_checkpoint_of_another_version_is_removed_with_a_note(tmp_path, whole):
    stopped_mid_group(tmp_path)
    (toml,) = (tmp_path / FOLDER).glob("*.toml")
    toml.write_text(toml.read_text().replace('tunebook = "', 'tunebook = "0.0.1-'))
    again = tunebook.run_study(spec(), tmp_path, device="cpu", quiet=True, pad=False)
    (note,) = [p for p in again.problems if "checkpoint" in p]
    assert note.startswith(f"{tmp_path / FOLDER / toml.stem}.pt: a checkpoint at epoch 3 not used (it was written "
                           "by tunebook 0.0.1-") and note.endswith("removed, its trials train from their first epoch")
    assert numbers(again) == numbers(whole) and list((tmp_path / FOLDER).iterdir()) == []


def test_a_checkpoint_of_trials_this_call_does_not_train_is_left_alone(tmp_path):
    stopped_mid_group(tmp_path)
    before = sorted(p.name for p in (tmp_path / FOLDER).iterdir())
    other = tunebook.parse_spec('[study]\nname = "other"\ntrain_subset = 1200\n[defaults]\nlayers = [4]\nepochs = 1\n',
                                where="o.toml")
    o = tunebook.run_study(other, tmp_path, device="cpu", quiet=True)
    assert o.trained == 1 and sorted(p.name for p in (tmp_path / FOLDER).iterdir()) == before


def test_clearing_a_checkpoint_removes_what_a_killed_writer_left_of_it_and_nothing_else(tmp_path):
    """A worker killed while it saved leaves `.<key>.pt.<pid>.tmp`: cleared with its group's
    checkpoint once that process is gone; a live writer's temp, another group's, and a file
    of another name stay."""
    from tunebook.checkpoints import clear
    from tunebook.store import stale_temps

    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer runs (reaped)
    key, other = "a" * 20, "b" * 20
    names = [f"{key}.pt", f"{key}.toml", f".{key}.pt.{gone.pid}.tmp", f".{key}.toml.{gone.pid}.tmp",
             f".{key}.pt.{os.getpid()}.tmp", f".{other}.pt.{gone.pid}.tmp", f".{key}.pt.x.tmp", "notes.txt"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    assert [f.name for f in stale_temps(tmp_path / f"{key}.pt")] == [names[2]]
    assert [f.name for f in stale_temps(tmp_path / f"{key}.toml")] == [names[3]]
    clear(tmp_path, key)
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted(names[4:])
    assert stale_temps(tmp_path / "absent" / f"{key}.pt") == []


def test_no_checkpoints_is_the_old_behaviour(tmp_path):
    first = stopped_mid_group(tmp_path, checkpoint_every=None)
    assert first.stopped_by_budget and not (tmp_path / FOLDER).exists()


def test_checkpoint_every_is_checked():
    with pytest.raises(tunebook.SpecError, match=r"--checkpoint-every: must be a number of seconds ≥ 0 \(0: every "
                                                 r"epoch\), got -1"):
        tunebook.RunOptions(checkpoint_every=-1)


CLI_STUDY = '''[study]
name = "killed"
seeds = 2
train_subset = 3000
[defaults]
layers = [32]
epochs = 6
batch_size = 50
[grid]
units1 = [16, 32]
'''


def test_sigkill_at_any_moment_then_the_same_command_equals_an_unstopped_run(tmp_path, cli_env):
    """The CLI killed (SIGKILL: nothing runs after it) at three moments — after one, then
    three checkpoints were written, and at a random one — and run again each time: what is
    stored at the end equals a run that was never stopped."""
    study = tmp_path / "killed.toml"
    study.write_text(CLI_STUDY)
    out = tmp_path / "out"
    cmd = tunebook_cmd("run", str(study), "--out", str(out), "--quiet", "--no-report", "--device", "cpu",
                       "--no-pad", "--checkpoint-every", "0")
    rng = random.Random(20261201)
    kills = 0
    for moment in ("after 1 saves", "after 3 saves", f"after {rng.uniform(3.0, 6.0):.2f} s"):
        proc = subprocess.Popen(cmd, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started, saves = time.time(), 0
        while proc.poll() is None and time.time() - started < 120:
            toml = list((out / FOLDER).glob("*.toml")) if (out / FOLDER).is_dir() else []
            saves = max([tomllib.loads(p.read_text()).get("epoch", 0) for p in toml if p.stat().st_size] or [saves])
            if (moment.endswith("saves") and saves >= int(moment.split()[1])) or \
                    (moment.endswith(" s") and time.time() - started >= float(moment.split()[1])):
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.01)
        proc.wait(timeout=60)
    assert kills >= 2  # caught mid-study at least at the first two moments
    done = subprocess.run(cmd, env=cli_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    plain = subprocess.run(tunebook_cmd("run", str(study), "--out", str(tmp_path / "plain"), "--quiet", "--no-report",
                                        "--device", "cpu", "--no-pad"), env=cli_env, capture_output=True, text=True,
                           timeout=300)
    assert plain.returncode == 0, plain.stderr
    a = numbers(SimpleNamespace(runs=tunebook.load_runs(out / "killed")))
    b = numbers(SimpleNamespace(runs=tunebook.load_runs(tmp_path / "plain" / "killed")))
    assert len(a) == 4 and a == b
    assert not list((out / FOLDER).iterdir())
