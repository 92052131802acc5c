"""Progress bars for ``tunebook run``: trials overall, epochs of the group in flight."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .execute import Reporter


class RichReporter(Reporter):
    def __init__(self, console: Console):
        self.console = console
        self.progress: Progress | None = None

    def study_start(self, specs, todo, done, groups):
        names = ", ".join(s.name for s in specs)
        self.console.print(Text(names, style="bold") + Text(f": {todo} trials to train in {groups} group{'' if groups == 1 else 's'}, "
                                                            f"{done} already done"))
        if not todo:
            return
        self.progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self.progress.start()
        self.trials = self.progress.add_task("trials", total=todo)
        self.epochs = None

    def planner_measured(self, cost, seconds):
        self.console.print(f"planner: measured this device's stacked-step cost in {seconds:.1f} s "
                           f"(stored; `tunebook calibrate` re-measures): {cost.describe()}")

    def group_start(self, label, trials, epochs):
        if self.progress is None:
            return
        if self.epochs is not None:
            self.progress.remove_task(self.epochs)
        self.epochs = self.progress.add_task(f"  {label}", total=epochs)

    def epoch(self, event):
        if self.progress is None or self.epochs is None:
            return
        best = max(event.val_acc) if event.val_acc else float("nan")
        self.progress.update(self.epochs, completed=event.epoch,
                             description=f"  {event.label}: epoch {event.epoch}, best val {100 * best:.2f}%")

    def trial_saved(self, config, result):
        if self.progress is not None:
            self.progress.advance(self.trials)

    def study_end(self, outcome):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def round_done(self, round_, decided, total, adding, configs, seeds):
        self.console.print(f"decided {decided} of {total} hypotheses; round {round_}: {adding} more trials "
                           f"({configs} configurations up to {seeds} seeds)")
