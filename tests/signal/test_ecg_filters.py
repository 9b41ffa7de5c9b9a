"""ECG filters: power-line and baseline-wander removal measured in the spectrum, clear errors."""

from __future__ import annotations

import neurokit2 as nk
import numpy as np
import pytest
from scipy import signal as sps

from medsight.errors import ConfigError, DataError
from medsight.signal.filters import CLEAN_METHODS, bandpass, clean_ecg, notch, remove_baseline

FS = 300


@pytest.fixture(scope="module")
def ecg() -> np.ndarray:
    return nk.ecg_simulate(duration=20, sampling_rate=FS, heart_rate=70, random_state=3)


def _band_power(x: np.ndarray, low: float, high: float) -> float:
    freqs, power = sps.welch(x, fs=FS, nperseg=1024)
    return float(power[(freqs >= low) & (freqs <= high)].sum())


def _with_mains(ecg: np.ndarray, freq: float = 50.0) -> np.ndarray:
    t = np.arange(ecg.size) / FS
    return ecg + 0.5 * np.sin(2 * np.pi * freq * t)


def _with_wander(ecg: np.ndarray) -> np.ndarray:
    t = np.arange(ecg.size) / FS
    return ecg + np.sin(2 * np.pi * 0.2 * t) + 0.5 * np.sin(2 * np.pi * 0.05 * t + 1)


@pytest.mark.parametrize("freq", [50.0, 60.0])
def test_notch_removes_mains_and_keeps_the_qrs_band(ecg: np.ndarray, freq: float) -> None:
    noisy = _with_mains(ecg, freq)
    out = notch(noisy, FS, freq=freq)
    before, after = _band_power(noisy, freq - 1, freq + 1), _band_power(out, freq - 1, freq + 1)
    assert 10 * np.log10(before / after) > 40  # measured ~58 dB at 50 Hz
    assert _band_power(out, 5, 15) == pytest.approx(_band_power(ecg, 5, 15), rel=0.01)


@pytest.mark.parametrize(
    "apply", [lambda x: bandpass(x, FS), lambda x: clean_ecg(x, FS)], ids=["bandpass", "clean"]
)
def test_bandpass_and_clean_attenuate_50_hz(ecg: np.ndarray, apply) -> None:
    noisy = _with_mains(ecg)
    assert _band_power(apply(noisy), 49, 51) < 0.05 * _band_power(noisy, 49, 51)


@pytest.mark.parametrize(
    "apply",
    [lambda x: remove_baseline(x, FS), lambda x: bandpass(x, FS), lambda x: clean_ecg(x, FS)],
    ids=["remove_baseline", "bandpass", "clean"],
)
def test_baseline_wander_is_removed(ecg: np.ndarray, apply) -> None:
    wandering = _with_wander(ecg)
    out = apply(wandering)
    assert _band_power(out, 0, 0.4) < 0.01 * _band_power(wandering, 0, 0.4)
    assert np.corrcoef(out, ecg)[0, 1] > 0.85 > np.corrcoef(wandering, ecg)[0, 1]


def test_filters_are_zero_phase(ecg: np.ndarray) -> None:
    peaks = sps.find_peaks(ecg, height=0.5 * ecg.max(), distance=FS // 3)[0]
    for out in (bandpass(ecg, FS), notch(ecg, FS), remove_baseline(ecg, FS), clean_ecg(ecg, FS)):
        moved = [int(np.argmax(out[p - 10 : p + 11])) - 10 for p in peaks[1:-1]]
        assert max(abs(m) for m in moved) <= 1


def test_output_has_the_input_length_and_accepts_a_column(ecg: np.ndarray) -> None:
    assert bandpass(ecg[:, None], FS).shape == ecg.shape
    assert clean_ecg(ecg.tolist(), float(FS)).shape == ecg.shape


def test_short_input_is_a_data_error_naming_the_length() -> None:
    short = np.ones(20)
    for call in (
        lambda: bandpass(short, FS),
        lambda: remove_baseline(np.ones(5), FS),
        lambda: notch(np.ones(5), FS),
        lambda: clean_ecg(np.ones(10), FS),
    ):
        with pytest.raises(DataError, match=r"samples \("):
            call()


def test_nan_is_rejected_with_its_position(ecg: np.ndarray) -> None:
    gappy = ecg.copy()
    gappy[[100, 200]] = np.nan
    for call in (bandpass, notch, remove_baseline, clean_ecg):
        with pytest.raises(DataError, match=r"2 NaN or infinite samples \(first at index 100"):
            call(gappy, FS)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: bandpass(x, FS, high=200.0),
        lambda x: bandpass(x, FS, low=30.0, high=20.0),
        lambda x: bandpass(x, FS, order=0),
        lambda x: notch(x, FS, freq=0.0),
        lambda x: notch(x, FS, quality=0),
        lambda x: clean_ecg(x, FS, method="magic"),
        lambda x: bandpass(x, 0),
        lambda x: bandpass(x, float("nan")),
    ],
)
def test_bad_settings_are_config_errors(ecg: np.ndarray, call) -> None:
    with pytest.raises(ConfigError):
        call(ecg)


def test_bad_shapes_are_data_errors() -> None:
    with pytest.raises(DataError, match="one ECG lead"):
        bandpass(np.ones((1000, 2)), FS)
    with pytest.raises(DataError, match="empty"):
        clean_ecg([], FS)


@pytest.mark.parametrize("method", CLEAN_METHODS)
def test_every_clean_method_runs(ecg: np.ndarray, method: str) -> None:
    out = clean_ecg(ecg, FS, method=method)
    assert out.shape == ecg.shape and np.isfinite(out).all()
