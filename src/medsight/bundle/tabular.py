"""Tabular model bundle: a self-describing folder that can be loaded and used to predict.

Layout::

    bundle.json      classes, threshold, metrics with CIs, data fingerprint, versions, seed
    schema.yaml      the input contract, checked on every row at prediction
    model.joblib     fitted preprocessing + model (a pickle: load only bundles you trust)
    background.npy   SHAP background (k-means centroids, not patient rows)
    model_card.md    generated model card
"""

from __future__ import annotations

import functools
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
_MODEL_PACKAGES = frozenset({"sklearn", "medsight", "lightgbm"})  # searched for forests


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

    def predict_row(
        self, row: dict[str, Any], *, explain: bool = True, top_k: int = 5, where: str = "row"
    ) -> dict[str, Any]:
        """:meth:`predict` for one row given as a dict, with the same checks, messages and
        probabilities, but validated without pandas (the service's per-request path)."""
        empty = self.row_validator.validate(row, where=where)
        frame = pd.DataFrame.from_records([row])
        return self._predict_valid(frame, [empty], explain=explain, top_k=top_k)[0]

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
            positive = bool(p >= self.model.threshold)
            result: dict[str, Any] = {
                "row": row + 1,
                "prediction": self.positive_class if positive else self.negative_class,
                "probability": round(float(p), 5),
                "threshold": self.model.threshold,
                "imputed": empty[row],
            }
            if explanation is not None:
                result["base_probability"] = round(explanation.base_value, 5)
                result["contributions"] = [
                    c.to_dict() for c in explanation.top(row, features, top_k)
                ]
            results.append(result)
        return results


def sequential_forests(model: object) -> int:
    """Make every random forest inside ``model`` predict without joblib; return how many.

    scikit-learn's ``ForestClassifier.predict_proba`` dispatches each tree through
    ``joblib.Parallel`` even with ``n_jobs=1``: about 40 us per tree, 8-10 ms for the default
    model's 200 trees on one row, ten times the trees' own work. Forests with ``n_jobs`` 1 (or
    unset) get :func:`_forest_proba` as their instance's ``predict_proba``: the same sums in the
    same order, so identical probabilities. The service applies it to the models it loads and
    never saves them again; a bundle on disk is unchanged. Hand-written: sklearn offers no switch.
    """
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    seen: set[int] = set()
    patched = 0

    def visit(node: object, depth: int) -> None:
        nonlocal patched
        if depth > 12 or id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, list | tuple):
            for item in node:
                visit(item, depth + 1)
        elif isinstance(node, dict):
            for item in node.values():
                visit(item, depth + 1)
        elif isinstance(node, RandomForestClassifier | ExtraTreesClassifier):
            sequential = node.n_jobs in (None, 1) and hasattr(node, "_validate_X_predict")
            if sequential and "predict_proba" not in vars(node):
                node.predict_proba = functools.partial(_forest_proba, node)  # type: ignore[method-assign]
                patched += 1
        elif type(node).__module__.split(".")[0] in _MODEL_PACKAGES and hasattr(node, "__dict__"):
            for item in vars(node).values():
                visit(item, depth + 1)

    visit(model, 0)
    return patched


def _forest_proba(forest: Any, X: Any) -> Any:
    """``ForestClassifier.predict_proba`` (scikit-learn 1.9) without joblib, trees in order."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(forest)
    X = forest._validate_X_predict(X)
    all_proba = [
        np.zeros((X.shape[0], j), dtype=np.float64) for j in np.atleast_1d(forest.n_classes_)
    ]
    single = forest.n_outputs_ == 1
    for tree in forest.estimators_:
        # the tree's predict_proba minus its per-tree fitted and shape checks (done above)
        if single:
            prediction = tree.tree_.predict(X)[:, : tree.n_classes_]
        else:
            prediction = tree.predict_proba(X, check_input=False)
        if len(all_proba) == 1:
            all_proba[0] += prediction
        else:
            for i in range(len(all_proba)):
                all_proba[i] += prediction[i]
    for proba in all_proba:
        proba /= len(forest.estimators_)
    return all_proba[0] if len(all_proba) == 1 else all_proba
