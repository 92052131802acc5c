"""Normalisation, residual connections and learning-rate schedules: the stacked engine
against the reference trainer, which builds them from plain torch.nn layers
(``nn.BatchNorm1d``, ``nn.LayerNorm``, ``nn.Linear`` projections) and steps
``torch.optim.lr_scheduler`` — every option and their combinations, mixed widths
included; the per-layer gradient norms both record; and the rules around them."""

from __future__ import annotations

import math

import pytest
import torch

from tunebook.engine import reference, stacked
from tunebook.engine.schedule import learning_rates, scheduler
from tunebook.model import extra_param_count, param_count
from tunebook.records import steps_of

from .test_stacked import assert_same, configs, one_thread  # noqa: F401 (autouse: one CPU thread)


# Each option's every value at least once, combined with the others (norms × residual ×
# schedules × optimizers × dropout), one stack per case; mixed widths where a grid says so.
CASES = [
    ('norm = "batch"\noptimizer = "adam"', ""),
    ('norm = "layer"\noptimizer = "sgd"\nlr = 0.05', ""),
    ('residual = true\nlayers = [32, 32, 32]\noptimizer = "rmsprop"', ""),
    ('residual = true\nlayers = [32, 16, 24]\nnorm = "batch"\ndropout = 0.2\noptimizer = "adamw"', ""),
    ('residual = true\nnorm = "layer"\nactivation = "tanh"\ndropout = 0.1\nschedule = "cosine"',
     'optimizer = ["adam", "momentum"]'),
    ('schedule = "cosine"\nwarmup = 1\nepochs = 3', ""),
    ('schedule = "step"\nepochs = 4\noptimizer = "nesterov"\nlr = 0.05\nnorm = "batch"', ""),
    ('schedule = "onecycle"\noptimizer = "momentum"\nlr = 0.05\ndropout = 0.2', ""),
    ('schedule = "onecycle"\nwarmup = 1\nepochs = 3\nnorm = "layer"\nresidual = true', ""),
    ('schedule = "constant"\nwarmup = 2\nepochs = 3\noptimizer = "rmsprop"', ""),
    # mixed widths in one padded stack
    ('norm = "layer"\nactivation = "sigmoid"', "layers = [[32, 16], [20, 40]]"),
    ('norm = "batch"\nresidual = true\nactivation = "gelu"',
     'layers = [[32, 16, 16], [20, 40, 40]]\noptimizer = ["adam", "sgd"]'),
    ('residual = true\ndropout = 0.2\nschedule = "step"\nepochs = 3', "layers = [[24, 40, 16], [40, 48, 8]]"),
    ('norm = "batch"\nschedule = "cosine"\nwarmup = 1\nepochs = 3',
     'layers = [[32, 32], [16, 48]]\nlr = [0.001, 0.003]'),
]


@pytest.mark.parametrize("defaults, grid", CASES, ids=lambda x: x.replace("\n", " ")[:48])
def test_every_option_and_combination_matches_the_reference(small_data, defaults, grid):
    text = defaults if "epochs" in defaults else "epochs = 2\n" + defaults
    text = text if "layers" in text or "layers" in grid else "layers = [32, 24]\n" + text
    cfgs = configs(text, seeds=1 if grid else 2, grid=grid)
    got = stacked.train_group(cfgs, small_data)
    assert {r.group_size for r in got} == {len(cfgs)}  # one stack
    want = {r.trial_id: r for r in reference.train_group(cfgs, small_data)}
    by_id = {c.trial_id: c for c in cfgs}
    for r in got:
        w = want[r.trial_id]
        assert_same(r, w, n_val=small_data.y_val.shape[0])
        c = by_id[r.trial_id]
        assert r.params == w.params == param_count(c.layers) + extra_param_count(c.layers, c.norm, c.residual)
        assert len(r.history.grad_norm) == r.epochs_run  # per epoch, per linear layer
        for a, b in zip(r.history.grad_norm, w.history.grad_norm):
            assert len(a) == len(c.layers) + 1
            assert all(math.isclose(x, y, rel_tol=1e-4) for x, y in zip(a, b)), (a, b)


def test_a_batch_norm_network_counts_its_parameters_as_torch_does():
    from tunebook.model import DeepMLP

    for norm, residual, layers in (("batch", False, [32, 24]), ("layer", True, [32, 24, 24]),
                                   ("none", True, [16, 32, 32])):
        m = DeepMLP(layers, 784, 10, "relu", norm, residual, [torch.nn.Identity() for _ in layers])
        assert sum(p.numel() for p in m.parameters()) == param_count(layers) + extra_param_count(layers, norm, residual)


def test_the_schedules_are_torch_s_step_for_step():
    """learning_rates (what the stacked engine reads) is what the reference trainer's
    optimizer holds at each step, and each schedule has the shape its name says."""
    for schedule, warmup in (("constant", 0), ("constant", 2), ("cosine", 0), ("cosine", 1), ("step", 0),
                             ("step", 1), ("onecycle", 0), ("onecycle", 2)):
        epochs, steps = 6, 5
        opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.01)
        sched = scheduler(opt, schedule, warmup, epochs, steps)
        seen = []
        for e in range(epochs):
            for s in range(steps):
                seen.append(opt.param_groups[0]["lr"])
                opt.step()
                if schedule == "onecycle":
                    sched.step()
            if sched is not None and schedule != "onecycle":
                sched.step()
        assert list(learning_rates(0.01, schedule, warmup, epochs, steps)) == seen, schedule
    rates = learning_rates(0.01, "constant", 2, 6, 5)
    assert rates[0] == pytest.approx(0.01 / 3) and rates[5] == pytest.approx(0.02 / 3)
    assert rates[10:] == pytest.approx([0.01] * 20)
    rates = learning_rates(0.01, "cosine", 0, 6, 5)
    assert rates[0] == 0.01 and rates[-1] == pytest.approx(0.01 * (1 + math.cos(math.pi * 5 / 6)) / 2)
    rates = learning_rates(0.01, "step", 0, 8, 1)
    assert rates == pytest.approx([0.01] * 4 + [0.001] * 2 + [0.0001] * 2)
    rates = learning_rates(0.01, "onecycle", 0, 6, 5)
    assert max(rates) == pytest.approx(0.01) and rates[0] == pytest.approx(0.01 / 25) and rates[-1] < 1e-5


def test_a_schedule_over_the_run_keeps_epoch_counts_apart_and_a_constant_one_shares_them(small_data):
    cosine = configs('layers = [16]\nschedule = "cosine"', seeds=1, grid="epochs = [1, 2]")
    assert len(stacked.plan_members(cosine)) == 2  # cosine over 1 epoch is not the first of 2
    warm = configs("layers = [16]\nwarmup = 1", seeds=1, grid="epochs = [2, 3]")
    assert len(stacked.plan_members(warm)) == 1  # a warm-up then a constant rate: one stream
    got = {r.trial_id: r for r in stacked.train_group(cosine, small_data)}
    alone = stacked.train_group([cosine[0]], small_data)[0]
    assert_same(got[cosine[0].trial_id], alone, n_val=small_data.y_val.shape[0], loss_tol=1e-7, samples=0)


def test_batch_norm_leaves_out_a_last_batch_of_one_row(small_data):
    from dataclasses import replace

    n = small_data.x_train.shape[0]
    assert steps_of(n, 64, "batch") == steps_of(n, 64) == math.ceil(n / 64)
    n = 64 * 46 + 1  # a last batch of one row
    data = replace(small_data, x_train=small_data.x_train[:n], y_train=small_data.y_train[:n])
    assert steps_of(n, 64, "batch") == 46 and steps_of(n, 64, "layer") == 47
    cfgs = configs('layers = [16]\nnorm = "batch"\nepochs = 1', seeds=1)
    got, want = stacked.train_group(cfgs, data)[0], reference.train_group(cfgs, data)[0]
    assert got.status == want.status == "complete"  # torch's BatchNorm1d refuses a batch of one
    assert_same(got, want, n_val=small_data.y_val.shape[0])


def test_padded_norm_and_projection_units_stay_zero(small_data):
    cfgs = configs('epochs = 2\nnorm = "layer"\nresidual = true\nactivation = "sigmoid"', seeds=1,
                   grid="layers = [[32, 16, 24], [20, 40, 8]]")
    members = stacked.plan_members(cfgs)
    model = stacked.StackedMLP(members, small_data.n_features, small_data.n_classes, "cpu")
    from tunebook.engine.optim import StackedOptimizer, hparams_of

    opt = StackedOptimizer(model.params, model.grads, [hparams_of(m.lead) for m in members])
    loop = stacked.EpochLoop(model, opt, small_data, 64)
    loop.run(1)
    for i, m in enumerate(members):
        w = m.lead.layers
        for l in range(len(w)):
            g, b = model.params[model.norm_at[l]][i, 0], model.params[model.norm_at[l] + 1][i, 0]
            assert not g[w[l]:].any() and not b[w[l]:].any()
        for j, q in model.proj_at.items():
            p = model.params[q][i]
            assert not p[w[j - 1]:, :].any() and not p[:, w[j]:].any()


@pytest.mark.parametrize("grid, key, rule", [
    ('residual = [true]\nlayers = [[32]]', "residual", "has no effect with one hidden layer"),
    ("warmup = [3]\nepochs = [3]", "warmup", "must be fewer epochs than epochs (3)"),
    ('norm = ["group"]', "grid.norm[0]", 'must be one of "none", "batch", "layer"'),
    ('residual = ["yes"]', "grid.residual[0]", "must be true or false"),
    ('schedule = ["linear"]', "grid.schedule[0]", 'must be one of "constant", "cosine", "step", "onecycle"'),
    ("warmup = [-1]", "grid.warmup[0]", "must be a whole number of epochs ≥ 0"),
])
def test_bad_deep_settings_are_named(grid, key, rule):
    from tunebook.errors import SpecError
    from tunebook.spec import parse_spec

    with pytest.raises(SpecError) as exc:
        parse_spec(f'[study]\nname = "t"\n[grid]\n{grid}\n', where="deep.toml")
    assert any(key in p and rule in p for p in exc.value.problems), exc.value.problems
