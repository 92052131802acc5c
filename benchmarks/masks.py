"""Dropout keep-masks on the CPU, side by side in one run: the int64 torch kernels (the
form every other device runs) and the numpy uint32 form the CPU uses (the same bits).

    python benchmarks/masks.py [WIDTH] [STEPS]     # default 433, 2532 (three layers' epoch)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from tunebook.engine import rng  # noqa: E402


def main(width: int = 433, steps: int = 2532) -> None:
    torch.set_num_threads(1)
    rate = torch.tensor([0.48]).view(-1, 1, 1)
    forms = {"torch int64": lambda s: rng._keep_mask_torch([0], s, 0, (64, width), rate, "cpu", None),
             "numpy uint32": lambda s: rng._keep_mask_cpu([0], s, 0, (64, width), rate, None)}
    assert all(torch.equal(forms["torch int64"](s), forms["numpy uint32"](s)) for s in range(20))
    times = {}
    for _ in range(2):  # interleaved twice: the machine's drift hits both alike
        for name, f in forms.items():
            t0 = time.perf_counter()
            for s in range(steps):
                f(s)
            times[name] = min(times.get(name, float("inf")), (time.perf_counter() - t0) / steps)
    for name, t in times.items():
        print(f"[64, {width}] mask, {name}: {1000 * t:.3f} ms")
    print(f"ratio torch / numpy: {times['torch int64'] / times['numpy uint32']:.2f}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
