"""Evaluation shared by every modality: metrics, bootstrap intervals, DeLong, plots, reports."""

from __future__ import annotations

from medsight.evaluate.bootstrap import (
    Estimate,
    binary_metrics_with_ci,
    bootstrap_ci,
    multiclass_metrics_with_ci,
)
from medsight.evaluate.delong import DeLongResult, delong_auroc_variance, delong_test
from medsight.evaluate.metrics import (
    BINARY_METRICS,
    METRIC_LABELS,
    binary_metrics,
    expected_calibration_error,
    multiclass_metrics,
)
from medsight.evaluate.plots import (
    figure_to_png_base64,
    figure_to_png_bytes,
    plot_calibration,
    plot_confusion_matrix,
    plot_pr,
    plot_roc,
    plot_roc_per_class,
    save_figure,
)
from medsight.evaluate.report import Report, Section
from medsight.evaluate.subgroups import age_bands, subgroup_table
from medsight.evaluate.thresholds import (
    accuracy_threshold,
    choose_finding_thresholds,
    choose_threshold,
    decide,
    threshold_for_sensitivity,
    youden_threshold,
)

__all__ = [
    "BINARY_METRICS",
    "METRIC_LABELS",
    "DeLongResult",
    "Estimate",
    "Report",
    "Section",
    "accuracy_threshold",
    "age_bands",
    "binary_metrics",
    "binary_metrics_with_ci",
    "bootstrap_ci",
    "choose_finding_thresholds",
    "choose_threshold",
    "decide",
    "delong_auroc_variance",
    "delong_test",
    "expected_calibration_error",
    "figure_to_png_base64",
    "figure_to_png_bytes",
    "multiclass_metrics",
    "multiclass_metrics_with_ci",
    "plot_calibration",
    "plot_confusion_matrix",
    "plot_pr",
    "plot_roc",
    "plot_roc_per_class",
    "save_figure",
    "subgroup_table",
    "threshold_for_sensitivity",
    "youden_threshold",
]
