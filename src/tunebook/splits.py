"""The stratified hold-out every split of tunebook draws (validation, a user's test split)."""

from __future__ import annotations

import numpy as np


def split_indices(labels: np.ndarray, fraction: float, seed: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified hold-out: ``round(fraction * n_c)`` of each class, chosen by ``seed``.

    Returns (train_idx, val_idx), each sorted. Same labels and seed: same split, always.
    """
    rng = np.random.default_rng(seed)
    val = []
    for c in range(n_classes):
        idx = np.flatnonzero(labels == c)
        val.append(rng.permutation(idx)[: round(fraction * len(idx))])
    val_idx = np.sort(np.concatenate(val))
    train_mask = np.ones(len(labels), bool)
    train_mask[val_idx] = False
    return np.flatnonzero(train_mask), val_idx


#: A numeric (regression) target is stratified by this many quantile bins.
TARGET_BINS = 10


def strata(y: np.ndarray, n_classes: int) -> tuple[np.ndarray, int]:
    """What a hold-out stratifies: the class labels, or for a regression target
    (``n_classes == 0``) its rank deciles (ties broken by row order), so that both sides
    of a split cover the target's range alike. Returns (labels, number of strata)."""
    if n_classes:
        return y, n_classes
    bins = min(TARGET_BINS, len(y))
    ranks = np.empty(len(y), np.int64)
    ranks[np.argsort(y, kind="stable")] = np.arange(len(y))
    return ranks * bins // max(len(y), 1), bins
