"""Errors, sorted by who must act (the KerasTuner habit).

- :class:`SpecError`: the user must fix an input file; nothing runs, nothing is written.
- :class:`DataError`: the dataset is missing or damaged; the user must install or repair it.
- :class:`TrialError`: one trial failed; it is recorded and the study goes on.
- :class:`StoreError`: the run store is in a state tunebook will not touch (e.g. locked).

Anything else that escapes is a bug. Only the CLI maps these to exit codes.
"""

from __future__ import annotations


class TunebookError(Exception):
    """Base class of every error tunebook raises on purpose."""


class SpecError(TunebookError):
    """A study file (or an override) breaks a rule. Carries every problem found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class DataError(TunebookError):
    """The dataset cannot be found, fetched or trusted."""


class TrialError(TunebookError):
    """One trial could not be trained; the study records it and goes on."""


class StoreError(TunebookError):
    """The run store refuses an operation (locked by a live process, unreadable)."""


class StoreIOError(StoreError):
    """Reading or writing the run store failed at the operating-system level (a full disk,
    a read-only or vanished folder) after the inputs were checked. Nothing half-written is
    left; the CLI exits with its own code (74, EX_IOERR)."""
