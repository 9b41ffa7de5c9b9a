"""R-peak detection on MIT-BIH record 100 and simulated ECG; matching and heart rate by hand."""

from __future__ import annotations

import math

import neurokit2 as nk
import numpy as np
import pytest
import wfdb

from medsight.errors import ConfigError, DataError
from medsight.signal.beats import beat_labels
from medsight.signal.peaks import (
    PeakMatch,
    detect_rpeaks,
    ecg_polarity,
    heart_rate,
    match_peaks,
)
from shared_helpers import shared_file


@pytest.fixture(scope="module")
def record100() -> tuple[np.ndarray, float, np.ndarray]:
    """Lead MLII of MIT-BIH record 100 (30 min, 360 Hz) and its reference beat samples."""
    base = str(shared_file("mitbih", "100.hea").with_suffix(""))
    record = wfdb.rdrecord(base)
    annotation = wfdb.rdann(base, "atr")
    _, is_beat = beat_labels(annotation.symbol)
    lead = record.p_signal[:, record.sig_name.index("MLII")]
    return lead, float(record.fs), annotation.sample[is_beat]


@pytest.mark.shared_data
def test_mitbih_100_detection_meets_the_bar(record100) -> None:
    lead, fs, reference = record100
    assert reference.size == 2273  # N 2239 + A 33 + V 1; the "+" rhythm annotation is excluded
    result = match_peaks(reference, detect_rpeaks(lead, fs), fs, tolerance_s=0.15)
    # Measured: 2270 of 2273 beats found (the first, the last and one more), no false detection.
    assert result.sensitivity >= 0.995
    assert result.ppv >= 0.995
    assert result.tp + result.fn == reference.size


@pytest.mark.shared_data
def test_mitbih_100_detection_is_sample_accurate_and_polarity_proof(record100) -> None:
    lead, fs, reference = record100
    first_5_min = int(300 * fs)
    lead, reference = lead[:first_5_min], reference[reference < first_5_min]
    for sign in (1, -1):
        result = match_peaks(reference, detect_rpeaks(sign * lead, fs), fs, tolerance_s=0.05)
        assert result.sensitivity >= 0.99 and result.ppv >= 0.99


@pytest.mark.parametrize("fs", [250, 300, 360, 500])
# Not 150 bpm: NeuroKit2 0.2.13's ecgsyn loops forever at 150 bpm, 360 Hz, random_state=7.
@pytest.mark.parametrize("bpm", [55, 75, 110, 140])
def test_simulated_heart_rate_is_recovered(fs: int, bpm: int) -> None:
    ecg = nk.ecg_simulate(duration=20, sampling_rate=fs, heart_rate=bpm, random_state=7)
    peaks = detect_rpeaks(ecg, fs)
    assert peaks.dtype == np.int64 and np.all(np.diff(peaks) > 0)
    assert heart_rate(peaks, fs) == pytest.approx(bpm, rel=0.03)
    assert abs(peaks.size - 20 * bpm / 60) <= 2


def test_polarity_of_simulated_ecg() -> None:
    ecg = nk.ecg_simulate(duration=10, sampling_rate=300, heart_rate=70, random_state=1)
    assert ecg_polarity(ecg, 300) == 1
    assert ecg_polarity(-ecg, 300) == -1


def test_flat_lead_has_no_peaks_and_bad_input_is_an_error() -> None:
    assert detect_rpeaks(np.zeros(3000), 300).size == 0
    with pytest.raises(DataError, match="NaN"):
        detect_rpeaks(np.full(3000, np.nan), 300)
    with pytest.raises(ConfigError, match="Unknown R-peak detector"):
        detect_rpeaks(np.zeros(3000), 300, method="guess")


def test_match_peaks_by_hand() -> None:
    # tolerance 0.15 s at 100 Hz = 15 samples: 100~105 and 300~301 match, 200 is missed,
    # 260 and 500 are false detections.
    result = match_peaks([100, 200, 300], [105, 260, 301, 500], fs=100)
    assert (result.tp, result.fn, result.fp) == (2, 1, 2)
    assert result.sensitivity == pytest.approx(2 / 3)
    assert result.ppv == pytest.approx(2 / 4)


def test_match_peaks_tolerance_is_inclusive_and_one_to_one() -> None:
    assert match_peaks([100], [115], fs=100).tp == 1
    assert match_peaks([100], [116], fs=100).tp == 0
    doubled = match_peaks([100], [98, 102], fs=100)
    assert (doubled.tp, doubled.fp) == (1, 1)
    unsorted = match_peaks([300, 100], [301, 99], fs=100)
    assert unsorted.tp == 2


def test_match_peaks_with_nothing_on_one_side() -> None:
    none_found = match_peaks([10, 20], [], fs=100)
    assert (none_found.tp, none_found.fn, none_found.fp) == (0, 2, 0)
    assert none_found.sensitivity == 0 and math.isnan(none_found.ppv)
    no_reference = match_peaks([], [5], fs=100)
    assert math.isnan(no_reference.sensitivity) and no_reference.ppv == 0


def test_peak_matches_pool_by_addition() -> None:
    total = PeakMatch(9, 1, 0) + PeakMatch(5, 0, 5)
    assert total == PeakMatch(14, 1, 5)
    assert total.as_dict()["ppv"] == pytest.approx(14 / 19)


def test_heart_rate() -> None:
    assert heart_rate(np.arange(0, 3000, 150), fs=300) == pytest.approx(120.0)
    assert math.isnan(heart_rate([10], fs=300))
    assert math.isnan(heart_rate([], fs=300))
