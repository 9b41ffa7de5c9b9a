"""Retraining a tabular bundle: original table + feedback rows, the champion's own configuration.

The champion's training config is taken, in this order, from ``--config``, from the bundle's
``bundle.json`` (``config``, written by retraining), or from ``config.yaml`` in the run folder the
bundle was registered from. The original table is the config's ``data.path`` unless ``--data``
overrides it. Each feedback input is the JSON of one table row (``{"row": {...}}`` as the API
receives it, or the bare ``{column: value}`` object) and must pass the champion's schema.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medsight.bundle.tabular import TASK, TabularBundle
from medsight.config import TrainConfig
from medsight.data.fingerprint import frame_fingerprint, package_versions
from medsight.data.schema import TableSchema, canonical_category, validate_frame
from medsight.errors import DataError
from medsight.io.tabular import read_table
from medsight.retrain.base import (
    Challenge,
    Champion,
    FeedbackCase,
    HeldOut,
    RetrainOptions,
    UnusableCase,
)
from medsight.retrain.challenger import (
    challenger_model_card,
    feedback_counts,
    retraining_provenance,
)
from medsight.retrain.holdout import holdout_split
from medsight.retrain.recipe import champion_config, locate_original
from medsight.tasks.tabular import prepare_table
from medsight.train.tabular import FittedTabularModel, fit_tabular_model

CHAMPION_BIAS_NOTE = (
    "The held-out rows were taken from the original data, which the champion may have been "
    "trained on: its figures on them can be optimistic, which biases the gate towards keeping "
    "the champion. Pass --holdout with labelled data neither model has seen for an unbiased "
    "comparison."
)


@dataclass
class _Payload:
    """What saving the challenger needs: the fitted model, its training rows and provenance."""

    fitted: FittedTabularModel
    schema: TableSchema
    X: pd.DataFrame
    y: np.ndarray
    config: TrainConfig
    champion: Champion
    champion_metadata: dict[str, Any]


class TabularRetrainer:
    """The :class:`~medsight.retrain.base.Retrainer` of ``tabular-classification`` bundles."""

    kind = TASK

    def train(
        self, champion: Champion, cases: Sequence[FeedbackCase], options: RetrainOptions
    ) -> Challenge:
        bundle = TabularBundle.load(champion.folder)
        schema = bundle.schema
        config, config_source = champion_config(
            bundle.metadata, champion, options.config, TrainConfig, "a table"
        )
        data_path = locate_original(
            options.data or config.data.path,
            config_source,
            what="training table",
            exists=Path.is_file,
            missing_hint=" (it was trained from a table in memory)",
        )
        config = config.model_copy(
            update={"data": config.data.model_copy(update={"path": data_path})}
        )
        prepared = prepare_table(config, read_table(data_path))
        features = _check_columns(prepared.frame, schema, str(data_path))
        y_original = labels_to_y(prepared.frame[schema.target], schema, str(data_path))
        groups = prepared.groups

        rows, used, unusable = feedback_rows(cases, schema)
        y_feedback = np.array([int(c.label == schema.positive_class) for c in used], dtype=int)
        feedback_keys = set(row_keys(rows, features))

        if options.holdout is not None:
            train_idx = np.arange(len(y_original))
            holdout_frame = read_table(options.holdout)
            validate_frame(holdout_frame, schema, require_target=True, where=str(options.holdout))
            y_holdout = labels_to_y(holdout_frame[schema.target], schema, str(options.holdout))
            holdout_groups = _groups(holdout_frame, schema)
            holdout_source = f"labelled table {options.holdout}"
            notes: list[str] = []
        else:
            train_idx, holdout_idx = holdout_split(
                y_original, groups, fraction=options.holdout_fraction, seed=options.holdout_seed
            )
            holdout_frame = prepared.frame.iloc[holdout_idx].reset_index(drop=True)
            y_holdout = y_original[holdout_idx]
            holdout_groups = None if groups is None else groups[holdout_idx]
            holdout_source = (
                f"stratified {options.holdout_fraction:.0%} of the original data "
                f"(seed {options.holdout_seed}), not used to train the challenger"
            )
            notes = [CHAMPION_BIAS_NOTE]
        # a held-out row identical to a feedback case would be scored by a model trained on it
        seen = row_keys(holdout_frame, features).isin(feedback_keys).to_numpy()
        if seen.any():
            holdout_frame = holdout_frame.loc[~seen].reset_index(drop=True)
            y_holdout = y_holdout[~seen]
            holdout_groups = None if holdout_groups is None else holdout_groups[~seen]
            notes.append(
                f"{int(seen.sum())} held-out rows identical to feedback cases were left out of "
                "the comparison (the challenger trained on them)."
            )
        # an original row that a clinician has since given a verdict on: the verdict replaces it
        original_keys = row_keys(prepared.frame.iloc[train_idx], features)
        replaced = original_keys.isin(feedback_keys).to_numpy()
        train_idx = train_idx[~replaced]
        if replaced.any():
            notes.append(
                f"{int(replaced.sum())} original rows identical to feedback cases were replaced "
                "by the feedback (the clinician's label is the newer one)."
            )
        if not used:
            notes.append(
                "No usable feedback: the challenger is the champion's configuration refitted on "
                "the original data only."
            )

        parts = [prepared.frame.iloc[train_idx][features]] + ([rows[features]] if used else [])
        X_train = pd.concat(parts, ignore_index=True)
        y_train = np.concatenate([y_original[train_idx], y_feedback])
        train_groups = None
        if groups is not None:
            train_groups = np.concatenate(
                [groups[train_idx].astype(str), [f"feedback-{c.prediction_id}" for c in used]]
            )
        fitted = fit_tabular_model(
            X_train,
            y_train,
            train_groups,
            schema,
            model=config.model,
            cleaning=config.cleaning,
            evaluation=config.evaluation,
            seed=config.seed,
        )
        X_holdout = holdout_frame[features]
        held_out = HeldOut(
            y=y_holdout,
            champion_probability=bundle.model.predict_proba(X_holdout),
            challenger_probability=fitted.predict_proba(X_holdout),
            champion_threshold=float(bundle.model.threshold),
            challenger_threshold=float(fitted.threshold),
            groups=holdout_groups,
        )
        counts = {
            "original_rows": len(y_original),
            "original_training_rows": len(train_idx),
            **feedback_counts(used),
            "training_rows": len(y_train),
            "holdout_rows": len(y_holdout),
            "holdout_positive": int(y_holdout.sum()),
            "holdout_excluded_as_feedback": int(seen.sum()),
            "original_replaced_by_feedback": int(replaced.sum()),
        }
        sources = {
            "config": config_source,
            "original_data": str(data_path),
            "holdout": holdout_source,
            "model": config.model.name,
        }
        payload = _Payload(fitted, schema, X_train, y_train, config, champion, bundle.metadata)
        return Challenge(held_out, used, unusable, counts, sources, notes, payload)

    def save(self, challenge: Challenge, folder: Path, metadata: dict[str, Any]) -> Path:
        payload: _Payload = challenge.payload
        config = payload.config
        training = payload.X.assign(**{payload.schema.target: payload.y})
        counts = challenge.counts
        full = {
            **retraining_provenance(payload.champion, payload.champion_metadata, counts),
            "model": config.model.name,
            "seed": config.seed,
            "data_fingerprint": frame_fingerprint(training, config.data.path),
            "class_balance": {
                str(payload.schema.positive_class): int(payload.y.sum()),
                "other": int(len(payload.y) - payload.y.sum()),
            },
            "evaluation": (
                f"held-out comparison with the champion on {counts['holdout_rows']} cases "
                f"({challenge.sources['holdout']})"
            ),
            "package_versions": package_versions(),
            "config": config.model_dump(mode="json"),
            **metadata,
        }
        bundle = TabularBundle.from_fit(payload.fitted, payload.schema, payload.X, full)
        bundle.model_card = challenger_model_card(
            full, challenge, "rows", ["Metrics in bundle.json are from that held-out comparison."]
        )
        return bundle.save(folder)


def labels_to_y(labels: pd.Series, schema: TableSchema, where: str) -> np.ndarray:
    """1 for the positive class, 0 for the other; unknown or empty labels are a DataError."""
    canonical = labels.map(canonical_category, na_action="ignore")
    if canonical.isna().any():
        raise DataError(f"{where}: {int(canonical.isna().sum())} rows have no '{schema.target}'.")
    unknown = sorted(set(canonical) - set(schema.classes))
    if unknown:
        raise DataError(
            f"{where}: '{schema.target}' values {unknown} are not the model's classes "
            f"{schema.classes}."
        )
    return (canonical == schema.positive_class).to_numpy(dtype=int)


def feedback_rows(
    cases: Sequence[FeedbackCase], schema: TableSchema
) -> tuple[pd.DataFrame, list[FeedbackCase], list[UnusableCase]]:
    """The feature rows of usable cases (in order), those cases, and the unusable ones."""
    rows: list[dict[str, Any]] = []
    used: list[FeedbackCase] = []
    unusable: list[UnusableCase] = []
    for case in cases:
        try:
            row = parse_row(case.raw_input)
            validate_frame(pd.DataFrame([row]), schema, where=f"prediction {case.prediction_id}")
            label = canonical_category(case.label)
            if label not in schema.classes:
                raise DataError(f"label {case.label!r} is not one of the classes {schema.classes}")
        except DataError as exc:
            unusable.append(UnusableCase(case.prediction_id, case.feedback_id, str(exc)))
            continue
        rows.append({name: row.get(name) for name in schema.feature_columns})
        used.append(replace(case, label=label))
    frame = pd.DataFrame(rows, columns=schema.feature_columns)
    for name in schema.numeric_columns:
        if name in frame:
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    return frame, used, unusable


def parse_row(raw: bytes) -> dict[str, Any]:
    """The ``{column: value}`` row in a stored tabular input (``{"row": {...}}`` or bare)."""
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"the stored input is not JSON ({exc.__class__.__name__})") from None
    if isinstance(document, dict) and isinstance(document.get("rows"), list):
        document = document["rows"]
    if isinstance(document, list):
        if len(document) != 1:
            raise DataError(
                f"the stored input holds {len(document)} rows; feedback must refer to one row"
            )
        document = document[0]
    if isinstance(document, dict) and isinstance(document.get("row"), dict):
        document = document["row"]
    if not isinstance(document, dict):
        raise DataError("the stored input is not a table row (a JSON object of column values)")
    return document


def row_keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One string per row from its feature values, equal for equal rows whatever their dtypes."""
    if frame.empty:
        return pd.Series([], dtype=object)

    def key(values: Sequence[object]) -> str:
        return "\x1f".join("" if pd.isna(v) else canonical_category(v) for v in values)

    return pd.Series([key(r) for r in frame[columns].itertuples(index=False)], dtype=object)


def _check_columns(frame: pd.DataFrame, schema: TableSchema, where: str) -> list[str]:
    features = schema.feature_columns
    missing = [c for c in [*features, schema.target] if c not in frame.columns]
    if missing:
        raise DataError(f"{where}: the champion's columns {missing} are missing from the data.")
    return features


def _groups(frame: pd.DataFrame, schema: TableSchema) -> np.ndarray | None:
    if schema.patient_id and schema.patient_id in frame.columns:
        return frame[schema.patient_id].astype(str).to_numpy()
    return None
