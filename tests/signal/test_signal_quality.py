"""Signal quality: each failure flagged with a reason; clean ECG passes; odd input never raises."""

from __future__ import annotations

import math

import neurokit2 as nk
import numpy as np
import pytest

from medsight.errors import ConfigError
from medsight.signal.quality import QUALITY_FEATURES, QualityResult, signal_quality

FS = 300


@pytest.fixture(scope="module")
def ecg() -> np.ndarray:
    return nk.ecg_simulate(duration=30, sampling_rate=FS, heart_rate=70, random_state=11)


def _reasons(result: QualityResult) -> str:
    return " | ".join(result.reasons)


@pytest.mark.parametrize("fs", [250, 300, 360, 500])
def test_clean_simulated_ecg_is_usable(fs: int) -> None:
    ecg = nk.ecg_simulate(duration=20, sampling_rate=fs, heart_rate=75, random_state=4)
    result = signal_quality(ecg, fs)
    assert result.usable, _reasons(result)
    assert result.reasons == [] and result.score > 0.9
    assert result.heart_rate_bpm == pytest.approx(75, rel=0.03)
    assert result.ksqi > 5 and result.template_corr > 0.95 and result.psqi > 0.5
    assert result.flat_fraction == 0 and result.nan_fraction == 0


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda e: np.zeros_like(e), "flat line"),
        (lambda e: np.full_like(e, 3.2), "flat line"),
        (lambda e: np.concatenate([e[:3000], np.full(e.size - 3000, e[3000])]), "flat line"),
        (lambda e: np.where(np.arange(e.size) == 500, np.nan, e), "NaN"),
        (lambda e: np.where(np.arange(e.size) < 10, np.inf, e), "NaN or infinite"),
        (lambda e: e[: 4 * FS], "too short"),
        (lambda e: np.clip(e, np.percentile(e, 3), np.percentile(e, 97)), "clipping"),
        (lambda e: np.random.default_rng(0).normal(size=e.size), "excessive noise"),
        (lambda e: e + 4 * np.random.default_rng(1).normal(size=e.size) * e.std(), "noise"),
    ],
    ids=["zeros", "constant", "lead-off", "nan", "inf", "short", "clipped", "noise", "snr-12dB"],
)
def test_each_failure_is_flagged(ecg: np.ndarray, make, reason: str) -> None:
    result = signal_quality(make(ecg), FS)
    assert not result.usable
    assert reason in _reasons(result)
    assert 0 <= result.score <= 0.5


def test_implausible_heart_rate(ecg: np.ndarray) -> None:
    result = signal_quality(ecg, FS, hr_range=(100.0, 200.0))
    assert not result.usable and "implausible heart rate: 70 bpm" in _reasons(result)
    assert "no heartbeats" in _reasons(signal_quality(ecg, FS, rpeaks=[100]))


def test_min_seconds_is_a_parameter(ecg: np.ndarray) -> None:
    assert signal_quality(ecg[: 4 * FS], FS, min_seconds=3).usable
    assert not signal_quality(ecg, FS, min_seconds=40).usable


@pytest.mark.parametrize(
    "odd",
    [
        [],
        np.array([np.nan] * 100),
        np.ones(5),
        [1.0],
        np.zeros((10, 3)),
        ["not", "numbers"],
        None,
        np.array([1e308, -1e308] * 3000),
        np.linspace(0, 1, 9000),
    ],
    ids=["empty", "all-nan", "tiny", "one", "2d", "text", "none", "huge", "ramp"],
)
def test_odd_input_never_raises(odd) -> None:
    result = signal_quality(odd, FS)
    assert result.usable is False
    assert result.reasons and all(isinstance(r, str) for r in result.reasons)
    assert 0 <= result.score <= 0.5


def test_invalid_fs_is_a_config_error(ecg: np.ndarray) -> None:
    with pytest.raises(ConfigError):
        signal_quality(ecg, -1)


def test_features_view(ecg: np.ndarray) -> None:
    features = signal_quality(ecg, FS).as_features()
    assert list(features) == list(QUALITY_FEATURES)
    assert features["quality_usable"] == 1.0
    flat = signal_quality(np.zeros(9000), FS).as_features()
    assert list(flat) == list(QUALITY_FEATURES)
    assert flat["quality_usable"] == 0.0 and math.isnan(flat["ksqi"])
