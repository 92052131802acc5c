"""Engines: train a group of TrialConfigs that share a depth, activation, batch size and data
split (widths and optimizers may differ); return one TrialResult each.

``stacked`` (the default) trains the group as one batched model; ``reference`` trains
one plain ``nn.Module`` at a time and is the correctness oracle.
"""

from __future__ import annotations

from typing import Callable

from . import reference, stacked

ENGINES: dict[str, Callable] = {"stacked": stacked.train_group, "reference": reference.train_group}
