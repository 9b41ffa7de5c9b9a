from __future__ import annotations

import numpy as np
import pytest

from medsight.errors import ConfigError, DataError
from medsight.evaluate import (
    accuracy_threshold,
    binary_metrics,
    choose_finding_thresholds,
    choose_threshold,
    decide,
    threshold_for_sensitivity,
    youden_threshold,
)
from medsight.evaluate.thresholds import finding_thresholds, threshold_text


def test_youden_hand_case() -> None:
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    # At 0.6: sensitivity 3/4, specificity 4/4 → J = 0.75; at 0.4: 4/4 and 3/4 → J = 0.75 as well;
    # the higher threshold wins ties. Every other threshold gives J < 0.75.
    threshold = youden_threshold(y, p)
    assert threshold == pytest.approx(0.6)
    metrics = binary_metrics(y, p, threshold)
    assert metrics["sensitivity"] + metrics["specificity"] - 1 == pytest.approx(0.75)


def test_youden_is_realised_by_the_returned_threshold() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    threshold = youden_threshold(y, p)
    best = binary_metrics(y, p, threshold)
    j = best["sensitivity"] + best["specificity"] - 1
    for t in np.unique(p):
        other = binary_metrics(y, p, t)
        assert other["sensitivity"] + other["specificity"] - 1 <= j + 1e-12


def test_useless_model_gives_finite_threshold() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.9, 0.1, 0.8, 0.2])  # perfectly inverted: best J is 0 at "call nobody"
    threshold = youden_threshold(y, p)
    assert np.isfinite(threshold)
    assert binary_metrics(y, p, threshold)["sensitivity"] == 0.0


@pytest.mark.parametrize("target", [0.5, 0.8, 0.9, 0.95, 1.0])
def test_sensitivity_target_is_met_at_the_highest_threshold(target: float) -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p = np.round(np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1), 2)
    threshold = threshold_for_sensitivity(y, p, target)
    assert binary_metrics(y, p, threshold)["sensitivity"] >= target
    higher = p[p > threshold]
    if higher.size:  # the next observed score up would miss the target
        assert binary_metrics(y, p, higher.min())["sensitivity"] < target


def test_accuracy_threshold_is_the_most_accurate_cut_and_the_middle_of_ties() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.3).astype(int)  # a minority positive class, as in BreastMNIST
    p = np.round(np.clip(rng.normal(0.35 + 0.25 * y, 0.15), 0, 1), 3)
    threshold = accuracy_threshold(y, p)
    accuracy = binary_metrics(y, p, threshold)["accuracy"]
    every = [binary_metrics(y, p, t)["accuracy"] for t in np.unique(p)]
    assert accuracy == pytest.approx(max(every))
    assert accuracy > binary_metrics(y, p, youden_threshold(y, p))["accuracy"]

    # cuts at 0.3, 0.5 and 0.7 each leave two errors: the middle one is taken, not an edge
    y = np.array([0, 0, 1, 0, 1, 0, 1, 1])
    p = np.linspace(0.1, 0.8, 8)
    assert accuracy_threshold(y, p) == pytest.approx(0.5)
    assert choose_threshold(y, p, "accuracy") == accuracy_threshold(y, p)


def test_choose_threshold_methods() -> None:
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    p = np.linspace(0.1, 0.8, 8)
    assert choose_threshold(y, p, "fixed") == 0.5
    assert choose_threshold(y, p) == youden_threshold(y, p)
    assert choose_threshold(y, p, "sensitivity", 1.0) == pytest.approx(0.4)
    with pytest.raises(ConfigError, match="youden"):
        choose_threshold(y, p, "magic")
    with pytest.raises(ConfigError):
        choose_threshold(y, p, "sensitivity")
    with pytest.raises(ConfigError):
        threshold_for_sensitivity(y, p, 1.5)
    with pytest.raises(DataError):
        youden_threshold([1, 1], [0.2, 0.3])


def test_decide_cuts_the_positive_probability_or_takes_the_argmax() -> None:
    p = np.array([[0.9, 0.1], [0.7, 0.3], [0.4, 0.6]])
    assert decide(p, 1, 0.25).tolist() == [0, 1, 1]
    assert decide(p, 1, 0.5).tolist() == [0, 0, 1]
    assert decide(p, 0, 0.8).tolist() == [0, 1, 1]  # the first class positive
    assert decide(p, None, None).tolist() == [0, 0, 1]
    three = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    assert decide(three, None, None).tolist() == [1, 0]
    with pytest.raises(ConfigError, match="two classes"):
        decide(three, 1, 0.5)
    # findings: each column cut on its own, several or none present per row
    findings = np.array([[0.7, 0.6, 0.1], [0.2, 0.4, 0.3]])
    assert decide(findings, None, 0.5, multi_label=True).tolist() == [[1, 1, 0], [0, 0, 0]]
    with pytest.raises(ConfigError, match="need a threshold"):
        decide(findings, None, None, multi_label=True)


def test_decide_cuts_each_finding_at_its_own_threshold() -> None:
    findings = np.array([[0.7, 0.6, 0.1], [0.2, 0.4, 0.3]])
    assert decide(findings, None, [0.1, 0.5, 0.35], multi_label=True).tolist() == [
        [1, 1, 0],
        [1, 0, 0],
    ]
    with pytest.raises(ConfigError, match="one per finding \\(3\\)"):
        decide(findings, None, [0.1, 0.5], multi_label=True)
    with pytest.raises(ConfigError, match="each in"):
        finding_thresholds([0.1, 0.0, 0.5], 3)
    with pytest.raises(ConfigError, match="one threshold on the positive"):
        decide(np.array([[0.9, 0.1]]), 1, [0.5, 0.5])
    assert finding_thresholds(0.3, 2).tolist() == [0.3, 0.3]


def test_finding_thresholds_are_chosen_per_column_with_a_fallback() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random((200, 3)) < [0.2, 0.5, 0.0]).astype(int)  # the third finding never present
    p = np.clip(0.5 * y + rng.random((200, 3)) * 0.6, 0, 1)
    cuts, kept = choose_finding_thresholds(y, p, "sensitivity", 0.9, fallback=0.4)
    assert kept == [2] and cuts[2] == 0.4
    for k in (0, 1):
        assert cuts[k] == choose_threshold(y[:, k], p[:, k], "sensitivity", 0.9)
        assert (p[y[:, k] == 1, k] >= cuts[k]).mean() >= 0.9
    youden, _ = choose_finding_thresholds(y, p, "youden")
    assert youden[:2] == [youden_threshold(y[:, k], p[:, k]) for k in (0, 1)]
    with pytest.raises(DataError, match="\\(n, findings\\)"):
        choose_finding_thresholds(y[:, 0], p[:, 0], "youden")


def test_threshold_text_for_one_cut_or_per_finding() -> None:
    assert threshold_text(0.41234) == "0.412"
    assert threshold_text([0.2, 0.305], ["effusion", "mass"]) == "effusion 0.200, mass 0.305"
