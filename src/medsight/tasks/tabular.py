"""The tabular-classification task: table, schema, quality, cleaning, CV, bundle, report."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from medsight.bundle.tabular import TabularBundle, explanation_inputs
from medsight.config import CleaningConfig, ModelConfig, TrainConfig, dump_config
from medsight.data.fingerprint import frame_fingerprint, package_versions
from medsight.data.quality import QualityReport, quality_report
from medsight.data.schema import (
    ColumnRole,
    SubgroupSpec,
    TableSchema,
    canonical_category,
    infer_schema,
)
from medsight.errors import ConfigError, DataError
from medsight.evaluate.bootstrap import Estimate, binary_metrics_with_ci
from medsight.evaluate.delong import DeLongResult, delong_test
from medsight.evaluate.subgroups import age_bands, subgroup_table
from medsight.evaluate.thresholds import choose_threshold
from medsight.explain.tabular import Explanation, explain_pipeline
from medsight.io.tabular import read_table
from medsight.privacy.gate import require_deidentified_table
from medsight.runs import run_name, staged_directory
from medsight.train.tabular import (
    CrossValidationResult,
    ProgressCallback,
    cross_validate,
    fit_tabular_model,
)

logger = logging.getLogger(__name__)
BASELINE = ModelConfig(name="logistic", tune=False, class_weight="none", calibration="none")
BASELINE_SCALING = "standard"
DEFAULT_AGE_EDGES = [0.0, 45.0, 55.0, 65.0, 200.0]
_SEX = re.compile(r"^(sex|gender)$", re.IGNORECASE)
_AGE = re.compile(r"^age(_years)?$", re.IGNORECASE)
Stage = Callable[[str], None]


@dataclass
class PreparedTable:
    """The cleaned table, its schema, the binary target and patient groups, and what was done."""

    frame: pd.DataFrame
    schema: TableSchema
    y: np.ndarray
    groups: np.ndarray | None
    quality: QualityReport
    cleaning_log: list[str] = field(default_factory=list)


@dataclass
class ModelEvaluation:
    """Cross-validated metrics (with CIs) of one model configuration."""

    name: str
    cv: CrossValidationResult
    metrics: dict[str, Estimate]


@dataclass
class TabularRunResult:
    """Where a finished run is and its headline numbers."""

    run_dir: Path
    report_path: Path
    bundle_path: Path
    model: ModelEvaluation
    baseline: ModelEvaluation
    delong: DeLongResult
    subgroups: pd.DataFrame
    explanation: Explanation
    prepared: PreparedTable


def prepare_table(config: TrainConfig, frame: pd.DataFrame | None = None) -> PreparedTable:
    """Read (unless given), infer the schema with the config's overrides, report, clean.

    With ``data.require_deidentified`` a table whose cells look like identifiers is refused
    (:func:`medsight.privacy.gate.require_deidentified_table`).
    """
    data = config.data
    if data.target is None:
        raise ConfigError("no target column given; set data.target or pass --target.")
    if frame is None:
        if data.path is None:
            raise ConfigError("no data file given; set data.path or pass --data.")
        frame = read_table(data.path)
    if data.require_deidentified:
        where = str(data.path) if data.path is not None else "the table"
        bare = [data.patient_id] if data.patient_id else []
        require_deidentified_table(frame, where, bare_columns=bare)
    subgroups = data.subgroups or default_subgroups(frame, data.target)
    schema = infer_schema(
        frame,
        data.target,
        patient_id=data.patient_id,
        exclude=data.exclude,
        categorical=data.categorical,
        numeric=data.numeric,
        missing_values=data.missing_values,
        subgroups=subgroups,
        positive_class=data.positive_class,
    )
    for name, spec in data.columns.items():
        if name not in frame.columns:
            raise ConfigError(f"data.columns.{name}: no such column in the data.")
        schema.columns[name] = spec
    if len(schema.classes) != 2:
        raise DataError(
            f"target '{data.target}' has {len(schema.classes)} classes {schema.classes}; "
            "tabular training supports binary targets (diagnosis or risk yes/no) for now."
        )
    if not schema.feature_columns:
        raise DataError("no feature columns left after excluding identifiers and ignored columns.")
    quality = quality_report(frame, schema)
    frame, log = clean_table(frame, schema, config, quality)
    y = (frame[schema.target].map(canonical_category) == schema.positive_class).to_numpy(int)
    groups = frame[schema.patient_id].astype(str).to_numpy() if schema.patient_id else None
    return PreparedTable(frame.reset_index(drop=True), schema, y, groups, quality, log)


def default_subgroups(frame: pd.DataFrame, target: str) -> list[SubgroupSpec]:
    """Sex and age band, when columns with those usual names exist."""
    specs = []
    for column in frame.columns:
        if column == target:
            continue
        if _SEX.match(str(column)):
            specs.append(SubgroupSpec(column=str(column)))
        elif _AGE.match(str(column)) and pd.api.types.is_numeric_dtype(frame[column]):
            specs.append(SubgroupSpec(column=str(column), bins=DEFAULT_AGE_EDGES))
    return specs


def clean_table(
    frame: pd.DataFrame, schema: TableSchema, config: TrainConfig, quality: QualityReport
) -> tuple[pd.DataFrame, list[str]]:
    """Drop unlabelled and duplicate rows, constant and mostly-missing columns; log each step."""
    cleaning = config.cleaning
    log: list[str] = []
    unlabelled = frame[schema.target].isna()
    if unlabelled.any():
        frame = frame[~unlabelled]
        log.append(f"dropped {int(unlabelled.sum())} rows without a target value")
    if cleaning.drop_duplicate_rows:
        ids = schema.columns_with_role(ColumnRole.IDENTIFIER)
        duplicated = frame.drop(columns=ids).duplicated()
        if duplicated.any():
            frame = frame[~duplicated]
            log.append(f"dropped {int(duplicated.sum())} duplicate rows")
    for name in schema.feature_columns:
        fraction = quality.missing.get(name, {}).get("fraction", 0.0)
        if cleaning.drop_constant_columns and name in quality.constant_columns:
            schema.columns[name].role = ColumnRole.IGNORE
            log.append(f"ignored constant column '{name}'")
        elif fraction > cleaning.max_missing_fraction:
            schema.columns[name].role = ColumnRole.IGNORE
            log.append(f"ignored column '{name}' ({fraction:.0%} missing)")
    if not schema.feature_columns:
        raise DataError("every feature column was dropped in cleaning; check the quality report.")
    return frame, log


def evaluate_model(
    name: str,
    prepared: PreparedTable,
    model: ModelConfig,
    config: TrainConfig,
    progress: ProgressCallback | None = None,
    cleaning: CleaningConfig | None = None,
) -> ModelEvaluation:
    """Repeated cross-validation of one model configuration, with bootstrap CIs."""
    X = prepared.frame[prepared.schema.feature_columns]
    cv = cross_validate(
        X,
        prepared.y,
        prepared.groups,
        prepared.schema,
        model=model,
        cleaning=cleaning or config.cleaning,
        evaluation=config.evaluation,
        seed=config.seed,
        progress=progress,
    )
    metrics = binary_metrics_with_ci(
        prepared.y,
        cv.probabilities,
        cv.thresholds,
        groups=prepared.groups,
        n_boot=config.evaluation.n_bootstrap,
        seed=config.seed,
    )
    return ModelEvaluation(name, cv, metrics)


def baseline_cleaning(config: TrainConfig) -> CleaningConfig:
    """The run's cleaning with standard scaling: the baseline is textbook logistic regression."""
    return config.cleaning.model_copy(update={"scaling": BASELINE_SCALING})


def subgroup_columns(prepared: PreparedTable) -> dict[str, np.ndarray]:
    """Subgroup labels per row: categories as they are, numeric columns cut into bands."""
    columns = {}
    for spec in prepared.schema.subgroups:
        values = prepared.frame[spec.column]
        if spec.bins:
            columns[f"{spec.column} band"] = age_bands(values.to_numpy(dtype=float), spec.bins)
        else:
            columns[spec.column] = values.map(canonical_category, na_action="ignore").to_numpy()
    return columns


def run_tabular(
    config: TrainConfig,
    *,
    frame: pd.DataFrame | None = None,
    progress: ProgressCallback | None = None,
    stage: Stage | None = None,
) -> TabularRunResult:
    """Train, evaluate, explain, bundle and report; the run folder appears only when complete."""
    from medsight.tasks.tabular_report import build_model_card, build_report

    say = stage or (lambda message: logger.info(message))
    say("reading and checking the data")
    prepared = prepare_table(config, frame)
    evaluation = config.evaluation
    say(f"cross-validating '{config.model.name}' ({evaluation.repeats}x{evaluation.folds}-fold)")
    model_eval = evaluate_model(config.model.name, prepared, config.model, config, progress)
    say("cross-validating the logistic-regression baseline")
    baseline_eval = evaluate_model(
        "logistic baseline", prepared, BASELINE, config, cleaning=baseline_cleaning(config)
    )
    delong = delong_test(
        prepared.y, model_eval.cv.mean_probability, baseline_eval.cv.mean_probability
    )
    subgroups = subgroup_table(
        prepared.y,
        model_eval.cv.probabilities,
        subgroup_columns(prepared),
        threshold=model_eval.cv.thresholds,
        groups=prepared.groups,
        n_boot=max(200, evaluation.n_bootstrap // 2),
        seed=config.seed,
    )

    say("fitting the final model on all rows")
    X = prepared.frame[prepared.schema.feature_columns]
    final = fit_tabular_model(
        X,
        prepared.y,
        prepared.groups,
        prepared.schema,
        model=config.model,
        cleaning=config.cleaning,
        evaluation=evaluation.model_copy(update={"threshold": "fixed"}),
        seed=config.seed,
    )
    if evaluation.threshold != "fixed":
        final.threshold = choose_threshold(
            prepared.y,
            model_eval.cv.mean_probability,
            evaluation.threshold,
            evaluation.target_sensitivity,
        )
    say("explaining predictions (SHAP)")
    sources, background = explanation_inputs(final, prepared.schema, X)
    sample = X.sample(n=min(evaluation.explain_rows, len(X)), random_state=config.seed)
    explanation = explain_pipeline(final.pipeline, sample, background, sources, seed=config.seed)

    name = config.name or f"{Path(str(config.data.path or 'table')).stem}-{config.model.name}"
    run_dir = Path(config.output_dir) / run_name(name)
    metadata = {
        "name": name,
        "model": config.model.name,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": config.seed,
        "data_fingerprint": frame_fingerprint(prepared.frame, config.data.path),
        "class_balance": prepared.quality.class_balance,
        "metrics": {k: v.to_dict() for k, v in model_eval.metrics.items()},
        "evaluation": (
            f"{evaluation.repeats}x repeated {evaluation.folds}-fold cross-validation"
            f"{' grouped by patient' if prepared.groups is not None else ''}, stratified"
        ),
        "package_versions": package_versions(),
        # the run's own config, so `medsight retrain` can refit the same recipe from a registry copy
        "config": config.model_dump(mode="json"),
    }
    bundle = TabularBundle(final, prepared.schema, background, sources, metadata)
    result = TabularRunResult(
        run_dir=run_dir,
        report_path=run_dir / "report.html",
        bundle_path=run_dir / "bundle",
        model=model_eval,
        baseline=baseline_eval,
        delong=delong,
        subgroups=subgroups,
        explanation=explanation,
        prepared=prepared,
    )
    bundle.model_card = build_model_card(result, bundle, config)

    say("writing the bundle and the report")
    with staged_directory(run_dir) as staging:
        bundle.save(staging / "bundle")
        (staging / "config.yaml").write_text(dump_config(config))
        (staging / "quality.json").write_text(
            json.dumps(prepared.quality.to_dict(), indent=2, default=str)
        )
        (staging / "metrics.json").write_text(json.dumps(metrics_document(result), indent=2))
        oof = pd.DataFrame(
            {"row": np.arange(1, len(prepared.y) + 1), "label": prepared.y}
            | {f"p_repeat{r + 1}": p for r, p in enumerate(model_eval.cv.probabilities)}
        )
        oof.to_csv(staging / "oof_predictions.csv", index=False)
        subgroups.to_csv(staging / "subgroups.csv", index=False)
        (staging / "schema.yaml").write_text(
            yaml.safe_dump(prepared.schema.model_dump(mode="json"), sort_keys=False)
        )
        build_report(result, bundle, config).write(staging / "report.html")
    return result


def metrics_document(result: TabularRunResult) -> dict[str, Any]:
    """The run's numbers as JSON: both models' metrics with CIs, DeLong, cleaning log."""
    return {
        "model": {k: v.to_dict() for k, v in result.model.metrics.items()},
        "baseline": {k: v.to_dict() for k, v in result.baseline.metrics.items()},
        "delong_vs_baseline": result.delong.to_dict(),
        "cleaning": result.prepared.cleaning_log,
        "tuned_params_per_fold": result.model.cv.fold_params,
        "calibration": sorted(set(result.model.cv.calibrations)),
    }
