from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from medsight.errors import ConfigError, DataError
from medsight.evaluate import (
    BINARY_METRICS,
    METRIC_LABELS,
    binary_metrics,
    expected_calibration_error,
    multiclass_metrics,
)


def _random_binary(seed: int, n: int = 300, *, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    return y, (np.round(p, 1) if ties else p)


def test_every_metric_has_a_label() -> None:
    assert set(BINARY_METRICS) <= set(METRIC_LABELS)
    assert METRIC_LABELS["auroc"] == "AUROC"
    assert METRIC_LABELS["ppv"] == "Precision (PPV)"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
def test_binary_metrics_match_sklearn(seed: int, ties: bool) -> None:
    y, p = _random_binary(seed, ties=ties)
    threshold = 0.45
    pred = (p >= threshold).astype(int)
    got = binary_metrics(y, p, threshold)
    expected = {
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
        "sensitivity": recall_score(y, pred),
        "specificity": recall_score(1 - y, 1 - pred),
        "ppv": precision_score(y, pred),
        "npv": precision_score(1 - y, 1 - pred),
        "f1": f1_score(y, pred),
        "auroc": roc_auc_score(y, p),
        "auprc": average_precision_score(y, p),
        "brier": brier_score_loss(y, p),
    }
    assert list(got) == list(BINARY_METRICS)
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), name


def test_hand_computed_two_by_two() -> None:
    # TP=3, FN=2 (positives); FP=1, TN=4 (negatives).
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.6, 0.3, 0.2, 0.1, 0.0])
    got = binary_metrics(y, p, 0.5)
    sens, spec = Fraction(3, 5), Fraction(4, 5)
    expected = {
        "accuracy": Fraction(7, 10),
        "sensitivity": sens,
        "specificity": spec,
        "balanced_accuracy": (sens + spec) / 2,
        "ppv": Fraction(3, 4),
        "npv": Fraction(4, 6),
        "f1": Fraction(2 * 3, 2 * 3 + 1 + 2),
        # Pairs (pos, neg) ranked correctly: 0.9/0.8/0.7 beat all 5 (15), 0.2 beats 0.1, 0.0 and
        # ties 0.2 (2.5), 0.1 beats 0.0 and ties 0.1 (1.5) → 19 of 25.
        "auroc": Fraction(19, 25),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(float(value)), name


def test_per_row_threshold_equals_looping() -> None:
    y, p = _random_binary(3, n=120)
    thresholds = np.random.default_rng(4).choice([0.3, 0.5, 0.7], size=y.size)
    got = binary_metrics(y, p, thresholds)
    pred = np.concatenate([p[thresholds == t] >= t for t in (0.3, 0.5, 0.7)])
    truth = np.concatenate([y[thresholds == t] for t in (0.3, 0.5, 0.7)])
    assert got["sensitivity"] == pytest.approx(pred[truth == 1].mean())
    assert got["specificity"] == pytest.approx(1 - pred[truth == 0].mean())
    assert got["accuracy"] == pytest.approx((pred == truth).mean())
    # One row at a time: the threshold that applies to row i is thresholds[i].
    looped = np.array([p[i] >= thresholds[i] for i in range(y.size)])
    assert got["ppv"] == pytest.approx(y[looped].mean())


def test_undefined_metrics_are_nan_without_warnings() -> None:
    y = np.array([1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = binary_metrics(y, p, 0.5)
    assert np.isnan(got["auroc"])
    assert np.isnan(got["ppv"])  # nothing predicted positive
    assert np.isnan(got["specificity"])
    assert got["sensitivity"] == 0.0


def test_ece_hand_case() -> None:
    # Bin [0.1, 0.2): mean p 0.1, observed 0/2 → gap 0.1. Bin [0.8, 0.9): mean p 0.8, observed 1/2
    # → gap 0.3. Weighted by size: (2·0.1 + 2·0.3) / 4 = 0.2.
    y = np.array([0, 0, 1, 0])
    p = np.array([0.1, 0.1, 0.8, 0.8])
    assert expected_calibration_error(y, p, n_bins=10) == pytest.approx(0.2)
    assert binary_metrics(y, p)["ece"] == pytest.approx(0.2)


def test_ece_agrees_with_calibration_curve_bins() -> None:
    y, p = _random_binary(5)
    observed, predicted = calibration_curve(y, p, n_bins=10)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], p), minlength=10)
    counts = counts[counts > 0]
    expected = np.sum(counts * np.abs(observed - predicted)) / y.size
    assert expected_calibration_error(y, p) == pytest.approx(expected)


def test_multiclass_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    n, k = 400, 3
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = ["flu", "covid", "cold"]
    got = multiclass_metrics(y, prob, names)
    pred = prob.argmax(axis=1)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert got["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert got["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert got["macro_sensitivity"] == pytest.approx(recall_score(y, pred, average="macro"))
    auroc = roc_auc_score(y, prob, multi_class="ovr", average="macro")
    assert got["macro_auroc"] == pytest.approx(auroc)
    for c, name in enumerate(names):
        assert got[f"{name}/sensitivity"] == pytest.approx(recall_score(y == c, pred == c))
        assert got[f"{name}/specificity"] == pytest.approx(recall_score(y != c, pred != c))
        assert got[f"{name}/ppv"] == pytest.approx(precision_score(y == c, pred == c))
        assert got[f"{name}/f1"] == pytest.approx(f1_score(y == c, pred == c))
        assert got[f"{name}/auroc"] == pytest.approx(roc_auc_score(y == c, prob[:, c]))
    specificities = [got[f"{name}/specificity"] for name in names]
    assert got["macro_specificity"] == pytest.approx(np.mean(specificities))


@pytest.mark.parametrize(
    ("y", "p"),
    [
        ([0, 1, 1], [0.1, 0.2]),  # length mismatch
        ([0, 1, 2], [0.1, 0.2, 0.3]),  # label 2
        ([0, 1, 1], [0.1, 1.2, 0.3]),  # outside [0, 1]
        ([0, 1, 1], [0.1, np.nan, 0.3]),  # NaN
        (["a", "b", "a"], [0.1, 0.2, 0.3]),  # not 0/1
    ],
)
def test_bad_binary_input_raises_data_error(y: list, p: list) -> None:
    with pytest.raises(DataError):
        binary_metrics(y, p)


def test_bad_threshold_shape_and_class_names() -> None:
    with pytest.raises(DataError):
        binary_metrics([0, 1, 1], [0.1, 0.2, 0.3], np.array([0.5, 0.5]))
    with pytest.raises(ConfigError):
        multiclass_metrics([0, 1], [[0.9, 0.1], [0.2, 0.8]], class_names=["only one"])
    with pytest.raises(DataError):
        multiclass_metrics([0, 3], [[0.9, 0.1], [0.2, 0.8]])
