"""Tabular preprocessing as a scikit-learn pipeline built from a schema.

Everything here is fitted inside each training fold, so no statistic of held-out rows (medians,
scales, categories' frequencies) leaks into the model that is evaluated on them.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    PowerTransformer,
    StandardScaler,
)

from medsight.data.schema import TableSchema, canonical_category, replace_missing_values

Scaling = Literal["standard", "power", "none"]
Clipping = Literal["none", "range", "quantile"]


class MissingValueCoder(TransformerMixin, BaseEstimator):
    """Replace each column's "missing" codes (e.g. a blood pressure of 0) with NaN."""

    def __init__(self, missing_values: dict[str, list[float | str]] | None = None):
        self.missing_values = missing_values

    def fit(self, X: pd.DataFrame, y: object = None) -> MissingValueCoder:
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return replace_missing_values(X, self.missing_values or {})

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return self.feature_names_in_


class Clipper(TransformerMixin, BaseEstimator):
    """Clip numeric columns to fixed bounds, or to training-set quantiles learnt in ``fit``."""

    def __init__(
        self,
        lower: list[float] | None = None,
        upper: list[float] | None = None,
        quantile: float | None = None,
    ):
        self.lower = lower
        self.upper = upper
        self.quantile = quantile

    def fit(self, X: np.ndarray, y: object = None) -> Clipper:
        X = np.asarray(X, dtype=float)
        self.n_features_in_ = X.shape[1]
        low = np.full(X.shape[1], -np.inf) if self.lower is None else np.asarray(self.lower, float)
        high = np.full(X.shape[1], np.inf) if self.upper is None else np.asarray(self.upper, float)
        if self.quantile is not None:
            with np.errstate(all="ignore"):
                low = np.fmax(low, np.nanquantile(X, self.quantile, axis=0))
                high = np.fmin(high, np.nanquantile(X, 1 - self.quantile, axis=0))
        self.lower_, self.upper_ = low, high
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(X, dtype=float), self.lower_, self.upper_)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(input_features, dtype=object)


def to_category_strings(X: pd.DataFrame) -> pd.DataFrame:
    """Categories as canonical strings; every empty cell (None as JSON sends it, or NaN) as NaN,
    which the imputer after this step fills (it would take None for a category of its own)."""
    text = X.apply(lambda column: column.map(canonical_category, na_action="ignore"))
    return text.astype(object).where(text.notna(), np.nan)


_to_category_strings = to_category_strings  # the name bundles saved before 0.1 pickled


def build_preprocessor(
    schema: TableSchema,
    *,
    scaling: Scaling = "standard",
    clip: Clipping = "range",
    impute: Literal["median", "mean"] = "median",
    missing_indicators: bool = True,
) -> Pipeline:
    """Missing codes -> NaN, then per column type: clip, impute, scale; categories one-hot."""
    numeric = schema.numeric_columns
    categorical = schema.categorical_columns
    steps: list[tuple[str, object]] = []
    if clip != "none":
        lower = [
            schema.columns[c].min if schema.columns[c].min is not None else -np.inf for c in numeric
        ]
        upper = [
            schema.columns[c].max if schema.columns[c].max is not None else np.inf for c in numeric
        ]
        steps.append(
            ("clip", Clipper(lower, upper, quantile=0.005 if clip == "quantile" else None))
        )
    steps.append(("impute", SimpleImputer(strategy=impute, add_indicator=missing_indicators)))
    if scaling == "standard":
        steps.append(("scale", StandardScaler()))
    elif scaling == "power":
        steps.append(("scale", PowerTransformer()))
    numeric_pipe = Pipeline(steps)
    categorical_pipe = Pipeline(
        [
            ("as_text", FunctionTransformer(to_category_strings, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="most_frequent")),
            (
                "one_hot",
                OneHotEncoder(
                    categories=[schema.columns[c].categories or [] for c in categorical],
                    handle_unknown="ignore",
                    sparse_output=False,
                ),
            ),
        ]
    )
    transformers = []
    if numeric:
        transformers.append(("num", numeric_pipe, numeric))
    if categorical:
        transformers.append(("cat", categorical_pipe, categorical))
    columns = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    missing = {n: schema.columns[n].missing_values for n in schema.feature_columns}
    return Pipeline(
        [
            ("missing", MissingValueCoder({n: v for n, v in missing.items() if v})),
            ("columns", columns),
        ]
    )


def source_columns(preprocessor: Pipeline, schema: TableSchema) -> list[str]:
    """For each output feature of a fitted preprocessor, the input column it came from.

    One-hot columns and missing-value indicators map back to their column, so attributions can
    be summed per original column (SHAP values are additive).
    """
    names = list(preprocessor.get_feature_names_out())
    features = sorted(schema.feature_columns, key=len, reverse=True)
    sources = []
    for name in names:
        base = name.removeprefix("missingindicator_")
        match = next((f for f in features if base == f or base.startswith(f"{f}_")), base)
        sources.append(match)
    return sources
