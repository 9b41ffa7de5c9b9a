"""Is a single-lead ECG usable? Flat lines, gaps, clipping, noise and implausible heart rates.

:func:`signal_quality` never raises on the samples (empty, all-NaN, constant, text...): it
returns ``usable=False`` with the reasons. Noise is judged by signal quality indices (SQIs) of
the ECG literature (Li, Clifford & Mark 2008; Zhao & Zhang 2018):

* ``ksqi``, the kurtosis of the cleaned lead: spiky QRS complexes make it large (> 5 for a clean
  ECG), Gaussian noise has 3;
* ``psqi``, power in 5-15 Hz over 5-40 Hz: about 0.5-0.8 where QRS energy dominates;
* ``bassqi``, 1 - power below 1 Hz over power below 40 Hz: low with baseline wander;
* ``template_corr``, the mean correlation of each beat with the median beat (NeuroKit2's
  "averageQRS" idea): near 1 when every detected beat looks alike.

The noise thresholds below were set on PhysioNet/CinC 2017 training records (300 Hz, single
lead), where they flag about half of the "~" (too noisy to classify) records and 2-3 % of the
others; ``score`` is a heuristic in [0, 1] for ranking records, not a calibrated probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal as sps
from scipy import stats

from medsight.errors import DataError
from medsight.signal._checks import as_indices, as_lead, check_fs
from medsight.signal.beats import beat_windows, template_correlation
from medsight.signal.filters import clean_ecg
from medsight.signal.peaks import detect_rpeaks, heart_rate

QUALITY_FEATURES: tuple[str, ...] = (
    "quality_score",
    "quality_usable",
    "flat_fraction",
    "clipped_fraction",
    "ksqi",
    "psqi",
    "bassqi",
)  # template_corr is left out: it equals hrv's beat_corr_mean

# Flat: runs of at least FLAT_RUN_S seconds whose sample-to-sample change is at most FLAT_STEP
# (in the lead's units: below the quantisation step of ECG recorders in mV or in ADC counts).
FLAT_STEP = 1e-4
FLAT_RUN_S = 0.2
MAX_FLAT_FRACTION = 0.5
# Clipping: samples within CLIP_BAND x range of the lead's minimum or maximum (the rails).
CLIP_BAND = 1e-3
MAX_CLIPPED_FRACTION = 0.01
# Noise: the beats do not look alike (template correlation below NOISY_CORR), or they look only
# fairly alike (below DOUBTFUL_CORR) and the lead is also un-spiky, wandering or dominated by
# high-frequency noise. On 175 "~" and 900 other 2017 records (558 N) this flags 54 % of the "~",
# 2.9 % of the N and 1.9 % of all the others; the correlation alone at 0.5 flags 50 % and 1.1 %.
NOISY_CORR = 0.5
DOUBTFUL_CORR = 0.6
MIN_KSQI = 4.0
MIN_BASSQI = 0.4
MIN_PSQI = 0.45
PSQI_RANGE = (0.5, 0.9)  # the good range, for the score only


@dataclass
class QualityResult:
    """The verdict (``usable``, ``reasons``), a score in [0, 1] and the numbers behind them."""

    usable: bool
    reasons: list[str]
    score: float
    duration_s: float = math.nan
    nan_fraction: float = math.nan
    flat_fraction: float = math.nan
    clipped_fraction: float = math.nan
    heart_rate_bpm: float = math.nan
    n_beats: int = 0
    ksqi: float = math.nan
    psqi: float = math.nan
    bassqi: float = math.nan
    template_corr: float = math.nan

    def as_features(self) -> dict[str, float]:
        """The numbers named in QUALITY_FEATURES, as floats (``quality_usable`` is 0 or 1)."""
        values = {
            "quality_score": self.score,
            "quality_usable": float(self.usable),
            "flat_fraction": self.flat_fraction,
            "clipped_fraction": self.clipped_fraction,
            "ksqi": self.ksqi,
            "psqi": self.psqi,
            "bassqi": self.bassqi,
        }
        return {key: float(values[key]) for key in QUALITY_FEATURES}


def signal_quality(
    x: ArrayLike,
    fs: float,
    *,
    min_seconds: float = 5.0,
    hr_range: tuple[float, float] = (25.0, 250.0),
    cleaned: ArrayLike | None = None,
    rpeaks: ArrayLike | None = None,
) -> QualityResult:
    """Check one lead: length, NaN, flat line, clipping, beats, heart rate and noise.

    ``cleaned`` (the lead after :func:`~medsight.signal.filters.clean_ecg`) and ``rpeaks`` can
    be passed to save recomputing them. Only an invalid ``fs`` raises (ConfigError).
    """
    fs = check_fs(fs)
    try:
        lead = as_lead(x, allow_nan=True)
    except DataError as err:
        return QualityResult(False, [f"not an ECG lead: {err}"], 0.0)
    result = QualityResult(True, [], 0.0, duration_s=lead.size / fs)
    if result.duration_s < min_seconds:
        result.reasons.append(f"too short: {result.duration_s:.2f} s < {min_seconds:g} s")
    finite = np.isfinite(lead)
    result.nan_fraction = float(1 - finite.mean())
    if not finite.all():
        result.reasons.append(
            f"NaN or infinite samples: {int((~finite).sum())} ({result.nan_fraction:.1%})"
        )
        return _finish(result, {})
    with np.errstate(over="ignore"):
        span = float(np.ptp(lead))
    if not math.isfinite(span):
        result.reasons.append("values out of range: their span overflows float64")
        return _finish(result, {})
    result.flat_fraction = _flat_fraction(lead, fs)
    if result.flat_fraction > MAX_FLAT_FRACTION:
        result.reasons.append(
            f"flat line: {result.flat_fraction:.0%} of the samples do not change for "
            f">= {FLAT_RUN_S:g} s"
        )
    if result.duration_s < min_seconds or span <= FLAT_STEP:
        return _finish(result, {})  # nothing more to measure
    result.clipped_fraction = _clipped_fraction(lead)
    if result.clipped_fraction > MAX_CLIPPED_FRACTION:
        result.reasons.append(
            f"clipping: {result.clipped_fraction:.1%} of the samples sit at the minimum or maximum"
        )
    try:
        cleaned = clean_ecg(lead, fs) if cleaned is None else as_lead(cleaned)
        peaks = detect_rpeaks(cleaned, fs, clean=False) if rpeaks is None else as_indices(rpeaks)
    except DataError as err:
        result.reasons.append(f"no beats could be detected: {err}")
        return _finish(result, {})
    scores = _check_rhythm(result, peaks, fs, hr_range)
    scores.update(_check_noise(result, lead, cleaned, peaks, fs))
    return _finish(result, scores)


def _check_rhythm(
    result: QualityResult, peaks: np.ndarray, fs: float, hr_range: tuple[float, float]
) -> dict[str, float]:
    """Beat count and heart rate into ``result``; returns the heart-rate score (0 or 1)."""
    result.n_beats = int(peaks.size)
    result.heart_rate_bpm = heart_rate(peaks, fs)
    low, high = hr_range
    if peaks.size < 2:
        result.reasons.append(f"no heartbeats: {peaks.size} R peak(s) detected")
    elif not low <= result.heart_rate_bpm <= high:
        result.reasons.append(
            f"implausible heart rate: {result.heart_rate_bpm:.0f} bpm "
            f"(expected {low:g}-{high:g} bpm)"
        )
    return {"heart_rate": float(peaks.size >= 2 and low <= result.heart_rate_bpm <= high)}


def _check_noise(
    result: QualityResult, lead: np.ndarray, cleaned: np.ndarray, peaks: np.ndarray, fs: float
) -> dict[str, float]:
    """The SQIs into ``result``, a reason when noisy; returns a score in [0, 1] per SQI."""
    result.ksqi = float(stats.kurtosis(cleaned, fisher=False)) if np.ptp(cleaned) > 0 else math.nan
    freqs, power = sps.welch(lead, fs=fs, nperseg=min(lead.size, round(4 * fs)))
    band = {
        (lo, hi): power[(freqs >= lo) & (freqs <= hi)].sum()
        for lo, hi in ((5, 15), (5, 40), (0, 1), (0, 40))
    }
    result.psqi = _safe_ratio(band[5, 15], band[5, 40])
    result.bassqi = 1 - _safe_ratio(band[0, 1], band[0, 40])
    windows, _ = beat_windows(cleaned, fs, peaks)
    if windows.shape[0] >= 2:
        corr = template_correlation(windows)[1]
        corr = corr[np.isfinite(corr)]
        result.template_corr = float(corr.mean()) if corr.size else math.nan
    corr = result.template_corr if math.isfinite(result.template_corr) else 0.0
    also = []
    if not result.ksqi >= MIN_KSQI:
        also.append(f"kurtosis {result.ksqi:.1f} < {MIN_KSQI:g}")
    if not result.bassqi >= MIN_BASSQI:
        also.append(f"baseline SQI {result.bassqi:.2f} < {MIN_BASSQI:g}")
    if not result.psqi >= MIN_PSQI:
        also.append(f"QRS-band power ratio {result.psqi:.2f} < {MIN_PSQI:g}")
    if corr < NOISY_CORR or (corr < DOUBTFUL_CORR and also):
        detail = "; ".join([f"beats correlate {corr:.2f} with the median beat", *also])
        result.reasons.append(f"excessive noise: {detail}")
    distance_to_psqi_range = min(result.psqi - PSQI_RANGE[0], PSQI_RANGE[1] - result.psqi)
    return {
        "kurtosis": _ramp(result.ksqi, 3.0, 5.0),
        "template": _ramp(corr, 0.3, 0.9),
        "baseline": _ramp(result.bassqi, 0.2, 0.8),
        "qrs_power": _ramp(distance_to_psqi_range, -0.2, 0.0),
    }


def _finish(result: QualityResult, scores: dict[str, float]) -> QualityResult:
    """``usable`` when there is no reason against; ``score`` the mean of the sub-scores.

    The score of an unusable record is at most 0.5, and 0 when the checks stopped early (too
    short, NaN, flat, unfilterable: no sub-scores).
    """
    result.usable = not result.reasons
    if not scores:
        result.score = 0.0
        return result
    scores = {
        "flat": 1 - result.flat_fraction,
        "clipping": _ramp(-result.clipped_fraction, -5 * MAX_CLIPPED_FRACTION, 0.0),
        **scores,
    }
    result.score = float(np.mean([s for s in scores.values() if math.isfinite(s)]))
    if not result.usable:
        result.score = min(result.score, 0.5)
    return result


def _flat_fraction(lead: np.ndarray, fs: float) -> float:
    """The fraction of samples in runs of >= FLAT_RUN_S s that change by at most FLAT_STEP."""
    if lead.size < 2:
        return 1.0
    still = np.abs(np.diff(lead)) <= FLAT_STEP
    edges = np.flatnonzero(np.diff(np.concatenate([[0], still.astype(np.int8), [0]])))
    run_samples = edges[1::2] - edges[::2] + 1  # a run of k still steps spans k + 1 samples
    return float(run_samples[run_samples >= FLAT_RUN_S * fs].sum() / lead.size)


def _clipped_fraction(lead: np.ndarray) -> float:
    """The fraction of samples at the rails: within CLIP_BAND x range of the min or the max."""
    low, high = lead.min(), lead.max()
    band = CLIP_BAND * (high - low)
    return float(np.mean(lead >= high - band) + np.mean(lead <= low + band))


def _ramp(value: float, zero_at: float, one_at: float) -> float:
    """0 at or below ``zero_at``, 1 at or above ``one_at``, linear between; NaN stays NaN."""
    if not math.isfinite(value):
        return math.nan
    return float(np.clip((value - zero_at) / (one_at - zero_at), 0.0, 1.0))


def _safe_ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator > 0 else math.nan
