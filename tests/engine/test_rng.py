"""The counter-based dropout masks: the fast in-place form draws exactly the masks of the
plain formula (hash the counter, compare in float64), padded members included; a rate
keeps its share."""

from __future__ import annotations

import torch

from tunebook.engine import rng


def plain(seeds, step, layer, shape, rate, widths=None):
    bases = torch.tensor([rng.key(rng._DROP, s, step, layer) for s in seeds], dtype=torch.int64).view(-1, 1, 1)
    if widths is None:
        i = torch.arange(shape[0] * shape[1], dtype=torch.int64).view(1, *shape)
    else:
        i = torch.arange(shape[0]).view(1, -1, 1) * widths.view(-1, 1, 1) + torch.arange(shape[1]).view(1, 1, -1)
    u = rng.mix32((i + bases) & rng.M32)
    return u.to(torch.float64) >= rate.to(torch.float64) * float(1 << 32)


def test_the_masks_equal_the_plain_formula_bit_for_bit():
    rate = torch.tensor([0.0, 0.1, 0.5, 0.35]).view(-1, 1, 1)
    seeds = [0, 7, 123456789, 2**31 - 1]
    for step in (0, 1, 999, 10**6):
        for layer in (0, 2):
            assert torch.equal(rng.keep_mask(seeds, step, layer, (64, 48), rate), plain(seeds, step, layer, (64, 48), rate))
    widths = torch.tensor([48, 32, 17, 48])
    assert torch.equal(rng.keep_mask(seeds, 5, 1, (16, 48), rate, widths=widths),
                       plain(seeds, 5, 1, (16, 48), rate, widths))


def test_a_rate_keeps_about_its_share_and_zero_keeps_all():
    rate = torch.tensor([0.0, 0.25]).view(-1, 1, 1)
    mask = rng.keep_mask([1, 2], 3, 0, (256, 256), rate)
    assert bool(mask[0].all())
    kept = mask[1].double().mean().item()
    assert abs(kept - 0.75) < 4 * (0.75 * 0.25 / 65536) ** 0.5


def test_the_cpu_form_draws_the_torch_kernels_masks_at_every_rate():
    """On the CPU the masks are drawn in numpy's uint32 arithmetic (faster); they are the
    int64 torch kernels' bits (the form every other device runs), rates 0 and 1 included,
    padded members too."""
    rate = torch.tensor([0.0, 1e-9, 0.48, 1 - 1e-9, 1.0]).view(-1, 1, 1)
    seeds = [0, 3, 2**31 - 1, 2**32 + 5, 10**12]
    widths = torch.tensor([433, 7, 400, 433, 1])
    for step in (0, 1, 844, 2**40):
        for w in (None, widths):
            args = (seeds, step, 2, (64, 433), rate)
            cpu = rng.keep_mask(*args, widths=w)
            assert cpu.dtype == torch.bool and cpu.shape == (5, 64, 433)
            assert torch.equal(cpu, rng._keep_mask_torch(*args, "cpu", w))
    assert not cpu[4].any() and cpu[0].all()


def test_the_cpu_dropout_multiplier_is_the_torch_form_s_floats():
    """The multiplier a layer's output is scaled by (mask / (1 - rate)), built in numpy on
    the CPU, equals the torch form's cast and division float for float."""
    rate = torch.tensor([0.0, 1e-9, 0.2, 0.48, 1 - 1e-7]).view(-1, 1, 1)
    seeds, widths = [0, 3, 7, 2**31 - 1, 11], torch.tensor([433, 7, 400, 433, 1])
    for step in (0, 5, 2**33):
        for w in (None, widths):
            got = rng.dropout_mask(seeds, step, 1, (64, 433), rate, "cpu", w)
            want = rng._keep_mask_torch(seeds, step, 1, (64, 433), rate, "cpu", w).to(torch.float32).div_(1 - rate)
            assert got.dtype == torch.float32 and got.shape == (5, 64, 433)
            assert torch.equal(got, want)
            assert set(got[2].unique().tolist()) == {0.0, float(torch.tensor(1.0) / (1 - torch.tensor(0.2)))}
