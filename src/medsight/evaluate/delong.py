"""DeLong's test for two correlated AUROCs scored on the same cases.

Hand-written (fast midrank algorithm of Sun & Xu 2014, O(n log n)) because neither scipy nor
scikit-learn maintains a DeLong test.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm, rankdata

from medsight.errors import DataError
from medsight.evaluate._validate import check_alpha, check_binary_labels, check_probabilities


@dataclass(frozen=True)
class DeLongResult:
    """AUROC of two models on the same cases, their difference (a − b) and its test."""

    auroc_a: float
    auroc_b: float
    difference: float
    se: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def delong_test(
    y_true: ArrayLike, prob_a: ArrayLike, prob_b: ArrayLike, alpha: float = 0.05
) -> DeLongResult:
    """Two-sided test of AUROC(a) = AUROC(b), with a (1 − alpha) CI of the difference."""
    alpha = check_alpha(alpha)
    y = _check_labels(y_true)
    scores = np.vstack([check_probabilities(p, y.size, ndims=(1,)) for p in (prob_a, prob_b)])
    auroc, covariance = _delong_covariance(y, scores)
    difference = float(auroc[0] - auroc[1])
    variance = covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1]
    # Rounding can leave a tiny negative or non-zero variance for identical scores.
    se = math.sqrt(variance) if variance > 1e-15 else 0.0
    if se == 0.0:
        z = 0.0 if difference == 0 else math.copysign(math.inf, difference)
        p_value = 1.0 if difference == 0 else 0.0
    else:
        z = difference / se
        p_value = float(2 * norm.sf(abs(z)))
    margin = float(norm.ppf(1 - alpha / 2)) * se
    return DeLongResult(
        auroc_a=float(auroc[0]),
        auroc_b=float(auroc[1]),
        difference=difference,
        se=se,
        z=z,
        p_value=p_value,
        ci_low=difference - margin,
        ci_high=difference + margin,
    )


def delong_auroc_variance(y_true: ArrayLike, prob: ArrayLike) -> float:
    """DeLong's variance of one model's AUROC."""
    y = _check_labels(y_true)
    scores = check_probabilities(prob, y.size, ndims=(1,))[None, :]
    return float(_delong_covariance(y, scores)[1][0, 0])


def _check_labels(y_true: ArrayLike) -> np.ndarray:
    y = check_binary_labels(y_true)
    n_pos = int(y.sum())
    if min(n_pos, y.size - n_pos) < 2:
        raise DataError(
            f"DeLong's test needs at least 2 positive and 2 negative rows; got {n_pos} positive "
            f"and {y.size - n_pos} negative. Use more data or a different comparison."
        )
    return y


def _delong_covariance(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs of each row of `scores` (k, n) and their k×k DeLong covariance (Sun & Xu 2014)."""
    positive = y.astype(bool)
    pos, neg = scores[:, positive], scores[:, ~positive]
    m, n = pos.shape[1], neg.shape[1]
    rank_all = rankdata(np.hstack([pos, neg]), axis=1)
    rank_pos, rank_neg = rankdata(pos, axis=1), rankdata(neg, axis=1)
    auroc = (rank_all[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    # Structural components: each positive's share of negatives it beats, and vice versa.
    v_pos = (rank_all[:, :m] - rank_pos) / n
    v_neg = 1 - (rank_all[:, m:] - rank_neg) / m
    covariance = np.atleast_2d(np.cov(v_pos)) / m + np.atleast_2d(np.cov(v_neg)) / n
    return auroc, covariance
