"""The runner: group planning, and studies that share trials."""

from __future__ import annotations

import random
import threading
import tomllib

import pytest
import torch

from tunebook.engine.calibrate import calibrate
from tunebook.errors import SpecError
from tunebook.execute import run_studies
from tunebook.planner import (CPU_MAX_MEMBERS, StepCost, cost_for, machine_of, max_members, modelled_seconds,
                              plan_groups, stack_key, store_cost)
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


def test_without_a_cost_model_shapes_stay_apart_and_optimizers_share_stacks():
    cfgs = spec("p", 'units1 = [8, 16]\noptimizer = ["adam", "sgd"]').configs()
    groups = plan_groups(cfgs, CPU)
    assert len(groups) == 2 and all(len({c.layers for c in g}) == 1 for g in groups)
    assert all({c.optimizer for c in g} == {"adam", "sgd"} for g in groups)


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


# -- the planner ---------------------------------------------------------------------

GPU_LIKE = StepCost("test gpu", seconds_per_step=2e-4, seconds_per_flop=1e-14)   # launch-bound
CPU_LIKE = StepCost("test cpu", seconds_per_step=1e-4, seconds_per_flop=3e-11)   # arithmetic-bound


def test_a_launch_bound_device_packs_a_width_grid_into_one_padded_group():
    cfgs = spec("w", "units1 = [16, 32, 64, 128]\nunits2 = [16, 32, 64, 128]", seeds=4,
                defaults="layers = [16, 16]\nepochs = 3").configs()
    exact = plan_groups(cfgs, CPU)
    assert len(exact) == 16
    packed = plan_groups(cfgs, CPU, cost=GPU_LIKE)
    assert len(packed) == 1 and len(packed[0]) == 64  # the CPU's member cap
    assert len(plan_groups(cfgs, CPU, max_group=40, cost=GPU_LIKE)) == 2
    assert modelled_seconds(packed, GPU_LIKE) < modelled_seconds(exact, GPU_LIKE) / 8
    # an arithmetic-bound device does not pad 16-16 up to 128-128
    cpu = plan_groups(cfgs, CPU, cost=CPU_LIKE)
    assert modelled_seconds(cpu, CPU_LIKE) <= modelled_seconds(exact, CPU_LIKE)
    assert max(len({c.layers for c in g}) for g in cpu) < 16


@pytest.mark.parametrize("cost", [GPU_LIKE, CPU_LIKE, StepCost("mid", 3e-3, 3e-11)], ids=lambda c: c.machine)
def test_the_plan_is_never_slower_than_exact_shapes_under_its_model(cost):
    rng = random.Random(7)
    for _ in range(20):
        widths = sorted({rng.choice([8, 16, 24, 32, 48, 64, 96, 128, 256, 512]) for _ in range(rng.randint(2, 9))})
        grid = f"units1 = {widths}\nepochs = {sorted(rng.sample([1, 2, 3, 5], 2))}"
        cfgs = spec("r", grid, seeds=rng.randint(1, 4), defaults="layers = [8]\nepochs = 1").configs()
        plan = plan_groups(cfgs, CPU, cost=cost)
        assert sorted(c.trial_id for g in plan for c in g) == sorted(c.trial_id for c in cfgs)
        assert modelled_seconds(plan, cost) <= modelled_seconds(plan_groups(cfgs, CPU), cost) * (1 + 1e-9)
        for g in plan:  # an epoch stream is never split; one depth, batch size, activation per group
            assert len({len(c.layers) for c in g}) == 1
        streams = {}
        for i, g in enumerate(plan):
            for c in g:
                streams.setdefault(c.stream_key, set()).add(i)
        assert all(len(v) == 1 for v in streams.values())


def test_depths_batch_sizes_and_cuda_graph_eligibility_never_mix():
    cfgs = spec("m", 'layers = [[16], [16, 16]]\nbatch_size = [32, 64]\noptimizer = ["adam", "sgd"]').configs()
    groups = plan_groups(cfgs, CPU, cost=GPU_LIKE)
    assert len(groups) == 4
    assert all(len({(len(c.layers), c.batch_size) for c in g}) == 1 for g in groups)
    cuda = torch.device("cuda")  # keys only: no device needed
    adam = [c for c in cfgs if c.optimizer == "adam"][0]
    sgd = [c for c in cfgs if c.optimizer == "sgd" and c.layers == adam.layers and c.batch_size == adam.batch_size][0]
    assert stack_key(adam, CPU) == stack_key(sgd, CPU) and stack_key(adam, cuda) != stack_key(sgd, cuda)


def test_calibration_measures_stores_once_and_keeps_other_machines(tmp_path):
    (tmp_path / ".planner.toml").write_text('["other-host cuda:X"]\nseconds_per_step = 1.0\nseconds_per_flop = 2.0\n')
    cost, measured = cost_for(tmp_path, CPU, lambda: calibrate(CPU))
    assert measured and cost.seconds_per_flop > 0 and cost.seconds_per_step >= 0 and len(cost.points) == 6
    assert all(seconds > 0 for *_, seconds in cost.points)
    # (how well the model fits depends on the machine's load while it was measured: not asserted
    # here — no test depends on timing; benchmarks/mixed.py prints the fit beside the measurements)
    again, measured_again = cost_for(tmp_path, CPU, lambda: pytest.fail("measured again"))
    assert not measured_again and again == cost
    doc = tomllib.loads((tmp_path / ".planner.toml").read_text())
    assert doc["other-host cuda:X"]["seconds_per_step"] == 1.0 and machine_of(CPU) in doc


def test_a_study_of_several_widths_trains_padded_and_matches_exact_groups(tmp_path):
    s = spec("wp", "units1 = [8, 24, 40]", seeds=2, defaults='layers = [16]\nepochs = 2\nactivation = "tanh"')
    cheap_steps = StepCost(machine_of(CPU), seconds_per_step=1.0, seconds_per_flop=1e-15)  # pack everything
    store_cost(tmp_path / "padded", cheap_steps)
    (padded,) = run_studies([s], tmp_path / "padded", device="cpu", pad="measured")
    (exact,) = run_studies([s], tmp_path / "exact", device="cpu", pad=False)
    assert {r.result.group_size for r in padded.runs} == {6} and {r.result.group_size for r in exact.runs} == {2}
    by_id = {r.trial_id: r.result for r in exact.runs}
    for r in padded.runs:
        e = by_id[r.trial_id]
        assert r.result.params == e.params and r.result.flops == e.flops
        assert r.result.history.train_loss == pytest.approx(e.history.train_loss, abs=1e-6)
        assert r.result.val_acc == pytest.approx(e.val_acc, abs=1 / 600 + 1e-12)


def test_two_runs_under_different_measured_cost_models_give_bit_identical_results(tmp_path):
    """Grouping follows the device kind's fixed reference model, never the stored (measured)
    one, unless pad="measured" asks: the same study gives the same numbers whatever the
    machine's load was when a model was measured."""
    s = spec("det", "units1 = [8, 24, 40]", seeds=2, defaults='layers = [16]\nepochs = 2\nactivation = "tanh"')
    pack = StepCost(machine_of(CPU), seconds_per_step=1.0, seconds_per_flop=1e-15)   # padding looks free
    apart = StepCost(machine_of(CPU), seconds_per_step=1e-9, seconds_per_flop=1e-6)  # padding looks dear
    store_cost(tmp_path / "a", pack)
    store_cost(tmp_path / "b", apart)
    (a,) = run_studies([s], tmp_path / "a", device="cpu")
    (b,) = run_studies([s], tmp_path / "b", device="cpu")
    key = lambda o: {r.trial_id: (r.result.group_size, r.result.history.train_loss, r.result.history.val_loss,  # noqa: E731
                                  r.result.val_acc, r.result.test_acc, r.result.test_loss) for r in o.runs}
    assert key(a) == key(b) and len(key(a)) == 6
    # asked for, the measured models do decide, and differently: the test above is not vacuous
    store_cost(tmp_path / "ma", pack)
    store_cost(tmp_path / "mb", apart)
    (ma,) = run_studies([s], tmp_path / "ma", device="cpu", pad="measured")
    (mb,) = run_studies([s], tmp_path / "mb", device="cpu", pad="measured")
    assert {r.result.group_size for r in ma.runs} == {6} and {r.result.group_size for r in mb.runs} == {2}


def test_pad_takes_only_its_three_values(tmp_path):
    with pytest.raises(SpecError) as exc:
        run_studies([spec("p", "lr = [0.001]", seeds=1)], tmp_path / "never", device="cpu", pad="sometimes")
    assert exc.value.problems == ['pad: must be True (the reference cost model), "measured" or False, got \'sometimes\'']
    assert not (tmp_path / "never").exists()


def test_no_cost_model_is_measured_when_there_is_nothing_to_choose(tmp_path):
    run_studies([spec("one", "lr = [0.001, 0.002]", seeds=1)], tmp_path, device="cpu")
    assert not (tmp_path / ".planner.toml").exists()


# -- groups trained concurrently ---------------------------------------------------------

def test_concurrent_groups_give_the_same_numbers_and_runs(tmp_path):
    s = spec("cc", 'units1 = [8, 16, 24]\noptimizer = ["adam", "sgd"]', seeds=2,
             defaults="layers = [16]\nepochs = 2")
    (one,) = run_studies([s], tmp_path / "one", device="cpu", pad=False)
    (three,) = run_studies([s], tmp_path / "three", device="cpu", pad=False, concurrent=3, max_group=2)
    assert one.trained == three.trained == 12 and len(three.runs) == 12
    assert {r.result.group_size for r in three.runs} == {2}  # 6 groups, 3 at a time
    by_id = {r.trial_id: r.result for r in one.runs}
    for r in three.runs:
        assert r.result.history.train_loss == by_id[r.trial_id].history.train_loss
        assert r.result.history.val_acc == by_id[r.trial_id].history.val_acc
        assert r.result.test_acc == by_id[r.trial_id].test_acc
    assert not list((tmp_path / "three" / "cc" / "runs").glob(".staging*"))
    (again,) = run_studies([s], tmp_path / "three", device="cpu", concurrent=3)
    assert again.trained == 0 and again.skipped == 12


@pytest.mark.parametrize("where", ["epoch", "save"])
def test_an_interrupt_with_concurrent_groups_keeps_whole_runs_only(tmp_path, monkeypatch, where):
    """The interrupt lands in a worker thread (mid-epoch) or in the saving thread; the
    other workers stop at their next epoch's end; no staging folder stays."""
    s = spec("ci", "units1 = [8, 16, 24, 32]", seeds=1, defaults="layers = [16]\nepochs = 3")
    calls = {"n": 0}
    lock = threading.Lock()
    target = (LiveScalars, "__call__") if where == "epoch" else (RunStore, "save")
    original = getattr(*target)

    def wrapped(*args, **kwargs):
        out = original(*args, **kwargs)
        with lock:
            calls["n"] += 1
            if calls["n"] == 4:
                raise KeyboardInterrupt
        return out

    monkeypatch.setattr(*target, wrapped)
    with pytest.raises(KeyboardInterrupt):
        run_studies([s], tmp_path, device="cpu", pad=False, max_group=1, concurrent=2)
    runs = tmp_path / "ci" / "runs"
    assert not list(runs.glob(".staging*"))
    for p in runs.iterdir():
        assert is_run_name(p.name) and (p / "result.toml").is_file() and (p / "config.toml").is_file()
    (resumed,) = run_studies([s], tmp_path, device="cpu", pad=False, max_group=1, concurrent=2)
    assert len(resumed.runs) == 4 and resumed.trained == 4 - resumed.skipped


def test_the_planner_counts_with_the_dataset_s_own_sizes(monkeypatch):
    """Memory and cost estimates use the dataset's inputs and classes, not Fashion-MNIST's
    784 and 10 (the model functions' defaults)."""
    import dataclasses

    from tunebook import datasets
    from tunebook.executors.dispatch import _work
    from tunebook.model import param_count

    wide = dataclasses.replace(datasets.FASHION_MNIST, name="wide", n_features=3072, n_classes=100)
    monkeypatch.setitem(datasets.DATASETS, "wide", wide)
    fm = spec("d", "lr = [0.001]", seeds=1, defaults="layers = [512, 512]").configs()[0]
    other = dataclasses.replace(fm, dataset="wide")
    assert datasets.io_sizes("wide") == (3072, 100)
    assert max_members(other, CPU, 10**6) < max_members(fm, CPU, 10**6)   # each member needs more memory
    assert _work([other]) > _work([fm])                               # and more arithmetic
    assert param_count(other.layers, *datasets.io_sizes("wide")) > param_count(fm.layers)
