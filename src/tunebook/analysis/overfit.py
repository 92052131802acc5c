"""Overfitting, read off the curves the way the log read them off TensorBoard."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .aggregate import ConfigStats


@dataclass(frozen=True)
class Overfit:
    """Per configuration, averaged over its complete seeds."""

    key: str
    final_gap: float          # train_acc − val_acc at the last epoch
    max_gap: float            # the largest gap at any epoch
    best_val_loss_epoch: float  # mean (over seeds) epoch of the lowest validation loss
    flagged_seeds: int        # seeds whose val loss rose 2+ epochs running while train loss fell
    n_seeds: int
    #: val_loss − train_loss at the last epoch, and the largest at any epoch: the gap of a
    #: regression, whose accuracies are NaN (its losses are its training criterion on the
    #: standardised target, on both splits, so they are one scale)
    final_loss_gap: float = float("nan")
    max_loss_gap: float = float("nan")

    @property
    def flagged(self) -> bool:
        """Most seeds show the pattern."""
        return self.n_seeds > 0 and self.flagged_seeds * 2 > self.n_seeds


def rising_val_falling_train(train_loss: Sequence[float], val_loss: Sequence[float], run: int = 2) -> bool:
    """True when validation loss rises ``run``+ epochs in a row while training loss falls."""
    streak = 0
    for i in range(1, len(val_loss)):
        if val_loss[i] > val_loss[i - 1] and train_loss[i] < train_loss[i - 1]:
            streak += 1
            if streak >= run:
                return True
        else:
            streak = 0
    return False


def overfitting(c: ConfigStats) -> Overfit:
    gaps = [np.asarray(h.train_acc) - np.asarray(h.val_acc) for h in c.histories]
    loss_gaps = [np.asarray(h.val_loss) - np.asarray(h.train_loss) for h in c.histories]
    if not gaps:
        return Overfit(c.key, float("nan"), float("nan"), float("nan"), 0, 0)
    return Overfit(
        key=c.key,
        final_gap=float(np.mean([g[-1] for g in gaps])),
        max_gap=float(np.mean([g.max() for g in gaps])),
        best_val_loss_epoch=float(np.mean([int(np.argmin(h.val_loss)) + 1 for h in c.histories])),
        flagged_seeds=sum(rising_val_falling_train(h.train_loss, h.val_loss) for h in c.histories),
        n_seeds=len(gaps),
        final_loss_gap=float(np.mean([g[-1] for g in loss_gaps])),
        max_loss_gap=float(np.mean([g.max() for g in loss_gaps])))
