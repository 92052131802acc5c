"""A run's budget: wall time and/or model-epochs (``--budget``, ``[study] budget``),
consulted before every group starts and at every epoch's end of every group."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from .errors import SpecError

_BUDGET = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|me|model-epochs)\s*")
_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600}


class BudgetSpent(BaseException):
    """Raised at an epoch's end once the budget is spent: the run stops there like an
    interrupt (the groups in flight are not stored; a rerun trains them) and says so as its
    own outcome, not an error. A BaseException: training never records it as a failure."""


def budget_problem(text) -> str:
    """What is wrong with a budget's text ("" when nothing is)."""
    m = _BUDGET.fullmatch(text) if isinstance(text, str) else None
    if not m:
        return "must be a number and a unit — s, m, h (wall time) or me (model-epochs), e.g. 10m or 2000me"
    if float(m[1]) <= 0 or (m[2] in ("me", "model-epochs") and float(m[1]) < 1):
        return "must be positive (at least 1 model-epoch)"
    return ""


@dataclass
class Budget:
    """Wall time and/or model-epochs. Model-epochs are spent epoch by epoch (each stack's
    members at each epoch's end), and ``spent()`` is asked before every group starts and
    at every epoch's end of every group: a run stops within one epoch of one group of its
    budget, whatever the grouping."""

    seconds: float | None = None
    model_epochs: int | None = None
    started: float = field(default_factory=time.monotonic)
    used_model_epochs: int = 0

    @classmethod
    def parse(cls, text: str, key: str = "--budget") -> "Budget":
        """``"10m"``, ``"90s"``, ``"1.5h"``, ``"2000me"`` (model-epochs); a SpecError names ``key``."""
        problem = budget_problem(text)
        if problem:
            raise SpecError([f"{key}: {problem}, got {text!r}"])
        m = _BUDGET.fullmatch(text)
        value, unit = float(m[1]), m[2]
        if unit in ("me", "model-epochs"):
            return cls(model_epochs=int(value))
        return cls(seconds=value * _SECONDS[unit])

    @classmethod
    def of_specs(cls, specs) -> "Budget | None":
        """The budget of studies run together, from their ``[study] budget``: the smallest
        wall time and the smallest model-epochs any of them sets (None: none sets one)."""
        parts = [cls.parse(s.budget, f"{s.path or s.name}: study.budget") for s in specs if s.budget]
        if not parts:
            return None
        seconds = [b.seconds for b in parts if b.seconds is not None]
        epochs = [b.model_epochs for b in parts if b.model_epochs is not None]
        return cls(seconds=min(seconds) if seconds else None, model_epochs=min(epochs) if epochs else None)

    def spend(self, model_epochs: int) -> None:
        self.used_model_epochs += model_epochs

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def spent(self) -> bool:
        return ((self.seconds is not None and self.elapsed() >= self.seconds)
                or (self.model_epochs is not None and self.used_model_epochs >= self.model_epochs))

    def describe(self) -> str:
        parts = []
        if self.seconds is not None:
            parts.append(f"{self.elapsed():.0f} of {self.seconds:.0f} s")
        if self.model_epochs is not None:
            parts.append(f"{self.used_model_epochs} of {self.model_epochs} model-epochs")
        return ", ".join(parts) or f"{self.elapsed():.0f} s, {self.used_model_epochs} model-epochs (no budget)"
