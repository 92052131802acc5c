"""What a run says while it trains, outside the CLI: in Jupyter a progress table that
updates in place (plain HTML, no widgets), elsewhere a plain line per group on stderr.
``quiet=True`` says nothing. The CLI draws its own bars (:mod:`tunebook.progress`)."""

from __future__ import annotations

import sys
import time
from html import escape
from typing import IO

from .reporter import Reporter


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython kernel), where HTML displays render."""
    if "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipykernel brings IPython
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def default_reporter(quiet: bool = False) -> Reporter:
    """The reporter a library call uses when it is given none."""
    if quiet:
        return Reporter()
    return NotebookReporter() if in_notebook() else LineReporter(sys.stderr)


class LineReporter(Reporter):
    """A plain line when a study starts, as each group starts and when the study ends
    (what it trained, the best validation accuracy of a trial trained now): readable in a
    log file, a terminal or a CI job."""

    def __init__(self, stream: IO[str]):
        self.stream = stream
        self.todo = self.saved = 0
        self.best: dict[str, float] = {}

    def _say(self, line: str) -> None:
        print(f"tunebook: {line}", file=self.stream, flush=True)

    def study_start(self, specs, todo, done, groups):
        self.todo, self.saved = todo, 0
        self._say(f"{', '.join(s.name for s in specs)}: {todo} trial{'' if todo == 1 else 's'} to train in "
                  f"{groups} group{'' if groups == 1 else 's'}, {done} already done")

    def epoch(self, event):
        finite = [v for v in event.val_acc if v == v]  # a regression has no accuracy (NaN)
        if event.epoch == event.max_epochs and finite:
            self.best[event.label] = max(finite)

    def trial_saved(self, config, result):
        self.saved += 1

    def group_start(self, label, trials, epochs):
        self._say(f"  group {label}: {trials} trial{'' if trials == 1 else 's'}, {epochs} epochs")

    def study_end(self, outcome):
        best = f"; best val_acc of a trial trained now {max(self.best.values()):.4f}" if self.best else ""
        self._say(f"{outcome.spec.name}: {outcome.trained} trained, {outcome.skipped} already done, "
                  f"{outcome.seconds:.1f} s{best}" + (" (budget spent: run again to go on)"
                                                     if outcome.stopped_by_budget else ""))

    def group_retry(self, label, attempt, why):
        self._say(f"  worker lost: {label}: {why}; sent again (attempt {attempt + 1})")


class NotebookReporter(Reporter):
    """A small HTML table in the cell's output, updated in place: trials stored of all, the
    groups in flight with their epoch and best validation accuracy so far."""

    EVERY = 0.5  # seconds between redraws (a redraw is a message to the browser)

    def __init__(self):
        from IPython.display import HTML, display

        self._html, self._display = HTML, display
        self.handle = None
        self.title, self.todo, self.saved, self.started = "", 0, 0, time.monotonic()
        self.groups: dict[str, tuple[int, int, float]] = {}  # label -> (epoch, of, best val_acc)
        self.drawn = 0.0

    def study_start(self, specs, todo, done, groups):
        self.title = ", ".join(s.name for s in specs)
        self.todo, self.saved, self.started = todo, 0, time.monotonic()
        self.groups = {}
        self.note = f"{todo} to train in {groups} group{'' if groups == 1 else 's'}, {done} already done"
        self.handle = self._display(self._html(self._render()), display_id=True)

    def group_start(self, label, trials, epochs):
        self.groups[label] = (0, epochs, float("nan"))
        self._redraw()

    def epoch(self, event):
        finite = [v for v in event.val_acc if v == v]  # a regression has no accuracy (NaN)
        best = max(finite) if finite else float("nan")
        self.groups[event.label] = (event.epoch, event.max_epochs, best)
        self._redraw()

    def trial_saved(self, config, result):
        self.saved += 1
        self._redraw()

    def study_end(self, outcome):
        self.groups = {}
        self.note = (f"{outcome.trained} trained, {outcome.skipped} already done in {outcome.seconds:.1f} s"
                     + (" — budget spent: run again to go on" if outcome.stopped_by_budget else ""))
        self._redraw(force=True)

    def _redraw(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.handle is None or (not force and now - self.drawn < self.EVERY):
            return
        self.drawn = now
        self.handle.update(self._html(self._render()))

    def _render(self) -> str:
        share = self.saved / self.todo if self.todo else 1.0
        bar = (f"<div style='width:240px;height:10px;background:#ddd'><div style='width:{240 * share:.0f}px;"
               "height:10px;background:#2f6fb0'></div></div>")
        rows = "".join(f"<tr><td style='padding:0 8px'>{escape(label)}</td><td>epoch {e} of {n}</td>"
                       f"<td style='padding:0 8px'>{'' if best != best else f'best val_acc {best:.4f}'}</td></tr>"
                       for label, (e, n, best) in self.groups.items())
        return (f"<div><b>{escape(self.title)}</b>: {self.saved} of {self.todo} trials stored · "
                f"{escape(self.note)} · {time.monotonic() - self.started:.0f} s{bar}"
                f"<table style='font-size:90%'>{rows}</table></div>")
