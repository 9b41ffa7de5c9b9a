"""Fit and cross-validate tabular models: inner-CV tuning, class weights, calibration, threshold.

The outer loop (``cross_validate``) only ever scores rows that the model, its hyperparameter
search, its calibrator and its threshold never saw; everything data-dependent happens inside
``fit_tabular_model`` on the training rows of that fold.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_val_predict
from sklearn.pipeline import Pipeline

from medsight.config import CleaningConfig, EvaluationConfig, ModelConfig
from medsight.data.schema import TableSchema
from medsight.data.splits import repeated_splits, stratified_splits
from medsight.evaluate.thresholds import choose_threshold
from medsight.models.registry import create_model, get_model_entry
from medsight.transforms.tabular import build_preprocessor

ISOTONIC_MIN_ROWS = 1000
BALANCED_BELOW_SHARE = 0.35
ProgressCallback = Callable[[int, int], None]


@dataclass
class FittedTabularModel:
    """A fitted pipeline (preprocessing + possibly calibrated model) and the choices made."""

    pipeline: Pipeline
    threshold: float
    params: dict[str, Any]
    calibration: str
    class_weight: str | None

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(positive class) per row."""
        return self.pipeline.predict_proba(frame)[:, 1]


@dataclass
class CrossValidationResult:
    """Out-of-fold probabilities (repeats x rows) and per-row thresholds from each fold's model."""

    probabilities: np.ndarray
    thresholds: np.ndarray
    fold_params: list[dict[str, Any]] = field(default_factory=list)
    calibrations: list[str] = field(default_factory=list)

    @property
    def mean_probability(self) -> np.ndarray:
        """Each row's out-of-fold probability averaged over repeats (still out-of-fold)."""
        return self.probabilities.mean(axis=0)


def resolve_class_weight(setting: str, y: np.ndarray) -> str | None:
    """``auto`` weights classes when the minority is below 35% of rows."""
    if setting == "auto":
        share = np.bincount(y, minlength=2).min() / len(y)
        return "balanced" if share < BALANCED_BELOW_SHARE else None
    return None if setting == "none" else setting


def resolve_calibration(setting: str, n_rows: int) -> str:
    """``auto`` is Platt scaling (sigmoid) below 1,000 rows, isotonic above (it needs more data)."""
    if setting == "auto":
        return "isotonic" if n_rows >= ISOTONIC_MIN_ROWS else "sigmoid"
    return setting


def fit_tabular_model(
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray | None,
    schema: TableSchema,
    *,
    model: ModelConfig,
    cleaning: CleaningConfig,
    evaluation: EvaluationConfig,
    seed: int,
) -> FittedTabularModel:
    """Tune by inner CV, calibrate, choose the threshold; all on ``X``, ``y`` only."""
    entry = get_model_entry(model.name)
    class_weight = resolve_class_weight(model.class_weight, y)
    estimator = create_model(
        entry.name, class_weight=class_weight, random_state=seed, **model.params
    )
    preprocessor = build_preprocessor(
        schema,
        scaling=cleaning.scaling,
        clip=cleaning.clip,
        impute=cleaning.impute,
        missing_indicators=cleaning.missing_indicators,
    )
    inner = stratified_splits(y, groups, folds=evaluation.inner_folds, seed=seed)
    params: dict[str, Any] = {}
    grid = {k: v for k, v in entry.param_grid.items() if k not in model.params}
    if model.tune and grid:
        search = GridSearchCV(
            Pipeline([("preprocess", preprocessor), ("model", estimator)]),
            {f"model__{k}": v for k, v in grid.items()},
            scoring="roc_auc",
            cv=inner,
            refit=False,
            error_score="raise",
        )
        with _quiet_fitting():
            search.fit(X, y)
        params = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
        estimator.set_params(**params)

    calibration = resolve_calibration(model.calibration, len(y))
    if calibration != "none":
        estimator = CalibratedClassifierCV(estimator, method=calibration, cv=inner, ensemble=False)
    pipeline = Pipeline([("preprocess", preprocessor), ("model", estimator)])

    threshold = evaluation.fixed_threshold
    if evaluation.threshold != "fixed":
        with _quiet_fitting():
            inner_proba = cross_val_predict(clone(pipeline), X, y, cv=inner, method="predict_proba")
        threshold = choose_threshold(
            y, inner_proba[:, 1], evaluation.threshold, evaluation.target_sensitivity
        )
    with _quiet_fitting():
        pipeline.fit(X, y)
    return FittedTabularModel(pipeline, float(threshold), params, calibration, class_weight)


def cross_validate(
    X: pd.DataFrame,
    y: np.ndarray,
    groups: np.ndarray | None,
    schema: TableSchema,
    *,
    model: ModelConfig,
    cleaning: CleaningConfig,
    evaluation: EvaluationConfig,
    seed: int,
    progress: ProgressCallback | None = None,
) -> CrossValidationResult:
    """Repeated stratified (patient-grouped) k-fold: fit on k-1 folds, predict the held-out fold."""
    repeats, folds = evaluation.repeats, evaluation.folds
    probabilities = np.full((repeats, len(y)), np.nan)
    thresholds = np.full((repeats, len(y)), np.nan)
    result = CrossValidationResult(probabilities, thresholds)
    total = repeats * folds
    for step, (repeat, _fold, (train, test)) in enumerate(
        repeated_splits(y, groups, folds=folds, repeats=repeats, seed=seed)
    ):
        fitted = fit_tabular_model(
            X.iloc[train],
            y[train],
            None if groups is None else groups[train],
            schema,
            model=model,
            cleaning=cleaning,
            evaluation=evaluation,
            seed=seed + step,
        )
        probabilities[repeat, test] = fitted.predict_proba(X.iloc[test])
        thresholds[repeat, test] = fitted.threshold
        result.fold_params.append(fitted.params)
        result.calibrations.append(fitted.calibration)
        if progress is not None:
            progress(step + 1, total)
    return result


class _quiet_fitting(warnings.catch_warnings):
    """Silence convergence and feature-name chatter from inner fits; real errors still raise."""

    def __enter__(self) -> None:
        super().__enter__()
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message=".*feature names.*")
        warnings.filterwarnings("ignore", message=".*X does not have valid feature names.*")
