"""EC57-style tables: per-class Se/PPV of beat labels and gross R-peak detection, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medsight.errors import DataError
from medsight.evaluate.ec57 import beat_class_table, beat_confusion, rpeak_detection_table
from medsight.signal.peaks import PeakMatch

REFERENCE = list("NNNNSSVVFQ")
PREDICTED = list("NNNSSNVNFN")


def test_confusion_matrix_by_hand() -> None:
    confusion = beat_confusion(REFERENCE, PREDICTED)
    assert list(confusion.index) == list(confusion.columns) == ["N", "S", "V", "F", "Q"]
    assert confusion.loc["N"].tolist() == [3, 1, 0, 0, 0]
    assert confusion.loc["S"].tolist() == [1, 1, 0, 0, 0]
    assert confusion.loc["V"].tolist() == [1, 0, 1, 0, 0]
    assert confusion.loc["Q"].tolist() == [1, 0, 0, 0, 0]
    assert confusion.to_numpy().sum() == 10


def test_per_class_sensitivity_and_ppv_by_hand() -> None:
    table = beat_class_table(REFERENCE, PREDICTED)
    # N: 4 reference, 6 predicted, 3 right -> Se 3/4, PPV 3/6, F1 2*3/(2*3+1+3) = 0.6
    assert table.loc["N", ["support", "predicted", "tp", "fn", "fp"]].tolist() == [4, 6, 3, 1, 3]
    assert table.loc["N", "sensitivity"] == pytest.approx(0.75)
    assert table.loc["N", "ppv"] == pytest.approx(0.5)
    assert table.loc["N", "f1"] == pytest.approx(0.6)
    # V: 2 reference, 1 predicted (right) -> Se 1/2, PPV 1
    assert table.loc["V", ["sensitivity", "ppv"]].tolist() == [0.5, 1.0]
    # Q: never predicted -> Se 0, PPV undefined, F1 0
    assert table.loc["Q", "sensitivity"] == 0 and math.isnan(table.loc["Q", "ppv"])
    assert table.loc["Q", "f1"] == 0
    # pooled: 6 of 10 right
    gross = table.loc["gross"]
    assert gross[["support", "tp", "fn", "fp"]].tolist() == [10, 6, 4, 4]
    assert gross["sensitivity"] == gross["ppv"] == pytest.approx(0.6)
    macro = table.loc["macro"]
    assert macro["sensitivity"] == pytest.approx(np.mean([0.75, 0.5, 0.5, 1.0, 0.0]))
    assert macro["ppv"] == pytest.approx(np.mean([0.5, 0.5, 1.0, 1.0]))  # Q's NaN left out
    assert list(table.index) == ["N", "S", "V", "F", "Q", "macro", "gross"]


def test_class_missing_from_the_reference() -> None:
    table = beat_class_table(list("NNV"), list("NFV"))
    assert table.loc["F", "support"] == 0 and math.isnan(table.loc["F", "sensitivity"])
    assert table.loc["F", "ppv"] == 0
    assert table.loc["macro", "sensitivity"] == pytest.approx(np.mean([0.5, 1.0]))


def test_bad_labels_are_data_errors() -> None:
    with pytest.raises(DataError, match="pair up"):
        beat_class_table(list("NN"), list("N"))
    with pytest.raises(DataError, match="beat_labels"):
        beat_class_table(list("NA"), list("NN"))
    with pytest.raises(DataError, match="empty"):
        beat_class_table([], [])


def test_rpeak_table_gross_and_average() -> None:
    table = rpeak_detection_table({"100": PeakMatch(9, 1, 0), "101": PeakMatch(5, 0, 5)})
    assert list(table.index) == ["100", "101", "gross", "average"]
    assert table.loc["gross", ["tp", "fn", "fp"]].tolist() == [14, 1, 5]
    assert table.loc["gross", "sensitivity"] == pytest.approx(14 / 15)
    assert table.loc["gross", "ppv"] == pytest.approx(14 / 19)
    assert table.loc["average", "sensitivity"] == pytest.approx((0.9 + 1.0) / 2)
    assert table.loc["average", "ppv"] == pytest.approx((1.0 + 0.5) / 2)
    with pytest.raises(DataError):
        rpeak_detection_table({})
