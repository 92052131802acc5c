"""The cost model: time alone = a · steps + b · FLOPs, fitted per device from stored groups."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from tunebook.analysis.cost import fit_cost_models, steps
from tunebook.model import train_flops
from tunebook.records import History, TrialResult
from tunebook.store import Run

from .helpers import base_config

A, B = 5e-3, 2e-12  # seconds per step, seconds per FLOP (a step-overhead-bound device)


def _group(stamp: str, layers, batch, members: int, device="cpu:2 threads"):
    """A stored stacked group whose wall time follows the model exactly."""
    cfgs = [base_config(layers=layers, batch_size=batch, epochs=2, seed=s) for s in range(members)]
    flops = train_flops(layers, 54_000, 2)
    seconds = A * steps(cfgs[0]) + B * flops * members
    h = History((1.0, 0.9), (0.5, 0.6), (1.0, 0.9), (0.5, 0.6), (seconds / members / 2,) * 2)
    return [Run(Path(f"/x/runs/{stamp}_{c.trial_id}"), "s", c,
                TrialResult(trial_id=c.trial_id, status="complete", params=1, flops=flops, epochs_run=2,
                            train_seconds=seconds / members, val_acc=0.6, val_loss=0.9, test_acc=0.6, test_loss=0.9,
                            best_epoch=2, history=h, group_seconds=seconds, group_size=members, device=device),
                {}) for c in cfgs]


def test_the_model_recovers_per_step_and_per_flop_costs():
    runs = (_group("20260101-000001", (32, 32), 64, 5) + _group("20260101-000002", (256, 256), 64, 25)
            + _group("20260101-000003", (128,), 16, 5) + _group("20260101-000004", (1024, 1024), 128, 3))
    (model,) = fit_cost_models(runs).values()
    assert model.fitted and model.groups == 4
    assert model.seconds_per_step == pytest.approx(A, rel=1e-6) and model.seconds_per_flop == pytest.approx(B, rel=1e-6)
    small = base_config(layers=(32, 32), epochs=2)
    alone = model.seconds(small, train_flops((32, 32), 54_000, 2))
    assert alone == pytest.approx(A * steps(small) + B * train_flops((32, 32), 54_000, 2))
    # the group share says otherwise: a 32-32 member of 5 "costs" more than a 256-256 member of 25
    share = {r.config.layers: r.result.train_seconds for r in runs}
    assert share[(32, 32)] > share[(256, 256)] and alone < model.seconds(replace(small, layers=(256, 256)),
                                                                          train_flops((256, 256), 54_000, 2))


def test_too_few_groups_give_a_flops_proportional_model_that_says_so():
    runs = _group("20260101-000001", (32, 32), 64, 5) + _group("20260101-000002", (256, 256), 64, 25)
    (model,) = fit_cost_models(runs).values()
    assert not model.fitted and model.seconds_per_step == 0
    assert "proportional to FLOPs (fewer than 4 distinct groups" in model.describe()


def test_a_group_read_in_part_is_scaled_to_its_recorded_size():
    """A study holds only some members of a shared group (the rest belong to other studies):
    the fit must not read the whole group's wall time as the cost of those few."""
    groups = [_group("20260101-000001", (32, 32), 64, 5), _group("20260101-000002", (256, 256), 64, 25),
              _group("20260101-000003", (128,), 16, 5), _group("20260101-000004", (1024, 1024), 128, 3)]
    whole = fit_cost_models([r for g in groups for r in g])
    part = fit_cost_models([r for g in groups for r in g[: max(1, len(g) // 3)]])
    (w,), (p,) = whole.values(), part.values()
    assert p.seconds_per_step == pytest.approx(w.seconds_per_step, rel=1e-6)
    assert p.seconds_per_flop == pytest.approx(w.seconds_per_flop, rel=1e-6)


def test_two_hosts_with_the_same_device_name_are_two_machines():
    runs = _group("20260101-000001", (32, 32), 64, 5)
    other = [replace(r, meta={"host": "elsewhere"}) for r in _group("20260101-000002", (64,), 64, 5)]
    assert len(fit_cost_models(runs + other)) == 2
