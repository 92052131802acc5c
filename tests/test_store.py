from __future__ import annotations

import os

import pytest

from tunebook.errors import StoreError
from tunebook.records import History, TrialResult
from tunebook.spec import parse_spec
from tunebook.store import RunStore, read_run


def _cfg():
    return parse_spec('[study]\nname = "s"\n[defaults]\nlayers = [8]\nepochs = 2\n').configs()[0]


def _result(cfg, **kw):
    h = History((1.0, 0.5), (0.6, 0.8), (0.9, 0.6), (0.62, 0.79), (0.1, 0.1))
    base = dict(trial_id=cfg.trial_id, status="complete", params=6370, flops=10, epochs_run=2,
                train_seconds=0.2, val_acc=0.79, val_loss=0.6, test_acc=0.78, test_loss=0.61,
                best_epoch=2, history=h, engine="stacked", device="cpu")
    base.update(kw)
    return TrialResult(**base)


def test_save_and_read_back_round_trips(tmp_path):
    cfg = _cfg()
    with RunStore(tmp_path, "s") as store:
        folder = store.save(cfg, _result(cfg))
    run = read_run(folder)
    assert run.config == cfg and run.result == _result(cfg)
    assert folder.name.endswith("_" + cfg.trial_id) and len(folder.name) == 15 + 1 + 12
    assert not list((tmp_path / "s" / "runs").glob(".staging*"))
    with RunStore(tmp_path, "s") as again:  # the lock was released (its file stays, by design)
        assert again.locked


def test_within_reading_a_run_is_parsed_once_until_its_files_change(tmp_path):
    """store.reading(): reports read every study's runs many times; a folder whose two
    files are the same files is not parsed again, and any change is read — tunebook's own
    rewrite (a new file), an edit in place, a deleted file."""
    from tunebook.store import reading, write_atomic

    cfg = _cfg()
    with RunStore(tmp_path, "s") as store:
        folder = store.save(cfg, _result(cfg))
    assert read_run(folder) is not read_run(folder)  # outside it, read every time
    with reading():
        first = read_run(folder)
        assert read_run(folder) is first
        with reading():  # nested: the outer reads are shared
            assert read_run(folder) is first
        res = folder / "result.toml"
        text = res.read_text()
        write_atomic(res, text.replace("val_acc = 0.79", "val_acc = 0.81"))  # tunebook's way: a new file
        assert read_run(folder).result.val_acc == 0.81
        with open(res, "r+", encoding="utf-8") as fh:  # by hand, in place, another length
            fh.write(text.replace("val_acc = 0.79", "val_acc = 0.7"))
            fh.truncate()
        assert read_run(folder).result.val_acc == 0.7
        res.unlink()
        with pytest.raises(ValueError, match="result.toml"):
            read_run(folder)
    assert first.result.val_acc == 0.79  # the first read kept its own numbers


def test_config_toml_records_when_validation_is_the_test_set(tmp_path):
    import tomllib
    from dataclasses import replace

    cfg = replace(_cfg(), validation="test")
    with RunStore(tmp_path, "s") as store:
        folder = store.save(cfg, _result(cfg))
    data = tomllib.loads((folder / "config.toml").read_text())["data"]
    assert data["validation"] == "test" and data["val_is_test"] is True
    assert read_run(folder).config == cfg


def test_malformed_result_is_reported_by_path_and_skipped(tmp_path):
    cfg = _cfg()
    with RunStore(tmp_path, "s") as store:
        folder = store.save(cfg, _result(cfg))
        (folder / "result.toml").write_text('status = "complete"\nval_acc = "high"\n')
        problems: list[str] = []
        assert store.completed(problems) == {}
    assert len(problems) == 1 and str(folder / "result.toml") in problems[0]


def test_complete_result_with_nan_metric_is_rejected():
    cfg = _cfg()
    with pytest.raises(ValueError, match="a complete result needs a finite val_acc"):
        _result(cfg, val_acc=float("nan"))
    with pytest.raises(ValueError, match="history has 2 epochs but epochs_run = 3"):
        _result(cfg, epochs_run=3)


def test_failed_attempt_is_replaced_by_the_rerun(tmp_path):
    cfg = _cfg()
    with RunStore(tmp_path, "s") as store:
        store.save(cfg, TrialResult(trial_id=cfg.trial_id, status="failed", params=1, flops=0,
                                    epochs_run=0, train_seconds=0.0, error="boom"))
        assert store.completed() == {}
        store.save(cfg, _result(cfg))
        assert list(store.completed()) == [cfg.trial_id]
        assert len(list(store.runs_dir.iterdir())) == 1


# --- the lock -------------------------------------------------------------------------

def test_a_held_lock_refuses_with_host_and_pid(tmp_path):
    import socket

    with RunStore(tmp_path, "s"):
        with pytest.raises(StoreError, match=rf"in use by process {os.getpid()} on {socket.gethostname()}"):
            with RunStore(tmp_path, "s"):
                pass


def test_a_stale_lock_file_never_blocks(tmp_path):
    """Any content a dead holder left (PID 1 of a container, a reused PID) is not a lock."""
    (tmp_path / "s").mkdir()
    for content in ("1", str(os.getpid()), "host=elsewhere pid=1 since=x"):
        (tmp_path / "s" / ".lock").write_text(content)
        with RunStore(tmp_path, "s") as store:
            assert store.locked


def _contend(root, barrier, results, done):
    barrier.wait()
    try:
        with RunStore(root, "s"):
            results.put("in")
            done.wait()  # hold the lock until both have tried
    except StoreError:
        results.put("refused")
        done.wait()


def test_two_processes_released_together_over_a_stale_lock_exactly_one_gets_in(tmp_path):
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    (tmp_path / "s").mkdir()
    for round_ in range(100):
        (tmp_path / "s" / ".lock").write_text("999999999")  # a stale lock before every race
        barrier, done, results = ctx.Barrier(2), ctx.Barrier(3), ctx.Queue()
        procs = [ctx.Process(target=_contend, args=(tmp_path, barrier, results, done)) for _ in range(2)]
        for p in procs:
            p.start()
        got = sorted(results.get(timeout=20) for _ in procs)
        done.wait(timeout=20)
        for p in procs:
            p.join(timeout=20)
        assert got == ["in", "refused"], f"round {round_}: {got}"


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path):
    import signal
    import subprocess
    import sys

    code = ("import sys, time; from tunebook.store import RunStore\n"
            f"s = RunStore({str(tmp_path)!r}, 's').__enter__(); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    with pytest.raises(StoreError, match=f"process {proc.pid}"):
        RunStore(tmp_path, "s").__enter__()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with RunStore(tmp_path, "s") as store:
        assert store.locked


def test_start_over_keeps_the_old_folder_under_the_lock(tmp_path):
    cfg = _cfg()
    with RunStore(tmp_path, "s") as store:
        store.save(cfg, _result(cfg))
        old = store.start_over("20260101-000000")
        assert old == tmp_path / "s-20260101-000000" and store.locked
        assert [r.trial_id for r in RunStore(tmp_path, "s-20260101-000000").iter_runs()] == [cfg.trial_id]
        assert list(store.iter_runs()) == []
        with pytest.raises(StoreError, match="in use"):
            RunStore(tmp_path, "s").__enter__()


# --- what is on disk is never lost --------------------------------------------------------

def _saved(tmp_path):
    cfg = _cfg()
    with RunStore(tmp_path, "s") as store:
        folder = store.save(cfg, _result(cfg), label="8_s0")
    return cfg, folder


def test_copies_of_a_run_count_once_and_are_reported(tmp_path):
    import shutil

    cfg, folder = _saved(tmp_path)
    runs = folder.parent
    shutil.copytree(folder, runs / f"backup_{cfg.trial_id}")
    shutil.copytree(folder, runs / f"{folder.name} copy")
    problems: list[str] = []
    store = RunStore(tmp_path, "s")
    assert [r.path for r in store.iter_runs(problems)] == [folder]
    assert len(problems) == 1 and "stored 3 times" in problems[0]
    assert f"backup_{cfg.trial_id}" in problems[0] and f"{folder.name} copy" in problems[0]


def test_unknown_keys_are_ignored_reported_and_the_file_kept(tmp_path):
    cfg, folder = _saved(tmp_path)
    res = folder / "result.toml"
    edited = 'note = "the good one"\nfrom_the_future = 3\n' + res.read_text() + "gpu_temp = [1.0, 2.0]\n"
    res.write_text(edited)
    problems: list[str] = []
    with RunStore(tmp_path, "s") as store:
        assert list(store.completed(problems)) == [cfg.trial_id]
    assert problems == [f"{res}: ignored keys from_the_future, note, history.gpu_temp"]
    assert res.read_text() == edited


def test_an_env_that_is_not_a_table_is_read_as_unrecorded_and_said(tmp_path):
    """[env] is provenance (versions, device): a hand-edited one that is not a table does
    not make the run unreadable; it reads as unrecorded, and the reader is told."""
    import re

    cfg, folder = _saved(tmp_path)
    conf = folder / "config.toml"
    conf.write_text(re.sub(r"(?ms)^\[env\]\n.*?(?=^\[|\Z)", "", conf.read_text()).replace(
        "[trial]", 'env = "by hand"\n[trial]', 1))
    run = read_run(folder)
    assert run.meta == {} and run.notes == (f"{conf}: ignored env (not a table)",)
    problems: list[str] = []
    assert [r.trial_id for r in RunStore(tmp_path, "s").iter_runs(problems)] == [cfg.trial_id]
    assert problems == [f"{conf}: ignored env (not a table)"]


def test_saving_never_touches_folders_tunebook_did_not_name(tmp_path):
    cfg = _cfg()
    runs = tmp_path / "s" / "runs"
    mine = runs / f"backup_{cfg.trial_id}"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    with RunStore(tmp_path, "s") as store:
        store.save(cfg, _result(cfg))
    assert (mine / "notes.txt").read_text() == "keep me"


def test_an_unreadable_run_folder_is_moved_aside_not_deleted(tmp_path):
    cfg, folder = _saved(tmp_path)
    (folder / "result.toml").write_text("status = ")  # broken by hand
    with RunStore(tmp_path, "s") as store:
        assert store.completed() == {}
        new = store.save(cfg, _result(cfg))
    aside = tmp_path / "s" / "set-aside" / folder.name
    assert (aside / "result.toml").read_text() == "status = " and new.is_dir() and not folder.exists()


def test_a_write_that_fails_leaves_nothing_half_written(tmp_path, monkeypatch):
    import errno

    from tunebook import tboard
    from tunebook.errors import StoreIOError

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    cfg = _cfg()
    monkeypatch.setattr(tboard, "write_events", full_disk)
    with RunStore(tmp_path, "s") as store:
        with pytest.raises(StoreIOError, match="No space left on device; nothing of it was kept"):
            store.save(cfg, _result(cfg))
    assert list((tmp_path / "s" / "runs").iterdir()) == []


def test_a_deleted_events_file_is_restored_from_the_result(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg, folder = _saved(tmp_path)
    for f in folder.glob("events.out.tfevents.*"):
        f.unlink()
    with RunStore(tmp_path, "s") as store:
        (run,) = store.iter_runs()
        assert store.restore_events(run) and not store.restore_events(read_run(folder))
    acc = EventAccumulator(str(folder))
    acc.Reload()
    assert [e.value for e in acc.Scalars("accuracy/val")] == pytest.approx([0.62, 0.79])


def test_tensorboard_hparams_varying_first_grouped_by_config_and_honest_status(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2

    from tunebook.tboard import METRIC_TAGS

    cfg = _cfg()
    with RunStore(tmp_path, "s") as store:
        ok = store.save(cfg, _result(cfg), label="ok", varying=("lr", "optimizer"))
        from dataclasses import replace
        cfg2 = replace(cfg, seed=1)
        bad = store.save(cfg2, TrialResult(trial_id=cfg2.trial_id, status="diverged", params=1, flops=0, epochs_run=1,
                                           train_seconds=0.1, history=History((9.0,), (0.1,), (9.0,), (0.1,), (0.1,)),
                                           diverged_epoch=1), label="bad", varying=("lr", "optimizer"))

    def plugin(folder):
        acc = EventAccumulator(str(folder))
        acc.Reload()
        content = acc.PluginTagToContent("hparams")
        return {tag: plugin_data_pb2.HParamsPluginData.FromString(blob) for tag, blob in content.items()}

    p_ok, p_bad = plugin(ok), plugin(bad)
    for p in (p_ok, p_bad):  # every run declares both metric columns: none can hide one
        assert [m.name.tag for m in p["_hparams_/experiment"].experiment.metric_infos] == list(METRIC_TAGS)
    exp = p_ok["_hparams_/experiment"].experiment
    assert [(h.name, h.differs) for h in exp.hparam_infos] == [("lr", True), ("optimizer", True), ("seed", True)]
    # TensorBoard's own ordering of the columns (by differs, then name) keeps them, constants out
    from tensorboard.plugins.hparams.backend_context import _sort_and_reduce_to_hparams_limit
    _sort_and_reduce_to_hparams_limit(exp, 0)
    assert [h.name for h in exp.hparam_infos] == ["lr", "optimizer", "seed"]
    start_ok, start_bad = p_ok["_hparams_/session_start_info"].session_start_info, p_bad["_hparams_/session_start_info"].session_start_info
    assert start_ok.group_name == start_bad.group_name == f"lr={cfg.lr} optimizer={cfg.optimizer}"  # seeds group together
    assert "activation" in start_ok.hparams  # the session still records the constants
    assert p_ok["_hparams_/session_end_info"].session_end_info.status == api_pb2.STATUS_SUCCESS
    assert p_bad["_hparams_/session_end_info"].session_end_info.status == api_pb2.STATUS_FAILURE
    assert ok.name.endswith(f"_ok_{cfg.trial_id}")  # TensorBoard's run name says what the run is


def test_a_wrong_value_is_still_an_error_though_unknown_keys_are_not(tmp_path):
    cfg, folder = _saved(tmp_path)
    res = folder / "result.toml"
    assert "collapsed = false" in res.read_text()
    res.write_text(res.read_text().replace("collapsed = false", 'collapsed = "maybe"'))
    problems: list[str] = []
    assert list(RunStore(tmp_path, "s").iter_runs(problems)) == []
    assert problems == [f"skipped unreadable run: {res}: collapsed must be true or false, got 'maybe'"]


def test_a_symlink_in_runs_is_foreign_never_written_through_and_does_not_block(tmp_path):
    import shutil

    cfg, folder = _saved(tmp_path)
    outside = tmp_path / "elsewhere" / folder.name
    outside.parent.mkdir()
    shutil.move(str(folder), outside)
    for f in outside.glob("events.out.tfevents.*"):
        f.unlink()  # a "missing" events file tunebook would restore in its own folder
    (folder.parent / folder.name).symlink_to(outside, target_is_directory=True)
    before = sorted(p.name for p in outside.iterdir())
    problems: list[str] = []
    with RunStore(tmp_path, "s") as store:
        assert list(store.iter_runs(problems)) == []           # not read as a run
        assert not store.completed()                          # so the trial trains again...
        store.save(cfg, _result(cfg), label="8_s0")            # ...and is stored in a folder of its own
        for run in store.iter_runs():
            store.restore_events(run)
    assert sorted(p.name for p in outside.iterdir()) == before  # nothing written through the link
    assert (folder.parent / folder.name).is_symlink()             # nor the link removed
    assert any("is a symbolic link" in p and "writes nothing through it" in p for p in problems)


def test_a_failed_run_behind_a_symlink_does_not_make_reruns_fail(tmp_path):
    cfg = _cfg()
    with RunStore(tmp_path, "s") as store:
        failed = store.save(cfg, _result(cfg, status="failed", val_acc=float("nan"), error="boom"), label="8_s0")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    target = outside / failed.name
    failed.rename(target)
    failed.symlink_to(target, target_is_directory=True)
    with RunStore(tmp_path, "s") as store:
        store.save(cfg, _result(cfg), label="8_s0")            # replaced tunebook's own attempts only
        (run,) = store.iter_runs()
    assert run.result.status == "complete" and target.is_dir() and failed.is_symlink()


@pytest.mark.parametrize("value, message", [
    ([0.5, 1.5], r"val_class_acc must hold accuracies in \[0, 1\], got \(0.5, 1.5\)"),
    ("0.5", r"val_class_acc must be a list of accuracies"),
    ([0.5, "x"], r"val_class_acc must hold accuracies in \[0, 1\]"),
])
def test_a_result_with_bad_accuracies_by_class_is_refused(value, message):
    from tunebook.records import TrialResult

    good = TrialResult(trial_id="t", status="failed", params=1, flops=1, epochs_run=0, train_seconds=0.0,
                       error="boom", val_class_acc=(0.5, float("nan"))).to_dict()
    assert TrialResult.from_dict(good).val_class_acc[0] == 0.5
    with pytest.raises(ValueError, match=message):
        TrialResult.from_dict(good | {"val_class_acc": value})
