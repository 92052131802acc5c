"""The stacked engine against the reference trainer (the oracle), and its contracts.

Tolerance: the two engines run the same arithmetic in a different order (``baddbmm``
over a stack vs ``addmm`` in ``nn.Linear``, a hand-written backward vs autograd), so
float32 rounding differs at ~1e-7 per operation and grows through training. After two
epochs on 3 000 samples the curves agree to 1e-5 (observed: < 3e-7) and accuracies to
two samples.
"""

from __future__ import annotations

import math

import pytest

from tunebook.engine import reference, stacked
from tunebook.spec import parse_spec

LOSS_TOL = 1e-5


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


@pytest.mark.parametrize("defaults", [
    'layers = [64, 32]\nactivation = "relu"\noptimizer = "adam"\nepochs = 2',
    'layers = [48]\nactivation = "tanh"\noptimizer = "sgd"\nlr = 0.05\nepochs = 2',
    'layers = [32, 32, 16]\nactivation = "gelu"\noptimizer = "rmsprop"\nepochs = 2',
    'layers = [40, 24]\nactivation = "sigmoid"\noptimizer = "nesterov"\nlr = 0.05\nepochs = 2',
    'layers = [64, 32]\noptimizer = "adamw"\ndropout = 0.2\nepochs = 2',
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


def test_mixed_shapes_are_refused(small_data):
    cfgs = configs("epochs = 1", seeds=1, grid="units1 = [8, 16]")
    with pytest.raises(ValueError, match="must share layers"):
        stacked.train_group(cfgs, small_data)


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
