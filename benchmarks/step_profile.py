"""Where a stacked training step spends its time, phase by phase (CPU).

    python benchmarks/step_profile.py 256-256 5 [steps]

Runs the stacked engine's own pieces (batch gather, forward, loss, backward, optimizer)
on the full training split, 5 warm-up steps, then times ``steps`` steps phase by phase
and prints milliseconds per step and the implied seconds per model-epoch.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from tunebook.data import load_dataset  # noqa: E402
from tunebook.engine import rng, stacked  # noqa: E402
from tunebook.engine.common import DeviceData  # noqa: E402
from tunebook.engine.optim import StackedOptimizer, hparams_of  # noqa: E402
from tunebook.spec import parse_spec  # noqa: E402


def main(layers: str, t: int, steps: int = 100) -> None:
    widths = [int(x) for x in layers.split("-")]
    d = DeviceData.from_dataset(load_dataset(), "cpu")
    cfgs = parse_spec(f'[study]\nname = "p"\nseeds = {t}\n[defaults]\nlayers = {widths}\nepochs = 1\n').configs()
    members = stacked.plan_members(cfgs)
    model = stacked.StackedMLP(members, 784, 10, torch.device("cpu"))
    opt = StackedOptimizer(model.params, model.grads, [hparams_of(m.lead) for m in members])
    n = d.x_train.shape[0]
    perm = rng.permutations(model.seeds, 1, n)
    phases = dict.fromkeys(("gather", "forward", "loss", "backward", "optimizer"), 0.0)

    def step(s: int, record: bool) -> None:
        marks = [time.perf_counter()]
        idx = perm[:, s * 64:(s + 1) * 64].reshape(-1)
        xb = d.x_train.index_select(0, idx).view(t, -1, 784)
        yb = d.y_train.index_select(0, idx).view(t, -1)
        marks.append(time.perf_counter())
        logits, cache = model.forward_train(xb, s)
        marks.append(time.perf_counter())
        _, _, dlogits = stacked.loss_and_grad(logits, yb)
        marks.append(time.perf_counter())
        model.backward(cache, dlogits)
        marks.append(time.perf_counter())
        opt.step()
        marks.append(time.perf_counter())
        if record:
            for name, a, b in zip(phases, marks, marks[1:]):
                phases[name] += b - a

    for s in range(5):
        step(s, False)
    for s in range(5, 5 + steps):
        step(s, True)
    total = sum(phases.values()) / steps
    print(f"{layers}, T = {t}, {steps} steps, {torch.get_num_threads()} threads: "
          + ", ".join(f"{k} {1000 * v / steps:.3f} ms" for k, v in phases.items())
          + f"; step {1000 * total:.3f} ms = {total * math.ceil(n / 64) / t:.3f} s per model-epoch")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 100)
