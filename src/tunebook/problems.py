"""Collecting every problem of an input before refusing it (``file: key.path: rule, got value``)."""

from __future__ import annotations

from typing import Any

from .errors import SpecError
from .hparams import fmt_value


class Problems:
    """Problems found in one input (``where`` names it); raised together as a SpecError."""

    def __init__(self, where: str):
        self.where = where
        self.items: list[str] = []

    def add(self, key: str, rule: str, value: Any = ...) -> None:
        got = "" if value is ... else f", got {fmt_value(value)}"
        msg = f"{self.where}: {key}: {rule}{got}"
        if msg not in self.items:
            self.items.append(msg)

    def raise_if_any(self) -> None:
        if self.items:
            raise SpecError(self.items)
