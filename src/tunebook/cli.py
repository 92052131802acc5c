"""The command line: parse arguments, call the library, print, map errors to exit codes.

Exit codes: 0 done; 1 some trials failed; 2 bad input (nothing written);
130 interrupted (finished trials are kept, a rerun resumes).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Sequence

from rich.console import Console
from rich.table import Table

from .errors import DataError, SpecError, StoreError, TunebookError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
DEMO = Path(__file__).parent / "examples" / "demo.toml"

out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunebook", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    def run_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--out", default="modellogs", help="root of the run folders (default: modellogs)")
        sp.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
        sp.add_argument("--engine", default="stacked", choices=("stacked", "reference"))
        sp.add_argument("--max-group", type=_positive, help="at most this many trials per stacked group")
        sp.add_argument("--data-dir", help="folder with the dataset's IDX files (or set TUNEBOOK_DATA)")
        sp.add_argument("--fresh", action="store_true",
                        help="keep the old study folder under a timestamped name and start over")
        sp.add_argument("--no-report", action="store_true", help="do not write the report afterwards")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")

    r = sub.add_parser("run", help="run a study file or a folder of them; resumes what is done")
    r.add_argument("path")
    run_options(r)
    r.add_argument("--seeds", type=_positive, help="smoke test: use only the first N seeds")
    r.add_argument("--epochs", type=_positive, help="smoke test: every trial trains N epochs")
    r.add_argument("--subset", type=_positive, help="smoke test: train on N samples of the training split")

    v = sub.add_parser("validate", help="check study files without training")
    v.add_argument("path")

    ls = sub.add_parser("ls", help="list studies and runs as a table")
    ls.add_argument("dir", nargs="?", default="modellogs")

    s = sub.add_parser("show", help="show one run folder (or a trial id under --out)")
    s.add_argument("run")
    s.add_argument("--out", default="modellogs")

    rep = sub.add_parser("report", help="write report.md and report.html for a study folder "
                                        "(or for each study of a folder, plus a combined one)")
    rep.add_argument("study")

    d = sub.add_parser("demo", help="a small real study on the full dataset (under a minute on 2 cores)")
    run_options(d)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except SpecError as exc:
        for line in exc.problems:
            err.print(f"[red]error:[/red] {line}", markup=True, soft_wrap=True)
        return EXIT_BAD_INPUT
    except (DataError, StoreError) as exc:
        err.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        if args.debug:
            raise
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        err.print("interrupted: finished trials are kept; run the same command again to resume")
        return EXIT_INTERRUPTED
    except TunebookError as exc:  # pragma: no cover - every subclass is handled above
        err.print(f"error: {exc}")
        return EXIT_FAILED


def cmd_validate(args: argparse.Namespace) -> int:
    from .execute import load_specs
    from .spec import model_epochs

    specs = load_specs(args.path)
    for spec in specs:
        configs = spec.configs()
        out.print(f"{spec.path}: ok — study {spec.name!r}: {len(configs)} trials "
                  f"({len(configs) // max(len(spec.seeds), 1)} configurations × {len(spec.seeds)} seeds), "
                  f"{model_epochs(configs, shared=False)} model-epochs "
                  f"({model_epochs(configs)} with epoch sharing), {len(spec.hypotheses)} hypotheses")
    if len(specs) > 1:
        union = list({c.trial_id: c for s in specs for c in s.configs()}.values())
        out.print(f"programme: {len(union)} distinct trials, {model_epochs(union)} model-epochs to train "
                  "(trials shared between studies train once)")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, path: str | None = None) -> int:
    from .execute import run_path

    overrides = {k: v for k, v in (("seeds", getattr(args, "seeds", None)),
                                   ("epochs", getattr(args, "epochs", None)),
                                   ("train_subset", getattr(args, "subset", None))) if v is not None}
    reporter = _quiet_reporter() if args.quiet else _progress_reporter()
    outcomes = run_path(path or args.path, args.out, device=args.device, engine=args.engine,
                        max_group=args.max_group, fresh=args.fresh, data_dir=args.data_dir,
                        reporter=reporter, **overrides)
    for problem in sorted({p for o in outcomes for p in o.problems}):
        err.print(f"[yellow]warning:[/yellow] skipped unreadable run: {problem}", soft_wrap=True)
    for outcome in outcomes:
        _print_outcome(outcome)
        if not args.no_report:
            _write_report(outcome.folder)
    if outcomes:
        out.print(f"done in {outcomes[0].seconds:.1f} s (wall time, training and storing)")
    if len(outcomes) > 1 and not args.no_report:
        _write_combined(outcomes, Path(args.out))
    return EXIT_FAILED if any(o.failed for o in outcomes) else EXIT_OK


def _write_report(folder: Path) -> None:
    from .report import write_report

    paths = write_report(folder)
    out.print(f"report: {paths[0]}")


def _write_combined(outcomes, root: Path) -> None:
    from .report import write_combined_report

    paths = write_combined_report([o.folder for o in outcomes], root)
    out.print(f"combined report: {paths[0]}")


def _print_outcome(outcome) -> None:
    from collections import Counter

    counts = Counter(r.result.status for r in outcome.runs)
    parts = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    out.print(f"{outcome.spec.name}: {outcome.trained} trained, {outcome.skipped} already done "
              f"({parts}) → {outcome.folder}")
    for run in outcome.failed:
        err.print(f"[red]failed[/red] {run.path}: {run.result.error.splitlines()[0]}", soft_wrap=True)


def cmd_demo(args: argparse.Namespace) -> int:
    args.seeds = args.epochs = args.subset = None
    return cmd_run(args, str(DEMO))


def cmd_ls(args: argparse.Namespace) -> int:
    from .results import COLUMNS, load_runs, runs_table

    problems: list[str] = []
    rows = runs_table(load_runs(args.dir, problems))
    for p in problems:
        err.print(f"[yellow]warning:[/yellow] skipped unreadable run: {p}", soft_wrap=True)
    if not rows:
        out.print(f"no runs under {args.dir}")
        return EXIT_OK
    table = Table(box=None, header_style="bold")
    for c in COLUMNS:
        table.add_column(c, justify="right" if c not in ("study", "trial", "layers", "status") else "left")
    for r in sorted(rows, key=lambda r: (r["study"], r["layers"], r["epochs"], r["batch"], r["lr"], r["seed"])):
        table.add_row(r["study"], r["trial"], r["layers"], str(r["epochs"]), str(r["batch"]), f"{r['lr']:g}",
                      _pct(r["val_acc"]), _pct(r["test_acc"]), f"{r['seconds']:.2f}", f"{r['params']:,}", r["status"])
    out.print(table)
    return EXIT_OK


def _pct(x: float) -> str:
    return "—" if not math.isfinite(x) else f"{100 * x:.2f}%"


def cmd_show(args: argparse.Namespace) -> int:
    from .store import read_run

    path = Path(args.run)
    if not path.is_dir():
        matches = sorted(Path(args.out).glob(f"*/runs/*_{args.run}"))
        if len(matches) != 1:
            raise SpecError([f"{args.run}: not a run folder, and {len(matches)} runs under {args.out} have that id"])
        path = matches[0]
    try:
        run = read_run(path)
    except ValueError as exc:
        raise SpecError([str(exc)]) from None
    c, r = run.config, run.result
    out.print(f"[bold]{run.path}[/bold]  ({run.study}, trial {c.trial_id})")
    out.print(f"  layers {c.label}  activation {c.activation}  dropout {c.dropout:g}  epochs {c.epochs}  "
              f"batch {c.batch_size}  {c.optimizer} lr {c.lr:g}  wd {c.weight_decay:g}  seed {c.seed}")
    out.print(f"  status {r.status}  val_acc {_pct(r.val_acc)}  test_acc {_pct(r.test_acc)}  "
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
    from .report import write_combined_report, write_report
    from .store import find_studies

    folder = Path(args.study)
    studies = find_studies(folder)
    if not studies:
        raise SpecError([f"{folder}: not a study folder (no study.toml), nor a folder of studies"])
    for study in studies:
        for p in write_report(study):
            out.print(str(p))
    if len(studies) > 1:
        for p in write_combined_report(studies, folder):
            out.print(str(p))
    return EXIT_OK


def _quiet_reporter():
    from .execute import Reporter
    return Reporter()


def _progress_reporter():
    from .progress import RichReporter
    return RichReporter(err)


COMMANDS = {"run": cmd_run, "validate": cmd_validate, "ls": cmd_ls, "show": cmd_show,
            "report": cmd_report, "demo": cmd_demo}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
