"""Tabular model bundle: a self-describing folder that can be loaded and used to predict.

Layout::

    bundle.json      classes, threshold, metrics with CIs, data fingerprint, versions, seed
    schema.yaml      the input contract, checked on every row at prediction
    model.joblib     fitted preprocessing + model (a pickle: load only bundles you trust)
    background.npy   SHAP background (k-means centroids, not patient rows)
    model_card.md    generated model card
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import yaml

from medsight.bundle.checksum import read_bundle_metadata, sha256_file
from medsight.bundle.tabular_row import RowModel, compile_row_model
from medsight.data.rows import RowValidator
from medsight.data.schema import TableSchema, validate_frame
from medsight.errors import BundleError
from medsight.explain.tabular import explain_pipeline, summarise_background
from medsight.runs import staged_directory
from medsight.train.tabular import FittedTabularModel
from medsight.transforms.tabular import source_columns

BUNDLE_FORMAT = 1
TASK = "tabular-classification"
FILES = ("bundle.json", "schema.yaml", "model.joblib", "background.npy")


def explanation_inputs(
    model: FittedTabularModel, schema: TableSchema, X: pd.DataFrame
) -> tuple[list[str], np.ndarray]:
    """For a fitted model and its training rows: the input column behind each preprocessed
    feature, and the SHAP background (k-means centroids of the preprocessed rows)."""
    preprocess = model.pipeline[:-1]
    sources = source_columns(preprocess, schema)
    return sources, summarise_background(np.asarray(preprocess.transform(X), dtype=float))


@dataclass
class TabularBundle:
    """A fitted tabular model with everything needed to use and audit it."""

    model: FittedTabularModel
    schema: TableSchema
    background: np.ndarray
    sources: list[str]
    metadata: dict[str, Any] = field(default_factory=dict)
    model_card: str = ""

    @classmethod
    def from_fit(
        cls,
        model: FittedTabularModel,
        schema: TableSchema,
        X: pd.DataFrame,
        metadata: dict[str, Any],
    ) -> TabularBundle:
        """A bundle for ``model`` fitted on the rows ``X``, with its SHAP background and sources."""
        sources, background = explanation_inputs(model, schema, X)
        return cls(model, schema, background, sources, metadata)

    @property
    def positive_class(self) -> str:
        return str(self.schema.positive_class)

    @property
    def negative_class(self) -> str:
        return next(c for c in self.schema.classes if c != self.schema.positive_class)

    def save(self, path: str | Path) -> Path:
        """Write the bundle folder (atomically: a failed save leaves nothing at ``path``)."""
        path = Path(path)
        with staged_directory(path) as staging:
            joblib.dump(self.model, staging / "model.joblib")
            np.save(staging / "background.npy", self.background)
            schema_yaml = yaml.safe_dump(self.schema.model_dump(mode="json"), sort_keys=False)
            (staging / "schema.yaml").write_text(schema_yaml)
            metadata = {
                **self.metadata,
                "format": BUNDLE_FORMAT,
                "task": TASK,
                "classes": self.schema.classes,
                "positive_class": self.positive_class,
                "threshold": self.model.threshold,
                "calibration": self.model.calibration,
                "class_weight": self.model.class_weight,
                "tuned_params": self.model.params,
                "feature_sources": self.sources,
                "model_sha256": sha256_file(staging / "model.joblib"),
            }
            (staging / "bundle.json").write_text(json.dumps(metadata, indent=2, default=str))
            if self.model_card:
                (staging / "model_card.md").write_text(self.model_card)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TabularBundle:
        """Load a bundle folder, checking it is complete, of a known format and unmodified."""
        path = Path(path)
        metadata = read_bundle_metadata(path, FILES, TASK, BUNDLE_FORMAT)
        if sha256_file(path / "model.joblib") != metadata.get("model_sha256"):
            raise BundleError(f"{path}: model.joblib does not match its recorded checksum.")
        schema = TableSchema.model_validate(yaml.safe_load((path / "schema.yaml").read_text()))
        card = path / "model_card.md"
        return cls(
            model=joblib.load(path / "model.joblib"),
            schema=schema,
            background=np.load(path / "background.npy"),
            sources=list(metadata["feature_sources"]),
            metadata=metadata,
            model_card=card.read_text() if card.exists() else "",
        )

    @cached_property
    def row_validator(self) -> RowValidator:
        """The schema compiled for checking one row (built on first use)."""
        return RowValidator(self.schema)

    def predict(
        self, frame: pd.DataFrame, *, explain: bool = True, top_k: int = 5, where: str = "input"
    ) -> list[dict[str, Any]]:
        """Validate every row, then predict; each result names the row, label, probability,
        the columns that were empty (imputed) and, with ``explain``, the top SHAP contributions.
        """
        empty = validate_frame(frame, self.schema, where=where)
        return self._predict_valid(frame, empty, explain=explain, top_k=top_k)

    @cached_property
    def row_model(self) -> RowModel | None:
        """The fitted pipeline compiled for one row (``None`` when a step is not supported);
        compiling also packs the model's random forests (identical probabilities)."""
        return compile_row_model(self.model.pipeline)

    def predict_row(
        self, row: dict[str, Any], *, explain: bool = True, top_k: int = 5, where: str = "row"
    ) -> dict[str, Any]:
        """:meth:`predict` for one row given as a dict, with the same checks, messages and
        probabilities, but validated without pandas and, without ``explain``, predicted by
        :attr:`row_model` (the service's per-request path)."""
        empty = self.row_validator.validate(row, where=where)
        if not explain and self.row_model is not None:
            return self._result(0, self.row_model.predict_proba(row), empty)
        frame = pd.DataFrame.from_records([row])
        return self._predict_valid(frame, [empty], explain=explain, top_k=top_k)[0]

    def _result(self, row: int, probability: float, imputed: list[str]) -> dict[str, Any]:
        positive = bool(probability >= self.model.threshold)
        return {
            "row": row + 1,
            "prediction": self.positive_class if positive else self.negative_class,
            "probability": round(float(probability), 5),
            "threshold": self.model.threshold,
            "imputed": imputed,
        }

    def _predict_valid(
        self, frame: pd.DataFrame, empty: list[list[str]], *, explain: bool, top_k: int
    ) -> list[dict[str, Any]]:
        features = frame[self.schema.feature_columns]
        probability = self.model.predict_proba(features)
        explanation = (
            explain_pipeline(self.model.pipeline, features, self.background, self.sources)
            if explain
            else None
        )
        results = []
        for row, p in enumerate(probability):
            result = self._result(row, p, empty[row])
            if explanation is not None:
                result["base_probability"] = round(explanation.base_value, 5)
                result["contributions"] = [
                    c.to_dict() for c in explanation.top(row, features, top_k)
                ]
            results.append(result)
        return results
