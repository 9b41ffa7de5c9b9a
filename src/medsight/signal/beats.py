"""Beats of MIT-BIH style records: AAMI classes, fixed windows around R peaks, inter-patient split.

AAMI classes (ANSI/AAMI EC57, as grouped by de Chazal et al. 2004, Table I) from MIT-BIH beat
annotation symbols:

====  ==================================  ====================================================
AAMI  meaning                             MIT-BIH symbols
====  ==================================  ====================================================
N     normal and bundle-branch-block      N normal, L left BBB, R right BBB, e atrial escape,
                                          j nodal (junctional) escape
S     supraventricular ectopic (SVEB)     A atrial premature, a aberrated atrial premature,
                                          J nodal premature, S supraventricular premature
V     ventricular ectopic (VEB)           V premature ventricular contraction, E ventricular
                                          escape
F     fusion                              F fusion of ventricular and normal
Q     unknown                             / paced, f fusion of paced and normal, Q unclassifiable
====  ==================================  ====================================================

Every other symbol is not a beat and is left out: rhythm and signal changes (``+``, ``~``, ``|``
isolated QRS-like artefact, ``x`` non-conducted P wave, ``!`` flutter wave, ``[``/``]``, ``"``
comments ...).

de Chazal, O'Dwyer & Reilly, "Automatic classification of heartbeats using ECG morphology and
heartbeat interval features", IEEE TBME 51(7), 2004, doi:10.1109/TBME.2004.827359: records of
the MIT-BIH Arrhythmia Database split by patient into ``DS1`` (training) and ``DS2`` (testing),
22 records each; the four paced records 102, 104, 107 and 217 are in neither.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from numpy.typing import ArrayLike

from medsight.errors import ConfigError, DataError
from medsight.signal._checks import as_indices, as_lead, check_fs

AAMI_CLASSES: tuple[str, ...] = ("N", "S", "V", "F", "Q")

MITBIH_TO_AAMI: dict[str, str] = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}

DS1: tuple[str, ...] = (
    "101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
    "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230",
)  # fmt: skip
DS2: tuple[str, ...] = (
    "100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
    "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234",
)  # fmt: skip
PACED_RECORDS: tuple[str, ...] = ("102", "104", "107", "217")


def beat_labels(symbols: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """AAMI labels of the beat annotations among ``symbols``, and the mask of those annotations.

    ``labels`` has one entry per True in ``mask``, so ``ann.sample[mask]`` are the beats' samples:

    >>> labels, mask = beat_labels(["+", "N", "A", "~", "V"])
    >>> labels.tolist(), mask.tolist()
    (['N', 'S', 'V'], [False, True, True, False, True])
    """
    symbols = [str(s) for s in symbols]
    mask = np.array([s in MITBIH_TO_AAMI for s in symbols], dtype=bool)
    labels = np.array([MITBIH_TO_AAMI[s] for s in symbols if s in MITBIH_TO_AAMI], dtype="<U1")
    return labels, mask


def beat_windows(
    x: ArrayLike,
    fs: float,
    rpeaks: ArrayLike,
    before_s: float = 0.25,
    after_s: float = 0.45,
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed windows ``x[r - before : r + after]`` around each R peak, and the kept peak indices.

    Returns ``(windows, kept)``: ``windows`` is (n_kept, before + after) with ``before`` and
    ``after`` in samples (rounded); ``kept`` indexes ``rpeaks`` for the beats whose window lies
    inside the lead (beats too close to either edge are skipped).
    """
    lead = as_lead(x, allow_nan=True)
    fs = check_fs(fs)
    if not (before_s >= 0 and after_s > 0):
        raise ConfigError(
            f"Beat windows need before_s >= 0 and after_s > 0; got {before_s}, {after_s}."
        )
    before, after = round(before_s * fs), round(after_s * fs)
    peaks = as_indices(rpeaks)
    kept = np.flatnonzero((peaks - before >= 0) & (peaks + after <= lead.size))
    offsets = np.arange(-before, after)
    return lead[peaks[kept, None] + offsets], kept


def template_correlation(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The median beat of ``windows`` (n_beats, width) and each beat's Pearson r with it.

    A beat (or a template) with no variation has correlation NaN.
    """
    windows = np.asarray(windows, dtype=float)
    if windows.ndim != 2:
        raise DataError(f"Beat windows must be (n_beats, width); got shape {windows.shape}.")
    if windows.shape[0] == 0:
        return np.full(windows.shape[1], np.nan), np.empty(0)
    template = np.median(windows, axis=0)
    return template, row_correlation(windows, template)


def inter_patient_split(records: Iterable[str | int]) -> tuple[list[str], list[str]]:
    """``records`` divided into the de Chazal DS1 (train) and DS2 (test) lists, in input order.

    Names are MIT-BIH record numbers (``"100"`` or ``100``). The paced records are dropped, as
    in the paper; any other name is a DataError.
    """
    names = [str(r).strip() for r in records]
    unknown = sorted(set(names) - set(DS1) - set(DS2) - set(PACED_RECORDS))
    if unknown:
        raise DataError(
            f"{unknown} are not MIT-BIH Arrhythmia Database records; the inter-patient split "
            "covers records 100-234 (DS1, DS2 and the paced 102, 104, 107, 217)."
        )
    return [n for n in names if n in DS1], [n for n in names if n in DS2]


def row_correlation(rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``rows`` with ``reference``; NaN where either does not vary."""
    rows_c = rows - rows.mean(axis=1, keepdims=True)
    ref_c = reference - reference.mean()
    denom = np.linalg.norm(rows_c, axis=1) * np.linalg.norm(ref_c)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, rows_c @ ref_c / denom, np.nan)
