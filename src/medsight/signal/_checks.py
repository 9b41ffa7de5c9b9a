"""Input checks shared by the signal modules: one lead as a finite 1-D float array, a valid fs."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from medsight.errors import ConfigError, DataError


def check_fs(fs: float) -> float:
    """``fs`` as a float; a ConfigError unless it is a finite number above zero."""
    if isinstance(fs, bool) or not isinstance(fs, int | float | np.integer | np.floating):
        raise ConfigError(f"fs must be a sampling rate in Hz (a number); received {fs!r}.")
    if not math.isfinite(fs) or fs <= 0:
        raise ConfigError(f"fs must be a positive, finite sampling rate in Hz; received {fs!r}.")
    return float(fs)


def as_lead(x: ArrayLike, *, allow_nan: bool = False) -> np.ndarray:
    """One ECG lead as a 1-D float64 array; (n, 1) and (1, n) arrays are flattened.

    Raises DataError for an empty, multi-lead or non-numeric array and, unless ``allow_nan``, for
    NaN or infinite samples (filters would smear them over the whole record).
    """
    try:
        lead = np.asarray(x, dtype=float)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"An ECG lead must be numeric; converting it to float failed: {err}"
        ) from None
    if lead.ndim == 2 and 1 in lead.shape:
        lead = lead.reshape(-1)
    if lead.ndim != 1:
        raise DataError(
            f"Expected one ECG lead as a 1-D array; received shape {lead.shape}. "
            "Pass one column (lead) at a time."
        )
    if lead.size == 0:
        raise DataError("The ECG lead is empty (0 samples).")
    if not allow_nan:
        bad = ~np.isfinite(lead)
        if bad.any():
            raise DataError(
                f"The ECG lead has {int(bad.sum())} NaN or infinite samples (first at index "
                f"{int(np.argmax(bad))}); interpolate or cut out the gap before filtering."
            )
    return lead


def require_samples(lead: np.ndarray, n_min: int, fs: float, what: str) -> None:
    """A DataError naming ``what`` when ``lead`` has ``n_min`` samples or fewer."""
    if lead.size <= n_min:
        raise DataError(
            f"{what} needs more than {n_min} samples ({n_min / fs:.2f} s at {fs:g} Hz); the lead "
            f"has {lead.size} ({lead.size / fs:.2f} s)."
        )


def as_indices(values: ArrayLike, name: str = "rpeaks") -> np.ndarray:
    """Sample indices as a 1-D int64 array (empty stays empty); DataError for NaN or fractions."""
    samples = np.asarray(values)
    if samples.size == 0:
        return np.empty(0, dtype=np.int64)
    if samples.ndim != 1 or not np.issubdtype(samples.dtype, np.number):
        raise DataError(f"{name} must be a 1-D array of sample indices; got shape {samples.shape}.")
    if not np.all(np.isfinite(samples)) or np.any(samples != np.round(samples)):
        raise DataError(f"{name} must hold whole sample indices (no NaN, no fractions).")
    return samples.astype(np.int64)
