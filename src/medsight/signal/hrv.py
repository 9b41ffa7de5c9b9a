"""Record-level ECG features for rhythm classification: RR intervals, beat morphology, quality.

Every function returns the same keys for every record (:data:`RR_FEATURES`,
:data:`MORPHOLOGY_FEATURES`, :data:`RECORD_FEATURES`, in that order); a feature that cannot be
computed (too few beats, a flat line) is NaN, never an exception, so a table of thousands of
records has fixed columns. Everything is NumPy/SciPy on arrays of a few thousand samples:
:func:`record_features` takes a few milliseconds for a 30 s lead, where NeuroKit2's
``ecg_process``/``hrv`` suites take hundreds.

Units: RR statistics in milliseconds, heart rates in beats per minute, amplitudes in the
lead's own units (usually mV), fractions in [0, 1].
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal as sps
from scipy.spatial import cKDTree

from medsight.errors import DataError
from medsight.signal._checks import as_indices, as_lead, check_fs
from medsight.signal.beats import beat_windows, row_correlation, template_correlation
from medsight.signal.filters import clean_ecg
from medsight.signal.peaks import detect_rpeaks, ecg_polarity
from medsight.signal.quality import QUALITY_FEATURES, signal_quality

MIN_BEATS = 4  # three RR intervals: the least for a standard deviation of successive differences

RR_FEATURES: tuple[str, ...] = (
    "n_beats",
    "rr_mean_ms",
    "rr_median_ms",
    "rr_sd_ms",
    "rr_iqr_ms",
    "rr_min_ms",
    "rr_max_ms",
    "rr_cv",
    "hr_mean_bpm",
    "hr_min_bpm",
    "hr_max_bpm",
    "rmssd_ms",
    "rmssd_norm",
    "sdsd_ms",
    "drr_mean_abs_ms",
    "drr_median_abs_ms",
    "drr_max_abs_ms",
    "pnn20",
    "pnn50",
    "drr_rel_gt10pct",
    "sd1_ms",
    "sd2_ms",
    "sd1_sd2",
    "rr_turning_point_ratio",
    "rr_shannon_entropy",
    "rr_sampen",
    "rr_cosen",
)

MORPHOLOGY_FEATURES: tuple[str, ...] = (
    "tpl_r_amp",
    "tpl_min",
    "tpl_ptp",
    "tpl_t_amp",
    "tpl_qrs_width_ms",
    "r_amp_mean",
    "r_amp_cv",
    "beat_corr_mean",
    "beat_corr_min",
    "beat_corr_low_frac",
    "pr_qrs_rms_ratio",
    "pr_corr_mean",
    "pr_residual_ratio",
    "power_frac_lt4hz",
    "power_frac_4_9hz",
    "power_frac_9_15hz",
    "power_frac_gt15hz",
)

RECORD_FEATURES: tuple[str, ...] = (
    "duration_s",
    *RR_FEATURES,
    *MORPHOLOGY_FEATURES,
    *QUALITY_FEATURES,
)

# Windows relative to the R peak, in seconds: the median-beat template, the P-wave (PR) window,
# the QRS window and the T-wave search window.
_BEFORE_S, _AFTER_S = 0.25, 0.45
_PR_WINDOW = (-0.25, -0.08)
_QRS_WINDOW = (-0.05, 0.05)
_T_WINDOW = (0.15, 0.43)
# No band above 40 Hz: the cleaning's power-line filter is a moving average that removes it.
_POWER_BANDS = ((0.0, 4.0), (4.0, 9.0), (9.0, 15.0), (15.0, math.inf))
# Lake & Moorman 2011: grow the tolerance r from 30 ms until at least 5 template matches.
_COSEN_R_S = np.arange(0.03, 0.5001, 0.01)
_COSEN_MIN_MATCHES = 5


def rr_features(rpeaks: ArrayLike, fs: float) -> dict[str, float]:
    """RR-interval statistics and atrial-fibrillation irregularity features, keys RR_FEATURES.

    Besides the usual HRV statistics: ``rmssd_norm`` (RMSSD / mean RR), ``drr_rel_gt10pct``
    (fraction of successive RR changes above 10 % of the earlier interval), Poincaré SD1/SD2,
    the turning-point ratio (about 2/3 for a random series, lower for regular rhythms),
    the Shannon entropy of a 16-bin RR histogram (0-1), and the sample entropy (m = 1) and
    coefficient of sample entropy (COSEn) of Lake & Moorman 2011. With fewer than
    :data:`MIN_BEATS` beats every value except ``n_beats`` is NaN. RR intervals are taken as
    detected: no ectopic or artefact editing.
    """
    fs = check_fs(fs)
    peaks = np.unique(as_indices(rpeaks))
    features = dict.fromkeys(RR_FEATURES, math.nan)
    features["n_beats"] = float(peaks.size)
    if peaks.size < MIN_BEATS:
        return features
    rr = np.diff(peaks) / fs  # seconds
    drr = np.diff(rr)
    abs_drr = np.abs(drr)
    sd = float(np.std(rr, ddof=1))
    sdsd = float(np.std(drr, ddof=1))
    rmssd = float(np.sqrt(np.mean(drr**2)))
    q25, q75 = np.percentile(rr, [25, 75])
    sd2_squared = max(2 * sd**2 - sdsd**2 / 2, 0.0)
    features.update(
        rr_mean_ms=1000 * rr.mean(),
        rr_median_ms=1000 * np.median(rr),
        rr_sd_ms=1000 * sd,
        rr_iqr_ms=1000 * (q75 - q25),
        rr_min_ms=1000 * rr.min(),
        rr_max_ms=1000 * rr.max(),
        rr_cv=sd / rr.mean(),
        hr_mean_bpm=60 / rr.mean(),
        hr_min_bpm=60 / rr.max(),
        hr_max_bpm=60 / rr.min(),
        rmssd_ms=1000 * rmssd,
        rmssd_norm=rmssd / rr.mean(),
        sdsd_ms=1000 * sdsd,
        drr_mean_abs_ms=1000 * abs_drr.mean(),
        drr_median_abs_ms=1000 * np.median(abs_drr),
        drr_max_abs_ms=1000 * abs_drr.max(),
        pnn20=np.mean(abs_drr > 0.020),
        pnn50=np.mean(abs_drr > 0.050),
        drr_rel_gt10pct=np.mean(abs_drr > 0.1 * rr[:-1]),
        sd1_ms=1000 * sdsd / math.sqrt(2),
        sd2_ms=1000 * math.sqrt(sd2_squared),
        sd1_sd2=(sdsd / math.sqrt(2)) / math.sqrt(sd2_squared) if sd2_squared > 0 else math.nan,
        rr_turning_point_ratio=_turning_point_ratio(rr),
        rr_shannon_entropy=_histogram_entropy(rr, bins=16),
    )
    features["rr_sampen"], features["rr_cosen"] = _cosen(rr)
    return {key: float(value) for key, value in features.items()}


def morphology_features(x: ArrayLike, fs: float, rpeaks: ArrayLike) -> dict[str, float]:
    """Median-beat (template) features of a cleaned lead, keys MORPHOLOGY_FEATURES.

    Pass the lead cleaned and turned QRS-up (as :func:`record_features` does). The template is
    the sample-wise median of the beats from 250 ms before to 450 ms after each R peak.
    ``tpl_qrs_width_ms`` is a cheap proxy: the span around R where the template's smoothed
    slope exceeds 20 % of its maximum. ``pr_*`` describe the 250-80 ms before R: P-wave size
    relative to QRS, how alike it is from beat to beat (P waves repeat, fibrillatory waves do
    not) and what remains after subtracting the template. ``power_frac_*`` split the lead's
    Welch power spectrum into bands. With fewer than MIN_BEATS whole beats the template
    features are NaN.
    """
    fs = check_fs(fs)
    lead = as_lead(x)
    features = dict.fromkeys(MORPHOLOGY_FEATURES, math.nan)
    features.update(_band_power_fractions(lead, fs))
    windows, _ = beat_windows(lead, fs, rpeaks, _BEFORE_S, _AFTER_S)
    if windows.shape[0] < MIN_BEATS:
        return features
    template, corr = template_correlation(windows)
    r_index = round(_BEFORE_S * fs)
    pr, qrs, t_wave = (_window_slice(w, fs) for w in (_PR_WINDOW, _QRS_WINDOW, _T_WINDOW))
    r_amp = windows[:, r_index]
    t_segment = template[t_wave]
    qrs_rms = _rms(template[qrs] - template[qrs].mean())
    pr_beats = windows[:, pr] - windows[:, pr].mean(axis=1, keepdims=True)
    pr_template = template[pr] - template[pr].mean()
    pr_corr = row_correlation(pr_beats, pr_template)
    features.update(
        tpl_r_amp=template[r_index],
        tpl_min=template.min(),
        tpl_ptp=np.ptp(template),
        tpl_t_amp=t_segment[np.argmax(np.abs(t_segment))],
        tpl_qrs_width_ms=_qrs_width_ms(template, fs, r_index),
        r_amp_mean=r_amp.mean(),
        r_amp_cv=r_amp.std() / abs(r_amp.mean()) if r_amp.mean() != 0 else math.nan,
        beat_corr_mean=_finite_mean(corr),
        beat_corr_min=np.nanmin(corr) if np.isfinite(corr).any() else math.nan,
        beat_corr_low_frac=np.mean(corr < 0.8),
        pr_qrs_rms_ratio=_rms(pr_template) / qrs_rms if qrs_rms > 0 else math.nan,
        pr_corr_mean=_finite_mean(pr_corr),
        pr_residual_ratio=_rms(pr_beats - pr_template) / qrs_rms if qrs_rms > 0 else math.nan,
    )
    return {key: float(value) for key, value in features.items()}


def record_features(x: ArrayLike, fs: float, method: str = "neurokit") -> dict[str, float]:
    """Every feature of one single-lead record, keys RECORD_FEATURES; never raises on the data.

    Cleans the lead (:func:`~medsight.signal.filters.clean_ecg`, NeuroKit2's default method),
    turns it QRS-up, detects R peaks on it with ``method``, then adds :func:`rr_features`,
    :func:`morphology_features`, the quality numbers of
    :func:`~medsight.signal.quality.signal_quality` and ``duration_s``. A lead that cannot be
    cleaned (NaN, too short, empty) gives NaN everywhere but the quality keys and ``n_beats``.
    """
    fs = check_fs(fs)
    features = dict.fromkeys(RECORD_FEATURES, math.nan)
    features.update(rr_features([], fs))
    cleaned, rpeaks = None, None
    try:
        cleaned = clean_ecg(x, fs)
        cleaned = cleaned * ecg_polarity(cleaned, fs)
        rpeaks = detect_rpeaks(cleaned, fs, method, clean=False)
        features.update(rr_features(rpeaks, fs))
        features.update(morphology_features(cleaned, fs, rpeaks))
    except DataError:
        pass  # the quality check below names what is wrong with the lead
    quality = signal_quality(x, fs, cleaned=cleaned, rpeaks=rpeaks)
    features.update(quality.as_features())
    features["duration_s"] = quality.duration_s
    return features


def _turning_point_ratio(rr: np.ndarray) -> float:
    if rr.size < 3:
        return math.nan
    left, middle, right = rr[:-2], rr[1:-1], rr[2:]
    turning = ((middle > left) & (middle > right)) | ((middle < left) & (middle < right))
    return float(turning.mean())


def _histogram_entropy(values: np.ndarray, bins: int) -> float:
    counts, _ = np.histogram(values, bins=bins)
    p = counts[counts > 0] / values.size
    return float(-(p * np.log(p)).sum() / math.log(bins))


def _cosen(rr: np.ndarray) -> tuple[float, float]:
    """Sample entropy (m = 1) and COSEn = SampEn + ln(2r) - ln(mean RR), Lake & Moorman 2011.

    Written here because the tolerance r grows until enough matches are found (their
    "minimum numerator count"), which NeuroKit2's fixed-r ``entropy_sample`` does not do; a
    k-d tree counts the matches at every r in one pass.
    """
    if rr.size < 3:
        return math.nan, math.nan
    singles = rr[:-1, None]  # templates of length m = 1 that have a successor
    pairs = np.column_stack([rr[:-1], rr[1:]])  # the same templates extended to m + 1 = 2
    n = singles.shape[0]
    b = (cKDTree(singles).count_neighbors(cKDTree(singles), _COSEN_R_S, p=np.inf) - n) / 2
    a = (cKDTree(pairs).count_neighbors(cKDTree(pairs), _COSEN_R_S, p=np.inf) - n) / 2
    enough = np.flatnonzero(a >= _COSEN_MIN_MATCHES)
    if enough.size == 0:
        return math.nan, math.nan
    i = enough[0]
    sampen = -math.log(a[i] / b[i])
    return sampen, sampen + math.log(2 * _COSEN_R_S[i]) - math.log(rr.mean())


def _band_power_fractions(lead: np.ndarray, fs: float) -> dict[str, float]:
    names = [k for k in MORPHOLOGY_FEATURES if k.startswith("power_frac_")]
    freqs, power = sps.welch(lead, fs=fs, nperseg=min(lead.size, round(4 * fs)))
    total = power.sum()
    if not total > 0:
        return dict.fromkeys(names, math.nan)
    return {
        name: float(power[(freqs >= lo) & (freqs < hi)].sum() / total)
        for name, (lo, hi) in zip(names, _POWER_BANDS, strict=True)
    }


def _qrs_width_ms(template: np.ndarray, fs: float, r_index: int) -> float:
    # A slope envelope instead of NeuroKit2's ecg_delineate, which takes ~100 ms per record.
    slope = np.abs(np.gradient(template)) * fs
    width = max(1, round(0.04 * fs))
    envelope = np.convolve(slope, np.ones(width) / width, mode="same")
    lo, hi = max(0, r_index - round(0.12 * fs)), min(template.size, r_index + round(0.12 * fs))
    local = envelope[lo:hi]
    if local.size == 0 or not local.max() > 0:
        return math.nan
    below = local < 0.2 * local.max()
    peak = int(np.argmax(local))
    # The run of above-threshold samples containing the steepest point.
    start = peak - int(np.argmax(below[peak::-1])) + 1 if below[: peak + 1].any() else 0
    stop = peak + int(np.argmax(below[peak:])) if below[peak:].any() else local.size
    return 1000 * (stop - start) / fs


def _window_slice(window: tuple[float, float], fs: float) -> slice:
    r_index = round(_BEFORE_S * fs)
    return slice(r_index + round(window[0] * fs), r_index + round(window[1] * fs))


def _finite_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values))))
