"""The MLP: its initial weights and its torch module (its sizes are :mod:`tunebook.sizes`,
named here too).

Both engines draw initial weights from :func:`init_params`, so a stacked member and the
reference trainer with the same seed start from the same numbers (torch.nn.Linear's
scheme: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn layer by layer).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .sizes import (extra_param_count, flops_per_sample, forward_flops_per_sample, layer_sizes,  # noqa: F401
                    param_count, train_flops)


def init_params(seed: int, layers: Sequence[int], n_in: int = 784, n_out: int = 10,
                init: str = "default") -> list[torch.Tensor]:
    """[W1, b1, W2, b2, ...] on the CPU, W in nn.Linear's layout [out, in], drawn layer by
    layer from one generator seeded with ``seed``:

    - ``default``: nn.Linear's, weight and bias ~ U(±1/sqrt(fan_in));
    - ``he``: weight ~ N(0, 2/fan_in) (He et al. 2015, for ReLU-like units), bias 0;
    - ``glorot``: weight ~ U(±sqrt(6/(fan_in + fan_out))) (Glorot & Bengio 2010), bias 0.
    """
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for fan_in, fan_out in layer_sizes(layers, n_in, n_out):
        if init == "he":
            out.append(torch.empty(fan_out, fan_in).normal_(0.0, math.sqrt(2.0 / fan_in), generator=g))
            out.append(torch.zeros(fan_out))
        elif init == "glorot":
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            out.append(torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=g))
            out.append(torch.zeros(fan_out))
        elif init == "default":
            bound = 1.0 / math.sqrt(fan_in)
            out.append(torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=g))
            out.append(torch.empty(fan_out).uniform_(-bound, bound, generator=g))
        else:
            raise ValueError(f"init: must be default, he or glorot, got {init!r}")
    return out


def init_projections(seed: int, layers: Sequence[int], init: str = "default") -> list["torch.Tensor | None"]:
    """A residual network's skips into hidden layers 2, 3, …: None where the widths agree
    (an identity), else a bias-free projection ``[out, in]`` drawn as the layers' weights
    are (``init``), from a generator of its own (so the layers' draws are unchanged)."""
    from .engine.rng import key

    g = torch.Generator().manual_seed(key(int(seed), 0x534B4950) & 0x7FFFFFFFFFFF)  # "SKIP"
    out: list[torch.Tensor | None] = []
    for fan_in, fan_out in zip(layers[:-1], layers[1:]):
        if fan_in == fan_out:
            out.append(None)
        elif init == "he":
            out.append(torch.empty(fan_out, fan_in).normal_(0.0, math.sqrt(2.0 / fan_in), generator=g))
        elif init == "glorot":
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            out.append(torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=g))
        else:
            bound = 1.0 / math.sqrt(fan_in)
            out.append(torch.empty(fan_out, fan_in).uniform_(-bound, bound, generator=g))
    return out


#: torch.nn's module of each activation.
ACTIVATION_MODULES = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}


class DeepMLP(nn.Module):
    """An MLP with normalisation and/or residual connections, from plain ``torch.nn`` layers.

    Hidden layer ``l``: ``Linear → norm (BatchNorm1d | LayerNorm | none) → activation →
    dropout``; before a batch norm the Linear has no bias (the norm subtracts it again, so
    its gradient is rounding noise, which Adam would turn into full-size steps); with ``residual``, from the second hidden layer on its output is that plus
    the layer's input — the identity where the widths agree, else a bias-free ``Linear``
    projection. The output layer is a plain ``Linear``."""

    def __init__(self, layers, n_in: int, n_out: int, activation: str, norm: str, residual: bool,
                 drops: Sequence[nn.Module]):
        super().__init__()
        dims = [n_in, *layers, n_out]
        self.linears = nn.ModuleList(nn.Linear(i, o, bias=norm != "batch" or l == len(layers))
                                     for l, (i, o) in enumerate(zip(dims[:-1], dims[1:])))
        norms = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}
        self.norms = nn.ModuleList(norms[norm](w) if norm != "none" else nn.Identity() for w in layers)
        self.acts = nn.ModuleList(ACTIVATION_MODULES[activation]() for _ in layers)
        self.drops = nn.ModuleList(drops)
        self.residual = residual
        self.skips = nn.ModuleList(nn.Identity() if a == b else nn.Linear(a, b, bias=False)
                                   for a, b in zip(layers[:-1], layers[1:])) if residual else nn.ModuleList()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for l in range(len(self.norms)):
            a = self.drops[l](self.acts[l](self.norms[l](self.linears[l](h))))
            h = a + self.skips[l - 1](h) if self.residual and l >= 1 else a
        return self.linears[-1](h)
