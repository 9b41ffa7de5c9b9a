"""The promotion gate as a pure function: DeLong AUROC non-inferiority, sensitivity margin."""

from __future__ import annotations

import numpy as np
import pytest

from medsight.errors import ConfigError, DataError
from medsight.retrain.gate import GateDecision, GateSettings, decide, decide_findings


def _scores(n: int = 400, *, signal: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores whose separation grows with ``signal`` (AUROC ~0.5 at 0)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    logit = signal * (2 * y - 1) + rng.normal(0, 1, n)
    return y, 1 / (1 + np.exp(-logit))


def test_clearly_better_challenger_passes() -> None:
    y, champion = _scores(signal=0.5, seed=1)
    rng = np.random.default_rng(2)
    challenger = 1 / (1 + np.exp(-(2.0 * (2 * y - 1) + rng.normal(0, 1, y.size))))
    decision = decide(y, champion, challenger, champion_threshold=0.5, challenger_threshold=0.5)
    assert decision.passed and decision.auroc_noninferior and decision.sensitivity_ok
    assert decision.auroc_challenger > decision.auroc_champion + 0.1
    assert decision.auroc_lower_bound > 0  # significantly better, not only non-inferior
    assert decision.delong_p_value < 0.001 and decision.noninferiority_p_value < 0.001
    assert decision.reasons[0].startswith("AUROC non-inferior")
    assert decision.n == y.size and decision.n_positive == int(y.sum())


def test_clearly_worse_challenger_is_refused_with_the_reason() -> None:
    y, champion = _scores(signal=2.0, seed=3)
    rng = np.random.default_rng(4)
    challenger = 1 / (1 + np.exp(-(0.3 * (2 * y - 1) + rng.normal(0, 1, y.size))))
    decision = decide(y, champion, challenger, champion_threshold=0.5, challenger_threshold=0.5)
    assert not decision.passed and not decision.auroc_noninferior
    assert decision.auroc_difference < -0.1
    assert decision.auroc_lower_bound < -decision.auroc_margin
    assert "not shown non-inferior" in decision.reasons[0]
    assert f"{decision.auroc_lower_bound:+.3f}" in decision.reasons[0]


def test_equal_models_pass_within_the_margin() -> None:
    y, champion = _scores(signal=1.0, seed=5)
    identical = decide(y, champion, champion, champion_threshold=0.5, challenger_threshold=0.5)
    assert identical.passed
    assert identical.auroc_difference == 0 and identical.auroc_se == 0
    # a slightly perturbed copy: small difference, interval inside the margin
    rng = np.random.default_rng(6)
    close = np.clip(champion + rng.normal(0, 0.01, y.size), 0, 1)
    decision = decide(y, champion, close, champion_threshold=0.5, challenger_threshold=0.5)
    assert abs(decision.auroc_difference) < 0.01
    assert -0.02 < decision.auroc_lower_bound < 0.0 and decision.passed


def test_small_auroc_loss_inside_the_margin_passes_but_not_with_a_tighter_margin() -> None:
    y, champion = _scores(signal=1.0, seed=7)
    rng = np.random.default_rng(8)
    close = np.clip(champion + rng.normal(0, 0.01, y.size), 0, 1)
    loose = decide(y, champion, close, champion_threshold=0.5, challenger_threshold=0.5)
    strict = decide(
        y,
        champion,
        close,
        champion_threshold=0.5,
        challenger_threshold=0.5,
        settings=GateSettings(auroc_margin=0.0),
    )
    assert loose.auroc_difference == strict.auroc_difference
    assert loose.auroc_noninferior
    assert strict.auroc_noninferior == (strict.auroc_lower_bound > 0)


def test_lower_sensitivity_beyond_the_margin_is_refused() -> None:
    y, champion = _scores(signal=1.5, seed=9)
    # same ranking (same AUROC), but a much higher threshold: far fewer positives called
    decision = decide(y, champion, champion, champion_threshold=0.5, challenger_threshold=0.8)
    assert decision.auroc_noninferior and not decision.sensitivity_ok and not decision.passed
    assert decision.sensitivity_challenger < decision.sensitivity_champion - 0.02
    assert decision.reasons[1].startswith("Sensitivity lower")
    # within the margin: a threshold nudge that costs at most 2 points of sensitivity passes
    positives = np.sort(champion[y == 1])
    nudged = float(positives[1])  # at most one more positive missed than at the lowest positive
    lenient = decide(
        y,
        champion,
        champion,
        champion_threshold=float(positives[0]),
        challenger_threshold=nudged,
        settings=GateSettings(sensitivity_margin=0.02),
    )
    assert lenient.sensitivity_champion == 1.0
    assert lenient.sensitivity_ok and lenient.passed


def test_settings_are_checked_and_small_holdouts_refused() -> None:
    with pytest.raises(ConfigError, match="alpha"):
        GateSettings(alpha=0.7)
    with pytest.raises(ConfigError, match="auroc_margin"):
        GateSettings(auroc_margin=-0.1)
    y = np.array([1, 0, 0, 0])
    p = np.array([0.9, 0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="at least 2 positive"):
        decide(y, p, p, champion_threshold=0.5, challenger_threshold=0.5)


def _findings(signals: list[float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(400, len(signals))`` labels and scores, each finding with its own separation."""
    columns = [_scores(signal=s, seed=seed + k) for k, s in enumerate(signals)]
    return np.stack([y for y, _ in columns], 1), np.stack([p for _, p in columns], 1)


def test_every_judged_finding_must_pass_and_rare_ones_are_named() -> None:
    y, champion = _findings([2.0, 2.0, 2.0], seed=10)
    _, challenger = _findings([2.0, 2.0, 0.3], seed=10)  # the same, but finding "c" got worse
    challenger[:, :2] = champion[:, :2]
    y[:, 1] = 0
    y[0, 1] = 1  # finding "b": one positive held-out case, too few to judge
    cuts = [0.5, 0.5, 0.5]

    def gate(challenger: np.ndarray) -> GateDecision:
        return decide_findings(
            y,
            champion,
            challenger,
            champion_threshold=cuts,
            challenger_threshold=cuts,
            names=["a", "b", "c"],
        )

    decision = gate(challenger)
    entries = {entry["finding"]: entry for entry in decision.findings}
    assert [entries[n]["judged"] for n in "abc"] == [True, False, True]
    assert entries["a"]["passed"] and not entries["c"]["passed"] and not decision.passed
    assert entries["a"]["auroc_difference"] == 0.0
    # one decision per finding is the plain two-class gate on that column
    alone = decide(
        y[:, 2], champion[:, 2], challenger[:, 2], champion_threshold=0.5, challenger_threshold=0.5
    )
    assert entries["c"]["auroc_lower_bound"] == alone.auroc_lower_bound
    assert decision.auroc_lower_bound == alone.auroc_lower_bound  # the weakest finding's
    assert decision.auroc_champion == pytest.approx(
        np.mean([entries["a"]["auroc_champion"], entries["c"]["auroc_champion"]])
    )
    assert decision.noninferiority_p_value == alone.noninferiority_p_value  # the largest
    assert "not shown non-inferior on 'c' of 2 judged findings" in decision.reasons[0]
    assert "Not judged" in decision.reasons[-1] and ": b." in decision.reasons[-1]
    assert decision.to_dict()["findings"][1] == {"finding": "b", "judged": False, "n_positive": 1}

    same = gate(champion)
    assert same.passed and same.reasons[0].startswith("AUROC non-inferior on each of the 2")


def test_findings_gate_refuses_what_it_cannot_compare() -> None:
    y, p = _findings([1.0, 1.0], seed=3)
    cuts = [0.5, 0.5]
    with pytest.raises(ConfigError, match="no finding has 2 held-out cases"):
        decide_findings(
            np.zeros_like(y),
            p,
            p,
            champion_threshold=cuts,
            challenger_threshold=cuts,
            names=["a", "b"],
        )
    with pytest.raises(ConfigError, match="one shape"):
        decide_findings(
            y, p[:, :1], p, champion_threshold=cuts, challenger_threshold=cuts, names=["a", "b"]
        )
    with pytest.raises(ConfigError, match="1 finding names for 2 findings"):
        decide_findings(y, p, p, champion_threshold=cuts, challenger_threshold=cuts, names=["a"])
