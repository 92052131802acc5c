"""The stacked optimizers against torch.optim, step for step."""

from __future__ import annotations

import pytest
import torch

from tunebook.engine.optim import OptimHParams, StackedOptimizer, torch_optimizer

CASES = [
    OptimHParams("sgd", lr=0.1),
    OptimHParams("sgd", lr=0.05, weight_decay=1e-3),
    OptimHParams("momentum", lr=0.05, momentum=0.9),
    OptimHParams("nesterov", lr=0.05, momentum=0.8, weight_decay=1e-4),
    OptimHParams("adam", lr=1e-3),
    OptimHParams("adam", lr=3e-3, beta1=0.8, beta2=0.99, weight_decay=1e-4),
    OptimHParams("adamw", lr=1e-3, weight_decay=0.01),
    OptimHParams("rmsprop", lr=1e-3),
    OptimHParams("rmsprop", lr=1e-3, momentum=0.5, weight_decay=1e-4),
]
SHAPES = [(6, 5), (1, 5), (5, 3), (1, 3)]


def _grads(step: int, t: int, gen: torch.Generator) -> list[torch.Tensor]:
    return [torch.randn(t, *s, generator=gen) for s in SHAPES]


def _stack(hs, seed: int, steps: int):
    """Initial parameters, per-step gradients, and a StackedOptimizer over copies of the
    parameters with its gradient buffers: (init, grads, params, gbufs, opt)."""
    gen = torch.Generator().manual_seed(seed)
    init = [torch.randn(len(hs), *s, generator=gen) for s in SHAPES]
    grads = [_grads(i, len(hs), gen) for i in range(steps)]
    params = [p.clone() for p in init]
    gbufs = [torch.zeros_like(p) for p in params]
    return init, grads, params, gbufs, StackedOptimizer(params, gbufs, hs)


def _step(opt, gbufs, g) -> None:
    for buf, gi in zip(gbufs, g):
        buf.copy_(gi)
    opt.step()


def _run_torch(h: OptimHParams, init: list[torch.Tensor], grads: list[list[torch.Tensor]]):
    params = [torch.nn.Parameter(p.clone()) for p in init]
    opt = torch_optimizer(params, h)
    for g in grads:
        for p, gi in zip(params, g):
            p.grad = gi.clone()
        opt.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("h", CASES, ids=lambda h: f"{h.kind}-{h.lr}-{h.weight_decay}")
def test_one_member_matches_torch_optim_for_50_steps(h):
    init, grads, params, gbufs, opt = _stack([h], seed=0, steps=50)
    for g in grads:
        _step(opt, gbufs, g)
    want = _run_torch(h, [p[0] for p in init], [[gi[0] for gi in g] for g in grads])
    for got, exp in zip(params, want):
        torch.testing.assert_close(got[0], exp, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam", "adamw", "rmsprop"])
def test_each_member_matches_torch_optim_alone(kind):
    hs = [OptimHParams(kind, lr=lr, momentum=0.9 if kind == "momentum" else 0.0,
                       weight_decay=wd) for lr, wd in [(1e-3, 0), (1e-3, 0), (3e-3, 1e-3), (1e-2, 0)]]
    init, grads, params, gbufs, opt = _stack(hs, seed=1, steps=30)
    assert len(opt._runs) == 3  # members 0 and 1 share one fused call
    for g in grads:
        _step(opt, gbufs, g)
    for t, h in enumerate(hs):
        want = _run_torch(h, [p[t] for p in init], [[gi[t] for gi in g] for g in grads])
        for got, exp in zip(params, want):
            torch.testing.assert_close(got[t], exp, rtol=1e-5, atol=1e-7)


def test_select_keeps_state_of_the_remaining_members():
    hs = [OptimHParams("adam", lr=1e-2), OptimHParams("adam", lr=1e-3)]
    params = [torch.ones(2, 3, 4)]
    grads = [torch.ones(2, 3, 4)]
    opt = StackedOptimizer(params, grads, hs)
    opt.step()
    keep = torch.tensor([1])
    params2, grads2 = [params[0][keep].clone()], [grads[0][keep].clone()]
    opt.select(keep, params2, grads2)
    opt.step()
    alone = torch.nn.Parameter(torch.ones(3, 4))
    ref = torch.optim.Adam([alone], lr=1e-3)
    for _ in range(2):
        alone.grad = torch.ones(3, 4)
        ref.step()
    torch.testing.assert_close(params2[0][0], alone.detach())


def test_mixed_kinds_in_one_stack_each_match_torch_optim_alone():
    """One stack, six optimizer kinds: each run keeps its own kind's state and updates as
    torch.optim would for that member alone, and selecting members keeps it so."""
    hs = sorted([OptimHParams("adam", 1e-3), OptimHParams("sgd", 0.1), OptimHParams("momentum", 0.05, momentum=0.9),
                 OptimHParams("rmsprop", 1e-3, momentum=0.5), OptimHParams("adamw", 1e-3, weight_decay=0.01),
                 OptimHParams("nesterov", 0.05, momentum=0.8)], key=lambda h: h.kind)
    init, grads, params, gbufs, opt = _stack(hs, seed=2, steps=20)
    assert opt.kinds == {h.kind for h in hs} and len(opt._runs) == 6
    assert set(opt._runs[0].state) == {"m", "v"} and set(opt._runs[-1].state) == {"buf"}  # adam, sgd
    keep = torch.tensor([0, 2, 5])
    for i, g in enumerate(grads):
        if i == 10:  # members 1, 3, 4 leave the stack half-way
            params = [p.index_select(0, keep) for p in params]
            gbufs = [gb.index_select(0, keep) for gb in gbufs]
            opt.select(keep, params, gbufs)
            assert opt.kinds == {hs[i].kind for i in keep.tolist()}
        rows = keep if i >= 10 else torch.arange(len(hs))
        _step(opt, gbufs, [gi.index_select(0, rows) for gi in g])
    for row, t in enumerate(keep.tolist()):
        want = _run_torch(hs[t], [p[t] for p in init], [[gi[t] for gi in g] for g in grads])
        for got, exp in zip(params, want):
            torch.testing.assert_close(got[row], exp, rtol=1e-5, atol=1e-7)



@pytest.mark.parametrize("momentum, weight_decay", [(0.0, 0.0), (0.5, 1e-4)])
def test_rmsprop_on_the_cpu_is_torch_s_step_with_a_correctly_rounded_square_root(momentum, weight_decay):
    """The CPU's RMSprop is torch.optim's multi-tensor step, kernel for kernel, except the
    square root: numpy's (correctly rounded), where torch's AVX-512 kernel is one ulp off on
    some inputs. Pinned bit for bit against the same kernels with float64's root rounded to
    float32 (the correctly rounded one), on states that are zero in places (a blank input)."""
    h = OptimHParams("rmsprop", lr=1e-3, momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(3)
    shapes = [(2, 300, 40), (2, 1, 40)]  # large enough for torch's vector kernels
    init = [torch.randn(*s, generator=gen) for s in shapes]
    grads = [[torch.randn(*s, generator=gen) for s in shapes] for _ in range(20)]
    for g in grads:
        for gi in g:
            gi[:, :1] = 0.0  # rows whose gradient is always zero: their state stays zero
    params = [t.clone() for t in init]
    gbufs = [torch.zeros_like(t) for t in params]
    opt = StackedOptimizer(params, gbufs, [h, h])
    p = [t.clone() for t in init]
    sq = [torch.zeros_like(t) for t in p]
    buf = [torch.zeros_like(t) for t in p]
    for g in grads:
        _step(opt, gbufs, g)
        for i, gi in enumerate(g):
            gi = gi + weight_decay * p[i] if weight_decay else gi
            sq[i].mul_(h.alpha).addcmul_(gi, gi, value=1 - h.alpha)
            avg = sq[i].double().sqrt().float().add_(h.eps)
            if momentum:
                buf[i].mul_(momentum).addcdiv_(gi, avg)
                p[i].add_(buf[i], alpha=-h.lr)
            else:
                p[i].addcdiv_(gi, avg, value=-h.lr)
    for got, exp in zip(params, p):
        assert torch.equal(got, exp)
    if not weight_decay:  # a gradient that is always zero moves nothing
        assert all(torch.equal(t[:, :1], i[:, :1]) for t, i in zip(params, init))
    assert all(int(s) == 20 for run in opt._runs for s in run.steps)  # torch's step counters, as torch keeps them


@pytest.mark.parametrize("kind", ["adam", "adamw"])
def test_adam_on_the_cpu_is_torch_s_fused_kernel_with_one_step_counter(kind):
    """The CPU's Adam calls torch's fused kernel itself (no grouping, one shared counter
    per run): bit for bit torch.optim's fused Adam/AdamW, and the counter counts each step once."""
    h = OptimHParams(kind, lr=2e-3, weight_decay=0.01)
    gen = torch.Generator().manual_seed(5)
    shapes = [(1, 300, 40), (1, 1, 40), (1, 40, 10)]
    init = [torch.randn(*s, generator=gen) for s in shapes]
    grads = [[torch.randn(*s, generator=gen) for s in shapes] for _ in range(30)]
    params = [t.clone() for t in init]
    gbufs = [torch.zeros_like(t) for t in params]
    opt = StackedOptimizer(params, gbufs, [h])
    ref = [torch.nn.Parameter(t[0].clone()) for t in init]
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    ref_opt = cls(ref, lr=h.lr, betas=(h.beta1, h.beta2), eps=h.eps, weight_decay=h.weight_decay, fused=True)
    for g in grads:
        _step(opt, gbufs, g)
        for r, gi in zip(ref, g):
            r.grad = gi[0].clone()
        ref_opt.step()
    for got, exp in zip(params, ref):
        assert torch.equal(got[0], exp.detach())
    (run,) = opt._runs
    assert len({id(s) for s in run.steps}) == 1 and float(run.steps[0]) == 30


@pytest.mark.parametrize("kind", ["adam", "rmsprop"])
def test_a_stack_of_other_dtypes_takes_torch_optim_s_own_step(kind):
    """The CPU's own Adam and RMSprop paths are for float32 stacks; a user's module with a
    float64 tensor among its parameters is updated by torch.optim's functional step."""
    h = OptimHParams(kind, lr=1e-3)
    init = [torch.randn(1, 30, 20, dtype=torch.float64), torch.randn(1, 1, 20)]
    grads = [[torch.randn_like(t) for t in init] for _ in range(5)]
    params = [t.clone() for t in init]
    gbufs = [torch.zeros_like(t) for t in params]
    opt = StackedOptimizer(params, gbufs, [h])
    assert not opt._cpu
    for g in grads:
        _step(opt, gbufs, g)
    want = _run_torch(h, [t[0] for t in init], [[gi[0] for gi in g] for g in grads])
    for got, exp in zip(params, want):
        torch.testing.assert_close(got[0], exp, rtol=1e-5, atol=1e-7)
