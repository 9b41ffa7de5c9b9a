"""Binary and multiclass classification metrics on plain numpy arrays.

Metrics that are undefined for the data (AUROC with one class, PPV with no predicted positives)
are ``nan``, never a warning. The private ``*_scores`` functions skip input checks and work on
several repeats at once; the bootstrap calls them about a thousand times per interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from medsight.errors import ConfigError, DataError
from medsight.evaluate._validate import (
    check_binary_labels,
    check_class_labels,
    check_probabilities,
    check_probability_values,
    check_threshold,
)

BINARY_METRICS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "f1",
    "auroc",
    "auprc",
    "brier",
    "ece",
)

MULTICLASS_METRICS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "macro_sensitivity",
    "macro_specificity",
    "macro_auroc",
)
PER_CLASS_METRICS: tuple[str, ...] = ("sensitivity", "specificity", "ppv", "f1", "auroc")

METRIC_LABELS: dict[str, str] = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "sensitivity": "Sensitivity (recall)",
    "specificity": "Specificity",
    "ppv": "Precision (PPV)",
    "npv": "Negative predictive value (NPV)",
    "f1": "F1 score",
    "auroc": "AUROC",
    "auprc": "AUPRC (average precision)",
    "brier": "Brier score",
    "ece": "Expected calibration error",
    "macro_f1": "Macro-averaged F1 score",
    "macro_sensitivity": "Macro-averaged sensitivity",
    "macro_specificity": "Macro-averaged specificity",
    "macro_auroc": "Macro-averaged AUROC (one-vs-rest)",
    "exact_match": "Exact match (every finding right)",
}
# multi-label data: the same keys as MedMNIST reports them, averaged over findings
MULTILABEL_METRIC_LABELS: dict[str, str] = {
    **METRIC_LABELS,
    "accuracy": "Accuracy (mean over findings)",
    "macro_auroc": "AUROC (mean over findings)",
}


def metric_label(key: str, labels: Mapping[str, str] = METRIC_LABELS) -> str:
    """A human name for a metric key; per-class keys ``"name/metric"`` become ``"name: Label"``."""
    if "/" in key:
        name, metric = key.rsplit("/", 1)
        return f"{name}: {labels.get(metric, metric)}"
    return labels.get(key, key)


def binary_metrics(
    y_true: ArrayLike, y_prob: ArrayLike, threshold: float | ArrayLike = 0.5
) -> dict[str, float]:
    """Every metric in ``BINARY_METRICS``; a row is predicted positive when ``y_prob >= threshold``.

    ``threshold`` is a number or one value per row.
    """
    y = check_binary_labels(y_true)
    prob = check_probabilities(y_prob, y.size, ndims=(1,))[None, :]
    scores = binary_scores(y, prob, check_threshold(threshold, prob.shape))[0]
    return {name: float(value) for name, value in zip(BINARY_METRICS, scores, strict=True)}


def expected_calibration_error(y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = 10) -> float:
    """Mean |observed rate - mean probability| over equal-width bins, weighted by bin size."""
    y = check_binary_labels(y_true)
    prob = check_probabilities(y_prob, y.size, ndims=(1,))
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ConfigError(f"n_bins must be a whole number of at least 1; received {n_bins!r}.")
    return float(_ece(y, prob[None, :], int(n_bins))[0])


def multiclass_metrics(
    y_true: ArrayLike, y_prob: ArrayLike, class_names: Sequence[str] | None = None
) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro and per-class metrics; the prediction is the argmax."""
    prob = np.asarray(y_prob, dtype=float)
    if prob.ndim != 2:
        raise DataError(
            f"y_prob must be (n, n_classes), one column per class; received shape {prob.shape}."
        )
    names = check_class_names(class_names, prob.shape[1])
    y = check_class_labels(y_true, prob.shape[1])
    check_probability_values(prob, y.size, row_axis=0)
    return multiclass_metrics_unchecked(y, prob, names)


def check_class_names(class_names: Sequence[str] | None, n_classes: int) -> list[str]:
    """The given names as strings, or "0".."K-1"; their number must match the columns."""
    if n_classes < 2:
        raise DataError(
            f"y_prob has {n_classes} column; multiclass metrics need one column per class (>= 2)."
        )
    if class_names is None:
        return [str(k) for k in range(n_classes)]
    names = [str(name) for name in class_names]
    if len(names) != n_classes or len(set(names)) != n_classes:
        raise ConfigError(
            f"class_names must be {n_classes} distinct names, one per probability column; "
            f"received {names}."
        )
    return names


def binary_scores(y: np.ndarray, prob: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """``BINARY_METRICS`` for each repeat: y (n,), prob (R, n), threshold broadcastable -> (R, 11).

    Hand-written instead of sklearn's metric functions: their input checks cost ~1 ms per call,
    which dominates a 1000-resample bootstrap. Tests compare every value with sklearn.
    """
    n = y.shape[0]
    positive = y.astype(bool)
    n_pos = float(np.count_nonzero(positive))
    n_neg = n - n_pos
    predicted = prob >= threshold
    tp = np.count_nonzero(predicted & positive, axis=1).astype(np.float64)
    pp = np.count_nonzero(predicted, axis=1).astype(np.float64)
    fp, fn = pp - tp, n_pos - tp
    tn = n_neg - fp
    auroc, auprc = ranking_scores(y, prob)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 -> nan marks undefined metrics
        sensitivity = tp / n_pos
        specificity = tn / n_neg
        columns = (
            (tp + tn) / n,
            (sensitivity + specificity) / 2,
            sensitivity,
            specificity,
            tp / pp,
            tn / (n - pp),
            2 * tp / (2 * tp + fp + fn),
            auroc,
            auprc,
            np.mean((prob - y) ** 2, axis=1),
            _ece(y, prob, 10),
        )
    return np.stack(columns, axis=1)


def binary_metrics_block(
    y: np.ndarray, prob: np.ndarray, threshold: np.ndarray
) -> dict[str, np.ndarray]:
    """Unchecked ``binary_scores`` keyed by metric name: each value holds one entry per repeat."""
    scores = binary_scores(y, prob, threshold)
    return {name: scores[:, k] for k, name in enumerate(BINARY_METRICS)}


def ranking_scores(y: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and average precision for each row of prob (R, n); y is (n,) or (R, n) of 0/1.

    One sort serves both (sklearn would sort twice and re-validate): AUROC is the Mann-Whitney U
    with midranks for ties; average precision sums, over positives, the precision at their score
    (ties counted as predicted together), which is sklearn's step-wise definition.
    """
    rows, n = prob.shape
    order = np.argsort(prob, axis=1)
    sorted_prob = np.take_along_axis(prob, order, axis=1)
    sorted_y = (y[order] if y.ndim == 1 else np.take_along_axis(y, order, axis=1)).astype(
        np.float64
    )
    positions = np.broadcast_to(np.arange(n), (rows, n))
    starts_group = np.ones((rows, n), dtype=bool)
    starts_group[:, 1:] = sorted_prob[:, 1:] != sorted_prob[:, :-1]
    first = np.maximum.accumulate(np.where(starts_group, positions, 0), axis=1)
    ends_group = np.ones((rows, n), dtype=bool)
    ends_group[:, :-1] = starts_group[:, 1:]
    last = np.minimum.accumulate(np.where(ends_group, positions, n - 1)[:, ::-1], axis=1)[:, ::-1]
    n_pos = sorted_y.sum(axis=1)
    n_neg = n - n_pos
    midrank = (first + last) / 2 + 1
    positives_before = np.cumsum(sorted_y, axis=1) - sorted_y
    positives_at_or_above = n_pos[:, None] - np.take_along_axis(positives_before, first, axis=1)
    precision_at = positives_at_or_above / (n - first)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 -> nan when a class is absent
        auroc = ((sorted_y * midrank).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        auprc = (sorted_y * precision_at).sum(axis=1) / n_pos
    auroc[(n_pos == 0) | (n_neg == 0)] = np.nan
    auprc[n_pos == 0] = np.nan
    return auroc, auprc


def _ece(y: np.ndarray, prob: np.ndarray, n_bins: int) -> np.ndarray:
    """ECE per repeat; bins as in sklearn's calibration_curve (which does not compute ECE)."""
    rows, n = prob.shape
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.searchsorted(edges[1:-1], prob) + n_bins * np.arange(rows)[:, None]
    flat = bins.ravel()
    size = rows * n_bins
    predicted = np.bincount(flat, weights=prob.ravel(), minlength=size)
    observed = np.bincount(flat, weights=np.broadcast_to(y, prob.shape).ravel(), minlength=size)
    # weight n_b / n times |mean_y - mean_p| equals |sum_y - sum_p| / n
    return np.abs(observed - predicted).reshape(rows, n_bins).sum(axis=1) / n


def multiclass_metrics_unchecked(
    y: np.ndarray, prob: np.ndarray, names: Sequence[str]
) -> dict[str, float]:
    """Unchecked ``multiclass_metrics``: y (n,) indices, prob (n, K)."""
    n, n_classes = prob.shape
    predicted = prob.argmax(axis=1)
    confusion = np.bincount(y * n_classes + predicted, minlength=n_classes**2).reshape(
        n_classes, n_classes
    )
    tp = np.diag(confusion).astype(np.float64)
    actual, called = confusion.sum(axis=1), confusion.sum(axis=0)
    fn, fp = actual - tp, called - tp
    tn = n - tp - fn - fp
    one_hot = (y[None, :] == np.arange(n_classes)[:, None]).astype(np.int8)
    auroc, _ = ranking_scores(one_hot, np.ascontiguousarray(prob.T))
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 -> nan marks undefined metrics
        per_class = {
            "sensitivity": tp / actual,
            "specificity": tn / (n - actual),
            "ppv": tp / called,
            "f1": 2 * tp / (2 * tp + fp + fn),
            "auroc": auroc,
        }
    result = {
        "accuracy": float(tp.sum() / n),
        "balanced_accuracy": float(per_class["sensitivity"].mean()),
        "macro_f1": float(per_class["f1"].mean()),
        "macro_sensitivity": float(per_class["sensitivity"].mean()),
        "macro_specificity": float(per_class["specificity"].mean()),
        "macro_auroc": float(auroc.mean()),
    }
    for k, name in enumerate(names):
        for metric in PER_CLASS_METRICS:
            result[f"{name}/{metric}"] = float(per_class[metric][k])
    return result


def multilabel_metrics_unchecked(
    y: np.ndarray, prob: np.ndarray, names: Sequence[str], threshold: float | np.ndarray = 0.5
) -> dict[str, float]:
    """Metrics of multi-label predictions: y and prob ``(n, L)``, a finding called present where
    its probability is >= ``threshold`` (one cut, or ``(L,)`` one per finding).

    ``accuracy`` is the mean over findings of each finding's accuracy and ``macro_auroc`` the
    mean of their AUROCs, as MedMNIST reports them for ChestMNIST; ``exact_match`` counts the
    images with every finding right. Findings without positives (or negatives) have no AUROC and
    are left out of its mean.
    """
    n = y.shape[0]
    called = prob >= threshold
    present = y == 1
    tp = (called & present).sum(axis=0).astype(np.float64)
    fp = (called & ~present).sum(axis=0).astype(np.float64)
    fn = (~called & present).sum(axis=0).astype(np.float64)
    tn = n - tp - fp - fn
    auroc, _ = ranking_scores(np.ascontiguousarray(y.T), np.ascontiguousarray(prob.T))
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 -> nan marks undefined metrics
        per_label = {
            "sensitivity": tp / (tp + fn),
            "specificity": tn / (tn + fp),
            "ppv": tp / (tp + fp),
            "f1": 2 * tp / (2 * tp + fp + fn),
            "auroc": np.where((tp + fn > 0) & (tn + fp > 0), auroc, np.nan),
        }

    def mean(values: np.ndarray) -> float:
        finite = values[np.isfinite(values)]
        return float(finite.mean()) if finite.size else float("nan")

    result = {
        "accuracy": float(((tp + tn) / n).mean()),
        "exact_match": float((called == present).all(axis=1).mean()),
        "macro_f1": mean(per_label["f1"]),
        "macro_sensitivity": mean(per_label["sensitivity"]),
        "macro_specificity": mean(per_label["specificity"]),
        "macro_auroc": mean(per_label["auroc"]),
    }
    for k, name in enumerate(names):
        for metric in PER_CLASS_METRICS:
            result[f"{name}/{metric}"] = float(per_label[metric][k])
    return result
