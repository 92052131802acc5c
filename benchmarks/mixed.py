"""Mixed-shape stacks and the planner, side by side in one run.

    python benchmarks/mixed.py                                   # CPU: width grid, random widths
    python benchmarks/mixed.py --only programme                  # CPU: the log's programme (~30 min)
    python benchmarks/mixed.py --device cuda --only width,random,programme

Sections (each variant trains the same trials; training wall time of the groups,
evaluation included, storing excluded — the store's cost is the same for all):

  width      the width grid (examples/fashion-mnist/01-width-grid.toml: 16 shapes × 5
             seeds × 3 epochs) as (1) today's groups — one per shape and optimizer —,
             (2) one padded group of all 80 members, (3) the planner's plan, trained one
             group at a time and with each --concurrent count (groups at once, each in
             its own thread and CUDA stream, through tunebook's own concurrent path);
  random     64 trials of random widths (two hidden layers, each log-uniform in
             32–1024, one trial per shape, as a sampler proposes them) as (1) the
             reference loop one by one, (2) exact-shape groups (64 groups of one),
             (3) the planner's plan, (4) one padded group;
  programme  every trial of examples/fashion-mnist/ (shared trials once) as today's
             groups and as the planner's plan (with each --concurrent count).

"Today's groups" are the grouping before mixed stacks: one key per layer shape,
activation, batch size, optimizer and data split, cut evenly by the memory cap. The
planner's cost model is measured at the start of this run (printed) and used for (3).
Ratios are computed from numbers measured in this one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def todays_groups(configs, device, max_group=None):
    """The grouping before mixed stacks: exact shapes and one optimizer per group."""
    from tunebook.planner import _split, plan_groups

    groups = []
    for g in plan_groups(configs, device, max_group):  # exact shapes (no cost model)
        by_opt: dict[str, dict[tuple, list]] = {}
        for c in g:
            by_opt.setdefault(c.optimizer, {}).setdefault(c.stream_key, []).append(c)
        for streams in by_opt.values():
            groups += _split(list(streams.values()), device, max_group)
    return groups


def train(groups, device, engine="stacked") -> tuple[float, list]:
    """Train each group (data loaded before the clock starts); wall seconds, results."""
    import torch

    from tunebook.engine import ENGINES
    from tunebook.training import device_data

    for g in groups:
        device_data(g[0], device, None)
    results = []
    t0 = time.perf_counter()
    for g in groups:
        results += ENGINES[engine](g, device_data(g[0], device, None))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, results


def train_concurrently(groups, device, workers: int) -> tuple[float, list]:
    """The groups through tunebook's own concurrent path (the local executor's
    ``train_concurrently``), ``workers`` at a time, into a sink without a store: what
    `tunebook run --concurrent N` trains."""
    import torch

    from tunebook.execute import LiveSlot
    from tunebook.executors import Work
    from tunebook.executors.local import train_concurrently
    from tunebook.planner import group_label
    from tunebook.reporter import Reporter
    from tunebook.training import device_data

    class Collect:  # the executor contract's sink, keeping results in memory
        reporter = Reporter()

        def may_start(self):
            return True

        def epoch(self, event):
            pass

        def slot(self, group):
            return LiveSlot(list(group))

        def finish(self, slot, rs):
            results.extend(rs)

    for g in groups:
        device_data(g[0], device, None)
    results: list = []
    t0 = time.perf_counter()
    train_concurrently(Work(tuple(tuple(g) for g in groups), tuple(group_label(g) for g in groups)), Collect(),
                       device, workers)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, results


def planner_rows(groups, device, args) -> list[tuple[str, list, float]]:
    """The planner's groups, one at a time and with each --concurrent count asked for."""
    rows = []
    for workers in args.concurrent:
        if workers == 1:
            seconds, _ = train(groups, device)
            rows.append(("planner", groups, seconds))
        else:
            seconds, _ = train_concurrently(groups, device, workers)
            rows.append((f"planner, {workers} groups at once", groups, seconds))
        print(f"  ({rows[-1][0]}: {seconds:.1f} s)", flush=True)
    return rows


def describe(groups) -> str:
    sizes = sorted((len({c.stream_key for c in g}) for g in groups), reverse=True)
    shown = ", ".join(map(str, sizes[:8])) + (", …" if len(sizes) > 8 else "")
    return f"{len(groups)} groups ({shown})"


def table(title: str, rows: list[tuple[str, list, float]], base: int = 0) -> None:
    print(f"\n{title}")
    print(f"  {'variant':<34} {'groups':<34} {'seconds':>9} {'vs ' + rows[base][0][:3]:>8}")
    for name, groups, seconds in rows:
        ratio = rows[base][2] / seconds if seconds > 0 else math.nan
        print(f"  {name:<34} {describe(groups):<34} {seconds:9.2f} {ratio:7.2f}×")


def _check_same(a, b, what):
    """Padded numbers are the exact ones up to float rounding: say how far apart."""
    by_id = {r.trial_id: r for r in b}
    worst = max(abs(x - y) for r in a if r.status == "complete"
                for x, y in zip(r.history.train_loss, by_id[r.trial_id].history.train_loss))
    print(f"  largest |Δ train loss| between {what}: {worst:.2e}")


def width(device, cost, args):
    from tunebook.planner import plan_groups
    from tunebook.spec import load_spec

    configs = load_spec(ROOT / "examples/fashion-mnist/01-width-grid.toml").configs()
    if args.subset:
        configs = [dataclasses.replace(c, train_subset=args.subset) for c in configs]
    today = todays_groups(configs, device)
    one = plan_groups(configs, device, max_group=len(configs),
                      cost=cost.__class__("one", 1e9, 1e-30))  # everything in one stack
    planned = plan_groups(configs, device, cost=cost)
    rows = []
    results = {}
    for name, groups in (("today (per shape)", today), ("one padded group", one)):
        seconds, results[name] = train(groups, device)
        rows.append((name, groups, seconds))
        print(f"  ({name}: {seconds:.1f} s)", flush=True)
    rows += planner_rows(planned, device, args)
    table(f"width grid: {len(configs)} trials, 16 shapes × 5 seeds × 3 epochs", rows)
    _check_same(results["one padded group"], results["today (per shape)"], "one padded group and today's")


def random_widths(device, cost, args):
    from tunebook.planner import plan_groups
    from tunebook.spec import parse_spec

    rng = random.Random(args.seed)
    shapes = set()
    while len(shapes) < args.trials:
        shapes.add(tuple(int(round(math.exp(rng.uniform(math.log(32), math.log(1024))))) for _ in range(2)))
    subset = f"train_subset = {args.subset}\n" if args.subset else ""
    spec = parse_spec(f'[study]\nname = "random"\nseeds = 1\n{subset}[defaults]\nlayers = [32, 32]\n'
                      f'epochs = {args.random_epochs}\nbatch_size = 64\noptimizer = "adam"\nlr = 0.001\n'
                      f'[grid]\nlayers = {[list(s) for s in sorted(shapes)]}\n')
    configs = spec.configs()
    rows = []
    one_by_one = [[c] for c in configs]
    seconds, ref = train(one_by_one, device, "reference")
    rows.append(("reference loop, one by one", one_by_one, seconds))
    exact = plan_groups(configs, device)
    seconds, _ = train(exact, device)
    rows.append(("stacked, exact shapes", exact, seconds))
    planned = plan_groups(configs, device, cost=cost)
    seconds, _ = train(planned, device)
    rows.append(("planner", planned, seconds))
    one = plan_groups(configs, device, max_group=len(configs), cost=cost.__class__("one", 1e9, 1e-30))
    seconds, padded = train(one, device)
    rows.append(("one padded group", one, seconds))
    table(f"random widths: {len(configs)} trials of two layers in 32–1024, {args.random_epochs} epoch(s)"
          + (f", {args.subset} training samples" if args.subset else ""), rows)
    _check_same(padded, ref, "one padded group and the reference loop")


def programme(device, cost, args):
    from tunebook.execute import load_specs
    from tunebook.planner import plan_groups

    configs = list({c.trial_id: c for s in load_specs(ROOT / "examples/fashion-mnist") for c in s.configs()}.values())
    today = todays_groups(configs, device)
    seconds, _ = train(today, device)
    print(f"  (today: {seconds:.1f} s)", flush=True)
    rows = [("today (shape, optimizer)", today, seconds)]
    rows += planner_rows(plan_groups(configs, device, cost=cost), device, args)
    table(f"the log's programme: {len(configs)} trials (shared trials once)", rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", default="width,random", help="comma-separated: width, random, programme")
    ap.add_argument("--trials", type=int, default=64, help="random widths: how many shapes")
    ap.add_argument("--random-epochs", type=int, default=1)
    ap.add_argument("--subset", type=int, help="train on this many samples (width and random sections)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrent", default="1", help="comma-separated group counts trained at once for the "
                                                      "planner's rows (width, programme), e.g. 1,2,4")
    args = ap.parse_args()
    args.concurrent = [int(x) for x in args.concurrent.split(",")]

    import torch

    from tunebook.engine.calibrate import calibrate

    device = torch.device(args.device)
    torch.manual_seed(0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"# benchmarks/mixed.py --device {args.device}: {name}, torch {torch.__version__}")
    cost = calibrate(device)
    print(f"planner cost model, measured now: {cost.describe()}")
    for members, layers, rows, flops, seconds in cost.points:
        print(f"    {members:4d} × {layers:<9} {rows:6d} rows {flops / 1e9:9.3f} GFLOP/step  {1e3 * seconds:8.3f} "
              f"ms/step (model {1e3 * cost.step_seconds(flops, rows):8.3f})")
    sections = {"width": width, "random": random_widths, "programme": programme}
    for part in args.only.split(","):
        sections[part.strip()](device, cost, args)


if __name__ == "__main__":
    main()
