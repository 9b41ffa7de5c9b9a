"""The HTML report and the model card of a tabular run."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from medsight.config import TrainConfig, dump_config
from medsight.evaluate.bootstrap import Estimate
from medsight.evaluate.metrics import BINARY_METRICS, METRIC_LABELS
from medsight.evaluate.plots import plot_calibration, plot_confusion_matrix, plot_pr, plot_roc
from medsight.evaluate.report import Report
from medsight.explain.plots import plot_contributions, plot_shap_summary

if TYPE_CHECKING:
    from medsight.bundle.tabular import TabularBundle
    from medsight.tasks.tabular import TabularRunResult

HEADLINE = ("auroc", "sensitivity", "specificity", "accuracy")
EXAMPLE_PATIENTS = 3


def build_report(result: TabularRunResult, bundle: TabularBundle, config: TrainConfig) -> Report:
    """Every metric with its CI, the four plots, subgroups, data quality and SHAP, in one page."""
    prepared, model = result.prepared, result.model
    schema = prepared.schema
    report = Report(
        title=f"medsight report: {bundle.metadata['name']}",
        subtitle=(
            f"Predicting '{schema.target}' = {schema.positive_class} with '{config.model.name}', "
            f"{bundle.metadata['evaluation']}"
        ),
    )
    summary = report.add_section(
        "Summary",
        "Figures are cross-validated: every prediction scored here came from a model that did "
        "not see that row. Intervals are 95% bootstrap intervals"
        + (" resampling patients." if prepared.groups is not None else " resampling rows."),
    )
    summary.add_key_values(
        {
            "Rows used": len(prepared.y),
            "Class balance": ", ".join(
                f"{k}: {v}" for k, v in prepared.quality.class_balance.items()
            ),
            "Model": config.model.name,
            "Calibration": bundle.model.calibration,
            "Class weighting": bundle.model.class_weight or "none",
            "Operating threshold": f"{bundle.model.threshold:.3f} ({config.evaluation.threshold})",
            **{METRIC_LABELS[k]: str(model.metrics[k]) for k in HEADLINE},
            "Data fingerprint (SHA-256)": bundle.metadata["data_fingerprint"]["sha256"][:16] + "…",
            "Seed": config.seed,
        }
    )

    performance = report.add_section("Performance")
    performance.add_metrics(model.metrics, caption=f"'{config.model.name}' (cross-validated)")
    performance.add_metrics(result.baseline.metrics, caption="Logistic-regression baseline")
    delong = result.delong
    performance.add_text(
        f"DeLong's test, {config.model.name} vs baseline (AUROC of each row's out-of-fold "
        f"probability averaged over repeats): difference {delong.difference:+.4f} "
        f"(95% CI {delong.ci_low:+.4f} to {delong.ci_high:+.4f}), p = {delong.p_value:.3g}."
    )

    plots = report.add_section(
        "Plots", "Curves use the first cross-validation repeat; the tables above average repeats."
    )
    first = model.cv.probabilities[0]
    plots.add_figure(
        plot_roc(
            prepared.y, {config.model.name: first, "baseline": result.baseline.cv.probabilities[0]}
        ),
        caption="ROC curve",
    )
    plots.add_figure(plot_pr(prepared.y, first), caption="Precision-recall curve")
    plots.add_figure(plot_calibration(prepared.y, first), caption="Calibration (reliability)")
    predicted = (first >= model.cv.thresholds[0]).astype(int)
    plots.add_figure(
        plot_confusion_matrix(
            prepared.y, predicted, [bundle.negative_class, bundle.positive_class]
        ),
        caption="Confusion matrix at the operating threshold",
    )

    subgroups = report.add_section(
        "Subgroups", "Each metric within each subgroup, with 95% bootstrap intervals."
    )
    if result.subgroups.empty:
        subgroups.add_text("No subgroup columns configured (data.subgroups); none found by name.")
    else:
        subgroups.add_table(result.subgroups)

    _add_explanations(report, result)
    _add_quality(report, result)
    configuration = report.add_section("Configuration")
    configuration.add_text(dump_config(config))
    return report


def _add_explanations(report: Report, result: TabularRunResult) -> None:
    explanation = result.explanation
    frame = result.prepared.frame.loc[explanation.values.index]
    section = report.add_section(
        "Explanations (SHAP)",
        "Permutation SHAP values of the final model's probability, summed per original column, "
        f"for {len(frame)} sampled rows. A value is how far that column moved the prediction "
        f"from the average ({explanation.base_value:.3f}).",
    )
    section.add_figure(plot_shap_summary(explanation, frame), caption="Global importance")
    total = explanation.values.sum(axis=1) + explanation.base_value
    picks = {"highest predicted risk": total.idxmax(), "lowest predicted risk": total.idxmin()}
    picks["closest to the threshold"] = (total - 0.5).abs().idxmin()
    for label, index in list(picks.items())[:EXAMPLE_PATIENTS]:
        position = explanation.values.index.get_loc(index)
        contributions = explanation.top(position, frame, k=6)
        section.add_figure(
            plot_contributions(contributions, f"Row {index + 1}: {label} (p = {total[index]:.2f})"),
            caption=f"Example patient: {label}",
        )


def _add_quality(report: Report, result: TabularRunResult) -> None:
    quality = result.prepared.quality
    section = report.add_section("Data quality and cleaning")
    if quality.findings:
        section.add_table(
            pd.DataFrame(
                [
                    {"severity": f.severity, "check": f.check, "finding": f.message}
                    for f in quality.findings
                ]
            )
        )
    else:
        section.add_text("No findings.")
    if quality.missing:
        section.add_table(
            pd.DataFrame(
                [
                    {"column": k, "missing": int(v["count"]), "share": f"{v['fraction']:.1%}"}
                    for k, v in quality.missing.items()
                ]
            ),
            caption="Missing values per column (imputed inside each training fold)",
        )
    section.add_text(
        "Cleaning: " + ("; ".join(result.prepared.cleaning_log) or "nothing dropped") + "."
    )


def _metric_lines(metrics: dict[str, Estimate]) -> list[str]:
    return [
        f"| {METRIC_LABELS.get(k, k)} | {m.value:.3f} | {m.lo:.3f}–{m.hi:.3f} |"
        for k in BINARY_METRICS
        if (m := metrics.get(k)) is not None
    ]


def build_model_card(result: TabularRunResult, bundle: TabularBundle, config: TrainConfig) -> str:
    """A Markdown model card: intended use, data, evaluation, subgroups, limits."""
    schema = result.prepared.schema
    meta = bundle.metadata
    fingerprint = meta["data_fingerprint"]
    lines = [
        f"# Model card: {meta['name']}",
        "",
        "## Model",
        f"- Task: binary classification of `{schema.target}` "
        f"(positive class `{schema.positive_class}`)",
        f"- Model: `{config.model.name}`; calibration: {bundle.model.calibration}; "
        f"class weighting: {bundle.model.class_weight or 'none'}",
        f"- Operating threshold: {bundle.model.threshold:.3f} ({config.evaluation.threshold})",
        f"- Inputs: {', '.join(schema.feature_columns)}",
        f"- Created {meta['created']} with medsight "
        f"{meta['package_versions'].get('medsight')}, seed {meta['seed']}",
        "",
        "## Intended use",
        "Decision support for clinicians and researchers: a second opinion with a probability and "
        "an explanation, to be weighed with the full clinical picture. Not a stand-alone "
        "diagnosis, and not validated for any population other than the one described below.",
        "",
        "## Training data",
        f"- Source: {fingerprint.get('source') or 'in-memory table'}; {fingerprint['rows']} rows, "
        f"{fingerprint['columns']} columns; SHA-256 `{fingerprint['sha256']}`",
        f"- Class balance: {meta['class_balance']}",
        f"- Cleaning: {'; '.join(result.prepared.cleaning_log) or 'nothing dropped'}",
        "",
        "## Evaluation",
        f"{meta['evaluation']}; 95% bootstrap confidence intervals.",
        "",
        "| metric | value | 95% CI |",
        "|---|---|---|",
        *_metric_lines(result.model.metrics),
        "",
        f"Logistic-regression baseline AUROC: {result.baseline.metrics['auroc']}; "
        f"DeLong p = {result.delong.p_value:.3g}.",
        "",
        "## Subgroups",
        _markdown_table(result.subgroups)
        if not result.subgroups.empty
        else "No subgroup columns were configured.",
        "",
        "## Limits",
        "- Cross-validation estimates performance on data like the training data; expect lower "
        "figures at another site, with other equipment or another case mix. Validate locally "
        "(`medsight evaluate RUN --data LOCAL.csv`) before use.",
        "- Probabilities are calibrated on the training population; prevalence shifts change them.",
        "- Subgroups with few rows have wide intervals; absence of a gap is not proof of fairness.",
        "- Explanations show what the model uses, not what causes disease.",
    ]
    return "\n".join(lines) + "\n"


def _markdown_table(frame: pd.DataFrame) -> str:
    """A plain pipe table (pandas' to_markdown needs the optional tabulate package)."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * frame.shape[1]
    rows = [
        "| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)
    ]
    return "\n".join([header, rule, *rows])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.3f}"
    return str(value)
