"""Print the error rates and seeds of --until-decided's procedures, by simulation.

    python scripts/sequential_rates.py

5 000 simulated studies per line; looks at 3, 6, ..., 48, 50 seeds per arm (17 looks);
alpha 0.05. The same procedure as tunebook's verdicts (analysis.sequential.simulate),
next to a naive rule: stop at the first look where an unadjusted 95 % t-test rejects.
The test suite asserts the bounds (tests/analysis/test_sequential.py); this prints them.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
from scipy import stats as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from tunebook.analysis.sequential import look_schedule, simulate  # noqa: E402

STUDIES, CAP, START, STEP, ALPHA = 5000, 50, 3, 3, 0.05


def arms(rng, shift=0.0, rho=0.6, skewed=False):
    def noise():
        if not skewed:
            return rng.standard_normal((STUDIES, CAP))
        x = rng.lognormal(0.0, 1.0, (STUDIES, CAP))
        return (x - math.exp(0.5)) / math.sqrt((math.e - 1) * math.e)
    common = noise()
    return (math.sqrt(rho) * common + math.sqrt(1 - rho) * noise() + shift,
            math.sqrt(rho) * common + math.sqrt(1 - rho) * noise())


def naive(a, b, paired):
    hit = np.zeros(len(a), bool)
    for n in look_schedule(START, STEP, CAP):
        if paired:
            d = a[:, :n] - b[:, :n]
            t, df = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n)), n - 1
        else:
            t = (a[:, :n].mean(1) - b[:, :n].mean(1)) / np.sqrt((a[:, :n].var(1, ddof=1) + b[:, :n].var(1, ddof=1)) / n)
            df = 2 * n - 2
        hit |= np.abs(t) > st.t.ppf(0.975, df)
    return hit.mean()


def main() -> None:
    rng = np.random.default_rng(0)
    print("| procedure | data | null: a difference decided | naive repeated t-test | "
          "1-SD effect: supported (median seeds) | no difference, margin 1 SD: negligible (median seeds) |")
    print("|---|---|---|---|---|---|")
    for paired in (True, False):
        for skewed in (False, True):
            a, b = arms(rng, rho=0.6 if paired else 0.0, skewed=skewed)
            d, _ = simulate(a, b, paired, ALPHA, 0.0, START, STEP)
            wrong = np.isin(d, [0, 1]).mean()
            a1, b1 = arms(rng, shift=1.0, rho=0.0, skewed=skewed)
            d1, u1 = simulate(a1, b1, paired, ALPHA, 0.0, START, STEP)
            a0, b0 = arms(rng, rho=0.0, skewed=skewed)
            d0, u0 = simulate(a0, b0, paired, ALPHA, 1.0, START, STEP)
            name = "anytime-valid paired t-test" if paired else "Welch, alpha / 17 looks"
            print(f"| {name} | {'skewed (lognormal)' if skewed else 'normal'} | {wrong:.3f} | {naive(a, b, paired):.3f} | "
                  f"{(d1 == 0).mean():.3f} ({np.median(u1):.0f}) | {(d0 == 2).mean():.3f} ({np.median(u0):.0f}) |")


if __name__ == "__main__":
    main()
