"""The PhysioNet/CinC 2017 challenge score against a hand-computed case and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from medsight.errors import ConfigError
from medsight.evaluate.rhythm import challenge_score, rhythm_metrics_with_ci

NAMES = ["N", "A", "O", "~"]


def test_challenge_score_by_hand() -> None:
    # truth N N A O ~ O, prediction N A A O ~ N
    y = np.array([0, 0, 1, 2, 3, 2])
    prob = np.eye(4)[[0, 1, 1, 2, 3, 0]]
    score, f1 = challenge_score(y, prob, NAMES)
    # N: tp 1 fp 1 fn 1 -> 1/2; A: tp 1 fp 1 -> 2/3; O: tp 1 fn 1 -> 2/3
    assert f1 == pytest.approx({"N": 0.5, "A": 2 / 3, "O": 2 / 3, "~": 1.0})
    assert score == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)


def test_challenge_score_matches_sklearn_and_has_an_interval() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 400)
    prob = rng.dirichlet(np.ones(4), 400)
    prob[np.arange(400), y] += 0.5 * rng.random(400)  # better than chance
    prob /= prob.sum(axis=1, keepdims=True)
    expected = f1_score(y, prob.argmax(1), labels=[0, 1, 2], average="macro")
    assert challenge_score(y, prob, NAMES)[0] == pytest.approx(expected)
    estimate = rhythm_metrics_with_ci(y, prob, NAMES, n_boot=200)["challenge_score"]
    assert estimate.lo < estimate.value < estimate.hi
    assert estimate.value == pytest.approx(expected)


def test_challenge_score_needs_the_scored_classes() -> None:
    with pytest.raises(ConfigError, match="needs classes N, A, O"):
        challenge_score([0, 1], np.eye(2), ["normal", "af"])
