"""Rich rendering of quality reports, metrics, runs and predictions for the terminal."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from medsight.data.image_audit import ImageAudit
from medsight.data.quality import QualityReport
from medsight.evaluate.bootstrap import Estimate
from medsight.evaluate.metrics import METRIC_LABELS

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def print_quality(console: Console, path: Path, report: QualityReport) -> None:
    console.print(f"[bold]{path}[/bold]: {report.n_rows} rows x {report.n_columns} columns")
    if report.class_balance:
        console.print(
            "Class balance: " + ", ".join(f"{k}: {v}" for k, v in report.class_balance.items())
        )
    if report.missing:
        table = Table(
            "column", "missing", "share", "of which 'missing' codes", title="Missing values"
        )
        for name, stats in report.missing.items():
            table.add_row(
                name,
                str(int(stats["count"])),
                f"{stats['fraction']:.1%}",
                str(int(stats["sentinel"])),
            )
        console.print(table)
    if report.single_feature_auroc:
        top = list(report.single_feature_auroc.items())[:5]
        console.print(
            "Strongest single features (AUROC): " + ", ".join(f"{k} {v:.3f}" for k, v in top)
        )
    if not report.findings:
        console.print("[green]No findings.[/green]")
        return
    table = Table("severity", "check", "finding", title="Findings")
    for finding in report.findings:
        table.add_row(
            f"[{SEVERITY_STYLE[finding.severity]}]{finding.severity}[/]",
            finding.check,
            finding.message,
        )
    console.print(table)


def print_image_audit(console: Console, source: str, audit: ImageAudit) -> None:
    """Split sizes, the near-duplicate counts per split pair and the most telling pairs."""
    sizes = ", ".join(f"{name} {size}" for name, size in audit.sizes.items())
    console.print(f"[bold]{source}[/bold]: {sizes} images")
    style = "yellow" if any(p.across_splits for p in audit.pairs) else "green"
    console.print(f"[{style}]{audit.summary()}[/{style}]")
    if audit.skipped:
        return
    table = Table(
        "splits",
        "pairs",
        "labels differ",
        "images of the second with one",
        "... label differs",
        title=f"Near-duplicates (pixel correlation >= {audit.threshold:g})",
    )
    for row in audit.counts():
        table.add_row(
            f"{row.first} / {row.second}",
            str(row.pairs),
            str(row.conflicting_pairs),
            str(row.second_images_with_duplicate),
            str(row.second_images_with_conflict),
        )
    console.print(table)
    shown = [p for p in audit.pairs if p.across_splits][:10]
    if shown:
        pairs = Table("first", "second", "correlation", "labels", title="Cross-split pairs")
        for pair in shown:
            pairs.add_row(
                f"{pair.first[0]} #{pair.first[1]}",
                f"{pair.second[0]} #{pair.second[1]}",
                f"{pair.correlation:.4f}",
                "same" if pair.same_label else "[red]differ[/red]",
            )
        console.print(pairs)


def print_metrics(console: Console, metrics: Mapping[str, Estimate], title: str) -> None:
    table = Table("metric", "value", "95% CI", title=title)
    for key, estimate in metrics.items():
        table.add_row(
            METRIC_LABELS.get(key, key),
            f"{estimate.value:.3f}",
            f"{estimate.lo:.3f}–{estimate.hi:.3f}",
        )
    console.print(table)


def print_run(console: Console, result: Any) -> None:
    print_metrics(console, result.model.metrics, f"Cross-validated metrics: {result.run_dir.name}")
    baseline = result.baseline.metrics["auroc"]
    console.print(
        f"Baseline (logistic regression) AUROC {baseline}; DeLong p = {result.delong.p_value:.3g}"
    )
    console.print(f"Bundle: [bold]{result.bundle_path}[/bold]")
    console.print(f"Report: [bold]{result.report_path}[/bold]")


def print_image_run(console: Console, result: Any) -> None:
    print_metrics(console, result.metrics, f"Test-split metrics: {result.run_dir.name}")
    console.print(f"Bundle: [bold]{result.bundle_path}[/bold]")
    console.print(f"Report: [bold]{result.report_path}[/bold]")


def print_ecg_run(console: Console, result: Any) -> None:
    """Test challenge score, accuracy, macro AUROC and per-class F1 with CIs; where things are."""
    metrics = result.metrics
    names = result.splits.test.class_names
    rows = {
        "Challenge score (mean F1 of N, A, O)": metrics["challenge_score"],
        "Accuracy": metrics["accuracy"],
        "Macro AUROC": metrics["macro_auroc"],
        **{f"F1 {name}": metrics[f"{name}/f1"] for name in names},
    }
    table = Table("metric", "value", "95% CI", title=f"Test-part metrics: {result.run_dir.name}")
    for label, estimate in rows.items():
        table.add_row(label, f"{estimate.value:.3f}", f"{estimate.lo:.3f}–{estimate.hi:.3f}")
    console.print(table)
    val = result.val_metrics["challenge_score"]
    console.print(f"Validation challenge score {val}; test records {len(result.splits.test)}")
    console.print(f"Bundle: [bold]{result.bundle_path}[/bold]")
    console.print(f"Report: [bold]{result.report_path}[/bold]")


def print_image_predictions(console: Console, results: list[dict[str, Any]]) -> None:
    table = Table("image", "prediction", "probability", "Grad-CAM", "warnings", title="Predictions")
    for item in results:
        table.add_row(
            Path(item["source"]).name,
            str(item["prediction"]),
            f"{item['probability']:.3f}",
            str(item.get("gradcam") or "-"),
            "; ".join(item["warnings"]) or "-",
        )
    console.print(table)


def print_predictions(console: Console, results: list[dict[str, Any]]) -> None:
    table = Table(
        "row", "prediction", "probability", "top contributions", "imputed", title="Predictions"
    )
    for item in results:
        contributions = ", ".join(
            f"{c['feature']}={_fmt(c['value'])} ({c['shap']:+.3f})"
            for c in item.get("contributions", [])[:3]
        )
        table.add_row(
            str(item["row"]),
            str(item["prediction"]),
            f"{item['probability']:.3f}",
            contributions,
            ", ".join(item["imputed"]) or "-",
        )
    console.print(table)


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
