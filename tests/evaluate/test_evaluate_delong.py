from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from medsight.errors import DataError
from medsight.evaluate import delong_auroc_variance, delong_test


def _structural_components(y: np.ndarray, prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) by definition, O(n²): ψ(X, Y) = 1 if X > Y, ½ if equal, else 0."""
    pos, neg = prob[y == 1], prob[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return psi.mean(axis=1), psi.mean(axis=0)  # V10 per positive, V01 per negative


def _reference_covariance(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    v10_a, v01_a = _structural_components(y, a)
    v10_b, v01_b = _structural_components(y, b)
    s10 = np.cov(np.vstack([v10_a, v10_b]))
    s01 = np.cov(np.vstack([v01_a, v01_b]))
    return s10 / v10_a.size + s01 / v01_a.size


def _two_models(seed: int, n: int = 150) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    shared = rng.normal(size=n)
    a = 1 / (1 + np.exp(-(1.2 * y + 0.6 * shared + rng.normal(0, 0.5, n))))
    b = 1 / (1 + np.exp(-(0.8 * y + 0.6 * shared + rng.normal(0, 0.8, n))))
    return y, np.round(a, 2), np.round(b, 2)  # rounding creates ties


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_and_reference_implementation(seed: int) -> None:
    y, a, b = _two_models(seed)
    result = delong_test(y, a, b)
    assert result.auroc_a == pytest.approx(roc_auc_score(y, a))
    assert result.auroc_b == pytest.approx(roc_auc_score(y, b))
    covariance = _reference_covariance(y, a, b)
    assert delong_auroc_variance(y, a) == pytest.approx(covariance[0, 0])
    assert delong_auroc_variance(y, b) == pytest.approx(covariance[1, 1])
    se = np.sqrt(covariance[0, 0] + covariance[1, 1] - 2 * covariance[0, 1])
    z = (result.auroc_a - result.auroc_b) / se
    assert result.se == pytest.approx(se)
    assert result.z == pytest.approx(z)
    assert result.p_value == pytest.approx(2 * norm.sf(abs(z)))
    assert result.ci_low == pytest.approx(result.difference - 1.959964 * se, abs=1e-6)
    assert result.ci_high == pytest.approx(result.difference + 1.959964 * se, abs=1e-6)


def test_identical_predictions_give_p_one_without_warnings() -> None:
    y, a, _ = _two_models(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = delong_test(y, a, a.copy())
    assert result.difference == 0.0
    assert result.se == 0.0
    assert result.p_value == 1.0
    assert result.to_dict()["p_value"] == 1.0


def test_clearly_better_model_has_small_p() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    good = np.clip(0.5 + 0.35 * (y - 0.5) * 2 + rng.normal(0, 0.15, 300), 0, 1)
    noise = rng.uniform(size=300)
    result = delong_test(y, good, noise)
    assert result.difference > 0.3
    assert result.p_value < 1e-6
    assert result.ci_low > 0


def test_needs_both_classes() -> None:
    with pytest.raises(DataError):
        delong_test([1, 1, 1, 0], [0.1, 0.2, 0.3, 0.4], [0.2, 0.3, 0.4, 0.5])
