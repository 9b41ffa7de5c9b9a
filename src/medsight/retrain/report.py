"""The comparison report of a retraining run: ``report.html`` and ``comparison.json``.

Written whether or not the challenger was promoted, so a refusal is as well documented as a
promotion: the decision and its reasons, the data used, both models' held-out metrics with
bootstrap intervals, DeLong's comparison, the feedback that could not be used and why.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from medsight.evaluate.metrics import METRIC_LABELS, MULTILABEL_METRIC_LABELS
from medsight.evaluate.plots import plot_roc, plot_roc_per_class
from medsight.evaluate.report import Report
from medsight.retrain.base import RetrainOutcome
from medsight.retrain.gate import GateDecision
from medsight.runs import write_text_atomic

COUNT_LABELS = {
    "original_rows": "Original rows (after cleaning)",
    "original_training_rows": "Original rows used to train the challenger",
    "feedback_used": "Feedback cases used",
    "feedback_confirmed": "  of which confirmed",
    "feedback_corrected": "  of which corrected",
    "training_rows": "Challenger training rows",
    "validation_rows": "Validation cases (early stopping)",
    "holdout_rows": "Held-out comparison cases",
    "holdout_positive": "  of which positive",
    "holdout_excluded_as_feedback": "Held-out rows left out (identical to feedback cases)",
    "validation_excluded_as_feedback": "Validation cases left out (identical to feedback cases)",
    "original_replaced_by_feedback": "Original rows replaced by feedback on the same input",
}

FINDING_COLUMNS = {
    "finding": "Finding",
    "judged": "Judged",
    "passed": "Passed",
    "n_positive": "Held-out cases with it",
    "auroc_champion": "AUROC champion",
    "auroc_challenger": "AUROC challenger",
    "auroc_difference": "Difference",
    "auroc_lower_bound": "One-sided lower bound",
    "noninferiority_p_value": "Non-inferiority p",
    "sensitivity_champion": "Sensitivity champion",
    "sensitivity_challenger": "Sensitivity challenger",
    "threshold_champion": "Threshold champion",
    "threshold_challenger": "Threshold challenger",
}


def operating_point(threshold: float) -> str:
    """How a model decided: its threshold, or its most probable class (NaN: one per case)."""
    return "most probable class" if math.isnan(threshold) else f"threshold {threshold:.3f}"


def _count_labels(decision: GateDecision) -> dict[str, str]:
    if not decision.findings:
        return COUNT_LABELS
    return {**COUNT_LABELS, "holdout_positive": "  of which with at least one finding"}


def _operating(threshold: float, multi_label: bool) -> str:
    return "each finding's threshold; mean" if multi_label else operating_point(threshold)


def headline(outcome: RetrainOutcome) -> str:
    """One line: promoted or not, and to which version."""
    champion = f"{outcome.task} v{outcome.champion.version}"
    if outcome.promoted:
        return (
            f"PROMOTED: the challenger ({outcome.task} v{outcome.challenger_version}) replaced "
            f"{champion} in production."
        )
    kept = f"{champion} stays in production"
    if outcome.challenger_version is not None:
        return (
            f"NOT PROMOTED: {kept}; the challenger is registered as candidate "
            f"v{outcome.challenger_version} for inspection."
        )
    return f"NOT PROMOTED: {kept}; the challenger was not registered."


def build_report(outcome: RetrainOutcome) -> Report:
    """The HTML comparison report (medsight's standard self-contained :class:`Report`)."""
    decision = outcome.decision
    report = Report(
        title=f"Retraining comparison: {outcome.task}",
        subtitle=(
            f"Champion v{outcome.champion.version} ({outcome.champion.name}) against a "
            f"challenger retrained with clinician feedback; run {outcome.run_dir.name}"
        ),
    )
    summary = report.add_section(
        "Decision",
        "The challenger is promoted only when its AUROC is non-inferior by DeLong's test and "
        "its sensitivity is not lower beyond the margin, both on the same held-out cases.",
    )
    summary.add_text(headline(outcome))
    for reason in decision.reasons:
        summary.add_text(reason)
    if outcome.registry_note:
        summary.add_text(outcome.registry_note)

    counts = outcome.counts
    data = report.add_section("Data")
    data.add_key_values(
        {
            **{label: counts[k] for k, label in _count_labels(decision).items() if k in counts},
            "Feedback not usable": len(outcome.unusable),
            "Feedback rows read": outcome.feedback_rows,
            "Older verdicts replaced by a newer one": outcome.superseded,
            "Training configuration from": outcome.sources.get("config", ""),
            "Original data": outcome.sources.get("original_data", ""),
            "Held-out cases": outcome.sources.get("holdout", ""),
            "Model": outcome.sources.get("model", ""),
        }
    )
    for note in outcome.notes:
        data.add_text(f"Note: {note}")

    multi_label = bool(decision.findings)
    mean = " (mean over judged findings)" if multi_label else ""
    weakest = " (weakest finding)" if multi_label else ""
    gate = report.add_section(
        "Gate figures",
        f"DeLong's test for paired AUROCs on the {decision.n} held-out cases "
        f"({decision.n_positive} {'with a finding' if multi_label else 'positive'}); one-sided "
        f"{1 - decision.alpha:.0%} lower bound."
        + (
            " Each finding is compared on its own and every judged finding must pass."
            if multi_label
            else ""
        ),
    )
    gate.add_key_values(
        {
            f"AUROC champion{mean}": decision.auroc_champion,
            f"AUROC challenger{mean}": decision.auroc_challenger,
            f"Difference (challenger - champion){mean}": decision.auroc_difference,
            f"Standard error (DeLong){weakest}": decision.auroc_se,
            f"One-sided lower bound{weakest}": decision.auroc_lower_bound,
            "AUROC margin": -decision.auroc_margin,
            f"DeLong two-sided p-value{weakest}": f"{decision.delong_p_value:.3g}",
            f"Non-inferiority p-value{' (largest)' if multi_label else ''}": (
                f"{decision.noninferiority_p_value:.3g}"
            ),
            f"Sensitivity champion ({_operating(decision.threshold_champion, multi_label)})": (
                decision.sensitivity_champion
            ),
            f"Sensitivity challenger ({_operating(decision.threshold_challenger, multi_label)})": (
                decision.sensitivity_challenger
            ),
            "Sensitivity margin": decision.sensitivity_margin,
            "AUROC non-inferior": "yes" if decision.auroc_noninferior else "no",
            "Sensitivity kept": "yes" if decision.sensitivity_ok else "no",
        }
    )
    if multi_label:
        gate.add_table(
            pd.DataFrame(list(decision.findings)).rename(columns=FINDING_COLUMNS),
            caption="Each finding (judged: at least 2 held-out cases with it and without it)",
        )

    metrics = report.add_section(
        "Held-out metrics", "Each model at its own operating threshold; 95% bootstrap intervals."
    )
    labels = MULTILABEL_METRIC_LABELS if multi_label else METRIC_LABELS
    metrics.add_metrics(
        outcome.metrics["champion"], caption="Champion (production model)", labels=labels
    )
    metrics.add_metrics(outcome.metrics["challenger"], caption="Challenger", labels=labels)
    held = outcome.held_out
    if held.findings is not None:
        for name, probability, threshold in (
            (
                f"champion v{outcome.champion.version}",
                held.champion_probability,
                held.champion_threshold,
            ),
            ("challenger", held.challenger_probability, held.challenger_threshold),
        ):
            metrics.add_figure(
                plot_roc_per_class(
                    held.y, probability, held.findings, list(threshold), noun="finding"
                ),
                caption=f"ROC curve per finding of the {name} on the held-out cases.",
            )
    else:
        metrics.add_figure(
            plot_roc(
                held.y,
                {
                    f"champion v{outcome.champion.version}": held.champion_probability,
                    "challenger": held.challenger_probability,
                },
            ),
            caption="ROC curves of both models on the held-out cases.",
        )

    if outcome.unusable:
        unusable = report.add_section(
            "Feedback not used",
            "Verdicts that could not become training cases; they are counted, not dropped.",
        )
        unusable.add_table(pd.DataFrame([u.to_dict() for u in outcome.unusable]))
    return report


def comparison_document(outcome: RetrainOutcome) -> dict[str, Any]:
    """The run's figures as JSON-ready data (non-finite numbers become ``null``)."""
    document = {
        "task": outcome.task,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": outcome.run_dir.name,
        "promoted": outcome.promoted,
        "headline": headline(outcome),
        "champion": {
            "version": outcome.champion.version,
            "name": outcome.champion.name,
            "kind": outcome.champion.kind,
        },
        "challenger": {"version": outcome.challenger_version},
        "registry_note": outcome.registry_note,
        "gate": outcome.decision.to_dict(),
        "metrics": {
            model: {name: e.to_dict() for name, e in values.items()}
            for model, values in outcome.metrics.items()
        },
        "data": dict(outcome.counts),
        "sources": dict(outcome.sources),
        "notes": list(outcome.notes),
        "feedback": {
            "rows_read": outcome.feedback_rows,
            "superseded": outcome.superseded,
            "used": outcome.counts.get("feedback_used", 0),
            "unusable": [u.to_dict() for u in outcome.unusable],
        },
    }
    return _finite(document)


def write_comparison(outcome: RetrainOutcome) -> Path:
    """Write ``report.html`` and ``comparison.json`` into the run folder; return the report path."""
    write_text_atomic(outcome.json_path, json.dumps(comparison_document(outcome), indent=2))
    return build_report(outcome).write(outcome.report_path)


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
