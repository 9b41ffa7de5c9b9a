from __future__ import annotations

import numpy as np
import pytest

from medsight.data.splits import repeated_splits, stratified_splits
from medsight.errors import DataError


def test_grouped_splits_never_share_a_patient() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 3)
    y = np.repeat(rng.integers(0, 2, 60), 3)
    seen_tests = []
    for _repeat, _fold, (train, test) in repeated_splits(y, groups, folds=5, repeats=2, seed=0):
        assert not set(groups[train]) & set(groups[test])
        seen_tests.append(test)
    # each repeat covers every row exactly once
    first = np.sort(np.concatenate(seen_tests[:5]))
    assert np.array_equal(first, np.arange(len(y)))


def test_stratification_keeps_class_share() -> None:
    y = np.array([0] * 80 + [1] * 20)
    for _, test in stratified_splits(y, None, folds=5, seed=1):
        assert y[test].sum() == 4


def test_too_few_rows_for_folds() -> None:
    with pytest.raises(DataError, match="fewer than the 10 folds"):
        stratified_splits(np.array([0] * 20 + [1] * 5), None, folds=10, seed=0)
