"""CUDA paths (run on a GPU machine; skipped elsewhere): device-independent randomness,
the stacked engine against the reference trainer on the GPU, CUDA graphs against eager.

Tolerance on CUDA is wider than on the CPU. On an H200, a single member and the
reference agree to 1e-8 in training loss after one epoch (forward logits within 6e-8),
but cuBLAS picks different kernels for a 2-member batched ``bmm`` than for
``nn.Linear``'s GEMM, and training amplifies those ~1e-7 differences: after the second
epoch on 3 000 samples the losses differed by 1.0e-3 with SGD (lr 0.05, still in its
steep descent) and by 2.0e-3 (validation loss) with Adam, whose division by sqrt(v)
turns rounding noise on near-zero gradients into full ±lr steps. Hence 5e-3 here, and
accuracies within 30 samples of 6 000.
"""

from __future__ import annotations

import pytest
import torch

from tunebook.engine import reference, rng, stacked

from .test_deep import CASES as DEEP_CASES
from .test_stacked import MIXED, assert_same, configs

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def gpu_data():
    from tunebook.data import load_dataset
    from tunebook.engine.common import DeviceData
    return DeviceData.from_dataset(load_dataset(train_subset=3000), "cuda")


@cuda
def test_permutations_and_masks_are_the_same_on_cpu_and_cuda():
    a = rng.permutations([0, 5, 99], 3, 5000, "cpu")
    b = rng.permutations([0, 5, 99], 3, 5000, "cuda").cpu()
    assert torch.equal(a, b)
    rate = torch.full((2, 1, 1), 0.3)
    assert torch.equal(rng.keep_mask([1, 2], 7, 0, (8, 16), rate, "cpu"),
                       rng.keep_mask([1, 2], 7, 0, (8, 16), rate.cuda(), "cuda").cpu())


@cuda
@pytest.mark.parametrize("defaults, loss_tol, samples", [
    ('layers = [64, 32]\nepochs = 2\noptimizer = "sgd"\nlr = 0.05', 5e-3, 30),
    ('layers = [64, 32]\nepochs = 2\noptimizer = "adam"', 5e-3, 30),
])
def test_stacked_on_cuda_matches_the_reference_on_cuda(gpu_data, defaults, loss_tol, samples):
    cfgs = configs(defaults, seeds=2)
    got = stacked.train_group(cfgs, gpu_data)
    want = {r.trial_id: r for r in reference.train_group(cfgs, gpu_data)}
    for r in got:
        assert_same(r, want[r.trial_id], n_val=gpu_data.y_val.shape[0], loss_tol=loss_tol, samples=samples)


@cuda
@pytest.mark.parametrize("defaults, seeds, grid", [
    ("layers = [64, 32]\nepochs = 3", 3, "epochs = [2, 3]"),
    ("epochs = 2", 2, "layers = [[32, 64], [128, 16], [64, 64]]"),  # mixed widths, padded
], ids=["epoch-sharing", "mixed-widths"])
def test_cuda_graphs_give_the_eager_numbers(gpu_data, monkeypatch, defaults, seeds, grid):
    cfgs = configs(defaults, seeds=seeds, grid=grid)
    graphed = stacked.train_group(cfgs, gpu_data)
    monkeypatch.setenv("TUNEBOOK_CUDA_GRAPHS", "0")
    eager = stacked.train_group(cfgs, gpu_data)
    for g, e in zip(graphed, eager):
        assert g.history.train_loss == pytest.approx(e.history.train_loss, rel=1e-6, abs=1e-7)
        assert g.history.val_acc == pytest.approx(e.history.val_acc, abs=1e-9)
        assert g.test_acc == pytest.approx(e.test_acc, abs=1e-9)


@cuda
def test_diverging_member_on_cuda(gpu_data):
    normal = configs('layers = [32, 32]\nepochs = 3\noptimizer = "adam"', seeds=2)
    wild = configs('layers = [32, 32]\nepochs = 3\noptimizer = "adam"\nlr = 50.0', seeds=1)
    together = {r.trial_id: r for r in stacked.train_group(normal + wild, gpu_data)}
    assert all(together[c.trial_id].status == "complete" for c in normal)


@cuda
@pytest.mark.parametrize("defaults, grid", MIXED, ids=lambda x: x.split("\n")[0][:40])
def test_mixed_shapes_and_optimizers_on_cuda_match_the_reference(gpu_data, defaults, grid):
    """The CPU suite's cases (every activation, dropout, every optimizer) on CUDA."""
    cfgs = configs(defaults if "epochs" in defaults else "epochs = 2\n" + defaults, seeds=1, grid=grid)
    got = stacked.train_group(cfgs, gpu_data)
    want = {r.trial_id: r for r in reference.train_group(cfgs, gpu_data)}
    for r in got:
        assert_same(r, want[r.trial_id], n_val=gpu_data.y_val.shape[0], loss_tol=5e-3, samples=30)


@cuda
@pytest.mark.parametrize("defaults, grid", DEEP_CASES, ids=lambda x: x.replace("\n", " ")[:40])
def test_norms_skips_and_schedules_on_cuda_match_the_reference(gpu_data, defaults, grid):
    """tests/engine/test_deep.py's cases (norms × residual × schedules × optimizers ×
    dropout, mixed widths) on CUDA, at this file's tolerance."""
    text = defaults if "epochs" in defaults else "epochs = 2\n" + defaults
    text = text if "layers" in text or "layers" in grid else "layers = [32, 24]\n" + text
    cfgs = configs(text, seeds=1, grid=grid)
    got = stacked.train_group(cfgs, gpu_data)
    want = {r.trial_id: r for r in reference.train_group(cfgs, gpu_data)}
    for r in got:
        assert_same(r, want[r.trial_id], n_val=gpu_data.y_val.shape[0], loss_tol=5e-3, samples=30)


@cuda
def test_concurrent_groups_on_cuda_streams_give_the_sequential_numbers(tmp_path):
    """Groups trained in worker threads, each on its own stream (graphs captured in
    thread-local mode), against the same groups one after another."""
    from tunebook.execute import run_studies
    from tunebook.spec import parse_spec

    spec = parse_spec('[study]\nname = "cc"\nseeds = 2\ntrain_subset = 3000\n[defaults]\nepochs = 2\n'
                      '[grid]\nlayers = [[32], [64], [128], [256]]\noptimizer = ["adam", "sgd"]\n')
    (one,) = run_studies([spec], tmp_path / "one", device="cuda", pad=False)
    (four,) = run_studies([spec], tmp_path / "four", device="cuda", pad=False, concurrent=4)
    by_id = {r.trial_id: r.result for r in one.runs}
    assert len(four.runs) == 16
    for r in four.runs:
        assert r.result.history.train_loss == pytest.approx(by_id[r.trial_id].history.train_loss, rel=1e-6, abs=1e-7)
