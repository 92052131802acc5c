"""A user's own nn.Module stacked with torch.func (tunebook.engine.modules): every member
of a stacked run equals that module trained alone by plain torch.optim — a small CNN, a
module with dropout, mixed optimizers — and what vmap cannot batch trains one by one with
a note saying why."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tunebook.engine import modules
from tunebook.spec import parse_spec

from .test_stacked import LOSS_TOL, one_thread  # noqa: F401 (autouse: one CPU thread)


@pytest.fixture(scope="module")
def images():
    """600 training images; 1 500 each of validation and test (evaluating a CNN on all 16 000
    is most of its time, and a comparison of engines needs no more)."""
    from dataclasses import replace

    from tunebook.data import load_dataset
    from tunebook.engine.common import DeviceData

    d = DeviceData.from_dataset(load_dataset(train_subset=600), "cpu")
    return replace(d, x_val=d.x_val[:1500], y_val=d.y_val[:1500], x_test=d.x_test[:1500], y_test=d.y_test[:1500])


def cnn(c):
    """Two conv layers and a linear head, on 1×28×28 images."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 7 * 7, 10))


def cnn_dropout(c):
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.25), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 14 * 14, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))


def configs(grid: str, seeds: int = 2):
    return parse_spec(f'[study]\nname = "m"\nseeds = {seeds}\n[defaults]\nepochs = 2\nbatch_size = 50\n'
                      f'[grid]\n{grid}\n').configs()


def assert_same(a, b, n_val: int):
    assert a.trial_id == b.trial_id and a.status == b.status == "complete"
    for key in ("train_loss", "val_loss"):
        for x, y in zip(getattr(a.history, key), getattr(b.history, key)):
            assert abs(x - y) <= LOSS_TOL, (key, x, y)
    for key in ("train_acc", "val_acc"):
        for x, y in zip(getattr(a.history, key), getattr(b.history, key)):
            assert abs(x - y) <= 2 / n_val + 1e-12, (key, x, y)
    assert abs(a.test_loss - b.test_loss) <= LOSS_TOL and abs(a.test_acc - b.test_acc) <= 2 / n_val + 1e-12


@pytest.mark.parametrize("build, grid, seeds", [
    (cnn, 'optimizer = ["adam", "sgd"]\nlr = [0.001, 0.01]', 1),
    (cnn_dropout, 'optimizer = ["adam", "momentum"]', 2),
], ids=["cnn", "cnn-dropout"])
def test_every_stacked_member_equals_the_module_trained_alone(images, build, grid, seeds):
    cfgs = configs(grid, seeds)
    notes: list[str] = []
    got = modules.train_modules(cfgs, images, build, (1, 28, 28), notes=notes)
    assert notes == [] and {r.engine for r in got} == {"modules"} and {r.group_size for r in got} == {len(cfgs)}
    for r, c in zip(got, cfgs):
        alone = modules.train_module_alone(c, images, build, (1, 28, 28))
        assert alone.engine == "modules-alone"
        assert_same(r, alone, images.y_val.shape[0])
        assert r.params == sum(p.numel() for p in build(c).parameters())


def test_the_copies_are_built_under_their_seeds_and_leave_the_caller_s_random_state():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    built = modules._built(configs('optimizer = ["adam"]'), cnn)
    assert torch.rand(1) == before  # untouched by building
    assert not torch.equal(built[0][0].weight, built[1][0].weight)  # seeds 0 and 1
    torch.manual_seed(0)
    assert torch.equal(built[0][0].weight, cnn(None)[0].weight)


class WithBatchNorm(nn.Module):
    """BatchNorm after a bias-free Linear (the usual pairing: a bias before the norm gets
    only rounding noise as its gradient, which Adam turns into full-size steps, so two
    correct implementations part there — a property of the module, not of the stack)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
                                  nn.Linear(16, 10))

    def forward(self, x):
        return self.body(x)


def test_batch_norm_stacks_with_each_member_s_own_running_statistics(images):
    """Buffers are stacked like parameters: each member's running mean and variance are
    its own row, updated in place; evaluation uses them."""
    cfgs = configs('optimizer = ["adam", "sgd"]')
    notes: list[str] = []
    got = modules.train_modules(cfgs, images, lambda c: WithBatchNorm(), (1, 28, 28), notes=notes, keep=True)
    assert notes == [] and {r.engine for r in got} == {"modules"}
    for r, c in zip(got, cfgs):
        alone = modules.train_module_alone(c, images, lambda c: WithBatchNorm(), (1, 28, 28), keep=True)
        assert_same(r, alone, images.y_val.shape[0])
        for k in ("body.2.running_mean", "body.2.running_var"):
            assert abs(r.weights[k] - alone.weights[k]).max() <= 1e-5, k
        assert r.weights["body.2.num_batches_tracked"] == alone.weights["body.2.num_batches_tracked"] == 2 * 12


def test_a_dropout_stack_whose_members_are_reordered_by_their_settings_trains(images):
    """Members are stacked sorted by their optimizer settings (lr 0.001 before 0.01 here):
    the dropout layers measured for the masks' shapes are those of the stack's first row
    (a stack given in the other order once failed with a KeyError)."""
    cfgs = configs('lr = [0.01, 0.001]', seeds=1)
    notes: list[str] = []
    got = modules.train_modules(cfgs, images, cnn_dropout, (1, 28, 28), notes=notes)
    assert notes == [] and [r.status for r in got] == ["complete", "complete"]
    for r, c in zip(got, cfgs):
        assert_same(r, modules.train_module_alone(c, images, cnn_dropout, (1, 28, 28)), images.y_val.shape[0])


class BatchNormDropout(WithBatchNorm):
    def __init__(self):
        super().__init__()
        self.body.insert(4, nn.Dropout(0.3))


def test_a_stack_stopped_at_an_epoch_s_end_goes_on_from_its_checkpoint_bit_for_bit(images, tmp_path):
    """Parameters, optimizer state, BatchNorm's running statistics and the curves are the
    checkpoint; dropout masks and data order are counter-based: the resumed stack's numbers
    and kept weights equal an uninterrupted one's exactly."""
    from tunebook.checkpoints import GroupCheckpoint

    cfgs = configs('optimizer = ["adam", "sgd"]')
    build = lambda c: BatchNormDropout()  # noqa: E731
    whole = modules.train_modules(cfgs, images, build, (1, 28, 28), keep=True)

    def stop_after_first(event):
        if event.epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        modules.train_modules(cfgs, images, build, (1, 28, 28), [stop_after_first], keep=True,
                              checkpoint=GroupCheckpoint(tmp_path, cfgs, "stacked", every=3600))
    assert len(list(tmp_path.glob("*.pt"))) == 1
    epochs = []
    again = modules.train_modules(cfgs, images, build, (1, 28, 28), [lambda e: epochs.append(e.epoch)], keep=True,
                                  checkpoint=GroupCheckpoint(tmp_path, cfgs, "stacked", every=3600))
    assert epochs == [2]
    for a, b in zip(again, whole):
        assert (a.history.train_loss, a.history.val_loss, a.val_acc, a.test_loss) == \
            (b.history.train_loss, b.history.val_loss, b.val_acc, b.test_loss)
        assert all(torch.equal(torch.as_tensor(a.weights[k]), torch.as_tensor(b.weights[k])) for k in b.weights)


class Branching(nn.Module):
    """Data-dependent control flow: vmap cannot batch a Python ``if`` on a tensor."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(784, 10), nn.Linear(784, 10)

    def forward(self, x):
        x = x.flatten(1)
        return self.a(x) if x.sum() > 0 else self.b(x)


class Widening(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, width), nn.ReLU(), nn.Linear(width, 10))

    def forward(self, x):
        return self.body(x)


@pytest.mark.parametrize("build, why", [
    (lambda c: Branching(), "torch.func's vmap cannot batch it ("),
    (lambda c: Widening(16 if c.seed == 0 else 24), "their parameter shapes differ (body.1.bias"),
    (lambda c: nn.Sequential(nn.Conv2d(1, 2, 3), nn.Dropout2d(0.2), nn.Flatten(), nn.Linear(2 * 26 * 26, 10)),
     "1 (Dropout2d) draws randomness tunebook cannot give each copy"),
], ids=["control-flow", "shapes", "dropout2d"])
def test_what_cannot_be_stacked_trains_one_by_one_with_a_note(images, build, why):
    cfgs = configs('optimizer = ["adam"]')
    notes: list[str] = []
    got = modules.train_modules(cfgs, images, build, (1, 28, 28), label="g", notes=notes)
    assert len(notes) == 1 and notes[0].startswith("g: trained one by one — ") and why in notes[0], notes
    assert {r.engine for r in got} == {"modules-alone"} and {r.status for r in got} == {"complete"}
    for r, c in zip(got, cfgs):  # what it trained is the module alone, exactly
        alone = modules.train_module_alone(c, images, build, (1, 28, 28))
        assert r.history.val_loss == alone.history.val_loss


def test_configs_of_one_stack_share_epochs_and_batch_size(images):
    cfgs = configs("epochs = [1, 2]")
    with pytest.raises(ValueError, match="must share epochs and batch_size"):
        modules.train_modules(cfgs, images, cnn, (1, 28, 28))
