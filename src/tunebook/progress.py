"""Progress bars for ``tunebook run``: trials overall, epochs of the group in flight."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .execute import Reporter


class RichReporter(Reporter):
    MAX_BARS = 8  # group bars shown at once

    def __init__(self, console: Console):
        self.console = console
        self.progress: Progress | None = None

    def study_start(self, specs, todo, done, groups):
        names = ", ".join(s.name for s in specs)
        self.console.print(Text(names, style="bold") + Text(f": {todo} {'trial' if todo == 1 else 'trials'} to train in {groups} group{'' if groups == 1 else 's'}, "
                                                            f"{done} already done"))
        if not todo:
            return
        self.progress = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=self.console, transient=True)
        self.progress.start()
        self.trials = self.progress.add_task("trials", total=todo)
        self.groups: dict[str, int] = {}
        self.where: dict[str, str] = {}  # label -> the worker training it (process, ray)

    def executor_ready(self, description):
        if description != getattr(self, "_executor", None):  # once, not every round
            self._executor = description
            self.console.print(f"executor: {description}")

    def group_retry(self, label, attempt, why):
        self.console.print(Text.assemble(("worker lost: ", "yellow"), f"{label}: {why}; sent again "
                                          f"(attempt {attempt + 1})"))

    def planner_measured(self, cost, seconds):
        self.console.print(f"planner: measured this device's stacked-step cost in {seconds:.1f} s "
                           f"(stored; `tunebook calibrate` re-measures): {cost.describe()}")

    def group_start(self, label, trials, epochs):
        """A bar per group in flight (several with --concurrent); finished ones go."""
        if self.progress is None:
            return
        finished = {t.id for t in self.progress.tasks if t.finished}
        for old in [k for k, task in self.groups.items() if task in finished or k == label]:
            self.progress.remove_task(self.groups.pop(old))
        while len(self.groups) >= self.MAX_BARS:  # a group that stopped early (all diverged)
            self.progress.remove_task(self.groups.pop(next(iter(self.groups))))
        self.groups[label] = self.progress.add_task(f"  {label}", total=epochs)

    def group_placed(self, label, where, pid=0):
        if self.progress is not None and label in self.groups:
            self.where[label] = f" on {where}"
            self.progress.update(self.groups[label], description=f"  {label}{self.where[label]}")

    def epoch(self, event):
        if self.progress is None or event.label not in self.groups:
            return
        finite = [v for v in event.val_acc if v == v]  # a regression has no accuracy (NaN)
        lowest = min(row[3] for row in event.members_detail) if event.members_detail else float("nan")
        score = f"best val {100 * max(finite):.2f}%" if finite else f"lowest val loss {lowest:.4g}"
        self.progress.update(self.groups[event.label], completed=event.epoch,
                             description=f"  {event.label}{self.where.get(event.label, '')}: epoch {event.epoch}, "
                                         f"{score}")

    def trial_saved(self, config, result):
        if self.progress is not None:
            self.progress.advance(self.trials)

    def study_end(self, outcome):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def rung_done(self, batch, epoch, kept, ranked):
        self.console.print(f"batch {batch}: at epoch {epoch}, {kept} of {ranked} proposals go on "
                           f"(successive halving; {ranked - kept} pruned)")

    def round_done(self, round_, decided, total, adding, configs, seeds):
        self.console.print(f"decided {decided} of {total} {'hypothesis' if total == 1 else 'hypotheses'}; "
                           f"round {round_} asks for {adding} more {'trial' if adding == 1 else 'trials'} "
                           f"({configs} configuration{'' if configs == 1 else 's'} up to {seeds} seeds; what "
                           "another study already trained is copied, not trained again)")
