"""Zero-phase ECG filters: band-pass, power-line notch, baseline removal and NeuroKit2 cleaning.

Every filter runs forwards and backwards (``sosfiltfilt``/``filtfilt``), so QRS complexes are not
shifted in time and R-peak positions found on the output line up with the input. Inputs are one
lead as a 1-D array and ``fs`` in Hz; NaN samples and leads shorter than the filter's padding are
a :class:`~medsight.errors.DataError` with the numbers, not a SciPy traceback.
"""

from __future__ import annotations

from numbers import Real

import neurokit2 as nk
import numpy as np
from numpy.typing import ArrayLike
from scipy import signal as sps

from medsight.errors import ConfigError, DataError
from medsight.signal._checks import as_lead, check_fs, require_samples

# The NeuroKit2 0.2.x ecg_clean methods offered here (its other names are aliases or no-ops).
CLEAN_METHODS: tuple[str, ...] = (
    "neurokit",
    "biosppy",
    "pantompkins1985",
    "hamilton2002",
    "elgendi2010",
    "engzeemod2012",
    "templateconvolution",
)


def bandpass(
    x: ArrayLike, fs: float, low: float = 0.5, high: float = 40.0, order: int = 4
) -> np.ndarray:
    """Zero-phase Butterworth band-pass (second-order sections); ``order`` is per direction."""
    fs = check_fs(fs)
    _check_band(low, high, fs)
    sos = sps.butter(_check_order(order), [low, high], btype="bandpass", fs=fs, output="sos")
    return _sosfiltfilt(sos, as_lead(x), fs, f"A {low:g}-{high:g} Hz band-pass filter")


def remove_baseline(x: ArrayLike, fs: float, cutoff: float = 0.5, order: int = 2) -> np.ndarray:
    """Baseline wander removed by a zero-phase Butterworth high-pass at ``cutoff`` Hz."""
    fs = check_fs(fs)
    _check_band(cutoff, None, fs)
    sos = sps.butter(_check_order(order), cutoff, btype="highpass", fs=fs, output="sos")
    return _sosfiltfilt(sos, as_lead(x), fs, f"A {cutoff:g} Hz baseline (high-pass) filter")


def notch(x: ArrayLike, fs: float, freq: float = 50.0, quality: float = 30.0) -> np.ndarray:
    """Power-line interference at ``freq`` Hz (50 or 60) removed by a zero-phase IIR notch.

    ``quality`` is the notch's Q: the -3 dB stop band is ``freq / quality`` Hz wide.
    """
    fs = check_fs(fs)
    _check_band(freq, None, fs, name="freq")
    if not quality > 0:
        raise ConfigError(f"quality must be above 0; received {quality!r}.")
    b, a = sps.iirnotch(freq, quality, fs=fs)
    lead = as_lead(x)
    require_samples(lead, 3 * max(len(a), len(b)), fs, f"A {freq:g} Hz notch filter")
    return sps.filtfilt(b, a, lead)


def clean_ecg(
    x: ArrayLike, fs: float, method: str = "neurokit", powerline: float = 50.0
) -> np.ndarray:
    """NeuroKit2's ``ecg_clean``: for "neurokit", a 0.5 Hz high-pass and a ``powerline`` filter.

    ``method`` is one of :data:`CLEAN_METHODS`; detectors in :mod:`medsight.signal.peaks` work
    best on a lead cleaned by their namesake method where one exists.
    """
    fs = check_fs(fs)
    if method not in CLEAN_METHODS:
        raise ConfigError(f"Unknown ECG cleaning method {method!r}; choose one of {CLEAN_METHODS}.")
    lead = as_lead(x)
    kwargs = {"powerline": powerline} if method == "neurokit" else {}
    try:
        return np.asarray(nk.ecg_clean(lead, sampling_rate=fs, method=method, **kwargs), float)
    except ValueError as err:
        # SciPy's filtfilt says "The length of the input vector x must be greater than padlen".
        raise DataError(
            f"NeuroKit2 could not clean a lead of {lead.size} samples ({lead.size / fs:.2f} s at "
            f"{fs:g} Hz) with method {method!r}: {err}"
        ) from None


def _sosfiltfilt(sos: np.ndarray, lead: np.ndarray, fs: float, what: str) -> np.ndarray:
    # The default padding of scipy.signal.sosfiltfilt, computed as SciPy does, so that a short lead
    # gets a message naming the filter and the length it needs.
    n_zeros = min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    require_samples(lead, 3 * (2 * len(sos) + 1 - n_zeros), fs, what)
    return sps.sosfiltfilt(sos, lead)


def _check_band(low: float, high: float | None, fs: float, name: str = "cutoff") -> None:
    nyquist = fs / 2
    edges = [low] if high is None else [low, high]
    if not all(isinstance(f, Real) and 0 < f < nyquist for f in edges):
        raise ConfigError(
            f"Filter {name} frequencies must lie strictly between 0 and fs/2 = {nyquist:g} Hz; "
            f"received {edges}."
        )
    if high is not None and low >= high:
        raise ConfigError(f"The band-pass low edge must be below the high edge; got {low}-{high}.")


def _check_order(order: int) -> int:
    if isinstance(order, bool) or not isinstance(order, int | np.integer) or order < 1:
        raise ConfigError(f"Filter order must be a whole number of at least 1; received {order!r}.")
    return int(order)
