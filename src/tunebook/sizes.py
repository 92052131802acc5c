"""An MLP's sizes: its parameter count and its exact training FLOPs — arithmetic only, no
torch, so that a driver process can plan groups without importing it (its workers do)."""

from __future__ import annotations

from typing import Sequence


def layer_sizes(layers: Sequence[int], n_in: int = 784, n_out: int = 10) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of every Linear layer, output layer included."""
    dims = [n_in, *layers, n_out]
    return list(zip(dims[:-1], dims[1:]))


def param_count(layers: Sequence[int], n_in: int = 784, n_out: int = 10) -> int:
    return sum(i * o + o for i, o in layer_sizes(layers, n_in, n_out))


def forward_flops_per_sample(layers: Sequence[int], n_in: int = 784, n_out: int = 10) -> int:
    """FLOPs of one sample's forward pass (evaluation): 2·in·out + out per layer."""
    return sum(2 * i * o + o for i, o in layer_sizes(layers, n_in, n_out))


def flops_per_sample(layers: Sequence[int], n_in: int = 784, n_out: int = 10) -> int:
    """Training FLOPs for one sample: matmuls (2 per multiply-add) and bias adds.

    Forward: 2·in·out + out per layer. Backward: the weight gradient (2·in·out) and bias
    gradient (out) of every layer, and the input gradient (2·in·out) of every layer but
    the first (the images need none). Activations, the loss and the optimizer are
    elementwise work and not counted.
    """
    sizes = layer_sizes(layers, n_in, n_out)
    fwd = forward_flops_per_sample(layers, n_in, n_out)
    bwd = fwd + sum(2 * i * o for i, o in sizes[1:])
    return fwd + bwd


def train_flops(layers: Sequence[int], samples_per_epoch: int, epochs: int,
                n_in: int = 784, n_out: int = 10) -> int:
    return flops_per_sample(layers, n_in, n_out) * samples_per_epoch * epochs


def extra_param_count(layers: Sequence[int], norm: str = "none", residual: bool = False) -> int:
    """Parameters beyond the linear layers: a norm's scale and shift per hidden unit, and
    a residual network's projections (where consecutive widths differ). Batch norm's
    Linear layers have no bias (the norm's shift takes its place)."""
    n = {"none": 0, "layer": 2 * sum(layers), "batch": sum(layers)}[norm]
    if residual:
        n += sum(a * b for a, b in zip(layers[:-1], layers[1:]) if a != b)
    return n
