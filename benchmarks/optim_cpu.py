"""The CPU's own optimizer and dropout paths against torch's, side by side in one run:

- RMSprop: torch.optim's multi-tensor step (torch's square root) against tunebook's (the
  same kernels, numpy's square root), in a group of one trained by the stacked engine on
  Fashion-MNIST, and the two square roots on their own;
- one update of a group of one, Adam and RMSprop, torch.optim's functional call against
  tunebook's (``optim._adam_cpu``, ``optim._rmsprop_cpu``), at [64, 64] and at the given shape;
- dropout's multiplier, the torch form's cast and division against ``rng.dropout_mask``.

    python benchmarks/optim_cpu.py               # [433, 433, 433], dropout 0.48 (a search's survivor)
    python benchmarks/optim_cpu.py 64 2 0.2      # WIDTH DEPTH DROPOUT

Prints seconds per epoch of each form (two epochs each, interleaved: the machine's drift
hits both alike; the best of each), the two square roots' milliseconds on zeros, on random
numbers and on the trained model's first-layer state, and how often torch's square root
differs from the correctly rounded one (float64's, rounded to float32) on 2^24 consecutive
float32 numbers; then the updates' and the multiplier's times (best of two interleaved rounds).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _ms(f, n: int = 200) -> float:
    f()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return 1000 * (time.perf_counter() - t0) / n


def main(width: int = 433, depth: int = 3, dropout: float = 0.48) -> None:
    torch.set_num_threads(1)
    from tunebook.data import load_dataset
    from tunebook.engine import stacked
    from tunebook.engine.common import DeviceData, flush_denormals
    from tunebook.spec import parse_spec

    data = DeviceData.from_dataset(load_dataset(), "cpu")
    cfgs = parse_spec(f'[study]\nname = "bench"\nseeds = 1\n[defaults]\nlayers = {[width] * depth}\n'
                      f'epochs = 9\nbatch_size = 64\noptimizer = "rmsprop"\nlr = 0.0005\n'
                      f'dropout = {dropout}\n').configs()
    members = stacked.plan_members(cfgs)
    loops = {}
    for form in ("torch.optim", "tunebook"):
        model = stacked.StackedMLP(members, data.n_features, data.n_outputs, data.device)
        opt = stacked.StackedOptimizer(model.params, model.grads, [stacked.hparams_of(m.lead) for m in members])
        opt._cpu = form == "tunebook"  # False: torch.optim's functional rmsprop, as before
        loops[form] = stacked.make_loop(model, opt, data, 64)
    best: dict[str, float] = {}
    with flush_denormals(data.device):
        for form, loop in loops.items():  # a first epoch each: the state leaves zero
            loop.run(1)
        for epoch in (2, 3):
            for form, loop in loops.items():
                t0 = time.perf_counter()
                loop.run(epoch)
                best[form] = min(best.get(form, float("inf")), time.perf_counter() - t0)
        state = loops["tunebook"].opt._runs[0].state["sq"][0]
        zeros, rand = torch.zeros_like(state), torch.rand_like(state)
        sqrt_ms = {name: (_ms(lambda: torch.sqrt(x)), _ms(lambda: np.sqrt(x.numpy())))
                   for name, x in (("zeros", zeros), ("random", rand), ("first layer's state", state))}
    label = "-".join([str(width)] * depth)
    print(f"[{label}], dropout {dropout}, batch 64, one thread; seconds per epoch (best of two):")
    for form, t in best.items():
        print(f"  {form:12s} {t:.3f} s")
    print(f"  ratio torch.optim / tunebook: {best['torch.optim'] / best['tunebook']:.2f}")
    zero_share = float((state == 0).float().mean())
    print(f"square root of a [{', '.join(map(str, state.shape[1:]))}] tensor, ms (torch / numpy):")
    for name, (t, n) in sqrt_ms.items():
        extra = f" ({100 * zero_share:.1f} % zeros)" if name.startswith("first") else ""
        print(f"  {name}{extra}: {t:.3f} / {n:.3f}")
    bits = np.arange(1 << 30, (1 << 30) + (1 << 24), dtype=np.uint32)
    x = bits.view(np.float32)
    exact = np.sqrt(x.astype(np.float64)).astype(np.float32).view(np.uint32)
    off_torch = int((torch.sqrt(torch.from_numpy(x)).numpy().view(np.uint32) != exact).sum())
    off_numpy = int((np.sqrt(x).view(np.uint32) != exact).sum())
    print(f"not correctly rounded, of {len(x)} float32 numbers in [2, 8): torch {off_torch} "
          f"({100 * off_torch / len(x):.2f} %), numpy {off_numpy}")
    updates([64, 64], [width] * depth)
    multiplier(width, dropout)


def updates(*shapes: list[int]) -> None:
    """One optimizer update of a [784, *layers, 10] member: torch.optim's functional call
    (as before: grouping, a counter per tensor) against tunebook's CPU path, ms."""
    from torch.optim import adam, rmsprop

    from tunebook.engine import optim
    from tunebook.engine.common import flush_denormals

    print("one update of a group of one, ms (torch.optim's call / tunebook's):")
    for layers in shapes:
        dims = [784, *layers, 10]
        shapes_ = [s for a, b in zip(dims[:-1], dims[1:]) for s in ((1, a, b), (1, 1, b))]
        p = [torch.randn(*s) * 0.01 for s in shapes_]
        g = [torch.randn(*s) * 1e-3 for s in shapes_]
        for s in g:
            s[:, :50] = 0.0  # rows whose gradient is always zero, as blank pixels give
        m, v, sq = ([torch.zeros_like(t) for t in p] for _ in range(3))
        h_adam, h_rms = optim.OptimHParams("adam", lr=1e-3), optim.OptimHParams("rmsprop", lr=1e-3)
        apart = [torch.tensor(0.0) for _ in p]
        shared = [torch.tensor(0.0)] * len(p)
        forms = {
            "adam": (lambda: adam.adam(p, g, m, v, [], apart, fused=True, amsgrad=False, beta1=0.9, beta2=0.999,
                                       lr=1e-3, weight_decay=0.0, eps=1e-8, maximize=False),
                     lambda: optim._adam_cpu(p, g, m, v, shared, h_adam, 1e-3)),
            "rmsprop": (lambda: rmsprop.rmsprop(p, g, sq, [], [], apart, foreach=True, lr=1e-3, alpha=0.99, eps=1e-8,
                                                weight_decay=0.0, momentum=0.0, centered=False),
                        lambda: optim._rmsprop_cpu(p, g, sq, None, apart, h_rms, 1e-3)),
        }
        label = "-".join(map(str, layers))
        with flush_denormals(torch.device("cpu")):  # as a group trains
            for kind, (theirs, ours) in forms.items():
                t = [min(_ms(theirs, 300), _ms(theirs, 300)), min(_ms(ours, 300), _ms(ours, 300))]
                print(f"  [{label}] {kind}: {t[0]:.3f} / {t[1]:.3f}")


def multiplier(width: int, dropout: float) -> None:
    """Dropout's multiplier of a [64, width] layer: the torch form's cast and division of the
    mask against ``rng.dropout_mask`` (numpy), µs; the mask's own hashing is in both."""
    from tunebook.engine import rng

    rate = torch.tensor([dropout]).view(-1, 1, 1)
    forms = {"torch": lambda: rng.keep_mask([0], 5, 0, (64, width), rate).to(torch.float32).div_(1 - rate),
             "numpy": lambda: rng.dropout_mask([0], 5, 0, (64, width), rate)}
    assert torch.equal(forms["torch"](), forms["numpy"]())
    t = {k: min(_ms(f, 3000), _ms(f, 3000)) * 1000 for k, f in forms.items()}
    print(f"dropout multiplier of a [64, {width}] layer, mask included, µs: torch {t['torch']:.1f} / "
          f"numpy {t['numpy']:.1f}")


if __name__ == "__main__":
    args = sys.argv[1:4]
    main(*(int(a) for a in args[:2]), *(float(a) for a in args[2:3]))
