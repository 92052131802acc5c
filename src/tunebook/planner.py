"""Which trials train together: stacked groups chosen by modelled time.

A stack needs one depth, activation, batch size and data split (see
:mod:`tunebook.engine.stacked`); widths and optimizers may differ. Members of different
widths are padded to the widest, which costs arithmetic; every extra group costs its
fixed per-step overhead (kernel launches, the batch gather, the host loop). The planner
weighs the two with a per-device cost model,

    seconds of a group ≈ a · steps + b · FLOPs + c · rows

``steps`` the group's optimizer steps; ``FLOPs`` its members' at the padded shape
(training, and evaluating the validation split every epoch and the test split at
checkpoints); ``rows`` the training images its members gather, batch by batch (the
gather of ``T × batch`` rows of 784 pixels falls out of cache and costs as much as the
arithmetic of a small model). ``a`` is the fixed cost of one step of a group, ``b``
seconds per FLOP, ``c`` seconds per gathered row. Padding changes only the FLOPs term,
grouping only the steps term. The model is *measured* before training, by :func:`tunebook.engine.calibrate.calibrate`
(a few timed epochs of synthetic stacks, about a second),
and stored per machine in ``<out>/.planner.toml`` so that it is measured once.

**Grouping is a deterministic function of the trials and the device kind.** Padded
numbers equal exact-shape numbers only to float rounding, so a plan that followed a model
measured at run time would make the same study's numbers depend on the machine's load at
that moment. By default the planner therefore prices groups with a fixed *reference* model
per device kind (:func:`reference_cost`: figures measured on this project's machines,
docs/performance.md); a measured model refines the plan only when asked
(``pad="measured"``, ``tunebook run --plan measured``), and the report says so.

Within one stackable key, the distinct shapes are sorted by FLOPs and split into
contiguous segments by dynamic programming; a segment trains padded to its widest
shape, cut into as few groups as the memory budget allows. The exact-shape grouping is
one of the partitions considered, so under the model the plan is never slower than it;
a padded segment must be predicted :data:`PAD_MARGIN` cheaper to be chosen.
Without a cost model (``cost=None``) nothing is padded: shapes stay apart, optimizers
still share stacks.

On CUDA, members that can replay a captured CUDA graph (Adam/AdamW without dropout)
are not mixed with members that cannot, which would send the whole group eager.
"""

from __future__ import annotations

import math
import os
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import tomli_w

from . import tomlio
from .datasets import DATASETS, io_sizes, validation_count
from .sizes import flops_per_sample, forward_flops_per_sample, param_count
from .records import TrialConfig

CPU_GROUP_BYTES = 4 << 30  # at most 4 GiB of stacked state per group on the CPU
# On the CPU, throughput per model stops growing past a few dozen members (the batch
# gather falls out of cache; see docs/performance.md) while a bigger group delays the
# first saved result, so CPU groups are capped by count as well.
CPU_MAX_MEMBERS = 64

COST_FILE = ".planner.toml"

#: A padded segment is chosen only if the model predicts it at least this much cheaper
#: than what it replaces: the model misses per-point by up to ~15 % on this CPU (its
#: elementwise work grows with width, which FLOPs do not count), and padding is not free
#: in another way — a padded member's numbers equal its exact-shape numbers only to float
#: rounding, not bit for bit. On the width grid, merges predicted to save 2–5 % made it
#: 4 % slower (docs/performance.md); a GPU's launch-bound small groups save 80 % and more.
PAD_MARGIN = 0.15


# -- what stacks ------------------------------------------------------------------

def graphable(c: TrialConfig) -> bool:
    """Whether a member can be part of a CUDA-graph-replayed group (a captured step holds
    its learning rate fixed, and batch norm's running statistics are not the optimizer's
    state the capture's warm-up undoes)."""
    return (c.optimizer in ("adam", "adamw") and c.dropout == 0 and c.norm != "batch"
            and c.schedule == "constant" and c.warmup == 0)


def skips_of(layers: Sequence[int]) -> tuple[bool, ...]:
    """A residual network's skip into each hidden layer after the first: identity (True,
    where the widths agree) or a projection (False). Members of one stack agree on it."""
    return tuple(a == b for a, b in zip(layers, layers[1:]))


def stack_key(c: TrialConfig, device=None) -> tuple:
    """Trials equal here can train as one stacked model (widths and optimizers aside)."""
    key = (len(c.layers), c.activation, c.batch_size, c.dataset, c.validation, c.split_seed, c.train_subset,
           c.norm, c.residual and skips_of(c.layers), c.regression_loss,
           # a user's model: copies of one architecture (its own hyperparameters) and epoch count
           c.model, c.model_params, c.epochs if c.model else 0)
    if device is not None and device.type == "cuda":
        key += (graphable(c),)
    return key


def padded_shape(shapes: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """The layer widths a stack of these shapes trains at: the widest of each layer."""
    return tuple(max(col) for col in zip(*shapes))


def member_bytes(layers: Sequence[int], batch_size: int, states: int = 2, n_in: int = 784, n_out: int = 10) -> int:
    """Memory one stacked member needs: weights, gradients, optimizer state, activations."""
    acts = batch_size * (n_in + 4 * sum(layers) + 3 * n_out)
    return 4 * (param_count(layers, n_in, n_out) * (2 + states) + acts)


def _states(configs: Sequence[TrialConfig]) -> int:
    return max(1 if c.optimizer in ("sgd", "momentum", "nesterov") else 2 for c in configs)


@dataclass(frozen=True)
class Target:
    """A worker's device as the planner sees it, where that is not this process's device
    (a worker process sharing it, a Ray worker's GPU on another node): its kind, the
    bytes one group may use, and the key of its stored cost model."""

    type: str       # "cpu" | "cuda"
    memory: int     # bytes of stacked state one group may use
    machine: str    # see machine_of


def target_of(device, share: int = 1) -> Target:
    """``device`` as a planning target when ``share`` workers train on it at once (each
    gets that part of the memory budget)."""
    return Target(device.type, group_budget(device) // max(1, share), machine_of(device))


def group_budget(device) -> int:
    if isinstance(device, Target):
        return device.memory
    if device.type == "cuda":
        import torch

        # the device's total memory, not what is free now: the plan must not depend on load
        total = torch.cuda.get_device_properties(device).total_memory
        return int(total * 0.6)
    try:  # physical memory, not what is available now (the same machine, the same plan)
        avail = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        avail = CPU_GROUP_BYTES
    return min(CPU_GROUP_BYTES, avail // 3)


def max_members(c: TrialConfig, device, max_group: int | None = None,
                layers: Sequence[int] | None = None, states: int | None = None) -> int:
    """The largest stacked group of ``c`` (at ``layers`` when padded) that fits the
    device's budget."""
    size = member_bytes(layers or c.layers, c.batch_size, states or _states([c]), *io_sizes(c.dataset))
    cap = max(1, group_budget(device) // size)
    if max_group:  # asked for: replaces the CPU's count cap, never the memory budget
        return min(cap, max_group)
    return min(cap, CPU_MAX_MEMBERS) if device.type == "cpu" else cap


# -- the cost model -----------------------------------------------------------------

@dataclass(frozen=True)
class StepCost:
    """Seconds of one training step of a stacked group: ``a + b · FLOPs + c · rows``."""

    machine: str
    seconds_per_step: float   # a
    seconds_per_flop: float   # b
    seconds_per_row: float = 0.0  # c
    measured: str = ""        # when (ISO time), by which tunebook
    #: the timed stacks: (members, layers, rows per step, FLOPs per step, seconds per step)
    points: tuple[tuple[int, str, int, float, float], ...] = ()

    def step_seconds(self, flops: float, rows: float = 0.0) -> float:
        return self.seconds_per_step + self.seconds_per_flop * flops + self.seconds_per_row * rows

    def describe(self) -> str:
        return (f"{self.machine}: {1e6 * self.seconds_per_step:.1f} µs per step of a group + "
                f"{1e12 * self.seconds_per_flop:.2f} s per TFLOP + {1e9 * self.seconds_per_row:.1f} ns per "
                f"gathered row (measured {self.measured or 'now'})")

    def to_dict(self) -> dict:
        return {"seconds_per_step": self.seconds_per_step, "seconds_per_flop": self.seconds_per_flop,
                "seconds_per_row": self.seconds_per_row, "measured": self.measured,
                "points": [list(p) for p in self.points]}


def machine_of(device) -> str:
    """The key of a stored cost model: this host and its device."""
    from .engine.common import device_name

    if isinstance(device, Target):
        return device.machine

    return f"{socket.gethostname()} {device_name(device)}"


#: The reference step-cost models (seconds per step, per FLOP, per gathered row), one per
#: device kind. The CPU's is the middle of the figures `tunebook calibrate` measured on this
#: project's 2-core CPU VM (31–133 µs a step, 6.6–7.4 s per TFLOP, 1.1–1.3 µs a row;
#: docs/performance.md). The CUDA one is NOT measured (no GPU has been lent since the
#: planner was written): an order-of-magnitude placeholder for a launch-bound GPU, to be
#: replaced by what `tunebook calibrate --device cuda` prints on one (benchmarks/gpu-mixed.sh
#: stores it); until then `--plan measured` plans a GPU by its own measurement. They decide
#: nothing but the plan and are the same on every machine of a kind: same trials, same groups.
REFERENCE_COSTS = {
    "cpu": (80e-6, 7.0e-12, 1.2e-6),
    "cuda": (150e-6, 5.0e-14, 1.0e-9),
}


def reference_cost(device) -> StepCost:
    """The fixed step-cost model of ``device``'s kind (see :data:`REFERENCE_COSTS`)."""
    kind = device.type if device.type in REFERENCE_COSTS else "cpu"
    a, b, c = REFERENCE_COSTS[kind]
    return StepCost(f"reference {kind}", a, b, c, "reference (fixed; `--plan measured` measures this machine)")


def load_cost(root: str | Path, device) -> StepCost | None:
    """The stored cost model of this machine under ``root``, if one was measured."""
    path = Path(root) / COST_FILE
    try:
        doc = tomlio.loads(path.read_text())
        d = doc[machine_of(device)]
        return StepCost(machine_of(device), float(d["seconds_per_step"]), float(d["seconds_per_flop"]),
                        float(d.get("seconds_per_row", 0.0)), str(d.get("measured", "")),
                        tuple(tuple(p) for p in d.get("points", ())))
    except (OSError, KeyError, TypeError, ValueError, tomllib.TOMLDecodeError):
        return None


def store_cost(root: str | Path, cost: StepCost) -> Path:
    """Add (or replace) this machine's model in ``<root>/.planner.toml``; other machines'
    entries are kept."""
    from .store import write_atomic

    from .errors import StoreIOError

    path = Path(root) / COST_FILE
    try:
        doc = tomlio.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        doc = {}
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:  # other machines' entries: not overwritten
        raise StoreIOError(f"{path}: cannot be read ({exc.__class__.__name__}: {exc}); it is tunebook's planner "
                           "file: remove it and the cost model is measured again") from None
    except OSError as exc:
        raise StoreIOError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    doc[cost.machine] = cost.to_dict()
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        write_atomic(path, "# tunebook's planner: seconds of a stacked step = a + b · FLOPs, per machine "
                           "(tunebook calibrate re-measures)\n" + tomli_w.dumps(doc))
    except OSError as exc:
        raise StoreIOError(f"{path}: cannot store the measured cost model: {exc.strerror or exc}") from None
    return path


def cost_for(root: str | Path, device, measure, remeasure: bool = False) -> tuple[StepCost, bool]:
    """This machine's cost model: stored under ``root``, else measured now by ``measure()``
    (:func:`tunebook.engine.calibrate.calibrate`, or an executor's ``measure_cost``, which
    measures on a worker) and stored. Returns the model and whether it was measured now."""
    if not remeasure:
        stored = load_cost(root, device)
        if stored is not None:
            return stored, False
    cost = measure()
    store_cost(root, cost)
    return cost, True


# -- the plan ---------------------------------------------------------------------

def needs_cost(configs: Sequence[TrialConfig], device) -> bool:
    """Whether planning ``configs`` has a choice to make (two shapes could share a stack)."""
    shapes: dict[tuple, set] = {}
    for c in configs:
        shapes.setdefault(stack_key(c, device), set()).add(c.layers)
    return any(len(s) > 1 for s in shapes.values())


def _seconds(lead: TrialConfig, shape: Sequence[int], epochs: Sequence[int], checkpoints: int,
             groups: int, cost: StepCost) -> float:
    """Modelled seconds of training members (``epochs`` each, ``checkpoints`` test
    evaluations in all) at ``shape``, cut into ``groups`` stacks."""
    info = DATASETS[lead.dataset]
    n_val = info.n_test if lead.validation == "test" else validation_count(info, float(lead.validation))
    steps = lead.steps_per_epoch
    sizes = io_sizes(lead.dataset)
    flops = (steps * lead.batch_size * flops_per_sample(shape, *sizes) * sum(epochs)
             + forward_flops_per_sample(shape, *sizes) * (n_val * sum(epochs) + info.n_test * checkpoints))
    rows = steps * lead.batch_size * sum(epochs)
    return (cost.seconds_per_step * steps * groups * max(epochs) + cost.seconds_per_flop * flops
            + cost.seconds_per_row * rows)


def plan_groups(configs: Sequence[TrialConfig], device, max_group: int | None = None,
                cost: StepCost | None = None) -> list[list[TrialConfig]]:
    """Split configs into stacked groups: stackable trials together, padded across
    shapes where ``cost`` says that saves time, no group larger than memory allows.

    Trials that differ only in ``epochs`` count once (they are one member) and are
    never split apart.
    """
    by_key: dict[tuple, dict[tuple, dict[tuple, list[TrialConfig]]]] = {}
    for c in configs:
        by_key.setdefault(stack_key(c, device), {}).setdefault(c.layers, {}).setdefault(c.stream_key, []).append(c)
    groups = []
    for shapes in by_key.values():
        for segment in _segments(shapes, device, max_group, cost):
            groups += _split(segment, device, max_group)
    return groups


def _segments(shapes: dict[tuple, dict[tuple, list[TrialConfig]]], device, max_group, cost):
    """Contiguous runs of shapes (sorted by FLOPs) that train padded together."""
    lead0 = next(iter(next(iter(shapes.values())).values()))[0]
    order = sorted(shapes, key=lambda s: (flops_per_sample(s, *io_sizes(lead0.dataset)), s))
    streams = [list(shapes[s].values()) for s in order]
    if cost is None or len(order) == 1:
        return streams
    lead = streams[0][0][0]
    n = len(order)
    best = [0.0] + [math.inf] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        members: list[list[TrialConfig]] = []
        for i in range(j - 1, -1, -1):
            members += streams[i]
            shape = padded_shape(order[i:j])
            cap = max_members(lead, device, max_group, shape, _states([m[0] for m in members]))
            seconds = _seconds(lead, shape, [max(c.epochs for c in m) for m in members],
                               sum(len(m) for m in members), -(-len(members) // cap), cost)
            if j - i > 1:
                seconds *= 1 + PAD_MARGIN
            if best[i] + seconds < best[j] - 1e-12:
                best[j], cut[j] = best[i] + seconds, i
    out, j = [], n
    while j > 0:
        i = cut[j]
        out.append([m for k in range(i, j) for m in streams[k]])
        j = i
    return out[::-1]


def _split(members: list[list[TrialConfig]], device, max_group) -> list[list[TrialConfig]]:
    """Cut one segment into as few groups as the memory budget allows, evenly, in shape
    order (so each group pads only to its own widest member)."""
    shape = padded_shape([m[0].layers for m in members])
    cap = max_members(members[0][0], device, max_group, shape, _states([m[0] for m in members]))
    n_groups = -(-len(members) // cap)
    base, extra = divmod(len(members), n_groups)  # even split: 10 members, cap 4 -> 4 + 3 + 3
    out, start = [], 0
    for i in range(n_groups):
        size = base + (1 if i < extra else 0)
        out.append([c for m in members[start:start + size] for c in m])
        start += size
    return out


def modelled_seconds(groups: Sequence[Sequence[TrialConfig]], cost: StepCost) -> float:
    """The training time ``cost`` predicts for these groups (the planner's objective)."""
    total = 0.0
    for g in groups:
        epochs = [max(c.epochs for c in m) for m in _streams(g)]
        total += _seconds(g[0], padded_shape([c.layers for c in g]), epochs, len(g), 1, cost)
    return total


def _streams(group: Sequence[TrialConfig]) -> list[list[TrialConfig]]:
    out: dict[tuple, list[TrialConfig]] = {}
    for c in group:
        out.setdefault(c.stream_key, []).append(c)
    return list(out.values())


def group_label(group: Sequence[TrialConfig]) -> str:
    """How progress output names a group: its shape(s), batch size, optimizer(s), size."""
    shapes = sorted({c.layers for c in group}, key=flops_per_sample)
    c = group[0]
    shape = c.label if len(shapes) == 1 else f"{len(shapes)} shapes ≤{'-'.join(map(str, padded_shape(shapes)))}"
    opts = "+".join(sorted({g.optimizer for g in group}))
    return f"{shape} b{c.batch_size} {opts} ×{len({g.stream_key for g in group})}"
