"""The command line: parse arguments, call the library, print, map errors to exit codes.

Exit codes: 0 done; 1 some trials failed (recorded; the rest ran); 2 bad input (every
problem printed, nothing written); 74 an I/O failure after the inputs were checked (a full
disk, a folder gone read-only: nothing half-written, finished trials kept); 130
interrupted by Ctrl-C or SIGTERM (finished trials are kept, a rerun resumes).

Everything printed is plain text: user input (names, paths, values) is never read as
markup.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ._version import __version__
from .errors import DataError, SpecError, StoreError, StoreIOError, TunebookError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_IO, EXIT_INTERRUPTED = 0, 1, 2, 74, 130
DEMO = Path(__file__).parent / "examples" / "demo.toml"

out = Console(highlight=False, markup=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, markup=False, width=None if sys.stderr.isatty() else 200)

EXIT_CODES = """exit codes:
  0    done
  1    some trials failed (each is recorded with its error; the rest ran)
  2    bad input: every problem is printed as `file: key.path: rule, got value`; nothing is written
  74   an I/O failure after the inputs were checked (full disk, read-only folder); nothing half-written
  130  interrupted (Ctrl-C or SIGTERM): finished trials are kept; the same command resumes"""


def error(msg: str) -> None:
    err.print(Text.assemble(("error: ", "red"), msg), soft_wrap=True)


def warning(msg: str) -> None:
    err.print(Text.assemble(("warning: ", "yellow"), msg), soft_wrap=True)


def _integer(least: int, rule: str):
    """An argparse type: an integer ≥ ``least``, else ``must be <rule>, got '<text>'``."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = least - 1
        if v < least:
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text!r}")
        return v
    return parse


def _n(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


_positive = _integer(1, "a positive integer")


def _seconds(text: str) -> float:
    """An argparse type: a number of seconds ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds ≥ 0, got {text!r}")
    return value
_whole = _integer(0, "a whole number ≥ 0")


def _run_options(args: argparse.Namespace):
    """The flags of `run` (and `demo`) as the library's :class:`tunebook.options.RunOptions`
    (checked as it is made: every problem at once, before anything is written)."""
    from .options import RunOptions

    return RunOptions(device=args.device, engine=args.engine, executor=args.executor, workers=args.workers,
                      ray_address=args.ray_address, concurrent=args.concurrent, retries=args.retries,
                      max_group=args.max_group, pad=False if args.no_pad else ("measured" if args.plan == "measured"
                                                                               else True),
                      max_failures=args.max_failures, data_dir=args.data_dir,
                      checkpoint_every=None if args.no_checkpoints else args.checkpoint_every)


def _command(sub, name: str, summary: str, description: str, examples: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=summary, description=f"{summary}.\n\n{description}",
                          epilog=f"examples:\n{examples}\n\n{EXIT_CODES}",
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunebook", description="tunebook: hyperparameter studies of small neural networks — study files in, "
                                "trained run folders, verdicts over seeds and a lab-notebook report out.",
                                epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"tunebook {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    from .executors import EXECUTORS

    def run_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", default="modellogs", help="root of the run folders (default: modellogs)")
        sp.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
        sp.add_argument("--engine", default="stacked", choices=("stacked", "reference"))
        sp.add_argument("--max-group", type=_positive, help="at most this many trials per stacked group (on the CPU "
                                                             "it replaces the 64-member cap; memory still bounds it)")
        sp.add_argument("--concurrent", type=_positive, default=1, metavar="N",
                        help="train N groups at once, each in its own thread (on CUDA its own stream), "
                             "while finished ones are saved (default 1)")
        sp.add_argument("--executor", default="auto", choices=("auto", *EXECUTORS),
                        help="where groups train: auto (default): a search without a pruner on a CPU of 2+ cores "
                             "in worker processes, one thread each, everything else in this process; "
                             + "; ".join(f"{k.name}: {k.summary}" for k in EXECUTORS.values())
                             + " (ray: pip install 'tunebook[ray]'); results are stored by this process")
        sp.add_argument("--workers", type=_positive, metavar="N",
                        help="with --executor process or ray: groups training at once (default: one per GPU; "
                             "on CPUs one per two cores)")
        sp.add_argument("--ray-address", metavar="ADDR",
                        help="with --executor ray: auto or HOST:PORT joins a running cluster (default: start a "
                             "local Ray instance)")
        sp.add_argument("--retries", type=_whole, default=2, metavar="N",
                        help="send a group again at most N times when its worker dies (default 2)")
        sp.add_argument("--max-failures", type=_positive, default=3, metavar="N",
                        help="start no further group after N groups in a row failed entirely (default 3)")
        sp.add_argument("--no-pad", action="store_true",
                        help="stack only trials of equal layer widths (by default the planner pads different "
                             "widths into one stack where the device kind's fixed reference cost model says it "
                             "is faster)")
        sp.add_argument("--plan", choices=("reference", "measured"), default="reference",
                        help="the planner's cost model: the device kind's fixed reference (default: the same "
                             "trials give the same groups and bit-identical numbers whatever the load) or this "
                             "machine's measured one (`tunebook calibrate`; grouping then depends on when it was "
                             "measured)")
        sp.add_argument("--data-dir", help="folder with the dataset's IDX files (or set TUNEBOOK_DATA)")
        sp.add_argument("--checkpoint-every", type=_seconds, default=60.0, metavar="SECONDS",
                        help="save each training group's state at an epoch's end at most this often (default 60; "
                             "0: every epoch), and at a budget stop or a Ctrl-C: the next run goes on from there "
                             "(in <out>/.checkpoints; local and process executors)")
        sp.add_argument("--no-checkpoints", action="store_true", help="keep no checkpoints (a stopped group "
                                                                          "trains again from its first epoch)")
        sp.add_argument("--fresh", action="store_true",
                        help="keep the old study folder as <study>-<timestamp> and start over")
        sp.add_argument("--no-report", action="store_true", help="do not write the report afterwards")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")

    r = _command(sub, "run", "Run a study file or a folder of them; resumes what is done",
                 "Trains every trial without a final result under --out, stacked many at a time, saves each\n"
                 "as a run folder, then writes the study's report (report/report.md and .html).\n"
                 "--seeds/--epochs/--subset make a smoke test: it is stored apart, in <study>.smoke/.",
                 "  tunebook run examples/quickstart.toml\n"
                 "  tunebook run examples/fashion-mnist/ --device cuda\n"
                 "  tunebook run examples/quickstart.toml --seeds 1 --epochs 1 --subset 2000   # smoke test")
    r.add_argument("path")
    run_options(r)
    r.add_argument("--seeds", type=_positive, help="smoke test: use only the first N seeds")
    r.add_argument("--epochs", type=_positive, help="smoke test: every trial trains N epochs")
    r.add_argument("--subset", type=_positive, help="smoke test: train on N samples of the training split")
    r.add_argument("--until-decided", action="store_true",
                   help="add seeds, round by round, to the configurations of undecided hypotheses until each is "
                        "decided or reaches [study.decide] max_seeds (verdicts stay valid however often it looks)")
    r.add_argument("--budget", help="stop after this much wall time (10m, 90s, 1h) or model-epochs (2000me), "
                                    "checked at every epoch's end of every group (grids, searches, --until-decided, "
                                    "programmes alike); the groups in flight are not stored and the same command "
                                    "goes on")

    v = _command(sub, "validate", "Check study files without training",
                 "Prints each study's trials and model-epochs, or every problem found.",
                 "  tunebook validate examples/fashion-mnist/")
    v.add_argument("path")

    ls = _command(sub, "ls", "List runs as a table (or CSV or JSON)",
                  "One row per run: the study, the trial id, the hyperparameters that vary among the\n"
                  "listed runs, the seed, final accuracies, cost and status. Copies of a run are listed once.\n"
                  "--format csv|json writes every column (as `tunebook export` does).",
                  "  tunebook ls\n  tunebook ls modellogs/07-optimizers --where optimizer=adam --sort=-val_acc\n"
                  "  tunebook ls --where 'lr<0.01' --where status=complete --format csv > runs.csv")
    ls.add_argument("dir", nargs="?", default="modellogs", help="a study folder or a folder of studies")
    ls.add_argument("--where", action="append", default=[], metavar="COND",
                    help="keep rows where COND holds: COLUMN OP VALUE, OP one of = != < <= > >= (repeatable)")
    ls.add_argument("--sort", action="append", default=[], metavar="COLUMN",
                    help="sort by COLUMN (--sort=-COLUMN: descending; repeatable)")
    ls.add_argument("--format", default="table", choices=("table", "csv", "json"))

    s = _command(sub, "show", "Show one run, epoch by epoch",
                 "RUN is a run folder, or a trial id (or a unique prefix of one) under --out.\n"
                 "A trial stored by several studies is shown once, with the studies that hold it.",
                 "  tunebook show 3fa2c1\n  tunebook show modellogs/quickstart/runs/20261128-101500_128-128_s0_3fa2c1e0b7d4")
    s.add_argument("run")
    s.add_argument("--out", default="modellogs")

    rep = _command(sub, "report", "Write report.md and report.html for a study folder",
                   "For a folder of studies: each study's page, plus a combined one in <folder>/report/.",
                   "  tunebook report modellogs/quickstart\n  tunebook report modellogs")
    rep.add_argument("study")

    ex = _command(sub, "export", "Export a study's runs as CSV, JSON or Parquet",
                  "The columns are documented in the README (\"Exported tables\"). --long writes one row\n"
                  "per run and epoch instead of one per run; --by-class one per run and true class.",
                  "  tunebook export modellogs/quickstart --format csv -o runs.csv\n"
                  "  tunebook export modellogs --format parquet --long -o epochs.parquet\n"
                  "  tunebook export modellogs/07-optimizers --by-class -o classes.csv\n"
                  "  tunebook export modellogs/08-search --optuna search.log   # then: optuna-dashboard search.log")
    ex.add_argument("study", help="a study folder or a folder of studies")
    ex.add_argument("--format", default="csv", choices=("csv", "json", "parquet"))
    how = ex.add_mutually_exclusive_group()
    how.add_argument("--long", action="store_true", help="one row per run and epoch")
    how.add_argument("--by-class", action="store_true",
                     help="one row per run and true class: its final validation accuracy within the class")
    ex.add_argument("-o", "--output", help="file to write (default: standard output; required for parquet)")
    ex.add_argument("--optuna", metavar="FILE", help="a searched study as an Optuna journal file "
                                                     "(optuna-dashboard FILE opens it); FILE must not exist")

    cal = _command(sub, "calibrate", "Measure this device's stacked-step cost for the group planner",
                   "Times a few synthetic stacked groups on the device (about a second) and stores\n"
                   "seconds per step = a + b · FLOPs for this machine in <out>/.planner.toml, which\n"
                   "`tunebook run` reads to decide when layers of different widths share a padded stack.\n"
                   "`run` measures it by itself the first time it has a choice to make; this re-measures.",
                   "  tunebook calibrate\n  tunebook calibrate --device cuda --out /data/modellogs")
    cal.add_argument("--out", default="modellogs", help="root of the run folders (default: modellogs)")
    cal.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")

    kp = _command(sub, "keep", "Keep the trained weights of a run",
                  "Lists each RUN in its study's keep.toml, so that [study] keep = \"best\" never removes its\n"
                  "weights. A run whose weights are gone trains again alone (same seed, same data order) and\n"
                  "its weights are written into its folder; a run that trained stacked with other trials\n"
                  "retrains to float rounding of its stored curves, and the command says by how much.",
                  "  tunebook keep modellogs/width-grid/runs/20261201-120000_128-64_s3_ab12cd34ef56")
    kp.add_argument("runs", nargs="+", metavar="RUN", help="run folders")
    kp.add_argument("--device", default="cpu", help="where a run trains again (default: cpu, as stored numbers "
                                                   "are reproduced on the device they trained on)")
    kp.add_argument("--data-dir", help="folder with the dataset's IDX files (or set TUNEBOOK_DATA)")

    pr = _command(sub, "predict", "Predict classes with a kept run's trained model",
                  "Reads FILE (a CSV with the training table's columns, or an .npz holding x, or an .npy of\n"
                  "rows) and writes one line per row: its number, the predicted class and each class's\n"
                  "probability, with the same preprocessing as in training. The run must have kept its\n"
                  "weights ([study] keep = \"best\", the default, keeps the recommended configuration's).",
                  "  tunebook predict modellogs/shapes/runs/20261201-120000_64_s0_ab12cd34ef56 new.csv\n"
                  "  tunebook predict RUN images.npz --out predictions.csv")
    pr.add_argument("run", help="a run folder with weights.safetensors")
    pr.add_argument("file", help="the inputs: .csv, .npz (x) or .npy")
    pr.add_argument("--out", help="write the predictions here (CSV; default: standard output)")

    ds = _command(sub, "datasets", "List the built-in datasets, or fetch and check some",
                  "Lists each built-in dataset's sizes and where its files are (or that they are not here\n"
                  "yet). With --fetch, finds or downloads each NAME into the user cache and checks every file\n"
                  "(SHA-256, shape, labels) as a study would before it trains. TUNEBOOK_MIRROR=URL fetches from\n"
                  "URL/<dataset>/<file> instead of the official locations.",
                  "  tunebook datasets\n  tunebook datasets mnist cifar10 --fetch")
    ds.add_argument("names", nargs="*", metavar="NAME", help="built-in datasets (default: all)")
    ds.add_argument("--fetch", action="store_true", help="download what is missing and check every file")
    ds.add_argument("--data-dir", help="folder with the dataset's files (or set TUNEBOOK_DATA)")

    d = _command(sub, "demo", "A small real study on the full dataset (under a minute on 2 cores)",
                 "Runs the packaged demo study into --out and writes its report.", "  tunebook demo")
    run_options(d)
    return p


def _on_sigterm(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)  # SIGTERM stops like Ctrl-C
    import warnings

    shown = warnings.showwarning
    warnings.showwarning = lambda message, *rest, **kw: warning(str(message))  # tunebook's own: one line
    try:
        return COMMANDS[args.command](args)
    except SpecError as exc:
        for line in exc.problems:
            error(line)
        return EXIT_BAD_INPUT
    except StoreIOError as exc:
        error(str(exc))
        if args.debug:
            raise
        return EXIT_IO
    except (DataError, StoreError) as exc:
        error(str(exc))
        if args.debug:
            raise
        return EXIT_BAD_INPUT
    except OSError as exc:  # an I/O failure no narrower handler named: said, never a traceback
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        error(f"{where}{exc.strerror or exc} (an I/O failure; finished trials are kept, nothing half-written "
              "stays in place)")
        if args.debug:
            raise
        return EXIT_IO
    except KeyboardInterrupt:
        err.print("interrupted: finished trials are kept; run the same command again to resume")
        return EXIT_INTERRUPTED
    except TunebookError as exc:  # pragma: no cover - every subclass is handled above
        error(str(exc))
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
        warnings.showwarning = shown


def cmd_validate(args: argparse.Namespace) -> int:
    from .execute import load_specs
    from .spec import model_epochs

    specs = load_specs(args.path)
    for spec in specs:
        if spec.search is not None:
            plan = spec.search
            out.print(f"{spec.path}: ok — study {spec.name!r}: search of {', '.join(plan.names)} by {plan.sampler}, "
                      f"{plan.trials} proposals ({plan.batch} at a time) × {len(spec.seeds)} seeds")
            continue
        configs = spec.configs()
        out.print(f"{spec.path}: ok — study {spec.name!r}: {_n(len(configs), 'trial', 'trials')} "
                  f"({_n(len(configs) // max(len(spec.seeds), 1), 'configuration', 'configurations')} × "
                  f"{_n(len(spec.seeds), 'seed', 'seeds')}), {model_epochs(configs, shared=False)} model-epochs "
                  f"({model_epochs(configs)} with epoch sharing), {_n(len(spec.hypotheses), 'hypothesis', 'hypotheses')}")
    for note in filter(None, map(_dataset_note, sorted({spec.dataset for spec in specs}))):
        out.print(note)
    if len(specs) > 1:
        union = list({c.trial_id: c for s in specs for c in s.configs()}.values())
        out.print(f"programme: {len(union)} distinct trials, {model_epochs(union)} model-epochs to train "
                  "(trials shared between studies train once)")
    return EXIT_OK


def _dataset_note(name: str) -> str:
    """Where a study's built-in dataset is, or that the first run downloads it ("" for a user's)."""
    from .data import cache_dir, where_found
    from .datasets import DATASETS

    info = DATASETS[name]
    if not info.builtin:
        return ""
    folder = where_found(info)
    if folder is not None:
        return f"dataset {name}: {folder}"
    size = sum(f.size for f in info.files.values())
    return (f"dataset {name}: not on this machine yet; the first run downloads it"
            + (f" ({size / 1e6:.0f} MB)" if size else "") + f" into {cache_dir() / name} "
            f"(or now: tunebook datasets {name} --fetch)")


def cmd_run(args: argparse.Namespace, path: str | None = None) -> int:
    from .execute import load_specs
    from .runner import run

    overrides = {k: v for k, v in (("seeds", getattr(args, "seeds", None)),
                                   ("epochs", getattr(args, "epochs", None)),
                                   ("train_subset", getattr(args, "subset", None))) if v is not None}
    reporter = _quiet_reporter() if args.quiet else _progress_reporter()
    until = getattr(args, "until_decided", False)
    budget = None
    if until or getattr(args, "budget", None) is not None:
        from .budget import Budget

        budget = Budget.parse(args.budget) if args.budget is not None else Budget()  # --budget '' is an error
    specs = [s.with_overrides(**overrides) for s in load_specs(path or args.path)]
    if budget is None or (until and args.budget is None):
        from .budget import Budget

        budget = Budget.of_specs(specs) or budget
        if budget is not None and args.budget is None and any(s.budget for s in specs):
            out.print("budget: " + ", ".join(f"{s.budget} ({s.name})" for s in specs if s.budget)
                      + " from [study] budget" + (" — the smallest holds" if sum(bool(s.budget) for s in specs) > 1
                                                   else "") + "; --budget replaces it")
    if until:
        for s in [s for s in specs if s.search is not None]:
            warning(f"{s.path}: skipped by --until-decided (a searched study has no hypotheses to decide; run it "
                    "without --until-decided)")
        if all(s.search is not None for s in specs):
            raise SpecError([f"{path or args.path}: --until-decided: no grid study to decide"])
    options = _run_options(args)

    def on_done(outcomes: list) -> None:  # each part's locks are still held: its reports are written here
        from .execute import StudyOutcome
        from .loop import DecideOutcome

        if outcomes and isinstance(outcomes[0], StudyOutcome):
            _say_grid(outcomes, args)
        elif outcomes and isinstance(outcomes[0], DecideOutcome):
            _say_decided(outcomes, args, budget)
        else:
            for o in outcomes:
                _say_search(o, o.spec, args)

    programme = run(specs, args.out, options, until_decided=until, fresh=args.fresh, reporter=reporter,
                    budget=budget, on_done=on_done)
    if programme.grid:
        out.print(f"done in {programme.grid[0].seconds:.1f} s (wall time, training and storing)")
    if len(programme.grid) > 1 and not args.no_report:
        _write_combined(list(programme.grid), Path(args.out))
    if len(programme.decided) > 1 and not args.no_report:
        _write_combined([r.last for r in programme.decided], Path(args.out))
    _say_aborted(programme.outcomes)
    return EXIT_FAILED if programme.failed else EXIT_OK


def _say_grid(outcomes, args: argparse.Namespace) -> None:
    for problem in sorted({p for o in outcomes for p in o.problems}):
        warning(problem)
    for o in outcomes:
        if o.restored:
            warning(f"{o.folder}: {o.restored} run folders had lost their TensorBoard events file; "
                    "written again from result.toml")
    for outcome in outcomes:
        _print_outcome(outcome)
        if not args.no_report:
            _write_report(outcome.folder)


def _say_aborted(outcomes) -> None:
    for why in dict.fromkeys(o.aborted for o in outcomes if o.aborted):
        error(why)


def _say_search(o, spec, args: argparse.Namespace) -> None:
    done = [r for r in o.results if r.finished]
    pruned, failed = sum(r.pruned for r in o.results), sum(r.failed and not r.pruned for r in o.results)
    how = ", ".join(x for x in (f"{pruned} pruned" if pruned else "", f"{failed} failed" if failed else "") if x)
    why = {"trials": "every proposal done", "budget": "time budget spent — run the same command to go on",
           "failed": "groups kept failing"}
    seeds = len(spec.seeds)
    out.print(f"{spec.name}: {len(done)} of {spec.search.trials} proposals done{f' ({how})' if how else ''}, each on "
              f"{seeds} seed{'' if seeds == 1 else 's'} ({why[o.stopped]}); {o.seconds:.1f} s")
    best = o.best()
    if best is not None:
        metric = spec.search.objectives[0][0]
        out.print(f"  best mean so far: {best.describe()}: {metric} {best.values[0]:.4f} (a candidate, not a confirmed winner)")
    likely = o.likely_best()
    if likely is not None:
        e, metric = likely.estimate, spec.search.objectives[0][0]
        out.print(f"  likely best after confirmation on {e.n} seeds: {likely.result.describe()}: {metric} {e.mean:.4f} "
                  f"[{e.low:.4f}, {e.high:.4f}], P(best of the {len(o.confirmed)} confirmed) = {e.p_best:.2f}")
        open_ = [c.result.proposal.number for c in o.confirmed if c.versus and c.versus.decision == "undecided"]
        out.print("  decided: best within the margin of every other confirmed proposal" if not open_ else
                  f"  not yet decided against proposal(s) {', '.join(map(str, open_))} (confirm_max_seeds reached)")
    if not args.no_report:
        _write_report(o.folder)


def _say_decided(results, args: argparse.Namespace, budget) -> None:
    for problem in sorted({p for r in results if r.last for p in r.last.problems}):
        warning(problem)
    why = {"decided": "every hypothesis decided", "max_seeds": "the rest reached max_seeds",
           "budget": "budget spent — run the same command to go on", "failed": "trials keep failing"}
    for res in results:
        out.print(f"{res.spec.name}: decided {res.decided} of {_n(res.hypotheses, 'hypothesis', 'hypotheses')} "
                  f"(surviving Holm over the study) after {_n(res.rounds, 'added round', 'added rounds')} "
                  f"({why[res.stopped]})" + (f"; open: {', '.join(res.undecided)}" if res.undecided else ""))
        if not args.no_report:
            _write_report(res.folder)
    total = sum(r.decided for r in results), sum(r.hypotheses for r in results)
    out.print(f"decided {total[0]} of {_n(total[1], 'hypothesis', 'hypotheses')}; {results[0].model_epochs if results else 0} model-epochs "
              f"trained by this call; budget used (training, judging and reports): {budget.describe()}")


def _write_report(folder: Path) -> None:
    from .report import write_report

    paths = write_report(folder)
    out.print(f"report: {paths[0]}")


def _write_combined(outcomes, root: Path) -> None:
    from .report import write_combined_report
    from .store import reading

    with reading():  # each study's analysis reads every other study's runs
        paths = write_combined_report([o.folder for o in outcomes], root)
    out.print(f"combined report: {paths[0]}")


def _print_outcome(outcome) -> None:
    from collections import Counter

    counts = Counter(r.result.status for r in outcome.runs)
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    smoke = f" [smoke test: {outcome.spec.smoke}]" if outcome.spec.smoke else ""
    out.print(f"{outcome.spec.name}{smoke}: {outcome.trained} trained, {outcome.skipped} already done "
              f"({parts}) → {outcome.folder}")
    if outcome.stopped_by_budget:
        from .checkpoints import disk_use, root_of

        trials = {c.trial_id for c in outcome.spec.configs()}
        left = max(0, len(trials) - sum(r.result.done for r in outcome.runs))
        groups, size = disk_use(root_of(outcome.folder.parent), trials)
        kept = (f"{_n(groups, 'group', 'groups')} of this study kept {'its' if groups == 1 else 'their'} state at the "
                f"last epoch ({size / 1e6:.1f} MB in {root_of(outcome.folder.parent)})" if groups else
                "the groups in flight were not stored")
        out.print(f"  budget spent: {left} trials of the study are still to train ({kept}); run the same command "
                  "to go on")
    for run in outcome.failed:
        err.print(Text.assemble(("failed ", "red"), f"{run.path}: {run.result.error.splitlines()[0]}"), soft_wrap=True)


def cmd_demo(args: argparse.Namespace) -> int:
    args.seeds = args.epochs = args.subset = None
    return cmd_run(args, str(DEMO))


def _existing(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise SpecError([f"{path}: no such {what}"])
    return p


def _rows(args: argparse.Namespace, long: bool = False, by_class: bool = False) -> list[dict]:
    """The runs under ``args.dir`` (ls) or ``args.study`` (export) as rows; warnings on stderr."""
    from .results import classes_table, epochs_table, filter_rows, load_runs, runs_table, sort_rows

    root = _existing(args.dir if hasattr(args, "dir") else args.study, "folder")
    problems: list[str] = []
    runs = load_runs(root, problems)
    table = classes_table(runs, problems) if by_class else epochs_table(runs) if long else None
    for p in problems:
        warning(p)
    if table is not None:
        return table
    rows = filter_rows(runs_table(runs), getattr(args, "where", []))
    default = ["study", "layers", "epochs", "batch_size", "optimizer", "lr", "seed"]
    return sort_rows(rows, getattr(args, "sort", []) or default)


def cmd_ls(args: argparse.Namespace) -> int:
    from .results import LS_LEFT, LS_RIGHT, RUN_COLUMNS, export_rows, varying_columns

    rows = _rows(args)
    if args.format != "table":  # for programs: every column, as `export` writes them
        sys.stdout.write(export_rows(rows, RUN_COLUMNS, args.format).decode())
        return EXIT_OK
    varying = varying_columns(rows)
    columns = list(LS_LEFT) + (["layers"] if "layers" not in varying else []) + varying + list(LS_RIGHT)
    if not rows:
        out.print(f"no runs under {args.dir}" + (" match --where" if args.where else ""))
        return EXIT_OK
    table = Table(box=None, header_style="bold")
    for c in columns:
        table.add_column(c, justify="left" if c in ("study", "trial", "layers", "status") else "right")
    for r in rows:
        table.add_row(*[_cell(c, r) for c in columns])
    out.print(table)
    return EXIT_OK


def _cell(col: str, r: dict) -> str:
    v = r[col]
    if col in ("val_acc", "test_acc", "train_acc"):
        return _pct(v)
    if col == "status":
        return v + (" (collapsed)" if r["collapsed"] else "")
    if col == "params":
        return f"{v:,}"
    if col == "train_seconds":
        return f"{v:.2f}"
    if col == "flops":
        return f"{v / 1e12:.3g} T" if v else "—"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _pct(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{100 * x:.2f}%"


def cmd_export(args: argparse.Namespace) -> int:
    from .results import CLASS_COLUMNS, EPOCH_COLUMNS, RUN_COLUMNS, export_rows

    if args.optuna:
        return _export_optuna(args)
    if args.format == "parquet" and not args.output:
        raise SpecError(["--format parquet: needs -o FILE (Parquet is binary)"])
    if args.output:
        from .execute import check_out_dir
        problems = check_out_dir(Path(args.output).parent, "-o", args.output)
        if Path(args.output).is_dir():
            problems.append(f"-o {args.output}: is a folder")
        if problems:
            raise SpecError(problems)
    rows = _rows(args, long=args.long, by_class=args.by_class)
    columns = EPOCH_COLUMNS if args.long else CLASS_COLUMNS if args.by_class else RUN_COLUMNS
    try:
        data = export_rows(rows, columns, args.format)
    except ImportError as exc:
        raise SpecError([f"--format {args.format}: {exc}"]) from None
    if not args.output:
        sys.stdout.write(data.decode())
        return EXIT_OK
    from .store import write_atomic_bytes
    try:
        write_atomic_bytes(Path(args.output), data)
    except OSError as exc:
        raise StoreIOError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
    err.print(f"{len(rows)} rows → {args.output}")
    return EXIT_OK


def _export_optuna(args: argparse.Namespace) -> int:
    from .execute import check_out_dir
    from .search import export_journal, load_search
    from .spec import load_spec

    folder = _existing(args.study, "folder")
    problems = check_out_dir(Path(args.optuna).parent, "--optuna", args.optuna)
    if not (folder / "study.toml").is_file():
        problems.append(f"{args.study}: not a study folder (no study.toml)")
    if problems:
        raise SpecError(problems)
    spec = load_spec(folder / "study.toml", check_selectors=False, recorded=True)
    if spec.search is None:
        raise SpecError([f"{args.study}: --optuna: a grid study has no sampler to export; it needs [search]"])
    results, confirmed = load_search(spec, folder.parent)
    export_journal(spec, results, args.optuna, confirmed)
    err.print(f"{len(results)} proposals" + (f" and {len(confirmed)} confirmed ones (study {spec.name}-confirmation)"
                                             if confirmed else "")
              + f" → {args.optuna} (open with: optuna-dashboard {args.optuna})")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from .store import read_run
    from .results import load_runs

    path = Path(args.run)
    if path.is_dir():
        try:
            runs = [read_run(path)]
        except ValueError as exc:
            raise SpecError([str(exc)]) from None
    else:
        root = _existing(args.out, "folder (--out)")
        everything = load_runs(root)
        ids = sorted({r.trial_id for r in everything if r.trial_id.startswith(args.run.lower())})
        if len(ids) != 1:
            what = f"matches {len(ids)} trials ({', '.join(ids[:5])}{'…' if len(ids) > 5 else ''})" if ids else "matches no trial"
            raise SpecError([f"{args.run}: not a run folder, and as a trial id (prefix) under {root} it {what}"])
        runs = [r for r in everything if r.trial_id == ids[0]]
    run = runs[0]
    c, r = run.config, run.result
    out.print(Text(f"{run.path}", style="bold") + Text(f"  (trial {c.trial_id})"))
    out.print(f"  studies: {', '.join(sorted({x.study for x in runs}))}"
              + (f"  (also at {', '.join(str(x.path) for x in runs[1:])})" if len(runs) > 1 else ""))
    out.print(f"  layers {c.label}  activation {c.activation}  dropout {c.dropout:g}  epochs {c.epochs}  "
              f"batch {c.batch_size}  {c.optimizer} lr {c.lr:g}  wd {c.weight_decay:g}  seed {c.seed}")
    status = r.status + (" (collapsed: stuck at chance accuracy)" if r.collapsed else "")
    out.print(f"  status {status}  val_acc {_pct(r.val_acc)}  test_acc {_pct(r.test_acc)}  "
              f"best epoch {r.best_epoch}  params {r.params:,}  {r.train_seconds:.2f} s "
              f"(group of {r.group_size}: {r.group_seconds:.1f} s)  {r.engine} on {r.device}")
    if r.derived_from:
        out.print(f"  read at epoch {c.epochs} of the longer run {r.derived_from} (epoch sharing)")
    table = Table("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", box=None)
    h = r.history
    for i in range(len(h)):
        table.add_row(str(i + 1), f"{h.train_loss[i]:.4f}", _pct(h.train_acc[i]), f"{h.val_loss[i]:.4f}",
                      _pct(h.val_acc[i]), f"{h.epoch_seconds[i]:.2f}")
    out.print(table)
    if r.error:
        out.print(r.error)
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from .report import is_smoke, write_combined_report, write_report
    from .store import find_studies, reading

    folder = _existing(args.study, "folder")
    studies = find_studies(folder)
    if not studies:
        raise SpecError([f"{folder}: not a study folder (no study.toml), nor a folder of studies"])
    with reading():  # each study's analysis reads every other study's runs
        for study in studies:
            for p in write_report(study, warn=warning):
                out.print(str(p))
        for kind in (False, True):  # full studies and smoke tests get separate combined pages
            group = [st for st in studies if is_smoke(st) == kind]
            if len(group) > 1:
                for p in write_combined_report(group, folder):
                    out.print(str(p))
    return EXIT_OK


def cmd_keep(args: argparse.Namespace) -> int:
    from .runner import keep_run

    for run in args.runs:
        _existing(run, "run folder")
    for run in args.runs:
        k = keep_run(run, device=args.device, data_dir=args.data_dir)
        how = ("its weights were there" if not k.retrained else
               "trained again alone: its curves equal the stored ones bit for bit" if k.exact else
               f"trained again alone: its curves differ from the stored ones by at most {k.max_difference:.2g} "
               "(it trained stacked with other trials: float rounding)")
        out.print(f"kept {k.path} ({how})")
    return EXIT_OK


def cmd_predict(args: argparse.Namespace) -> int:
    import csv
    import io

    import numpy as np

    from .weights import load_model

    run, path = _existing(args.run, "run folder"), _existing(args.file, "file")
    if args.out is not None:
        from .execute import check_out_dir

        problems = check_out_dir(Path(args.out).parent, "--out", args.out)
        if Path(args.out).exists():
            problems.append(f"--out {args.out}: exists; tunebook does not overwrite a file it did not write")
        if problems:
            raise SpecError(problems)
    model = load_model(run)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        from .userdata import _read_table

        inputs = _read_table(path, str(path))
    elif suffix in (".npz", ".npy"):
        try:
            if suffix == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    if "x" not in z.files:
                        raise SpecError([f"{path}: an .npz to predict holds its rows as x (it has "
                                         f"{', '.join(z.files) or 'none'})"])
                    inputs = z["x"]
            else:
                inputs = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SpecError([f"{path}: cannot read the arrays ({exc})"]) from None
    else:
        raise SpecError([f"{path}: predict reads .csv, .npz or .npy files"])
    buf = io.StringIO()
    w = csv.writer(buf)
    if model.regression:  # a number per row, in the target's units
        proba = model.predict_values(inputs)
        target = model.preprocessing.get("target") or "prediction"
        w.writerow(["row", target])
        for i, v in enumerate(proba):
            w.writerow([i + 1, f"{v:.6g}"])
    else:
        proba = model.predict_proba(inputs)
        w.writerow(["row", "class", *(f"p_{c}" for c in model.classes)])
        for i, p in enumerate(proba):
            w.writerow([i + 1, model.classes[int(p.argmax())], *(f"{v:.6f}" for v in p)])
    if args.out is None:
        sys.stdout.write(buf.getvalue())
    else:
        from .store import write_atomic

        write_atomic(Path(args.out), buf.getvalue())
        err.print(f"{len(proba)} predictions → {args.out}")
    return EXIT_OK


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .engine.calibrate import calibrate
    from .engine.common import resolve_device
    from .execute import check_out_dir
    from .planner import COST_FILE, cost_for

    problems = check_out_dir(args.out)
    try:
        dev = resolve_device(args.device)
    except ValueError as exc:
        problems.append(str(exc))
    if problems:
        raise SpecError(problems)
    cost, _ = cost_for(args.out, dev, lambda: calibrate(dev), remeasure=True)
    table = Table("members", "layers", "rows per step", "GFLOP per step", "ms per step", "model (ms)")
    for members, layers, rows, flops, seconds in cost.points:
        table.add_row(str(members), layers, str(rows), f"{flops / 1e9:.3f}", f"{1e3 * seconds:.3f}",
                      f"{1e3 * cost.step_seconds(flops, rows):.3f}")
    out.print(table)
    out.print(cost.describe())
    out.print(f"stored in {Path(args.out) / COST_FILE}")
    return EXIT_OK


def cmd_datasets(args: argparse.Namespace) -> int:
    from .data import fetch_dataset, where_found
    from .datasets import DATASETS

    builtin = [n for n, d in DATASETS.items() if d.builtin]
    unknown = [n for n in args.names if n not in builtin]
    if unknown:
        raise SpecError([f"datasets: unknown built-in dataset {n!r} (built in: {', '.join(builtin)})" for n in unknown])
    names = args.names or builtin
    if args.fetch:
        for name in names:
            folder = fetch_dataset(name, args.data_dir)
            out.print(f"{name}: every file checked, in {folder}")
        return EXIT_OK
    table = Table("dataset", "train", "test", "features", "classes", "files", "about")
    for name in names:
        info = DATASETS[name]
        folder = where_found(info, args.data_dir)
        table.add_row(name, str(info.n_train), str(info.n_test), str(info.n_features), str(info.n_classes),
                      str(folder) if folder else "not here (tunebook datasets NAME --fetch)", info.homepage)
    out.print(table)
    return EXIT_OK


def _quiet_reporter():
    from .execute import Reporter
    return Reporter()


def _progress_reporter():
    from .progress import RichReporter
    return RichReporter(err)


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "ls": cmd_ls, "show": cmd_show,
            "report": cmd_report, "export": cmd_export, "demo": cmd_demo, "calibrate": cmd_calibrate,
            "predict": cmd_predict, "keep": cmd_keep, "datasets": cmd_datasets}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
