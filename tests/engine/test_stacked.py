"""The stacked engine against the reference trainer (the oracle), and its contracts.

Tolerance: the two engines run the same arithmetic in a different order (``baddbmm``
over a stack vs ``addmm`` in ``nn.Linear``, a hand-written backward vs autograd), so
float32 rounding differs at ~1e-7 per operation and grows through training. After two
epochs on 3 000 samples the curves agree to 1e-5 (observed: < 3e-7) and accuracies to
two samples. The comparison runs at one CPU thread: on CPUs with AVX-512 kernels a
matrix product at two threads splits its sums differently, and Adam turns a gradient of
1e-9 against 0 (a dead unit) into a full step — [64, 32] with Adam then differed by 2.4e-4
after one epoch here, where one thread agrees to 3e-8. Threads are the executors' concern
(tests/executors); this file checks the arithmetic.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from tunebook.engine import reference, stacked
from tunebook.engine.optim import StackedOptimizer, hparams_of
from tunebook.model import param_count, train_flops
from tunebook.spec import parse_spec

LOSS_TOL = 1e-5


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def configs(defaults: str, seeds: int = 2, grid: str = ""):
    return parse_spec(f'[study]\nname = "t"\nseeds = {seeds}\n[defaults]\n{defaults}\n[grid]\n{grid}\n').configs()


def assert_same(a, b, n_val: int, n_test: int = 10_000, loss_tol: float = LOSS_TOL, samples: int = 2):
    assert a.trial_id == b.trial_id and a.status == b.status and a.epochs_run == b.epochs_run
    for key in ("train_loss", "val_loss"):
        for x, y in zip(getattr(a.history, key), getattr(b.history, key)):
            assert abs(x - y) <= loss_tol, (key, x, y)
    for key in ("train_acc", "val_acc"):
        for x, y in zip(getattr(a.history, key), getattr(b.history, key)):
            assert abs(x - y) <= samples / n_val + 1e-12, (key, x, y)
    assert abs(a.test_acc - b.test_acc) <= samples / n_test + 1e-12
    assert abs(a.test_loss - b.test_loss) <= loss_tol
    if a.status == "complete":  # accuracy within each class (balanced validation: n_val / C rows each)
        assert len(a.val_class_acc) == len(b.val_class_acc) > 1
        per_class = n_val / len(a.val_class_acc)
        for x, y in zip(a.val_class_acc, b.val_class_acc):
            assert abs(x - y) <= samples / per_class + 1e-12, (a.val_class_acc, b.val_class_acc)


@pytest.mark.parametrize("defaults", [
    'layers = [64, 32]\nactivation = "relu"\noptimizer = "adam"\nepochs = 2',
    'layers = [48]\nactivation = "tanh"\noptimizer = "sgd"\nlr = 0.05\nepochs = 2',
    'layers = [32, 32, 16]\nactivation = "gelu"\noptimizer = "rmsprop"\nepochs = 2',
    'layers = [40, 24]\nactivation = "sigmoid"\noptimizer = "nesterov"\nlr = 0.05\nepochs = 2',
    'layers = [64, 32]\noptimizer = "adamw"\ndropout = 0.2\nepochs = 2',
    'layers = [48, 24]\noptimizer = "adam"\nlabel_smoothing = 0.1\ninit = "he"\nepochs = 2',
    'layers = [40]\nactivation = "tanh"\noptimizer = "momentum"\nlr = 0.05\ninit = "glorot"\n'
    'label_smoothing = 0.2\ndropout = 0.1\nepochs = 2',
])
def test_members_match_the_reference_trainer(small_data, defaults):
    cfgs = configs(defaults)
    got = stacked.train_group(cfgs, small_data)
    want = {r.trial_id: r for r in reference.train_group(cfgs, small_data)}
    assert len(got) == len(cfgs) == 2
    for r in got:
        assert_same(r, want[r.trial_id], n_val=small_data.y_val.shape[0])


def test_members_with_different_lrs_match_the_reference(small_data):
    cfgs = configs("layers = [32, 32]\nepochs = 2", seeds=1, grid="lr = [0.0003, 0.001, 0.003]")
    got = stacked.train_group(cfgs, small_data)
    want = {r.trial_id: r for r in reference.train_group(cfgs, small_data)}
    for r in got:
        assert r.group_size == 3
        assert_same(r, want[r.trial_id], n_val=small_data.y_val.shape[0])


def test_a_diverging_member_does_not_touch_the_others(small_data):
    normal = configs('layers = [32, 32]\nepochs = 3\noptimizer = "sgd"\nlr = 0.05', seeds=2)
    wild = configs('layers = [32, 32]\nepochs = 3\noptimizer = "sgd"\nlr = 50.0', seeds=1)
    alone = {r.trial_id: r for r in stacked.train_group(normal, small_data)}
    together = {r.trial_id: r for r in stacked.train_group(normal + wild, small_data)}
    bad = together[wild[0].trial_id]
    assert bad.status == "diverged" and 1 <= bad.diverged_epoch <= 3
    assert bad.epochs_run == bad.diverged_epoch and math.isnan(bad.val_acc)
    for c in normal:
        a, b = alone[c.trial_id], together[c.trial_id]
        assert a.status == b.status == "complete"
        for key in ("train_loss", "train_acc", "val_loss", "val_acc"):
            assert getattr(a.history, key) == getattr(b.history, key), key
        assert (a.test_acc, a.test_loss) == (b.test_acc, b.test_loss)


def test_epoch_sharing_equals_separate_runs(small_data):
    cfgs = configs("layers = [32, 32]", seeds=1, grid="epochs = [1, 3, 4]")
    shared = {r.trial_id: r for r in stacked.train_group(cfgs, small_data)}
    assert len(shared) == 3
    for c in cfgs:
        alone = stacked.train_group([c], small_data)[0]
        s = shared[c.trial_id]
        assert s.history.val_acc == alone.history.val_acc and s.history.train_loss == alone.history.train_loss
        assert (s.test_acc, s.test_loss) == (alone.test_acc, alone.test_loss)
        assert s.derived_from == ("" if c.epochs == 4 else max(cfgs, key=lambda x: x.epochs).trial_id)
        assert alone.derived_from == ""


def test_same_seed_same_numbers(small_data):
    cfgs = configs("layers = [32]\nepochs = 2\ndropout = 0.1", seeds=2)
    a = stacked.train_group(cfgs, small_data)
    b = stacked.train_group(cfgs, small_data)
    for x, y in zip(a, b):
        assert x.history.train_loss == y.history.train_loss and x.history.val_acc == y.history.val_acc
        assert x.test_acc == y.test_acc
    assert a[0].history.train_loss != a[1].history.train_loss  # seeds differ


def test_reference_is_deterministic_too(small_data):
    c = configs("layers = [32]\nepochs = 2", seeds=1)
    a, b = reference.train_group(c, small_data), reference.train_group(c, small_data)
    assert a[0].history.train_loss == b[0].history.train_loss and a[0].test_acc == b[0].test_acc


@pytest.mark.parametrize("grid, rule", [
    ("layers = [[8], [8, 8]]", "members of one stack must have the same depth"),
    ('activation = ["relu", "tanh"]', "configs of one group must share activation"),
    ("batch_size = [32, 64]", "configs of one group must share batch_size"),
])
def test_groups_that_cannot_stack_are_refused(small_data, grid, rule):
    cfgs = configs("epochs = 1\nlayers = [8]", seeds=1, grid=grid)
    with pytest.raises(ValueError, match=re.escape(rule)):
        stacked.train_group(cfgs, small_data)


# Mixed widths and optimizers in one stack: every activation, dropout, every optimizer,
# each member against the reference trainer alone and against its exact-shape stack.
MIXED = [
    ('activation = "relu"\noptimizer = "adam"', "layers = [[64, 32], [16, 48], [40, 40]]"),
    ('activation = "tanh"\noptimizer = "sgd"\nlr = 0.05', "layers = [[48], [20], [33]]"),
    ('activation = "gelu"\noptimizer = "rmsprop"', "layers = [[32, 32, 16], [8, 40, 16], [32, 12, 24]]"),
    ('activation = "sigmoid"\noptimizer = "nesterov"\nlr = 0.05', "layers = [[40, 24], [16, 56]]"),
    ('optimizer = "adamw"\ndropout = 0.2', "layers = [[64, 32], [24, 48]]"),
    ('activation = "sigmoid"\ndropout = 0.3\noptimizer = "momentum"\nlr = 0.05', "layers = [[24], [60]]"),
    ("epochs = 2\nlayers = [32, 32]",
     'units1 = [16, 48]\noptimizer = ["adam", "sgd", "rmsprop", "adamw", "momentum", "nesterov"]'),
    # label smoothing and initial weights that differ member by member, in one padded stack
    ('optimizer = "adam"\ndropout = 0.1', 'layers = [[32, 16], [20, 40]]\nlabel_smoothing = [0.0, 0.15]\n'
                                          'init = ["default", "he", "glorot"]'),
]


@pytest.mark.parametrize("defaults, grid", MIXED, ids=lambda x: x.split("\n")[0][:40])
def test_mixed_shapes_and_optimizers_match_the_reference(small_data, defaults, grid):
    cfgs = configs("epochs = 2\n" + defaults if "epochs" not in defaults else defaults, seeds=1, grid=grid)
    assert len({c.layers for c in cfgs}) > 1
    got = stacked.train_group(cfgs, small_data)
    assert {r.group_size for r in got} == {len(cfgs)}  # one stack
    want = {r.trial_id: r for r in reference.train_group(cfgs, small_data)}
    by_id = {c.trial_id: c for c in cfgs}
    for r in got:
        assert_same(r, want[r.trial_id], n_val=small_data.y_val.shape[0])
        c = by_id[r.trial_id]  # counted for its own shape, not the padded one
        assert r.params == param_count(c.layers) and r.flops == train_flops(c.layers, 3000, c.epochs)
    exact = {}  # the same members in exact-shape stacks: padding changes nothing but rounding
    for shape in {c.layers for c in cfgs}:
        exact.update({r.trial_id: r for r in stacked.train_group([c for c in cfgs if c.layers == shape], small_data)})
    for r in got:
        assert_same(r, exact[r.trial_id], n_val=small_data.y_val.shape[0], loss_tol=1e-6, samples=1)


def test_padded_units_stay_zero_and_take_no_gradient(small_data):
    """The padding is inert: after training, every weight and bias outside a member's own
    shape is exactly zero, and so is its optimizer state."""
    cfgs = configs('epochs = 1\nactivation = "sigmoid"\ndropout = 0.2', seeds=1,
                   grid="layers = [[8, 24], [24, 8]]")
    members = stacked.plan_members(cfgs)
    model = stacked.StackedMLP(members, 784, 10, torch.device("cpu"))
    opt = StackedOptimizer(model.params, model.grads, [hparams_of(m.lead) for m in members])
    loop = stacked.EpochLoop(model, opt, small_data, 64)
    loop.run(1)
    for t, m in enumerate(members):
        dims = [784, *m.lead.layers, 10]
        for l in range(len(dims) - 1):
            w, b = model.params[2 * l][t], model.params[2 * l + 1][t]
            assert w[:dims[l], :dims[l + 1]].abs().sum() > 0
            assert torch.count_nonzero(w[dims[l]:, :]) == 0 and torch.count_nonzero(w[:, dims[l + 1]:]) == 0
            assert torch.count_nonzero(b[:, dims[l + 1]:]) == 0
            for run in opt._runs:
                if run.a <= t < run.b:
                    for state in run.state.values():
                        assert torch.count_nonzero(state[2 * l][t - run.a][:, dims[l + 1]:]) == 0


def test_cost_accounting(small_data):
    cfgs = configs("layers = [16]\nepochs = 2", seeds=3)
    rs = stacked.train_group(cfgs, small_data)
    from tunebook.model import train_flops
    for r in rs:
        assert r.group_size == 3 and r.flops == train_flops((16,), 3000, 2)
        assert 0 < r.train_seconds < r.group_seconds
        assert r.train_seconds == pytest.approx(sum(r.history.epoch_seconds))
    assert sum(r.train_seconds for r in rs) <= rs[0].group_seconds


@pytest.mark.slow
def test_sanity_256_256_five_epochs_reaches_87_percent():
    from tunebook.data import load_dataset
    from tunebook.engine.common import DeviceData

    data = DeviceData.from_dataset(load_dataset(), "cpu")
    c = configs("layers = [256, 256]\nepochs = 5\nbatch_size = 64\noptimizer = \"adam\"\nlr = 0.001", seeds=1)
    r = stacked.train_group(c, data)[0]
    assert r.test_acc >= 0.87, r.test_acc


@pytest.mark.parametrize("engine", [stacked, reference], ids=["stacked", "reference"])
def test_a_stopped_member_is_pruned_and_the_others_train_on_unchanged(small_data, engine):
    cfgs = configs("layers = [16]\nepochs = 3", seeds=3)
    victim = cfgs[2].trial_id
    alone = {r.trial_id: r for r in engine.train_group(cfgs[:2], small_data)}  # the stack the others end in
    got = {r.trial_id: r for r in engine.train_group(cfgs, small_data,
                                                     stop=lambda e: {victim} if e.epoch == 2 else set())}
    p = got[victim]
    assert p.status == "pruned" and p.epochs_run == 2 and len(p.history) == 2 and math.isnan(p.val_acc)
    for c in cfgs[:2]:
        kept = got[c.trial_id]
        assert kept.status == "complete" and kept.epochs_run == 3
        # (equal up to float rounding: a 3-member bmm and a 2-member bmm may round differently)
        assert_same(kept, alone[c.trial_id], n_val=small_data.y_val.shape[0], loss_tol=1e-6, samples=1)
