"""The runner: group planning, and studies that share trials."""

from __future__ import annotations

import pytest
import torch

from tunebook.execute import CPU_MAX_MEMBERS, max_members, plan_groups, run_studies
from tunebook.spec import parse_spec
from tunebook.store import RunStore, is_run_name
from tunebook.tboard import LiveScalars

CPU = torch.device("cpu")


def spec(name: str, grid: str, seeds: int = 2, defaults: str = "layers = [16]\nepochs = 1"):
    return parse_spec(f'[study]\nname = "{name}"\nseeds = {seeds}\ntrain_subset = 800\n'
                      f'[defaults]\n{defaults}\n[grid]\n{grid}\n')


def test_plan_groups_splits_evenly_and_keeps_epoch_streams_together():
    cfgs = spec("p", "epochs = [1, 2]\nlr = [0.001, 0.002, 0.003, 0.004, 0.005]", seeds=2).configs()
    groups = plan_groups(cfgs, CPU, max_group=4)
    assert sorted(len({c.stream_key for c in g}) for g in groups) == [3, 3, 4]  # 10 members, cap 4
    for g in groups:  # both epoch counts of a stream are in the same group
        keys = [c.stream_key for c in g]
        assert all(keys.count(k) == 2 for k in keys)


def test_groups_separate_shapes_and_optimizers():
    cfgs = spec("p", 'units1 = [8, 16]\noptimizer = ["adam", "sgd"]').configs()
    groups = plan_groups(cfgs, CPU)
    assert len(groups) == 4 and all(len({(c.layers, c.optimizer) for c in g}) == 1 for g in groups)


def test_cpu_cap_and_memory_budget():
    c = spec("p", "lr = [0.001]", defaults="layers = [8]").configs()[0]
    assert max_members(c, CPU) == CPU_MAX_MEMBERS and max_members(c, CPU, max_group=3) == 3
    huge = spec("p", "lr = [0.001]", defaults="layers = [65536, 65536]").configs()[0]
    assert max_members(huge, CPU) == 1


def test_a_trial_shared_by_two_studies_trains_once(tmp_path):
    a = spec("a", "units1 = [8, 16]")
    b = spec("b", "units1 = [16, 24]")
    oa, ob = run_studies([a, b], tmp_path, device="cpu")
    assert oa.trained == 4 and ob.trained == 4 and len(oa.runs) == len(ob.runs) == 4
    shared = {r.trial_id: r.result for r in oa.runs} .keys() & {r.trial_id for r in ob.runs}
    assert len(shared) == 2  # units1 = 16, two seeds
    ra = {r.trial_id: r.result for r in oa.runs}
    rb = {r.trial_id: r.result for r in ob.runs}
    for tid in shared:
        assert ra[tid] == rb[tid]
    # a third study wanting a trial that is final elsewhere copies it instead of training
    c = spec("c", "units1 = [8]")
    (oc,) = run_studies([a, c], tmp_path, device="cpu")[1:]
    assert oc.trained == 0 and oc.skipped == 2 and len(oc.runs) == 2


def test_a_shared_trial_is_named_by_each_studys_own_varying_parameters(tmp_path):
    a = spec("a", "units1 = [16, 24]", seeds=1)
    b = spec("b", "lr = [0.001, 0.01]", seeds=1)
    oa, ob = run_studies([a, b], tmp_path, device="cpu")
    (shared,) = {r.trial_id for r in oa.runs} & {r.trial_id for r in ob.runs}
    (fa,) = [r.path.name for r in oa.runs if r.trial_id == shared]
    (fb,) = [r.path.name for r in ob.runs if r.trial_id == shared]
    assert fa.endswith(f"_16_s0_{shared}") and fb.endswith(f"_lr0.001_s0_{shared}")


@pytest.mark.parametrize("where", ["open_live", "writer_open", "epoch", "close", "save"])
def test_an_interrupt_at_any_point_of_a_group_leaves_no_staging_folder(tmp_path, monkeypatch, where):
    """Ctrl-C or SIGTERM (raised as KeyboardInterrupt) may land on any line: after the live
    folder is made, while its TensorBoard writer opens, mid-epoch, while writers close, or
    while a run folder is assembled. The finished groups stay; nothing half-made does."""
    s = spec("i", "units1 = [8, 16]", seeds=1)
    calls = {"n": 0}

    def interrupt_on_second(original):
        def wrapped(*args, **kwargs):
            out = original(*args, **kwargs)
            calls["n"] += 1
            if calls["n"] == 2:  # the first group finishes; the second is cut
                raise KeyboardInterrupt
            return out
        return wrapped

    target = {"open_live": (RunStore, "open_live"), "writer_open": (LiveScalars, "open"),
              "epoch": (LiveScalars, "__call__"), "close": (LiveScalars, "close_all"),
              "save": (RunStore, "save")}[where]
    monkeypatch.setattr(*target, interrupt_on_second(getattr(*target)))
    with pytest.raises(KeyboardInterrupt):
        run_studies([s], tmp_path, device="cpu", max_group=1)
    runs = tmp_path / "i" / "runs"
    assert not list(runs.glob(".staging*"))
    kept = [p for p in runs.iterdir() if is_run_name(p.name)]
    assert len(kept) == (2 if where == "save" else 1)  # save: the interrupt comes after the rename
