"""AAMI beat classes, beat windows and the de Chazal inter-patient split of MIT-BIH."""

from __future__ import annotations

import numpy as np
import pytest
import wfdb

from medsight.errors import ConfigError, DataError
from medsight.signal.beats import (
    AAMI_CLASSES,
    DS1,
    DS2,
    MITBIH_TO_AAMI,
    PACED_RECORDS,
    beat_labels,
    beat_windows,
    inter_patient_split,
    template_correlation,
)
from shared_helpers import shared_file


def test_aami_mapping_is_the_de_chazal_table() -> None:
    by_class = {c: "".join(sorted(s for s, k in MITBIH_TO_AAMI.items() if k == c)) for c in "NSVFQ"}
    assert by_class == {"N": "LNRej", "S": "AJSa", "V": "EV", "F": "F", "Q": "/Qf"}
    assert set(MITBIH_TO_AAMI.values()) == set(AAMI_CLASSES)


def test_beat_labels_drop_non_beat_annotations() -> None:
    labels, mask = beat_labels(["+", "N", "A", "~", "V", "|", "x", "F", "/", "!", "j", '"'])
    assert labels.tolist() == ["N", "S", "V", "F", "Q", "N"]
    assert mask.tolist() == [False, True, True, False, True, False, False, True, True, False, True,
                             False]  # fmt: skip
    empty_labels, empty_mask = beat_labels([])
    assert empty_labels.size == 0 and empty_mask.size == 0


@pytest.mark.shared_data
def test_record_100_class_counts() -> None:
    annotation = wfdb.rdann(str(shared_file("mitbih", "100.atr").with_suffix("")), "atr")
    labels, mask = beat_labels(annotation.symbol)
    classes, counts = np.unique(labels, return_counts=True)
    assert dict(zip(classes.tolist(), counts.tolist(), strict=True)) == {"N": 2239, "S": 33, "V": 1}
    assert mask.sum() == 2273 and len(annotation.symbol) == 2274  # one "+" rhythm label


def test_beat_windows_skip_edge_beats_and_copy_the_samples() -> None:
    x = np.arange(1000, dtype=float)
    windows, kept = beat_windows(x, 100, [10, 30, 500, 960, 990], before_s=0.25, after_s=0.45)
    assert kept.tolist() == [1, 2]  # 10 is too close to the start; 960, 990 to the end
    assert windows.shape == (2, 70)
    np.testing.assert_array_equal(windows[1], np.arange(475, 545))
    assert windows[0, 25] == 30  # the R peak sits at index before_s * fs


def test_beat_windows_without_beats_or_with_bad_input() -> None:
    windows, kept = beat_windows(np.zeros(500), 100, [])
    assert windows.shape == (0, 70) and kept.size == 0
    with pytest.raises(DataError, match="whole sample indices"):
        beat_windows(np.zeros(500), 100, [10.5])
    with pytest.raises(ConfigError):
        beat_windows(np.zeros(500), 100, [100], after_s=0)


def test_template_correlation() -> None:
    t = np.linspace(0, 1, 50)
    beat = np.exp(-((t - 0.4) ** 2) / 0.002)
    windows = np.vstack([beat, 2 * beat + 1, -beat, np.zeros(50)])
    template, corr = template_correlation(windows)
    assert template.shape == (50,)
    np.testing.assert_allclose(corr[:3], [1.0, 1.0, -1.0], atol=1e-9)
    assert np.isnan(corr[3])  # no variation, no correlation


def test_inter_patient_lists() -> None:
    assert len(DS1) == len(DS2) == 22
    assert not set(DS1) & set(DS2)
    assert not (set(DS1) | set(DS2)) & set(PACED_RECORDS)
    assert len(set(DS1) | set(DS2) | set(PACED_RECORDS)) == 48  # the whole MIT-BIH database


def test_inter_patient_split_keeps_order_and_drops_paced_records() -> None:
    train, test = inter_patient_split([100, "101", "102", "234", 106])
    assert train == ["101", "106"]
    assert test == ["100", "234"]
    with pytest.raises(DataError, match="not MIT-BIH"):
        inter_patient_split(["100", "999"])
