"""The promotion gate: is the challenger at least as good as the champion on the same cases?

Two conditions, both required:

- **AUROC non-inferiority** by DeLong's test for paired AUROCs: the lower bound of the one-sided
  (1 - alpha) confidence interval of AUROC(challenger) - AUROC(champion) must lie above
  ``-auroc_margin``.
- **Sensitivity** of the challenger at its own threshold must not be lower than the champion's
  (at the champion's threshold) by more than ``sensitivity_margin``.

:func:`decide` is a pure function of labels, probabilities and thresholds. A threshold is a number
or one per case: a per-case threshold expresses a decision that is not a fixed cut-off of the
positive probability (a multi-class model predicts the positive class when it is the most probable
one, i.e. when its probability reaches the largest other one); the decision then records NaN as
the threshold.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm

from medsight.errors import ConfigError
from medsight.evaluate.delong import delong_test
from medsight.evaluate.metrics import binary_metrics

_TOLERANCE = 1e-12  # floating-point slack when a figure sits exactly on a margin


@dataclass(frozen=True)
class GateSettings:
    """Margins and significance level of the gate (defaults: 0.02, 0.02, 0.05)."""

    auroc_margin: float = 0.02
    sensitivity_margin: float = 0.02
    alpha: float = 0.05

    def __post_init__(self) -> None:
        for name in ("auroc_margin", "sensitivity_margin"):
            value = getattr(self, name)
            if not 0.0 <= value < 0.5:
                raise ConfigError(f"{name} {value}: choose a margin between 0 and 0.5.")
        if not 0.0 < self.alpha < 0.5:
            raise ConfigError(f"alpha {self.alpha}: choose between 0 and 0.5 (e.g. 0.05).")

    @property
    def confidence(self) -> float:
        """Level of the one-sided interval, e.g. 0.95."""
        return 1.0 - self.alpha


@dataclass(frozen=True)
class GateDecision:
    """Every figure of the comparison, whether each condition holds, and the reasons in words."""

    passed: bool
    auroc_noninferior: bool
    sensitivity_ok: bool
    n: int
    n_positive: int
    auroc_champion: float
    auroc_challenger: float
    auroc_difference: float
    auroc_se: float
    auroc_lower_bound: float
    delong_z: float
    delong_p_value: float
    noninferiority_p_value: float
    sensitivity_champion: float
    sensitivity_challenger: float
    sensitivity_difference: float
    threshold_champion: float
    threshold_challenger: float
    auroc_margin: float
    sensitivity_margin: float
    alpha: float
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        values = asdict(self)
        values["reasons"] = list(self.reasons)
        return values


def decide(
    y_true: ArrayLike,
    champion_probability: ArrayLike,
    challenger_probability: ArrayLike,
    *,
    champion_threshold: float | ArrayLike,
    challenger_threshold: float | ArrayLike,
    settings: GateSettings | None = None,
) -> GateDecision:
    """Compare challenger with champion on the same labelled cases and decide promotion.

    Each threshold is a number or one per case (see the module docstring).
    """
    settings = settings or GateSettings()
    y = np.asarray(y_true)
    # delong_test's two-sided (1 - 2 alpha) interval has the one-sided (1 - alpha) lower bound.
    delong = delong_test(y, challenger_probability, champion_probability, alpha=2 * settings.alpha)
    lower = delong.ci_low
    auroc_ok = lower > -settings.auroc_margin - _TOLERANCE
    noninferiority_p = _noninferiority_p(delong.difference, delong.se, settings.auroc_margin)

    sens_champion = binary_metrics(y, champion_probability, champion_threshold)["sensitivity"]
    sens_challenger = binary_metrics(y, challenger_probability, challenger_threshold)["sensitivity"]
    sens_difference = sens_challenger - sens_champion
    sens_ok = sens_difference >= -settings.sensitivity_margin - _TOLERANCE

    reasons = (
        _auroc_reason(auroc_ok, delong.difference, lower, delong.p_value, settings),
        _sensitivity_reason(sens_ok, sens_champion, sens_challenger, settings),
    )
    return GateDecision(
        passed=bool(auroc_ok and sens_ok),
        auroc_noninferior=bool(auroc_ok),
        sensitivity_ok=bool(sens_ok),
        n=int(y.size),
        n_positive=int(np.sum(y == 1)),
        auroc_champion=delong.auroc_b,
        auroc_challenger=delong.auroc_a,
        auroc_difference=delong.difference,
        auroc_se=delong.se,
        auroc_lower_bound=float(lower),
        delong_z=float(delong.z),
        delong_p_value=delong.p_value,
        noninferiority_p_value=noninferiority_p,
        sensitivity_champion=float(sens_champion),
        sensitivity_challenger=float(sens_challenger),
        sensitivity_difference=float(sens_difference),
        threshold_champion=_threshold_figure(champion_threshold),
        threshold_challenger=_threshold_figure(challenger_threshold),
        auroc_margin=settings.auroc_margin,
        sensitivity_margin=settings.sensitivity_margin,
        alpha=settings.alpha,
        reasons=reasons,
    )


def _threshold_figure(threshold: float | ArrayLike) -> float:
    """A single threshold as a number; NaN for one threshold per case (no single cut-off)."""
    value = np.asarray(threshold, dtype=float)
    return float(value) if value.ndim == 0 else math.nan


def _noninferiority_p(difference: float, se: float, margin: float) -> float:
    """One-sided p-value of H0: AUROC(challenger) - AUROC(champion) <= -margin."""
    if se == 0.0:
        return 0.0 if difference > -margin else 1.0
    return float(norm.sf((difference + margin) / se))


def _auroc_reason(
    ok: bool, difference: float, lower: float, p_value: float, settings: GateSettings
) -> str:
    level = f"{settings.confidence:.0%}"
    figures = (
        f"AUROC difference (challenger - champion) {difference:+.3f}, one-sided {level} lower "
        f"bound {_signed(lower)}, DeLong two-sided p = {p_value:.3g}"
    )
    if ok:
        return (
            f"AUROC non-inferior: {figures}; the lower bound is above the margin "
            f"-{settings.auroc_margin:.3f}."
        )
    return (
        f"AUROC not shown non-inferior: {figures}; the lower bound is not above the margin "
        f"-{settings.auroc_margin:.3f}, so the challenger may be worse than the champion."
    )


def _sensitivity_reason(
    ok: bool, champion: float, challenger: float, settings: GateSettings
) -> str:
    figures = (
        f"sensitivity {challenger:.3f} (challenger, own threshold) vs {champion:.3f} (champion)"
    )
    if ok:
        return (
            f"Sensitivity kept: {figures}; not lower by more than the margin "
            f"{settings.sensitivity_margin:.3f}."
        )
    return (
        f"Sensitivity lower: {figures}; {champion - challenger:.3f} lower, more than the allowed "
        f"margin {settings.sensitivity_margin:.3f}, so the challenger would miss more cases."
    )


def _signed(value: float) -> str:
    return "-inf" if math.isinf(value) and value < 0 else f"{value:+.3f}"
