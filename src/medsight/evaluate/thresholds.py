"""Operating thresholds: a row is called positive when its probability is >= the threshold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve

from medsight.errors import ConfigError, DataError
from medsight.evaluate._validate import check_binary_labels, check_probabilities

THRESHOLD_METHODS: tuple[str, ...] = ("youden", "sensitivity", "accuracy", "fixed")
FIXED_THRESHOLD = 0.5


def youden_threshold(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """The threshold maximising sensitivity + specificity − 1 (the highest one among ties)."""
    p, fpr, tpr, thresholds = _roc(y_true, y_prob)
    return _finite(thresholds[int(np.argmax(tpr - fpr))], p)


def accuracy_threshold(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """The threshold with the highest accuracy (the median of the tied ones, so that a plateau
    of equally good cuts is not left at its edge)."""
    p, fpr, tpr, thresholds = _roc(y_true, y_prob)
    n_pos = float(np.sum(np.asarray(y_true) == 1))
    correct = tpr * n_pos + (1.0 - fpr) * (p.size - n_pos)
    best = np.flatnonzero(correct >= correct.max() - 1e-9)
    return _finite(thresholds[best[len(best) // 2]], p)


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
    """A threshold by `method`: "youden", "sensitivity" (needs target_sensitivity), "accuracy"
    or "fixed"."""
    if method == "fixed":
        return FIXED_THRESHOLD
    if method == "youden":
        return youden_threshold(y_true, y_prob)
    if method == "accuracy":
        return accuracy_threshold(y_true, y_prob)
    if method == "sensitivity":
        if target_sensitivity is None:
            raise ConfigError(
                'threshold method "sensitivity" needs target_sensitivity (e.g. 0.9); got None.'
            )
        return threshold_for_sensitivity(y_true, y_prob, target_sensitivity)
    raise ConfigError(
        f"unknown threshold method {method!r}; allowed: {', '.join(THRESHOLD_METHODS)}."
    )


def choose_finding_thresholds(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    method: str,
    target_sensitivity: float | None = None,
    *,
    fallback: float = FIXED_THRESHOLD,
) -> tuple[list[float], list[int]]:
    """One threshold per finding of multi-label data ``(N, L)``, each chosen by `method` on
    that finding's column, and the indices of the findings that keep the ``fallback`` cut
    because these rows hold no positive (or no negative) image of them."""
    y = np.asarray(y_true)
    p = np.asarray(y_prob, dtype=float)
    if y.ndim != 2 or p.shape != y.shape:
        raise DataError(
            f"per-finding thresholds need labels and probabilities (n, findings); "
            f"got {y.shape} and {p.shape}."
        )
    thresholds, kept_fixed = [], []
    for k in range(y.shape[1]):
        positives = int(y[:, k].sum())
        if positives in (0, y.shape[0]):
            thresholds.append(fallback)
            kept_fixed.append(k)
        else:
            thresholds.append(choose_threshold(y[:, k], p[:, k], method, target_sensitivity))
    return thresholds, kept_fixed


def finding_thresholds(threshold: float | Sequence[float], n_findings: int) -> np.ndarray:
    """A multi-label operating point as one threshold per finding: a single cut is repeated."""
    values = np.asarray(threshold, dtype=float)
    if values.ndim == 0:
        values = np.full(n_findings, float(values))
    if values.shape != (n_findings,) or not np.all((values > 0) & (values <= 1)):
        raise ConfigError(
            f"a multi-label threshold is one number or one per finding ({n_findings}), each in "
            f"(0, 1]; got {np.asarray(threshold).tolist()}."
        )
    return values


def threshold_text(threshold: float | Sequence[float], names: Sequence[str] = ()) -> str:
    """A threshold for people: ``0.412``, or per finding ``atelectasis 0.210, effusion 0.305``."""
    if isinstance(threshold, int | float):
        return f"{threshold:.3f}"
    return ", ".join(f"{name} {value:.3f}" for name, value in zip(names, threshold, strict=True))


def decide(
    probabilities: ArrayLike,
    positive_index: int | None,
    threshold: float | Sequence[float] | None,
    *,
    multi_label: bool = False,
) -> np.ndarray:
    """Class indices for ``(N, K)`` probabilities: with a positive class and a threshold, the
    positive class where its probability is >= the threshold and the other class elsewhere
    (binary only); otherwise the most probable class. ``multi_label``: ``(N, K)`` 0/1, each
    finding present where its probability is >= its threshold (one cut, or one per finding)."""
    p = np.asarray(probabilities, dtype=float)
    if multi_label:
        if threshold is None:
            raise ConfigError("multi-label decisions need a threshold for the findings.")
        return (p >= finding_thresholds(threshold, p.shape[-1])).astype(np.int64)
    if positive_index is None or threshold is None:
        return p.argmax(axis=1)
    if not isinstance(threshold, int | float):
        raise ConfigError("one-label decisions take one threshold on the positive probability.")
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
