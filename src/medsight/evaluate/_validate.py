"""Input checks shared by the evaluation modules: labels, probabilities and thresholds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from medsight.errors import ConfigError, DataError

_SHOWN = 5


def _preview(values: np.ndarray) -> str:
    unique = np.unique(values.astype(str)) if values.dtype == object else np.unique(values)
    shown = ", ".join(repr(v.item() if hasattr(v, "item") else v) for v in unique[:_SHOWN])
    return shown + (", …" if unique.size > _SHOWN else "")


def check_binary_labels(y_true: ArrayLike) -> np.ndarray:
    """0/1 labels as an int8 vector; DataError for anything else."""
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size == 0:
        raise DataError(
            f"y_true must be a non-empty 1-D array of 0/1 labels; got shape {y.shape}. "
            "Pass one label per row."
        )
    if y.dtype == bool:
        return y.astype(np.int8)
    if y.dtype.kind not in "iuf" or not np.isin(y, (0, 1)).all():
        raise DataError(
            f"y_true must contain only 0 and 1; got values {_preview(y)}. "
            "Encode the positive class as 1 and every other class as 0."
        )
    return y.astype(np.int8)


def check_class_labels(y_true: ArrayLike, n_classes: int) -> np.ndarray:
    """Integer class labels in 0..n_classes-1 as an int64 vector."""
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size == 0:
        raise DataError(
            f"y_true must be a non-empty 1-D array of class indices; got shape {y.shape}."
        )
    valid = y.dtype.kind in "iu" or (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0))
    if not valid or y.min() < 0 or y.max() >= n_classes:
        raise DataError(
            f"y_true must hold class indices 0..{n_classes - 1} (one per probability column); "
            f"got values {_preview(y)}. Map class names to column positions first."
        )
    return y.astype(np.int64)


def check_probabilities(y_prob: ArrayLike, n: int, *, ndims: tuple[int, ...]) -> np.ndarray:
    """Finite probabilities in [0, 1] whose row axis (the last, or second-to-last) has n rows."""
    p = np.asarray(y_prob, dtype=float)
    if p.ndim not in ndims:
        raise DataError(
            f"y_prob has {p.ndim} dimensions (shape {p.shape}); allowed: {list(ndims)}. "
            "Pass (n,) for one prediction per row or (n_repeats, n) for repeated CV."
        )
    return check_probability_values(p, n)


def check_probability_values(p: np.ndarray, n: int, *, row_axis: int = -1) -> np.ndarray:
    """Row count and [0, 1] range of an already-shaped probability array."""
    if p.shape[row_axis] != n:
        raise DataError(
            f"y_prob has {p.shape[row_axis]} rows but y_true has {n}; "
            "they must describe the same rows in the same order."
        )
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        bad = int(np.sum(~np.isfinite(p) | (p < 0) | (p > 1)))
        raise DataError(
            f"y_prob must be probabilities in [0, 1]; got {bad} value(s) outside it or NaN. "
            "Pass predicted probabilities (not logits or scores) and drop unscored rows."
        )
    return p


def check_threshold(threshold: float | ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    """A threshold broadcast to `shape`: a scalar, one per row (n,), or one per prediction."""
    t = np.asarray(threshold, dtype=float)
    if t.ndim > 0 and t.shape != shape and t.shape != shape[-1:]:
        raise DataError(
            f"threshold has shape {t.shape}; allowed: a number, {shape[-1:]} (one per row) "
            f"or {shape} (one per prediction). Pass the threshold each row was scored with."
        )
    if not np.all(np.isfinite(t)):
        raise DataError("threshold contains NaN or infinity; every row needs a finite threshold.")
    return np.broadcast_to(t, shape)


def check_groups(groups: ArrayLike | None, n: int) -> np.ndarray | None:
    """Group (patient) ids, one per row, as integer codes; None passes through."""
    if groups is None:
        return None
    g = np.asarray(groups)
    if g.ndim != 1 or g.size != n:
        raise DataError(
            f"groups has shape {g.shape} but there are {n} rows; pass one patient id per row."
        )
    missing = g.dtype.kind == "f" and np.isnan(g).any()
    if missing or (g.dtype == object and pd.isna(g).any()):
        raise DataError("groups contains missing ids; give every row a patient id.")
    return np.unique(g.astype(str) if g.dtype == object else g, return_inverse=True)[1]


def check_alpha(alpha: float) -> float:
    """A significance level strictly between 0 and 1."""
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be between 0 and 1 (e.g. 0.05 for 95%); got {alpha!r}.")
    return float(alpha)
