import pytest
import torch

from tunebook.model import flops_per_sample, init_params, param_count


@pytest.mark.parametrize("layers, count", [
    ((128, 128), 118_282), ((128, 128, 128), 134_794), ((256, 256), 269_322),
    ((256, 256, 256), 335_114), ((512, 512), 669_706), ((1024, 1024), 1_863_690),
])
def test_param_counts_match_the_log(layers, count):
    assert param_count(layers) == count


def test_init_params_match_their_count_and_are_seeded():
    a, b = init_params(3, (64, 32)), init_params(3, (64, 32))
    assert sum(p.numel() for p in a) == param_count((64, 32))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], init_params(4, (64, 32))[0])
    assert a[0].abs().max() <= 1 / 784 ** 0.5


def test_flops_per_sample_counts_forward_and_backward():
    # one hidden layer 784 -> 8 -> 10: forward 2*784*8+8 + 2*8*10+10; backward adds
    # the same for weight/bias grads plus 2*8*10 for the hidden input gradient.
    fwd = 2 * 784 * 8 + 8 + 2 * 8 * 10 + 10
    assert flops_per_sample((8,)) == 2 * fwd + 2 * 8 * 10
