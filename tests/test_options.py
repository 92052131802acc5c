"""RunOptions: one frozen record of how trials train, checked once when made; the run
functions take it or its fields as keywords, and show every parameter they take."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import tunebook
from tunebook.errors import SpecError
from tunebook.options import FIELDS, RunOptions


@pytest.mark.parametrize("kwargs, message", [
    (dict(engine="fast"), "--engine: must be one of stacked, reference, got 'fast'"),
    (dict(device="tpu"), "--device"),
    (dict(executor="threads"), "--executor: must be one of local, process, ray, got 'threads'"),
    (dict(max_failures=0), "--max-failures: must be a positive integer, got 0"),
    (dict(max_group=0), "--max-group: must be a positive integer, got 0"),
    (dict(max_group=True), "--max-group: must be a positive integer, got True"),
    (dict(pad="always"), "pad: must be True (the reference cost model), \"measured\" or False, got 'always'"),
    (dict(workers=2), "--workers: only with --executor process or ray"),
])
def test_a_bad_option_is_refused_when_the_record_is_made(kwargs, message):
    with pytest.raises(SpecError) as exc:
        RunOptions(**kwargs)
    assert any(p.startswith(message) for p in exc.value.problems), exc.value.problems


def test_every_problem_is_said_at_once():
    with pytest.raises(SpecError) as exc:
        RunOptions(engine="fast", max_failures=0, pad="x")
    assert len(exc.value.problems) == 3


def test_the_record_is_frozen_and_checked_again_on_replace():
    opts = RunOptions(device="cpu")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.device = "cuda"  # type: ignore[misc]
    with pytest.raises(SpecError):
        dataclasses.replace(opts, engine="fast")


def test_keywords_that_differ_from_their_defaults_override_the_record():
    base = RunOptions(device="cpu", pad=False, retries=5)
    assert RunOptions.of(base) is base
    assert RunOptions.of(base, device="auto") is base            # at its default: the record's value stays
    merged = RunOptions.of(base, max_group=4)
    assert (merged.device, merged.pad, merged.retries, merged.max_group) == ("cpu", False, 5, 4)
    assert RunOptions.of(None, device="cpu") == RunOptions(device="cpu")


def test_a_keyword_that_is_no_option_or_a_wrong_record_is_a_type_error():
    with pytest.raises(TypeError, match="not a run option: speed"):
        RunOptions.of(None, speed=2)
    with pytest.raises(TypeError, match="options: a tunebook.RunOptions, got dict"):
        RunOptions.of({"device": "cpu"})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["run_study", "run_search", "run_until_decided", "run"])
def test_the_run_functions_show_their_parameters(name):
    from tunebook.execute import run_studies

    for fn in (getattr(tunebook, name), run_studies):
        params = inspect.signature(fn).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), fn
        assert "options" in params
    if name != "run":  # run takes the record only (its keywords are what a call does)
        assert set(FIELDS) <= set(inspect.signature(getattr(tunebook, name)).parameters)


def test_run_study_takes_the_record_and_keywords_alike(tmp_path):
    spec = tunebook.parse_spec('[study]\nname = "opt"\nseeds = 1\ntrain_subset = 500\n'
                               '[defaults]\nlayers = [8]\nepochs = 1\n')
    a = tunebook.run_study(spec, tmp_path / "a", RunOptions(device="cpu", pad=False))
    b = tunebook.run_study(spec, tmp_path / "b", device="cpu", pad=False)
    assert a.trained == b.trained == 1
    assert a.runs[0].result.history.train_loss == b.runs[0].result.history.train_loss


# --- executor = "auto" -------------------------------------------------------------------

@pytest.mark.parametrize("search, pruning, cores, concurrent, device, want", [
    (True, False, 2, 1, "cpu", ("process", 2)),
    (True, False, 16, 1, "cpu", ("process", 16)),
    (True, False, 1, 1, "cpu", ("local", None)),     # one core: nothing side by side
    (True, True, 8, 1, "cpu", ("local", None)),      # a pruner stops members from this process
    (False, False, 8, 1, "cpu", ("local", None)),    # a grid: large stacks in this process
    (True, False, 8, 2, "cpu", ("local", None)),     # --concurrent asks for threads here
])
def test_auto_trains_a_search_s_small_groups_side_by_side_in_processes(monkeypatch, search, pruning, cores,
                                                                       concurrent, device, want):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    o = RunOptions(executor="auto", device=device, concurrent=concurrent).for_part(search, pruning)
    assert (o.executor, o.workers) == want


def test_auto_keeps_the_workers_asked_for_and_refuses_a_ray_address(monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert RunOptions(executor="auto", device="cpu", workers=3).for_part(True).workers == 3
    with pytest.raises(SpecError, match=r"--ray-address: only with --executor ray, got --executor auto"):
        RunOptions(executor="auto", ray_address="127.0.0.1:6379")
    with pytest.raises(SpecError, match=r"--workers: must be a positive integer, got 0"):
        RunOptions(executor="auto", workers=0)
    assert RunOptions(executor="local").for_part(True).executor == "local"  # a definite choice stays
