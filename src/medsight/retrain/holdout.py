"""A fixed-seed, stratified (and patient-grouped) held-out part of the original data."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, train_test_split

from medsight.errors import DataError

MIN_PER_CLASS = 2  # DeLong's test needs at least two cases of each class


def holdout_split(
    y: np.ndarray, groups: np.ndarray | None, *, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, holdout)``: about ``fraction`` of rows held out, stratified by class.

    With ``groups`` (patient ids) holding several rows of a patient, no patient is on both sides;
    the held-out part is then one fold of a stratified group k-fold with ``k = round(1 /
    fraction)``, so its share is approximate.
    """
    y = np.asarray(y)
    counts = np.bincount(y, minlength=2)
    if counts.min() < 2 * MIN_PER_CLASS:
        raise DataError(
            f"the original data has {counts.min()} rows of its smaller class; too few to hold "
            "out a comparison set. Pass a labelled table with --holdout."
        )
    index = np.arange(len(y))
    if groups is not None and len(np.unique(groups)) == len(y):
        groups = None  # one row per patient: an exact stratified split keeps them apart already
    if groups is None:
        train, holdout = train_test_split(
            index, test_size=fraction, stratify=y, random_state=seed, shuffle=True
        )
        return np.sort(train), np.sort(holdout)
    folds = max(2, round(1 / fraction))
    if len(np.unique(groups)) < folds:
        raise DataError(
            f"only {len(np.unique(groups))} patients; too few to hold out a fraction of "
            f"{fraction}. Pass a labelled table with --holdout."
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    train, holdout = next(splitter.split(index, y, groups))
    return np.sort(train), np.sort(holdout)
