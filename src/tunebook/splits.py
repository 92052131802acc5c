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
