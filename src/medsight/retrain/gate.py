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

:func:`decide_findings` gates a multi-label model (several findings per case): each finding with
at least two held-out cases with and without it is compared as above, and the challenger passes
only when every such finding passes. That is an intersection-union test, so each comparison keeps
its own level and no multiplicity correction is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

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
    # multi-label: one entry per finding (its figures, or why it was not judged); the figures
    # above are then means over the judged findings, and the bound and p-values the weakest's
    findings: tuple[dict[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, object]:
        values = asdict(self)
        values["reasons"] = list(self.reasons)
        values["findings"] = list(self.findings)
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


MIN_CASES_PER_SIDE = 2  # held-out cases with, and without, a finding for it to be judged


def judgeable(y: ArrayLike) -> np.ndarray:
    """Whether 0/1 labels have at least :data:`MIN_CASES_PER_SIDE` positive and negative cases:
    one answer for ``(n,)`` labels, one per column (finding) for ``(n, findings)``."""
    labels = np.asarray(y)
    present = np.sum(labels == 1, axis=0)
    return (present >= MIN_CASES_PER_SIDE) & (labels.shape[0] - present >= MIN_CASES_PER_SIDE)


def decide_findings(
    y_true: ArrayLike,
    champion_probability: ArrayLike,
    challenger_probability: ArrayLike,
    *,
    champion_threshold: Sequence[float],
    challenger_threshold: Sequence[float],
    names: Sequence[str],
    settings: GateSettings | None = None,
) -> GateDecision:
    """Gate a multi-label model on ``(n, findings)`` 0/1 labels and probabilities, each finding at
    its own thresholds: promotion needs every judged finding to pass :func:`decide`."""
    settings = settings or GateSettings()
    y = np.asarray(y_true)
    champion = np.asarray(champion_probability, dtype=float)
    challenger = np.asarray(challenger_probability, dtype=float)
    if y.ndim != 2 or champion.shape != y.shape or challenger.shape != y.shape:
        raise ConfigError(
            f"a multi-label gate needs labels and both models' probabilities of one shape "
            f"(cases, findings); got {y.shape}, {champion.shape} and {challenger.shape}."
        )
    if len(names) != y.shape[1]:
        raise ConfigError(f"{len(names)} finding names for {y.shape[1]} findings.")
    judged: dict[str, GateDecision] = {}
    entries: list[dict[str, Any]] = []
    comparable = judgeable(y)
    for k, name in enumerate(names):
        if not comparable[k]:
            entries.append({"finding": name, "judged": False, "n_positive": int(y[:, k].sum())})
            continue
        one = decide(
            y[:, k],
            champion[:, k],
            challenger[:, k],
            champion_threshold=float(champion_threshold[k]),
            challenger_threshold=float(challenger_threshold[k]),
            settings=settings,
        )
        judged[name] = one
        entries.append({"finding": name, "judged": True, **_finding_figures(one)})
    if not judged:
        raise ConfigError(
            f"no finding has {MIN_CASES_PER_SIDE} held-out cases with it and without it, so no "
            "finding can be compared; use a larger held-out set."
        )
    skipped = [e["finding"] for e in entries if not e["judged"]]
    return _combined(judged, skipped, y, settings, tuple(entries))


def _finding_figures(one: GateDecision) -> dict[str, Any]:
    keys = (
        "passed",
        "n_positive",
        "auroc_champion",
        "auroc_challenger",
        "auroc_difference",
        "auroc_lower_bound",
        "noninferiority_p_value",
        "sensitivity_champion",
        "sensitivity_challenger",
        "threshold_champion",
        "threshold_challenger",
    )
    return {key: getattr(one, key) for key in keys}


def _combined(
    judged: dict[str, GateDecision],
    skipped: list[str],
    y: np.ndarray,
    settings: GateSettings,
    entries: tuple[dict[str, Any], ...],
) -> GateDecision:
    """One decision from the judged findings': all must pass; means for the figures, the
    weakest finding's bound and p-values."""
    decisions = list(judged.values())
    weakest_name = min(judged, key=lambda name: judged[name].auroc_lower_bound)
    weakest = judged[weakest_name]
    auroc_ok = all(d.auroc_noninferior for d in decisions)
    sens_ok = all(d.sensitivity_ok for d in decisions)
    reasons = [
        _findings_reason(
            "AUROC non-inferior",
            "AUROC not shown non-inferior",
            [n for n, d in judged.items() if not d.auroc_noninferior],
            len(judged),
            f"the weakest, {weakest_name!r}, has difference {weakest.auroc_difference:+.3f} "
            f"and one-sided {settings.confidence:.0%} lower bound "
            f"{_signed(weakest.auroc_lower_bound)} (margin -{settings.auroc_margin:.3f})",
        ),
        _findings_reason(
            "Sensitivity kept",
            "Sensitivity lower",
            [n for n, d in judged.items() if not d.sensitivity_ok],
            len(judged),
            f"each finding at each model's own threshold, margin {settings.sensitivity_margin:.3f}",
        ),
    ]
    if skipped:
        reasons.append(
            f"Not judged (fewer than {MIN_CASES_PER_SIDE} held-out cases with or without the "
            f"finding): {', '.join(skipped)}."
        )

    def mean(key: str) -> float:
        return float(np.mean([getattr(d, key) for d in decisions]))

    return GateDecision(
        passed=bool(auroc_ok and sens_ok),
        auroc_noninferior=auroc_ok,
        sensitivity_ok=sens_ok,
        n=int(y.shape[0]),
        n_positive=int(np.sum(y.any(axis=1))),
        auroc_champion=mean("auroc_champion"),
        auroc_challenger=mean("auroc_challenger"),
        auroc_difference=mean("auroc_difference"),
        auroc_se=weakest.auroc_se,
        auroc_lower_bound=weakest.auroc_lower_bound,
        delong_z=weakest.delong_z,
        delong_p_value=weakest.delong_p_value,
        noninferiority_p_value=max(d.noninferiority_p_value for d in decisions),
        sensitivity_champion=mean("sensitivity_champion"),
        sensitivity_challenger=mean("sensitivity_challenger"),
        sensitivity_difference=min(d.sensitivity_difference for d in decisions),
        threshold_champion=math.nan,
        threshold_challenger=math.nan,
        auroc_margin=settings.auroc_margin,
        sensitivity_margin=settings.sensitivity_margin,
        alpha=settings.alpha,
        reasons=tuple(reasons),
        findings=entries,
    )


def _findings_reason(ok: str, not_ok: str, failing: list[str], n_judged: int, detail: str) -> str:
    if not failing:
        return f"{ok} on each of the {n_judged} judged findings: {detail}."
    named = ", ".join(repr(name) for name in failing)
    return f"{not_ok} on {named} of {n_judged} judged findings: {detail}."


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
