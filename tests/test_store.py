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
    assert not (tmp_path / "s" / ".lock").exists()


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


def test_a_live_lock_refuses_and_a_stale_lock_is_taken_over(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / ".lock").write_text(str(os.getppid()))
    with pytest.raises(StoreError, match=r"in use by process \d+"):
        with RunStore(tmp_path, "s"):
            pass
    (tmp_path / "s" / ".lock").write_text("999999999")
    with RunStore(tmp_path, "s") as store:
        assert store._locked


def test_failed_attempt_is_replaced_by_the_rerun(tmp_path):
    cfg = _cfg()
    with RunStore(tmp_path, "s") as store:
        store.save(cfg, TrialResult(trial_id=cfg.trial_id, status="failed", params=1, flops=0,
                                    epochs_run=0, train_seconds=0.0, error="boom"))
        assert store.completed() == {}
        store.save(cfg, _result(cfg))
        assert list(store.completed()) == [cfg.trial_id]
        assert len(list(store.runs_dir.iterdir())) == 1
