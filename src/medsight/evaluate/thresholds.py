"""Operating thresholds: a row is called positive when its probability is >= the threshold."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve

from medsight.errors import ConfigError, DataError
from medsight.evaluate._validate import check_binary_labels, check_probabilities

THRESHOLD_METHODS: tuple[str, ...] = ("youden", "sensitivity", "fixed")
FIXED_THRESHOLD = 0.5


def youden_threshold(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """The threshold maximising sensitivity + specificity − 1 (the highest one among ties)."""
    p, fpr, tpr, thresholds = _roc(y_true, y_prob)
    return _finite(thresholds[int(np.argmax(tpr - fpr))], p)


def threshold_for_sensitivity(y_true: ArrayLike, y_prob: ArrayLike, target: float) -> float:
    """The highest observed probability whose threshold reaches sensitivity >= target."""
    if not 0 < target <= 1:
        raise ConfigError(f"target sensitivity must be in (0, 1], e.g. 0.9; got {target!r}.")
    p, _fpr, tpr, thresholds = _roc(y_true, y_prob)
    # A small tolerance so that a target like 0.9 is met by 9/10 despite float rounding.
    return _finite(thresholds[int(np.argmax(tpr >= target - 1e-12))], p)


def choose_threshold(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    method: str = "youden",
    target_sensitivity: float | None = None,
) -> float:
    """A threshold by `method`: "youden", "sensitivity" (needs target_sensitivity) or "fixed"."""
    if method == "fixed":
        return FIXED_THRESHOLD
    if method == "youden":
        return youden_threshold(y_true, y_prob)
    if method == "sensitivity":
        if target_sensitivity is None:
            raise ConfigError(
                'threshold method "sensitivity" needs target_sensitivity (e.g. 0.9); got None.'
            )
        return threshold_for_sensitivity(y_true, y_prob, target_sensitivity)
    raise ConfigError(
        f"unknown threshold method {method!r}; allowed: {', '.join(THRESHOLD_METHODS)}."
    )


def decide(
    probabilities: ArrayLike,
    positive_index: int | None,
    threshold: float | None,
    *,
    multi_label: bool = False,
) -> np.ndarray:
    """Class indices for ``(N, K)`` probabilities: with a positive class and a threshold, the
    positive class where its probability is >= the threshold and the other class elsewhere
    (binary only); otherwise the most probable class. ``multi_label``: ``(N, K)`` 0/1, each
    finding present where its probability is >= the threshold."""
    p = np.asarray(probabilities, dtype=float)
    if multi_label:
        if threshold is None:
            raise ConfigError("multi-label decisions need a threshold for the findings.")
        return (p >= threshold).astype(np.int64)
    if positive_index is None or threshold is None:
        return p.argmax(axis=1)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ConfigError(f"a decision threshold needs two classes; got probabilities {p.shape}.")
    return np.where(p[:, positive_index] >= threshold, positive_index, 1 - positive_index)


def _roc(
    y_true: ArrayLike, y_prob: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    y = check_binary_labels(y_true)
    p = check_probabilities(y_prob, y.size, ndims=(1,))
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise DataError(
            f"choosing a threshold needs both classes; got {n_pos} positive of {y.size} rows."
        )
    # Keep every point: dropping collinear ones could drop the first to reach a target.
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    return p, fpr, tpr, thresholds


def _finite(threshold: float, p: np.ndarray) -> float:
    """roc_curve's first threshold is +inf (call nothing positive); use just above the maximum."""
    if np.isfinite(threshold):
        return float(threshold)
    return float(np.nextafter(p.max(), np.inf))
