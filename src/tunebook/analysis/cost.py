"""What a configuration costs to train, independent of how its trials were grouped.

A stored run records ``train_seconds``, its *share* of a stacked group's wall time: that
depends on the group (a 32-32 trial in a group of 5 "costs" more than a 256-256 trial in a
group of 25), so it must not rank configurations. What belongs to a configuration:

- its parameter count and its training FLOPs (exact, device-free);
- the time to train it *alone* on the recorded device, modelled per machine (host and
  device: "cpu:2 threads" on two hosts are two machines) as

      seconds ≈ a · steps + b · FLOPs

  (``a``: the fixed cost of one optimizer step — kernel launches, the batch gather, the
  host loop; ``b``: seconds per FLOP of arithmetic), fitted by non-negative least squares
  to the stored groups: each group's wall time against its steps and its members' FLOPs.
  One configuration alone is then ``a · its steps + b · its FLOPs``. With fewer than
  :data:`MIN_GROUPS` groups of different shape on a device, ``a`` cannot be told from ``b``
  reliably (two or three points fit any pair); the model is then FLOPs-proportional
  (``a = 0``) and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..records import TrialConfig
from ..store import Run


#: Distinct (steps, FLOPs per step) groups needed to fit a per-step cost.
MIN_GROUPS = 4


def machine(run: Run) -> str:
    """Where a run trained: its host and device (the key of a cost model)."""
    return f"{run.meta.get('host', '?')} {run.result.device}"


@dataclass(frozen=True)
class CostModel:
    device: str           # the machine: host and device
    seconds_per_step: float
    seconds_per_flop: float
    groups: int           # groups the model was fitted on
    fitted: bool          # False: too few groups, FLOPs-proportional
    seconds_per_row: float = 0.0   # per training image gathered (the reference model's c)
    reference: str = ""            # the device kind whose fixed reference model this is ("" if fitted)

    def seconds(self, config: TrialConfig, flops: int) -> float:
        n = steps(config)
        return self.seconds_per_step * n + self.seconds_per_flop * flops + self.seconds_per_row * n * config.batch_size

    def describe(self) -> str:
        if self.reference:
            rows = f" + {1e9 * self.seconds_per_row:.0f} ns per training image" if self.seconds_per_row else ""
            return (f"{self.device}: a fixed reference model of a {self.reference.upper()} "
                    f"({1e3 * self.seconds_per_step:.3g} ms per step + {1e12 * self.seconds_per_flop:.3g} s per "
                    f"TFLOP{rows}; {REFERENCE_TIME[self.reference][3]}; analysis.cost.REFERENCE_TIME) — a model "
                    "of the work, the same on every run, not a timing of this one")
        how = ("fitted by non-negative least squares" if self.fitted
               else f"proportional to FLOPs (fewer than {MIN_GROUPS} distinct groups: no per-step cost fitted)")
        return (f"{self.device}: {1e3 * self.seconds_per_step:.3f} ms per step + "
                f"{1e12 * self.seconds_per_flop:.3f} s per TFLOP, {how}, from {self.groups} groups")


def steps(config: TrialConfig) -> int:
    """Optimizer steps of training ``config`` for its epochs (the last batch may be short)."""
    return config.epochs * config.steps_per_epoch


def _groups(runs: Sequence[Run]) -> dict[str, list[tuple[float, float, float]]]:
    """Per machine: (wall seconds, steps, FLOPs) of each stored group.

    A group is known by its machine, wall time and size (the wall time is measured to the
    nanosecond: two groups never share it). Where only some of its members are stored here
    (the others belong to studies not read), its FLOPs are scaled up from the members
    present to the recorded group size."""
    by_group: dict[tuple, list[Run]] = {}
    for r in runs:
        res = r.result
        if res.status not in ("complete", "diverged") or res.group_seconds <= 0 or not res.device:
            continue
        by_group.setdefault((machine(r), res.group_seconds, res.group_size), []).append(r)
    out: dict[str, list[tuple[float, float, float]]] = {}
    for (where, seconds, size), members in by_group.items():
        streams = {m.trial_id: m for m in members if not m.result.derived_from}
        if not streams:
            continue
        longest = max(streams.values(), key=lambda m: m.result.epochs_run)
        n_steps = steps(longest.config) * longest.result.epochs_run / max(longest.config.epochs, 1)
        flops = float(sum(m.result.flops for m in streams.values())) * size / len(streams)
        out.setdefault(where, []).append((seconds, n_steps, flops))
    return out


def reference_cost_models(runs: Sequence[Run]) -> dict[str, CostModel]:
    """One :class:`CostModel` per machine that trained any of ``runs``, from the planner's
    fixed reference step cost of its device kind (:data:`tunebook.planner.REFERENCE_COSTS`).

    This is what reports rank configurations by: it follows the model's work (steps, FLOPs
    and gathered images — a narrower network of the same depth never costs more), it is
    the same on every run, and it says what it is. A model fitted to this run's group times
    (:func:`fit_cost_models`) moved from 49 to 318 s per TFLOP between two runs on one
    loaded machine and could rank a 32-32 network above a 128-128 one."""
    out = {}
    for r in runs:
        if not r.result.device:
            continue
        where = machine(r)
        if where not in out:
            kind = "cuda" if r.result.device.startswith("cuda") else "cpu"
            a, b, c, _ = REFERENCE_TIME[kind]
            out[where] = CostModel(where, a, b, 0, False, seconds_per_row=c, reference=kind)
    return out


#: Seconds of one configuration trained alone, per device kind: (per step, per FLOP, per
#: training image, where the figures come from). Whole training steps (evaluation and the
#: host loop included), unlike the planner's per-group step cost: the CPU's are the model
#: fitted (:func:`fit_cost_models`, ``scripts/fit_reference_cost.py``) to the 27 stacked groups
#: the programme recorded on this project's 2-core VM (2026-11-28, docs/results.md' earlier
#: cost-models table: 1.603 ms per step + 7.473 s per TFLOP); a GPU's are the
#: planner's reference (no GPU programme has been fitted yet).
REFERENCE_TIME = {
    "cpu": (1.603e-3, 7.473e-12, 0.0, "fitted to the programme's 27 stacked groups on this project's 2-core "
                                      "CPU VM, 2026-11-28"),
    "cuda": (150e-6, 5.0e-14, 1.0e-9, "the planner's unmeasured placeholder for a GPU (no GPU programme "
                                      "fitted yet)"),
}


def fit_cost_models(runs: Sequence[Run]) -> dict[str, CostModel]:
    """One :class:`CostModel` per machine that trained any of ``runs``."""
    from scipy.optimize import nnls

    models = {}
    for device, rows in _groups(runs).items():
        y = np.array([r[0] for r in rows])
        x = np.array([[r[1], r[2]] for r in rows])
        distinct = len({(round(r[1]), round(math.log(r[2] / r[1]), 3)) for r in rows if r[1] and r[2]})
        if distinct >= MIN_GROUPS:
            scale = x.max(axis=0)
            coef, _ = nnls(x / scale, y)
            a, b = coef / scale
            if b > 0:
                models[device] = CostModel(device, float(a), float(b), len(rows), True)
                continue
        models[device] = CostModel(device, 0.0, float(y.sum() / max(x[:, 1].sum(), 1.0)), len(rows), False)
    return models
