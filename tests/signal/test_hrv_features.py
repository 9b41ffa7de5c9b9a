"""RR, morphology and whole-record features: values by hand, AF-like separation, fixed keys."""

from __future__ import annotations

import math
import time

import neurokit2 as nk
import numpy as np
import pandas as pd
import pytest
import wfdb

from medsight.signal.hrv import (
    MORPHOLOGY_FEATURES,
    RECORD_FEATURES,
    RR_FEATURES,
    morphology_features,
    record_features,
    rr_features,
)
from medsight.signal.peaks import detect_rpeaks
from shared_helpers import shared_file

FS = 300
IRREGULARITY = (
    "rr_cv",
    "rmssd_norm",
    "pnn50",
    "drr_rel_gt10pct",
    "drr_median_abs_ms",
    "sd1_sd2",
    "rr_turning_point_ratio",
    "rr_sampen",
    "rr_cosen",
)


@pytest.fixture(scope="module")
def ecg() -> np.ndarray:
    return nk.ecg_simulate(duration=30, sampling_rate=FS, heart_rate=70, random_state=5)


def _peaks_from_rr(rr_s: np.ndarray) -> np.ndarray:
    return np.round(np.concatenate([[0.5], 0.5 + np.cumsum(rr_s)]) * FS).astype(int)


def test_rr_features_by_hand() -> None:
    features = rr_features([0, 300, 600, 1000, 1300], FS)  # RR 1, 1, 4/3, 1 s
    assert list(features) == list(RR_FEATURES)
    assert features["n_beats"] == 4 + 1
    assert features["rr_mean_ms"] == pytest.approx(1000 * (13 / 3) / 4)
    assert features["rr_max_ms"] == pytest.approx(4000 / 3)
    assert features["hr_min_bpm"] == pytest.approx(45.0)
    assert features["rmssd_ms"] == pytest.approx(1000 * math.sqrt((0 + 2 * (1 / 3) ** 2) / 3))
    assert features["pnn50"] == pytest.approx(2 / 3)
    assert features["rr_turning_point_ratio"] == pytest.approx(1 / 2)  # only 4/3 is strict


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_irregular_rr_separates_from_sinus_rhythm(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Sinus rhythm: RR swings slowly with breathing (period 8 beats) plus a little jitter.
    sinus = 0.8 + 0.04 * np.sin(2 * np.pi * np.arange(40) / 8) + rng.normal(0, 0.005, 40)
    regular = rr_features(_peaks_from_rr(sinus), FS)
    af_like = rr_features(_peaks_from_rr(rng.uniform(0.4, 1.2, 40)), FS)
    for name in IRREGULARITY:
        assert af_like[name] > regular[name], name
    assert af_like["pnn50"] > 0.6 > 0.05 > regular["pnn50"]
    assert af_like["rr_cosen"] > -1.0 > -2.0 > regular["rr_cosen"]


@pytest.mark.parametrize("peaks", [[], [100], [100, 400, 700]])
def test_too_few_beats_give_nan_not_an_error(peaks: list[int]) -> None:
    features = rr_features(peaks, FS)
    assert list(features) == list(RR_FEATURES)
    assert features["n_beats"] == len(peaks)
    assert all(math.isnan(v) for k, v in features.items() if k != "n_beats")


def test_morphology_of_a_simulated_ecg(ecg: np.ndarray) -> None:
    peaks = detect_rpeaks(ecg, FS)
    features = morphology_features(ecg, FS, peaks)
    assert list(features) == list(MORPHOLOGY_FEATURES)
    assert all(math.isfinite(v) for v in features.values())
    assert features["tpl_r_amp"] > 0.5 * features["tpl_ptp"]
    assert 40 <= features["tpl_qrs_width_ms"] <= 160
    assert features["beat_corr_mean"] > 0.95 and features["beat_corr_low_frac"] == 0
    assert features["pr_corr_mean"] > 0.8  # simulated P waves repeat beat after beat
    bands = [v for k, v in features.items() if k.startswith("power_frac_")]
    assert sum(bands) == pytest.approx(1.0)


def test_morphology_with_too_few_beats(ecg: np.ndarray) -> None:
    features = morphology_features(ecg, FS, [1000, 1300])
    assert list(features) == list(MORPHOLOGY_FEATURES)
    assert math.isnan(features["tpl_r_amp"]) and math.isnan(features["beat_corr_mean"])
    assert math.isfinite(features["power_frac_4_9hz"])  # the spectrum needs no beats


@pytest.mark.parametrize(
    "odd",
    [np.zeros(9000), np.ones(9000), np.full(9000, np.nan), np.array([]), np.ones(20), ["a"]],
    ids=["zeros", "constant", "nan", "empty", "too-short", "text"],
)
def test_record_features_keeps_its_keys_on_odd_input(ecg: np.ndarray, odd) -> None:
    normal = record_features(ecg, FS)
    features = record_features(odd, FS)
    assert list(features) == list(normal) == list(RECORD_FEATURES)
    assert features["quality_usable"] == 0 and normal["quality_usable"] == 1
    assert all(math.isnan(features[k]) for k in RR_FEATURES[1:] + MORPHOLOGY_FEATURES[:-4])


def test_record_features_of_a_normal_record(ecg: np.ndarray) -> None:
    features = record_features(ecg, FS)
    assert features["duration_s"] == pytest.approx(30.0)
    assert features["hr_mean_bpm"] == pytest.approx(70, rel=0.03)
    assert sum(not math.isfinite(v) for v in features.values()) == 0


def test_record_features_is_fast_enough(ecg: np.ndarray) -> None:
    record_features(ecg, FS)  # warm up
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        record_features(ecg, FS)
        timings.append(time.perf_counter() - start)
    assert np.median(timings) <= 0.060  # budget for 30 s at 300 Hz; measured ~6 ms


@pytest.mark.shared_data
def test_physionet_2017_normal_records_have_finite_features() -> None:
    reference = pd.read_csv(shared_file("physionet2017", "training", "REFERENCE.csv"))
    for name in reference.loc[reference["label"] == "N", "record"].head(5):
        record = wfdb.rdrecord(str(shared_file("physionet2017", "training", f"{name}.hea"))[:-4])
        features = record_features(record.p_signal[:, 0], record.fs)
        assert features["quality_usable"] == 1, name
        assert 40 < features["hr_mean_bpm"] < 120, name
        assert all(math.isfinite(v) for v in features.values()), name
