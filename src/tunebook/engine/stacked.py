"""The stacked engine: T trials of one depth trained as one batched model.

Weights are ``[T, in, out]``, biases ``[T, 1, out]``; a layer is one ``baddbmm``. Members
of different widths are padded to the widest (exactly: see :class:`StackedMLP`), members
of different optimizers each keep their own kind's state (:mod:`.optim`). The
forward and backward passes are written out by hand (an MLP's are short), so a step is
a fixed list of batched kernels with no autograd graph, no ``.item()`` and no host sync;
gradients land in preallocated buffers that the optimizer updates in place.

Members never mix: each member's loss is its own batch mean and each gradient slice is
computed from that member's slice alone. A member that diverged (``common.diverged``:
a non-finite or exploded epoch loss) is recorded ``diverged`` and removed from the stack
at the epoch's end, like a member whose last epoch is done; the rest continue on a
smaller stack. Trials that differ only in
``epochs`` are one member: the shorter trials read its state at their epoch counts.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import astuple, dataclass, field, replace
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from ..model import init_params
from ..records import TrialConfig, TrialResult, steps_of
from . import rng
from .common import (GRAD_EVERY, DeviceData, EpochEvent, MemberHistory, Stopper, decided_at, grad_samples,
                     history_from_state, history_state, n_seen, pause_at, paused_results, results_for, under_flush)
from .common import to_device as _to_device
from .common import diverged as is_diverged
from .optim import StackedOptimizer, hparams_of

_SQRT_2PI = math.sqrt(2 * math.pi)
NORM_EPS = 1e-5      # nn.BatchNorm1d's and nn.LayerNorm's eps
HUBER_DELTA = 1.0    # regression_loss = "huber": one SD of the standardised target
BN_MOMENTUM = 0.1    # nn.BatchNorm1d's running-statistics momentum


@dataclass
class Member:
    """One training stream: trials equal in all but ``epochs`` (same seed, same run)."""

    configs: list[TrialConfig]
    history: MemberHistory = field(default_factory=MemberHistory)

    @property
    def lead(self) -> TrialConfig:
        return max(self.configs, key=lambda c: c.epochs)

    @property
    def checkpoints(self) -> set[int]:
        return {c.epochs for c in self.configs}


def plan_members(configs: Sequence[TrialConfig]) -> list[Member]:
    """Merge configs into members and order them so equal optimizer settings are adjacent."""
    streams: dict[tuple, list[TrialConfig]] = {}
    for c in configs:
        streams.setdefault(c.stream_key, []).append(c)
    members = [Member(sorted(cs, key=lambda c: c.epochs)) for cs in streams.values()]
    members.sort(key=lambda m: (astuple(hparams_of(m.lead)), m.lead.dropout, m.lead.seed))
    return members


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    return {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
            "gelu": F.gelu}[name]


def activation_at_zero(name: str) -> float:
    return float(activation(name)(torch.zeros(())))


def activation_grad(name: str, dh: torch.Tensor, a: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
    """dL/dz from dL/da, given a = act(z). ``dh`` is a fresh buffer and may be overwritten."""
    if name == "relu":
        return torch.ops.aten.threshold_backward(dh, a, 0.0)  # one kernel: dh where a > 0
    if name == "tanh":
        return dh.mul_(1 - a * a)
    if name == "sigmoid":
        return dh.mul_(a * (1 - a))
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2)))
    return dh.mul_(cdf + z * torch.exp(-0.5 * z * z) / _SQRT_2PI)


class StackedMLP:
    """Parameters, gradient buffers and the hand-written passes of a stacked MLP.

    Members must have the same depth; their widths may differ. Each hidden layer is then
    padded to the widest member's width: a member's weights sit in the top-left corner
    of its slice and the rest is zero. Zero weights into and out of a padded unit make
    its contribution exactly nothing — forward (its output feeds zero weights), backward
    (the gradient reaching it is zero, so are the gradients of the weights touching it,
    which leaves their optimizer state and the weights themselves at zero). One
    activation is not zero at zero (sigmoid, 0.5): there the padded units are masked.
    A member's initial weights, dropout masks and results are those of its own shape.
    """

    def __init__(self, members: Sequence[Member], n_in: int, n_out: int, device: torch.device):
        lead = members[0].lead
        shapes = [tuple(m.lead.layers) for m in members]
        if len({len(s) for s in shapes}) != 1:
            raise ValueError(f"members of one stack must have the same depth, got {sorted(set(shapes))}")
        self.act_name = lead.activation
        self.act = activation(lead.activation)
        self.device = device
        hidden = [max(col) for col in zip(*shapes)]
        dims = [n_in, *hidden, n_out]
        t = len(members)
        per_member = [init_params(m.lead.seed, m.lead.layers, n_in, n_out, m.lead.init) for m in members]
        self.params: list[torch.Tensor] = []
        for l, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
            w = torch.zeros(t, fan_in, fan_out)
            b = torch.zeros(t, 1, fan_out)
            for i, p in enumerate(per_member):
                out_i, in_i = p[2 * l].shape
                w[i, :in_i, :out_i] = p[2 * l].t()
                b[i, 0, :out_i] = p[2 * l + 1]
            self.params += [w.to(device), b.to(device)]
        self.linear_count = len(dims) - 1
        self.norm, self.residual = lead.norm, lead.residual
        self.huber = lead.regression_loss == "huber"  # one criterion per stack (planner.stack_key)
        # after the linear layers: a norm's scale and shift per hidden layer ([T, 1, width],
        # 1 and 0 on a member's own units, 0 on padded ones), then a residual network's
        # projections ([T, in, out], zero-padded like the weights); indices into params
        self.norm_at: list[int] = []
        self.proj_at: dict[int, int] = {}   # hidden layer j (≥ 1) -> its projection's index
        self.running: list[list[torch.Tensor]] = []  # batch norm: [mean, var] per hidden layer
        if self.norm != "none":
            for l, width in enumerate(hidden):
                g = torch.zeros(t, 1, width)
                for i, s in enumerate(shapes):
                    g[i, 0, :s[l]] = 1.0
                self.norm_at.append(len(self.params))
                self.params += [g.to(device), torch.zeros(t, 1, width, device=device)]
                if self.norm == "batch":
                    self.running.append([torch.zeros(t, 1, width, device=device), g.to(device).clone()])
        if self.residual:
            from ..model import init_projections

            skips = tuple(a == b for a, b in zip(shapes[0][:-1], shapes[0][1:]))  # one pattern per stack
            projections = [init_projections(m.lead.seed, m.lead.layers, m.lead.init) for m in members]
            for j, same in enumerate(skips, start=1):
                if same:
                    continue
                q = torch.zeros(t, hidden[j - 1], hidden[j])
                for i, qs in enumerate(projections):
                    out_i, in_i = qs[j - 1].shape
                    q[i, :in_i, :out_i] = qs[j - 1].t()
                self.proj_at[j] = len(self.params)
                self.params.append(q.to(device))
        self.grads = [torch.zeros_like(p) for p in self.params]
        if self.norm == "batch":  # a batch norm's Linear has no bias (DeepMLP): kept at 0, no gradient
            for l in range(len(hidden)):
                self.params[2 * l + 1].zero_()
        self.rates = torch.tensor([m.lead.dropout for m in members], device=device).view(-1, 1, 1)
        self.dropout = bool((self.rates > 0).any())
        self.smoothing = torch.tensor([m.lead.label_smoothing for m in members], device=device).view(-1, 1)
        self.smoothed = bool((self.smoothing > 0).any())
        self.seeds = [m.lead.seed for m in members]
        self.padded = any(s != tuple(hidden) for s in shapes)
        # per hidden layer: every member's own width ([T] int64), when the stack is padded
        self.widths = ([torch.tensor([s[l] for s in shapes], dtype=torch.int64, device=device)
                        for l in range(len(hidden))] if self.padded else None)
        self.mask_act = self.padded and activation_at_zero(self.act_name) != 0
        self.unit_masks = ([(torch.arange(hidden[l], device=device)[None, :] < w[:, None]).to(torch.float32)
                            .view(t, 1, -1) for l, w in enumerate(self.widths)]
                           if self.padded and (self.mask_act or self.norm == "layer") else None)

    @property
    def n_layers(self) -> int:
        """Linear layers (the hidden ones and the output layer)."""
        return self.linear_count

    def select(self, keep: torch.Tensor) -> None:
        self.params = [p.index_select(0, keep) for p in self.params]
        self.grads = [g.index_select(0, keep) for g in self.grads]
        self.rates = self.rates.index_select(0, keep)
        self.smoothing = self.smoothing.index_select(0, keep)
        self.smoothed = bool((self.smoothing > 0).any())
        self.seeds = [self.seeds[i] for i in keep.tolist()]
        self.dropout = bool((self.rates > 0).any())
        if self.widths is not None:
            self.widths = [w.index_select(0, keep) for w in self.widths]
        if self.unit_masks is not None:
            self.unit_masks = [m.index_select(0, keep) for m in self.unit_masks]
        self.running = [[b.index_select(0, keep) for b in pair] for pair in self.running]

    # -- normalisation (after a hidden linear layer, before its activation) ------------

    def _norm_train(self, l: int, z: torch.Tensor):
        """``y = γ·ẑ + β`` of hidden layer ``l`` and what its backward pass needs. Batch norm:
        over the batch, per unit (nn.BatchNorm1d in training, running statistics updated);
        layer norm: over each member's own units, per row (nn.LayerNorm)."""
        g, b = self.params[self.norm_at[l]], self.params[self.norm_at[l] + 1]
        if self.norm == "batch":
            rows = z.shape[1]
            mean = z.mean(1, keepdim=True)
            zc = z - mean
            var = zc.square().mean(1, keepdim=True)
            running_mean, running_var = self.running[l]
            running_mean.mul_(1 - BN_MOMENTUM).add_(mean, alpha=BN_MOMENTUM)
            running_var.mul_(1 - BN_MOMENTUM).add_(var * (rows / max(rows - 1, 1)), alpha=BN_MOMENTUM)
        else:  # layer norm over each member's own (unpadded) units
            zc, var = _layer_stats(z, self.widths[l] if self.unit_masks is not None else None,
                                   self.unit_masks[l] if self.unit_masks is not None else None)
        rstd = (var + NORM_EPS).rsqrt_()
        zhat = zc.mul_(rstd)
        return torch.addcmul(b, zhat, g), (zhat, rstd)

    def _norm_backward(self, l: int, dy: torch.Tensor, saved) -> torch.Tensor:
        """dL/dz from dL/dy; the scale's and shift's gradients written in place."""
        zhat, rstd = saved
        gi = self.norm_at[l]
        torch.sum(dy * zhat, dim=1, keepdim=True, out=self.grads[gi])
        torch.sum(dy, dim=1, keepdim=True, out=self.grads[gi + 1])
        dxhat = dy.mul_(self.params[gi])
        if self.norm == "batch":
            mean_d = dxhat.mean(1, keepdim=True)
            mean_dz = (dxhat * zhat).mean(1, keepdim=True)
            return (dxhat - mean_d).sub_(zhat * mean_dz).mul_(rstd)
        if self.unit_masks is not None:
            width = self.widths[l].to(torch.float32).view(-1, 1, 1)
            mean_d = dxhat.sum(-1, keepdim=True) / width
            mean_dz = (dxhat * zhat).sum(-1, keepdim=True) / width
            return (dxhat - mean_d).sub_(zhat * mean_dz).mul_(rstd).mul_(self.unit_masks[l])
        mean_d = dxhat.mean(-1, keepdim=True)
        mean_dz = (dxhat * zhat).mean(-1, keepdim=True)
        return (dxhat - mean_d).sub_(zhat * mean_dz).mul_(rstd)

    def _norm_eval(self, l: int, z: torch.Tensor, params, running, masks, widths) -> torch.Tensor:
        """Hidden layer ``l``'s norm at evaluation (batch norm: the running statistics);
        ``params``, ``running``, ``masks``, ``widths``: those of the rows evaluated."""
        g, b = params[self.norm_at[l]], params[self.norm_at[l] + 1]
        if self.norm == "batch":
            mean, var = running[l]
            return torch.addcmul(b, (z - mean).mul_((var + NORM_EPS).rsqrt()), g)
        zc, var = _layer_stats(z, widths[l] if masks is not None else None, masks[l] if masks is not None else None)
        return torch.addcmul(b, zc.mul_((var + NORM_EPS).rsqrt_()), g)

    def forward_train(self, x: torch.Tensor, step: int) -> tuple[torch.Tensor, list]:
        """Logits ``[T, B, classes]`` and, per layer, (input, activation, pre-activation,
        mask, norm's saved tensors)."""
        cache = []
        h = x
        for l in range(self.n_layers):
            z = torch.baddbmm(self.params[2 * l + 1], h, self.params[2 * l])
            if l == self.n_layers - 1:
                cache.append((h, None, None, None, None))
                return z, cache
            saved = None
            if self.norm_at:
                z, saved = self._norm_train(l, z)
            a = self.act(z)
            mask = None
            if self.dropout:
                mask = rng.dropout_mask(self.seeds, step, l, tuple(a.shape[1:]), self.rates, self.device,
                                        None if self.widths is None else self.widths[l])
            if self.mask_act:  # padded units of an activation not zero at zero
                mask = self.unit_masks[l] if mask is None else mask.mul_(self.unit_masks[l])
            cache.append((h, a, z if self.act_name == "gelu" else None, mask, saved))
            out = a * mask if mask is not None else a
            if self.residual and l >= 1:  # the skip: h itself, or its projection
                out = torch.baddbmm(out, h, self.params[self.proj_at[l]]) if l in self.proj_at else out + h
            h = out
        raise AssertionError("an MLP has at least one layer")

    def backward(self, cache: list, dlogits: torch.Tensor) -> None:
        """Fill ``self.grads`` from dL/dlogits (no autograd; dW and db written in place)."""
        dz = dlogits
        carry = None  # a residual skip's share of dL/dh of the layer below
        for l in range(self.n_layers - 1, -1, -1):
            torch.bmm(cache[l][0].transpose(1, 2), dz, out=self.grads[2 * l])
            if l == self.n_layers - 1 or self.norm != "batch":  # before a batch norm: no bias
                torch.sum(dz, dim=1, keepdim=True, out=self.grads[2 * l + 1])
            if l == 0:
                return
            dh = torch.bmm(dz, self.params[2 * l].transpose(1, 2))
            if carry is not None:
                dh.add_(carry)
                carry = None
            h, a, z, mask, saved = cache[l - 1]
            j = l - 1  # the hidden layer whose output is h_l
            if self.residual and j >= 1:
                if j in self.proj_at:
                    q = self.proj_at[j]
                    torch.bmm(h.transpose(1, 2), dh, out=self.grads[q])
                    carry = torch.bmm(dh, self.params[q].transpose(1, 2))
                else:
                    carry = dh
                    dh = dh.clone() if mask is None else dh
            if mask is not None:
                dh = dh * mask if carry is dh else dh.mul_(mask)
            dz = activation_grad(self.act_name, dh, a, z)
            if saved is not None:
                dz = self._norm_backward(j, dz, saved)

    def _outputs(self, x: torch.Tensor, rows: torch.Tensor | None, budget_bytes: int):
        """The network's outputs ``[T, chunk, outputs]`` on ``x``, chunk by chunk (every
        member, or ``rows``): evaluation — no dropout, batch norm's running statistics."""
        pick = (lambda ts: ts) if rows is None else (lambda ts: [v.index_select(0, rows) for v in ts])
        params = pick(self.params)
        running = [pick(pair) for pair in self.running]
        masks = pick(self.unit_masks) if self.unit_masks is not None and self.norm == "layer" else None
        widths = pick(self.widths) if masks is not None else None
        n_linear = self.n_layers
        t, n_in, w1 = params[0].shape
        widest = max(p.shape[-1] for p in params[:2 * n_linear:2])
        chunk = max(256, budget_bytes // (4 * t * widest * 2))
        w_first = params[0].permute(1, 0, 2).reshape(n_in, t * w1)  # one wide GEMM for layer 1
        plain = not self.norm_at and not self.residual
        for s in range(0, x.shape[0], chunk):
            xc = x[s:s + chunk]
            h = (xc @ w_first).view(xc.shape[0], t, w1).transpose(0, 1) + params[1]
            if plain:
                for l in range(1, n_linear):
                    h = torch.baddbmm(params[2 * l + 1], self.act(h), params[2 * l])
            else:
                h = self._eval_hidden(h, params, running, masks, widths)
            yield s, h

    @torch.no_grad()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None,
                 budget_bytes: int = 1 << 28, by_class: bool = False):
        """Mean loss and accuracy of every member (or of ``rows``) on (x, y): ``[T]`` each;
        ``by_class``: and the correct predictions per true class, ``[T, C]`` counts."""
        t = self.params[0].shape[0] if rows is None else rows.shape[0]
        loss = torch.zeros(t, device=x.device, dtype=torch.float64)
        correct = torch.zeros(t, device=x.device, dtype=torch.int64)
        n_out = self.params[2 * self.n_layers - 2].shape[-1]
        hits = torch.zeros(t, n_out, device=x.device, dtype=torch.int64) if by_class else None
        for s, h in self._outputs(x, rows, budget_bytes):
            yc = y[s:s + h.shape[1]]
            logp = torch.log_softmax(h, dim=-1)
            yy = yc.expand(t, -1)
            loss += -logp.gather(-1, yy.unsqueeze(-1)).squeeze(-1).sum(1, dtype=torch.float64)
            right = logp.argmax(-1) == yy
            correct += right.sum(1)
            if hits is not None:
                hits.scatter_add_(1, yy, right.to(torch.int64))
        if hits is not None:
            return loss / x.shape[0], correct.to(torch.float64) / x.shape[0], hits
        return loss / x.shape[0], correct.to(torch.float64) / x.shape[0]

    @torch.no_grad()
    def evaluate_errors(self, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None,
                        budget_bytes: int = 1 << 28) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A regression: the mean training criterion (MSE, or Huber's), the mean squared and
        the mean absolute error of every member (or of ``rows``) on (x, y), ``[T]`` each, in
        the standardised target's units."""
        t = self.params[0].shape[0] if rows is None else rows.shape[0]
        crit = torch.zeros(t, device=x.device, dtype=torch.float64)
        sq = torch.zeros(t, device=x.device, dtype=torch.float64)
        ab = torch.zeros(t, device=x.device, dtype=torch.float64)
        for s, h in self._outputs(x, rows, budget_bytes):
            yc = y[s:s + h.shape[1]]
            err = h[..., 0] - yc
            sq += err.square().sum(1, dtype=torch.float64)
            ab += err.abs().sum(1, dtype=torch.float64)
            if self.huber:
                crit += huber(err).sum(1, dtype=torch.float64)
        n = x.shape[0]
        return (crit if self.huber else sq) / n, sq / n, ab / n

    def _eval_hidden(self, z: torch.Tensor, params, running, masks, widths) -> torch.Tensor:
        """The logits from the first layer's pre-activation ``z``, through every hidden
        layer's norm, activation and skip (evaluation: no dropout; running statistics)."""
        h_in = None
        for l in range(self.n_layers - 1):
            if self.norm_at:
                z = self._norm_eval(l, z, params, running, masks, widths)
            out = self.act(z)
            if self.residual and l >= 1:
                out = torch.baddbmm(out, h_in, params[self.proj_at[l]]) if l in self.proj_at else out + h_in
            h_in = out
            z = torch.baddbmm(params[2 * l + 3], out, params[2 * l + 2])
        return z

    def member_state(self, row: int, layers: Sequence[int], n_in: int, n_out: int) -> dict:
        """Row ``row`` as one network's tensors at its own widths (:mod:`tunebook.weights`)."""
        from ..weights import member_state

        out = member_state(self.params, row, layers, n_in, n_out)
        if self.norm == "batch":
            for l in range(len(layers)):
                del out[f"linear{l}.bias"]
        for l, width in enumerate(layers if self.norm_at else ()):
            g, b = self.params[self.norm_at[l]], self.params[self.norm_at[l] + 1]
            out[f"norm{l}.weight"] = g[row, 0, :width].detach().cpu().numpy().copy()
            out[f"norm{l}.bias"] = b[row, 0, :width].detach().cpu().numpy().copy()
            if self.running:
                out[f"norm{l}.running_mean"] = self.running[l][0][row, 0, :width].cpu().numpy().copy()
                out[f"norm{l}.running_var"] = self.running[l][1][row, 0, :width].cpu().numpy().copy()
        for j, q in self.proj_at.items():
            out[f"skip{j}.weight"] = (self.params[q][row, :layers[j - 1], :layers[j]].t().contiguous()
                                      .cpu().numpy().copy())
        return out


def _layer_stats(z: torch.Tensor, widths: torch.Tensor | None, mask: torch.Tensor | None):
    """Layer norm's centred input and variance over the last axis: over each member's own
    units (``widths`` ``[T]``, ``mask`` ``[T, 1, W]``) in a padded stack, else all of them."""
    if mask is None:
        mean = z.mean(-1, keepdim=True)
        zc = z - mean
        return zc, zc.square().mean(-1, keepdim=True)
    width = widths.to(torch.float32).view(-1, 1, 1)
    mean = z.sum(-1, keepdim=True) / width
    zc = (z - mean).mul_(mask)
    return zc, zc.square().sum(-1, keepdim=True) / width


def loss_and_grad(logits: torch.Tensor, y: torch.Tensor, smoothing: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-member summed cross-entropy, correct count, and dL/dlogits of the batch means.
    ``smoothing`` (``[T, 1]``, each member's label smoothing ``s``): the target is ``1 - s``
    on the label plus ``s / C`` on every class, as torch's ``cross_entropy(label_smoothing=s)``
    — loss ``(1 - s)·nll + s·mean_c(-log p_c)``, gradient ``p - (1 - s)·onehot - s / C``."""
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, y.unsqueeze(-1)).squeeze(-1)
    correct = (logits.argmax(-1) == y).sum(1)
    if smoothing is not None:
        s = smoothing  # [T, 1], broadcast over the batch
        loss = ((1 - s) * nll - s * logp.mean(-1)).sum(1)
    grad = logp.exp_()
    if smoothing is None:
        grad.scatter_add_(-1, y.unsqueeze(-1), torch.full_like(nll, -1.0).unsqueeze(-1))
    else:
        grad.sub_((smoothing / logits.shape[-1]).unsqueeze(-1))
        grad.scatter_add_(-1, y.unsqueeze(-1), (smoothing - 1).expand_as(nll).unsqueeze(-1).contiguous())
        grad.div_(y.shape[1])
        return loss, correct, grad
    grad.div_(y.shape[1])
    return nll.sum(1), correct, grad


def huber(err: torch.Tensor) -> torch.Tensor:
    """Huber's loss of each error, delta :data:`HUBER_DELTA`: ½e² within it, linear beyond."""
    a = err.abs()
    return torch.where(a <= HUBER_DELTA, 0.5 * err.square(), HUBER_DELTA * (a - 0.5 * HUBER_DELTA))


def mse_and_grad(out: torch.Tensor, y: torch.Tensor, huber_loss: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A regression's per-member summed loss, a zero correct count, and dL/dout of the
    batch mean: squared error (torch's ``mse_loss``: gradient ``2 (pred - y) / B``) or,
    with ``huber_loss``, Huber's with delta 1 (``huber_loss``: ½e² within 1, |e| − ½ beyond;
    gradient ``clamp(e, ±1) / B``)."""
    err = out[..., 0] - y
    if huber_loss:
        grad = (err.clamp(-HUBER_DELTA, HUBER_DELTA) / y.shape[1]).unsqueeze(-1)
        return huber(err).sum(1), torch.zeros(y.shape[0], dtype=torch.int64, device=y.device), grad
    grad = (err * (2.0 / y.shape[1])).unsqueeze(-1)
    return err.square().sum(1), torch.zeros(y.shape[0], dtype=torch.int64, device=y.device), grad


def _sync(device: torch.device) -> None:
    """Wait for this thread's work on the device (its current stream: groups training
    concurrently in other threads, on other streams, are not waited for)."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


class EpochLoop:
    """Runs one epoch of training steps for a stacked model (eager kernels).

    A step reads its batch rows from ``self.perm`` (one permutation per member), runs
    forward, loss, backward and the optimizer, and adds the batch's summed loss and
    correct count to per-member accumulators on the device: no host sync anywhere.
    """

    def __init__(self, model: StackedMLP, opt: StackedOptimizer, data: DeviceData, batch_size: int):
        self.model, self.opt, self.data, self.bsz = model, opt, data, batch_size
        self.n = data.x_train.shape[0]
        self.steps = steps_of(self.n, batch_size, model.norm)
        self.grad_sq: torch.Tensor | None = None  # [layers, T]: sampled squared weight-gradient norms

    def step(self, perm: torch.Tensor, s: int, global_step: int,
             loss_sum: torch.Tensor, correct: torch.Tensor) -> None:
        idx = perm[:, s * self.bsz:(s + 1) * self.bsz].reshape(-1)
        t = perm.shape[0]
        xb = self.data.x_train.index_select(0, idx).view(t, -1, self.data.n_features)
        yb = self.data.y_train.index_select(0, idx).view(t, -1)
        logits, cache = self.model.forward_train(xb, global_step)
        if self.data.regression:
            batch_loss, batch_correct, dlogits = mse_and_grad(logits, yb, self.model.huber)
        else:
            batch_loss, batch_correct, dlogits = loss_and_grad(logits, yb,
                                                               self.model.smoothing if self.model.smoothed else None)
        self.model.backward(cache, dlogits)
        if s % GRAD_EVERY == 0:
            g = self.model.grads
            self.grad_sq += torch.stack([g[2 * l].square().sum((1, 2)) for l in range(self.model.n_layers)])
        self.opt.step()
        loss_sum += batch_loss
        correct += batch_correct

    def run(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Train one epoch; return per-member summed loss and correct count (on device)."""
        t = len(self.model.seeds)
        perm = rng.permutations(self.model.seeds, epoch, self.n, self.data.device)
        loss_sum = torch.zeros(t, device=self.data.device, dtype=torch.float64)
        correct = torch.zeros(t, device=self.data.device, dtype=torch.int64)
        self.grad_sq = torch.zeros(self.model.n_layers, t, device=self.data.device, dtype=torch.float64)
        for s in range(self.steps):
            self.step(perm, s, (epoch - 1) * self.steps + s, loss_sum, correct)
        return loss_sum, correct

    def reset(self) -> None:
        """The stack changed shape (members left): forget anything sized to the old one."""


class GraphedEpochLoop(EpochLoop):
    """CUDA only: a whole epoch captured once as a CUDA graph and replayed.

    A small group is bound by kernel-launch overhead (~40 launches a step); replaying a
    captured epoch removes the CPU from the loop. The permutation and the accumulators
    live in static buffers refilled before each replay. The graph is captured again
    only when the stack changes shape. Used for Adam/AdamW without dropout (fused
    kernels, no host-side randomness); anything else runs eagerly.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.graph: torch.cuda.CUDAGraph | None = None

    #: Above this many stacked parameters a step is bound by memory traffic, not launches:
    #: measured on an H200, graphs made a 5 × 128-128 group 3.2× faster (0.030 vs 0.096 s
    #: per model-epoch) but gained nothing at 256 × 128-128 or 1024 × 256-256, while
    #: their memory pool added 36–66 % (docs/performance.md).
    MAX_PARAMS = 8_000_000

    @staticmethod
    def applies(model: StackedMLP, opt: StackedOptimizer) -> bool:
        n_params = sum(p.numel() for p in model.params)
        return (model.device.type == "cuda" and not model.dropout and opt.kinds <= {"adam", "adamw"}
                and not model.running and not any(h.scheduled for h in opt.hparams)
                and n_params <= GraphedEpochLoop.MAX_PARAMS
                and os.environ.get("TUNEBOOK_CUDA_GRAPHS", "1") != "0")

    def reset(self) -> None:
        self.graph = None

    def _capture(self) -> None:
        t = len(self.model.seeds)
        dev = self.data.device
        self.perm = torch.empty(t, self.n, dtype=torch.int64, device=dev)
        self.perm.copy_(rng.permutations(self.model.seeds, 1, self.n, dev))
        self.loss_sum = torch.zeros(t, device=dev, dtype=torch.float64)
        self.correct = torch.zeros(t, device=dev, dtype=torch.int64)
        self.grad_sq = torch.zeros(self.model.n_layers, t, device=dev, dtype=torch.float64)
        # Warm up (cuBLAS handles, allocator) on a side stream, then undo its updates;
        # the same snapshot undoes a capture that fails, so the caller can go eager.
        snap = self.opt.snapshot()
        try:
            side = torch.cuda.Stream(dev)
            side.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(side):
                for s in range(3):
                    self.step(self.perm, s, s, self.loss_sum, self.correct)
            torch.cuda.current_stream(dev).wait_stream(side)
            self.opt.restore(snap)
            graph = torch.cuda.CUDAGraph()
            # thread_local: other threads' groups (tunebook run --concurrent) may keep
            # launching work on their own streams while this one captures
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                for s in range(self.steps):
                    self.step(self.perm, s, s, self.loss_sum, self.correct)
        except RuntimeError:
            self.opt.restore(snap)
            raise
        self.graph = graph

    def run(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.graph is None:
            self._capture()
        self.perm.copy_(rng.permutations(self.model.seeds, epoch, self.n, self.data.device))
        self.loss_sum.zero_()
        self.correct.zero_()
        self.grad_sq.zero_()
        self.graph.replay()
        return self.loss_sum.clone(), self.correct.clone()


def make_loop(model: StackedMLP, opt: StackedOptimizer, data: DeviceData, batch_size: int) -> EpochLoop:
    if GraphedEpochLoop.applies(model, opt):
        return GraphedEpochLoop(model, opt, data, batch_size)
    return EpochLoop(model, opt, data, batch_size)


def _run_epoch(loop: EpochLoop, epoch: int) -> tuple[EpochLoop, torch.Tensor, torch.Tensor]:
    """One epoch of training; if capturing a CUDA graph fails (the capture has undone its
    own steps), train this and later epochs eagerly."""
    if isinstance(loop, GraphedEpochLoop) and loop.graph is None:
        try:
            loop._capture()
        except RuntimeError as exc:
            warnings.warn(f"CUDA graph capture failed ({exc}); training this group eagerly", stacklevel=2)
            loop = EpochLoop(loop.model, loop.opt, loop.data, loop.bsz)
    return (loop, *loop.run(epoch))


@under_flush
def seconds_per_step(configs: Sequence[TrialConfig], data: DeviceData, steps: int) -> float:
    """Wall seconds of one training step of ``configs`` stacked (one group), timed over
    ``steps`` steps after a warm-up epoch of as many (which also captures a CUDA graph):
    the planner's calibration (:mod:`tunebook.engine.calibrate`) times stacks with it."""
    ms = plan_members(configs)
    model = StackedMLP(ms, data.n_features, data.n_outputs, data.device)
    opt = StackedOptimizer(model.params, model.grads, [hparams_of(m.lead) for m in ms],
                           steps_of(data.x_train.shape[0], configs[0].batch_size, model.norm))
    loop = make_loop(model, opt, data, configs[0].batch_size)
    loop.steps = steps
    loop, *_ = _run_epoch(loop, 1)
    _sync(data.device)
    t0 = time.perf_counter()
    loop, *_ = _run_epoch(loop, 2)
    _sync(data.device)
    return (time.perf_counter() - t0) / steps


@under_flush
def train_group(configs: Sequence[TrialConfig], data: DeviceData,
                hooks: Sequence[Callable[[EpochEvent], None]] = (), label: str = "",
                stop: Stopper | None = None, keep: bool = False, checkpoint=None) -> list[TrialResult]:
    """Train configs that share depth, activation and batch size (and data) as one stack;
    widths and optimizers may differ (see :class:`StackedMLP`, :class:`StackedOptimizer`).
    ``keep``: each complete result carries its trained weights, taken from its row of the
    stack at its last epoch at its own widths (``result.weights``).

    ``checkpoint`` (a :class:`tunebook.checkpoints.GroupCheckpoint`): the group goes on from
    the state it holds, if any, and its state is saved at an epoch's end when it is due,
    and whenever a hook interrupts the run there (a budget, Ctrl-C: the exception is
    raised again once the state is saved).

    A user's model (``configs[0].model``) trains in :mod:`.modules` (torch.func) instead:
    stacked where its copies agree, else one by one (weights kept as ``keep`` says; a
    stacked one keeps ``checkpoint`` too; ``stop`` as here)."""
    if configs[0].model:
        from .modules import train_user_models

        return train_user_models(configs, data, hooks, label, keep, checkpoint, stop)
    members = plan_members(configs)
    lead = members[0].lead
    for m in members:
        for key in ("activation", "batch_size", "dataset", "validation", "split_seed", "train_subset"):
            if getattr(m.lead, key) != getattr(lead, key):
                raise ValueError(f"configs of one group must share {key}")
    device = data.device
    t_start = time.perf_counter()
    model = StackedMLP(members, data.n_features, data.n_outputs, device)
    steps = steps_of(data.x_train.shape[0], lead.batch_size, model.norm)
    opt = StackedOptimizer(model.params, model.grads, [hparams_of(m.lead) for m in members], steps)
    rows = list(range(len(members)))  # member index of each stacked row
    kept: dict[str, dict] = {}  # trial id -> its trained weights (with keep)
    lead_ids = [m.lead.trial_id for m in members]  # hashed once, not every epoch
    first, seconds_before = 1, 0.0
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        rows, kept, seconds_before = list(saved["rows"]), dict(saved["kept"]), float(saved["seconds"])
        first = int(saved["epoch"]) + 1
        for m, h in zip(members, saved["histories"]):
            m.history = history_from_state(h)
        if len(rows) < len(members):
            _keep_rows(model, opt, rows)
        opt.restore(_to_device(saved["opt"], device))
        for pair, kept_pair in zip(model.running, saved.get("running", [])):
            for dst, src in zip(pair, kept_pair):
                dst.copy_(src.to(device))
        kept = {tid: {k: t.numpy() for k, t in w.items()} for tid, w in kept.items()}  # as member_state gives them
    max_epochs = max(m.lead.epochs for m in members)
    pausing = pause_at(stop, lead_ids)
    if saved is not None and stop is not None:  # decided at the checkpoint's epoch (a halving rung): stop them now
        at = first - 1
        gone = decided_at(stop, at)
        for i in rows:
            if lead_ids[i] in gone and at < members[i].lead.epochs:
                members[i].history.pruned_epoch = at
        staying = [r for r, i in enumerate(rows) if not members[i].history.pruned_epoch]
        if not staying:
            first = max_epochs + 1  # nothing left to train: the results as they stand
        elif len(staying) < len(rows):
            _keep_rows(model, opt, staying)
            rows = [rows[r] for r in staying]
        if staying and pausing == at:  # paused here already (a search resumed before deciding)
            return _paused(members, data, seconds_before, len(members))
    loop = make_loop(model, opt, data, lead.batch_size)
    n = data.x_train.shape[0]
    for epoch in range(first, max_epochs + 1):
        t0 = time.perf_counter()
        loop, loss_sum, correct = _run_epoch(loop, epoch)
        _sync(device)
        t_train = time.perf_counter() - t0
        if data.regression:  # accuracies are NaN; the errors are kept at the checkpoints
            val_loss, val_mse, val_mae = (v.cpu().tolist() for v in model.evaluate_errors(data.x_val, data.y_val))
            val_acc = [math.nan] * len(val_loss)
        else:
            val_loss, val_acc, val_hits = model.evaluate(data.x_val, data.y_val, by_class=True)
            val_loss, val_acc = val_loss.cpu().tolist(), val_acc.cpu().tolist()
        seen = n_seen(n, lead.batch_size, loop.steps)
        train_loss = (loss_sum / seen).cpu().tolist()  # the epoch's one host sync
        train_acc = (correct.to(torch.float64) / seen).cpu().tolist() if not data.regression else [math.nan] * len(rows)
        grad_norm = (loop.grad_sq / grad_samples(loop.steps)).sqrt_().t().cpu().tolist()  # [T][layers]
        diverged = {r for r in range(len(rows)) if is_diverged(train_loss[r], val_loss[r], data.n_classes)}
        test = _test_at_checkpoints(model, data, [r for r, i in enumerate(rows)
                                                  if epoch in members[i].checkpoints and r not in diverged])
        by_class = class_accuracy(val_hits, data.y_val, list(test)) if test and not data.regression else {}
        if keep:
            for r in test:
                for c in members[rows[r]].configs:
                    if c.epochs == epoch:
                        kept[c.trial_id] = model.member_state(r, c.layers, data.n_features, data.n_outputs)
        _sync(device)
        share = (time.perf_counter() - t0) / len(rows)
        for r, i in enumerate(rows):
            members[i].history.add(train_loss[r], train_acc[r], val_loss[r], val_acc[r], share)
            members[i].history.grad_norm.append(tuple(grad_norm[r]))
            if r in test:
                members[i].history.test[epoch] = test[r][:2]
                if data.regression:
                    members[i].history.errors[epoch] = (val_mse[r], val_mae[r], test[r][2], test[r][3])
                else:
                    members[i].history.val_class[epoch] = by_class[r]
            if r in diverged:
                members[i].history.diverged_epoch = epoch
        event = EpochEvent(label=label, epoch=epoch, max_epochs=max_epochs, members=len(rows),
                           val_acc=[v for r, v in enumerate(val_acc) if r not in diverged],
                           seconds=share * len(rows), train_seconds=t_train,
                           members_detail=tuple((lead_ids[i], train_loss[r], train_acc[r], val_loss[r],
                                                 val_acc[r]) for r, i in enumerate(rows)))
        interrupt = None
        try:
            for hook in hooks:
                hook(event)
        except BaseException as exc:  # a budget or Ctrl-C at this epoch's end: save the state, then stop
            if checkpoint is None:
                raise
            interrupt = exc
        stopped = stop(event) if stop is not None and interrupt is None else set()
        for r, i in enumerate(rows):
            if lead_ids[i] in stopped and r not in diverged and epoch < members[i].lead.epochs:
                members[i].history.pruned_epoch = epoch
        staying = [r for r, i in enumerate(rows) if r not in diverged and epoch < members[i].lead.epochs
                   and not members[i].history.pruned_epoch]
        if not staying:
            if interrupt is not None:
                raise interrupt
            break
        if len(staying) < len(rows):  # members that are done or diverged leave the stack
            _keep_rows(model, opt, staying)
            loop.reset()
            rows = [rows[r] for r in staying]
        pause = pausing == epoch and interrupt is None
        if checkpoint is not None and (interrupt is not None or pause or checkpoint.due()):
            _sync(device)
            checkpoint.save({"epoch": epoch, "rows": rows, "opt": _to_device(opt.snapshot(), "cpu"),
                             "running": _to_device(model.running, "cpu"),
                             "seconds": seconds_before + time.perf_counter() - t_start,
                             "histories": [history_state(m.history) for m in members],
                             "kept": {tid: {k: torch.from_numpy(a) for k, a in w.items()} for tid, w in kept.items()}})
        if interrupt is not None:
            raise interrupt
        if pause:  # a halving rung: the driver ranks the batch, the survivors go on from the checkpoint
            return _paused(members, data, seconds_before + time.perf_counter() - t_start, len(members))
    group_seconds = seconds_before + time.perf_counter() - t_start
    results = [r for m in members
               for r in results_for(m.configs, m.history, data, group_seconds, len(members), engine="stacked")]
    if keep:
        results = [replace(r, weights=kept.get(r.trial_id)) if r.status == "complete" else r for r in results]
    return results


def _keep_rows(model: StackedMLP, opt: StackedOptimizer, keep: list[int]) -> None:
    """Only the stack's rows ``keep`` train on (members done, diverged or pruned leave)."""
    keep_t = torch.tensor(keep, device=model.params[0].device)
    model.select(keep_t)
    opt.select(keep_t, model.params, model.grads)


def _paused(members: Sequence[Member], data: DeviceData, seconds: float, size: int) -> list[TrialResult]:
    return [r for m in members for r in paused_results(m.configs, m.history, data, seconds, size, engine="stacked")]


def class_accuracy(hits: torch.Tensor, y: torch.Tensor, rows: list[int]) -> dict[int, tuple[float, ...]]:
    """Each given stack row's accuracy within every true class (``hits``: ``[T, C]`` counts of
    correct predictions; a class with no row in ``y`` is NaN)."""
    totals = torch.bincount(y, minlength=hits.shape[1]).to(torch.float64)
    acc = (hits.index_select(0, torch.tensor(rows, device=hits.device)).to(torch.float64) / totals).cpu().tolist()
    return {r: tuple(a) for r, a in zip(rows, acc)}


def _test_at_checkpoints(model: StackedMLP, data: DeviceData, rows: list[int]) -> dict[int, tuple[float, float]]:
    """Test loss and accuracy of the given stack rows (members at one of their epoch counts);
    a regression's: (its criterion, NaN, MSE, MAE)."""
    if not rows:
        return {}
    if data.regression:
        crit, mse, mae = model.evaluate_errors(data.x_test, data.y_test, torch.tensor(rows, device=data.device))
        return {r: (c, math.nan, m, a) for r, c, m, a in zip(rows, crit.cpu().tolist(), mse.cpu().tolist(),
                                                              mae.cpu().tolist())}
    loss, acc = model.evaluate(data.x_test, data.y_test, torch.tensor(rows, device=data.device))
    return {r: (lo, a) for r, lo, a in zip(rows, loss.cpu().tolist(), acc.cpu().tolist())}
