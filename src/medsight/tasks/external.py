"""Using a finished run: load its bundle, read its metrics, validate it on new labelled data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medsight.bundle.tabular import TabularBundle
from medsight.data.schema import canonical_category, validate_frame
from medsight.errors import BundleError, DataError
from medsight.evaluate.bootstrap import Estimate, binary_metrics_with_ci
from medsight.evaluate.plots import plot_calibration, plot_confusion_matrix, plot_roc
from medsight.evaluate.report import Report
from medsight.io.tabular import read_table
from medsight.runs import staged_directory, write_text_atomic


@dataclass
class ExternalValidation:
    """Metrics of a bundle on data it was not trained on, and where the report is."""

    metrics: dict[str, Estimate]
    report_path: Path


def bundle_path(path: str | Path) -> Path:
    """A bundle folder, given either the bundle itself or the run folder that holds it."""
    path = Path(path)
    if (path / "bundle.json").exists():
        return path
    if (path / "bundle" / "bundle.json").exists():
        return path / "bundle"
    raise BundleError(f"{path}: neither a bundle nor a run folder with a bundle/ inside.")


def bundle_task(path: str | Path) -> str:
    """The task recorded in a bundle's ``bundle.json``."""
    folder = bundle_path(path)
    try:
        return str(json.loads((folder / "bundle.json").read_text()).get("task", ""))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{folder}/bundle.json is not valid JSON ({exc}).") from exc


def load_bundle(path: str | Path) -> TabularBundle:
    """Load the tabular bundle at ``path`` (a bundle folder or a run folder)."""
    return TabularBundle.load(bundle_path(path))


def load_run_metrics(run: str | Path) -> tuple[dict[str, Estimate], str]:
    """A run's cross-validated metrics (from ``metrics.json``) and a title for them."""
    run = Path(run)
    path = run / "metrics.json"
    if not path.exists():
        raise BundleError(f"{run}: no metrics.json; is this a finished medsight run folder?")
    document = json.loads(path.read_text())
    if "model" not in document:  # image runs: held-out test metrics at the top level
        return {k: Estimate(**v) for k, v in document.items()}, f"Test-split metrics: {run.name}"
    metrics = {k: Estimate(**v) for k, v in document["model"].items()}
    return metrics, f"Cross-validated metrics: {run.name}"


def external_validation(
    run: str | Path, data: str | Path, *, n_bootstrap: int = 1000, seed: int = 0
) -> ExternalValidation:
    """Score the bundle on a labelled table and write an evaluation report into the run folder."""
    bundle_dir = bundle_path(run)
    bundle = TabularBundle.load(bundle_dir)
    frame = read_table(data)
    schema = bundle.schema
    validate_frame(frame, schema, require_target=True, where=str(data))
    labels = frame[schema.target].map(canonical_category, na_action="ignore")
    unknown = sorted(set(labels.dropna()) - set(schema.classes))
    if unknown:
        raise DataError(
            f"{data}: target values {unknown} are not among the model's classes {schema.classes}."
        )
    keep = labels.notna().to_numpy()
    y = (labels[keep] == schema.positive_class).to_numpy(int)
    if len(np.unique(y)) < 2:
        raise DataError(f"{data}: the target has a single class; AUROC and CIs need both.")
    features = frame.loc[keep, schema.feature_columns]
    probability = bundle.model.predict_proba(features)
    groups = (
        frame.loc[keep, schema.patient_id].astype(str).to_numpy() if schema.patient_id else None
    )
    metrics = binary_metrics_with_ci(
        y, probability, bundle.model.threshold, groups=groups, n_boot=n_bootstrap, seed=seed
    )
    report = Report(
        title=f"External validation: {bundle.metadata.get('name', 'model')}",
        subtitle=f"on {Path(data).name} ({len(y)} labelled rows)",
    )
    section = report.add_section("Performance at the bundle's threshold")
    section.add_metrics(metrics)
    section.add_figure(plot_roc(y, probability), caption="ROC curve")
    section.add_figure(plot_calibration(y, probability), caption="Calibration")
    names = [bundle.negative_class, bundle.positive_class]
    predicted = (probability >= bundle.model.threshold).astype(int)
    section.add_figure(plot_confusion_matrix(y, predicted, names), caption="Confusion matrix")
    stamp = f"{Path(data).stem}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    folder = bundle_dir.parent / "evaluations" / stamp
    with staged_directory(folder) as staging:
        (staging / "metrics.json").write_text(
            json.dumps({k: v.to_dict() for k, v in metrics.items()}, indent=2)
        )
        report.write(staging / "report.html")
    return ExternalValidation(metrics, folder / "report.html")


def write_predictions(results: list[dict[str, Any]], path: str | Path) -> Path:
    """Predictions as JSON (full) or CSV (one row per case; lists joined, mappings spread)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(results, indent=2)
    elif path.suffix.lower() == ".csv":
        text = pd.DataFrame([_flat_row(item) for item in results]).to_csv(index=False)
    else:
        raise DataError(f"{path}: write predictions to a .json or .csv file.")
    return write_text_atomic(path, text)


def _flat_row(item: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in item.items():
        if key == "contributions":
            for i, c in enumerate(value):
                row[f"top{i + 1}"] = f"{c['feature']}={c['value']} ({c['shap']:+.4f})"
        elif isinstance(value, dict):
            row.update({f"{key}_{k}": v for k, v in value.items()})
        elif isinstance(value, list):
            row[key] = ";".join(str(v) for v in value)
        else:
            row[key] = value
    return row
