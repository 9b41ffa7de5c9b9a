"""Cross-validation splits: stratified by class and grouped by patient when a patient id exists."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from medsight.errors import DataError

Split = tuple[np.ndarray, np.ndarray]


def stratified_splits(
    y: np.ndarray, groups: np.ndarray | None, *, folds: int, seed: int
) -> list[Split]:
    """One shuffled k-fold partition; no patient is in two folds when ``groups`` is given."""
    y = np.asarray(y)
    _check_enough(y, groups, folds)
    if groups is None:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(splitter.split(np.zeros(len(y)), y))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y, groups))


def repeated_splits(
    y: np.ndarray, groups: np.ndarray | None, *, folds: int, repeats: int, seed: int
) -> Iterator[tuple[int, int, Split]]:
    """``(repeat, fold, (train, test))`` over ``repeats`` differently shuffled partitions."""
    for repeat in range(repeats):
        for fold, split in enumerate(stratified_splits(y, groups, folds=folds, seed=seed + repeat)):
            yield repeat, fold, split


def _check_enough(y: np.ndarray, groups: np.ndarray | None, folds: int) -> None:
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise DataError("the target has a single class; cross-validation needs at least two.")
    if counts.min() < folds:
        raise DataError(
            f"the smallest class has {counts.min()} rows, fewer than the {folds} folds asked for; "
            "lower evaluation.folds or add data."
        )
    if groups is not None and len(np.unique(groups)) < folds:
        raise DataError(
            f"only {len(np.unique(groups))} patients for {folds} folds; lower evaluation.folds."
        )
