"""Pieces of the stacked epoch loop that the CUDA graph path relies on, tested on the CPU."""

from __future__ import annotations

import torch

from tunebook.engine import stacked
from tunebook.engine.optim import OptimHParams, StackedOptimizer

from .test_stacked import configs


def test_snapshot_restore_undoes_steps_in_place():
    params = [torch.randn(3, 4, 5), torch.randn(3, 1, 5)]
    grads = [torch.randn(3, 4, 5), torch.randn(3, 1, 5)]
    opt = StackedOptimizer(params, grads, [OptimHParams("adam", 1e-2)] * 3)
    views = opt._runs[0].p
    before = [p.clone() for p in params]
    snap = opt.snapshot()
    opt.step()
    opt.step()
    assert not torch.equal(params[0], before[0])
    opt.restore(snap)
    assert all(torch.equal(p, b) for p, b in zip(params, before)) and opt.step_count == 0
    assert views[0].data_ptr() == params[0].data_ptr()  # views into the same storage
    opt.step()
    fresh = [b.clone() for b in before]
    ref = StackedOptimizer(fresh, grads, [OptimHParams("adam", 1e-2)] * 3)
    ref.step()
    assert all(torch.equal(p, f) for p, f in zip(params, fresh))


def test_graph_loop_is_not_used_on_cpu(small_data):
    cfgs = configs("layers = [8]\nepochs = 1", seeds=1)
    members = stacked.plan_members(cfgs)
    model = stacked.StackedMLP(members, 784, 10, torch.device("cpu"))
    opt = StackedOptimizer(model.params, model.grads, [OptimHParams("adam", 1e-3)])
    assert type(stacked.make_loop(model, opt, small_data, 64)) is stacked.EpochLoop
