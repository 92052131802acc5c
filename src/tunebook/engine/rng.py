"""Counter-based randomness for data order and dropout, identical on every device.

A stream is addressed by integers (seed, epoch, step, layer...) and hashed with a
32-bit integer mixer, so a member's shuffles and dropout masks do not depend on which
group it trains in, on the device, or on how many members sit beside it. The reference
trainer uses the same functions, which is what makes the two engines comparable.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

M32 = 0xFFFFFFFF
_PERM, _DROP = 0x5045524D, 0x44524F50  # stream tags


def _mix_int(x: int) -> int:
    """lowbias32 (C. Wellons' hash-prospector constants) on a Python int."""
    x &= M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def mix32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on an int64 tensor holding values in [0, 2^32). The products wrap
    modulo 2^64 in int64; masking keeps the exact low 32 bits."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & M32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def _mix32_(x: torch.Tensor) -> torch.Tensor:
    """:func:`mix32` in place (``x``: an int64 tensor of values in [0, 2^32) this call owns)."""
    x ^= x >> 16
    x *= 0x7FEB352D
    x &= M32
    x ^= x >> 15
    x *= 0x846CA68B
    x &= M32
    x ^= x >> 16
    return x


def key(*parts: int) -> int:
    """A 32-bit stream key from any number of integers."""
    h = 0x9E3779B9
    for p in parts:
        h = _mix_int(h ^ _mix_int(int(p) & M32) ^ ((int(p) >> 32) & M32))
    return h


def permutations(seeds: Sequence[int], epoch: int, n: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """One permutation of ``range(n)`` per seed for this epoch: int64 ``[T, n]``."""
    bases = torch.tensor([key(_PERM, s, epoch) for s in seeds], dtype=torch.int64, device=device)
    i = torch.arange(n, dtype=torch.int64, device=device)
    keys = mix32(mix32((i[None, :] + bases[:, None]) & M32) ^ bases[:, None])
    return torch.argsort(keys, dim=1, stable=True)


def keep_mask(seeds: Sequence[int], step: int, layer: int, shape: tuple[int, int],
              rate: torch.Tensor, device: torch.device | str = "cpu",
              widths: torch.Tensor | None = None) -> torch.Tensor:
    """Dropout keep-mask ``[T, B, W]``: element kept when its hash >= rate · 2^32 (the
    hash: one round of lowbias32 on the element's counter plus its stream's key — half the
    arithmetic of hashing twice, which cost a [272, 272, 272] group a third of its step).

    ``rate`` is a float tensor ``[T, 1, 1]`` of per-member dropout rates. Element (b, j)
    of a member is counter ``b · width + j`` of its stream, ``width`` being the layer's
    width in that member's own shape: ``widths`` (int64 ``[T]``) when members of
    different widths are padded to ``W``, so a padded member draws the very mask it
    would draw alone (entries past its width are unused).
    """
    if torch.device(device).type == "cpu":
        return _keep_mask_cpu(seeds, step, layer, shape, rate, widths)
    return _keep_mask_torch(seeds, step, layer, shape, rate, device, widths)


def _keep_mask_torch(seeds, step, layer, shape, rate, device, widths) -> torch.Tensor:
    """:func:`keep_mask` in int64 torch kernels (any device)."""
    bases = torch.tensor([key(_DROP, s, step, layer) for s in seeds], dtype=torch.int64, device=device)
    if widths is None:
        i = torch.arange(shape[0] * shape[1], dtype=torch.int64, device=device).view(1, *shape)
    else:
        rows = torch.arange(shape[0], dtype=torch.int64, device=device).view(1, -1, 1) * widths.view(-1, 1, 1)
        i = rows + torch.arange(shape[1], dtype=torch.int64, device=device).view(1, 1, -1)
    u = i + bases.view(-1, 1, 1)
    u &= M32
    _mix32_(u)  # one round of lowbias32 over counters offset by a well-mixed key: mix32(...) in place
    # kept when u >= rate · 2^32; for an integer u that is u >= ceil(rate · 2^32), exactly
    return u >= torch.ceil(rate.to(torch.float64) * float(1 << 32)).to(torch.int64)


def dropout_mask(seeds: Sequence[int], step: int, layer: int, shape: tuple[int, int],
                 rate: torch.Tensor, device: torch.device | str = "cpu",
                 widths: torch.Tensor | None = None) -> torch.Tensor:
    """Inverted dropout's multiplier ``[T, B, W]`` (float32): :func:`keep_mask` divided by
    each member's ``1 - rate`` — what a layer's output is multiplied by. On the CPU in
    numpy from the mask's bits (the same IEEE operations, so the same floats; a [64, 433]
    layer's multiplier, mask included, 69 µs in the torch form against 50 µs:
    ``python benchmarks/optim_cpu.py``)."""
    if torch.device(device).type == "cpu":
        r = rate.numpy().astype(np.float32)
        scale = np.float32(1) / (np.float32(1) - r)
        return torch.from_numpy(np.multiply(_keep_cpu(seeds, step, layer, shape, rate, widths), scale))
    keep = _keep_mask_torch(seeds, step, layer, shape, rate, device, widths)
    return keep.to(torch.float32).div_(1 - rate)


def _keep_mask_cpu(seeds, step, layer, shape, rate, widths) -> torch.Tensor:
    """:func:`keep_mask` on the CPU, the same bits in numpy's uint32 arithmetic, which wraps
    at 2^32 by itself and is vectorised: 3.5× faster than torch's int64 kernels for a
    [64, 433] mask on one thread (``benchmarks/masks.py``)."""
    return torch.from_numpy(_keep_cpu(seeds, step, layer, shape, rate, widths))


def _keep_cpu(seeds, step, layer, shape, rate, widths) -> np.ndarray:
    """:func:`_keep_mask_cpu`'s numpy bool array."""
    bases = np.array([key(_DROP, s, step, layer) for s in seeds], dtype=np.uint32).reshape(-1, 1, 1)
    if widths is None:
        u = np.arange(shape[0] * shape[1], dtype=np.uint32).reshape(1, *shape) + bases
    else:
        rows = np.arange(shape[0], dtype=np.uint32).reshape(1, -1, 1) * widths.numpy().astype(np.uint32).reshape(-1, 1, 1)
        u = rows + np.arange(shape[1], dtype=np.uint32).reshape(1, 1, -1) + bases
    t = np.empty_like(u)
    for shift, mul in ((16, 0x7FEB352D), (15, 0x846CA68B), (16, 0)):  # lowbias32, in place
        np.right_shift(u, shift, out=t)
        u ^= t
        if mul:
            u *= np.uint32(mul)
    # kept when u >= ceil(rate · 2^32) (as the torch form); a threshold of 2^32 keeps nothing
    # (in numpy too: the torch form's four small kernels on [T, 1, 1] cost a call a quarter of its time)
    limit = np.ceil(rate.numpy().astype(np.float64) * float(1 << 32)).astype(np.int64).reshape(-1, 1, 1)
    keep = u >= np.minimum(limit, M32).astype(np.uint32)
    if (limit > M32).any():
        keep &= limit <= M32
    return keep
