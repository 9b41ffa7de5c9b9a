"""One table row to a probability with the fitted pipeline's own arithmetic, minus its overhead.

scikit-learn has no single-row path: for one row, ``Pipeline.predict_proba`` spends about 3 ms in
pandas column handling and per-step input checks around microseconds of arithmetic (measured on
WDBC), and a random forest calls each of its trees separately. The service predicts one row per
request, so this module compiles a fitted medsight pipeline into plain numpy steps:

- the preprocessing steps medsight builds (missing codes, clip, impute with indicators, standard
  scaling, category strings, most-frequent imputation, one-hot) become array operations on the
  fitted statistics, in the same order and precision, so the features are bit-identical (the
  Yeo-Johnson power transform too, vectorised over columns); other fitted numeric steps are
  called on the array as they are;
- the classifier is the fitted scikit-learn estimator, called on that array, with every random
  forest inside it packed by :func:`medsight.bundle.forests.pack_forests` (all trees walked
  together; the same per-tree values summed in the same order) and its calibration and soft
  vote without per-call checks (:mod:`medsight.bundle.lean_calibration`): identical
  probabilities.

:func:`compile_row_model` returns ``None`` for any step it does not know (a custom pipeline): the
caller then keeps the scikit-learn path. ``tests/serve/test_serve_fast_path.py`` checks bit-for-bit
equality with ``Pipeline.predict_proba`` on messy rows (empty cells, missing codes, clipping).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    PowerTransformer,
    StandardScaler,
)

from medsight.bundle.forests import pack_forests
from medsight.bundle.lean_calibration import lean_calibration
from medsight.data.schema import canonical_category
from medsight.transforms.tabular import Clipper, MissingValueCoder, to_category_strings

Step = Callable[[np.ndarray], np.ndarray]


class Unsupported(Exception):
    """A pipeline step this module does not compile (the caller keeps scikit-learn's path)."""


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class _MissingCodes:
    """``MissingValueCoder`` for one row: a column's sentinel (as a value or as text) -> None."""

    codes: dict[str, tuple[frozenset[Any], frozenset[str]]]

    @classmethod
    def of(cls, coder: MissingValueCoder) -> _MissingCodes:
        return cls(
            {
                name: (frozenset(v for v in values if _hashable(v)), frozenset(map(str, values)))
                for name, values in (coder.missing_values or {}).items()
                if values
            }
        )

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        if not self.codes:
            return row
        out = dict(row)
        for name, (values, texts) in self.codes.items():
            value = out.get(name)
            if value is None or isinstance(value, bool):
                continue
            if (value in values) or (_text(value) in texts):
                out[name] = None
        return out


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _text(value: Any) -> str:
    # pandas' astype("string") writes a float 3.0 as "3.0" and an int 3 as "3", like str()
    return str(value)


def _numeric_steps(pipe: Pipeline) -> list[Step]:
    steps: list[Step] = []
    for _, step in pipe.steps:
        if isinstance(step, Clipper):
            low, high = step.lower_, step.upper_
            steps.append(lambda X, low=low, high=high: np.clip(X, low, high))
        elif isinstance(step, SimpleImputer) and step.strategy in ("median", "mean"):
            steps.append(_imputer(step))
        elif isinstance(step, StandardScaler):
            steps.append(_scaler(step))
        elif isinstance(step, PowerTransformer) and step.method == "yeo-johnson":
            steps.append(_yeo_johnson(step))
        elif hasattr(step, "transform") and not hasattr(step, "feature_names_in_"):
            steps.append(step.transform)  # e.g. PowerTransformer: its own method, on the array
        else:
            raise Unsupported(type(step).__name__)
    return steps


def _imputer(imputer: SimpleImputer) -> Step:
    statistics = np.asarray(imputer.statistics_, dtype=float)
    keep = ~np.isnan(statistics)
    if not getattr(imputer, "keep_empty_features", False) and not keep.all():
        statistics = statistics[keep]
    else:
        keep = np.ones_like(keep)
    indicator = imputer.indicator_.features_ if imputer.add_indicator else None
    if indicator is not None and imputer.indicator_.features != "missing-only":
        raise Unsupported("MissingIndicator(features='all')")

    def impute(X: np.ndarray) -> np.ndarray:
        missing = np.isnan(X)
        values = np.where(missing[:, keep], statistics, X[:, keep])
        if indicator is None:
            return values
        return np.hstack([values, missing[:, indicator].astype(float)])

    return impute


def _scaler(scaler: StandardScaler) -> Step:
    mean = scaler.mean_ if scaler.with_mean else None
    scale = scaler.scale_ if scaler.with_std else None

    def standardise(X: np.ndarray) -> np.ndarray:
        # scikit-learn subtracts, then divides, in float64: the same operations here
        X = X.copy()
        if mean is not None:
            X -= mean
        if scale is not None:
            X /= scale
        return X

    return standardise


def _yeo_johnson(transformer: PowerTransformer) -> Step:
    """``PowerTransformer(method="yeo-johnson")``: scipy's per-column formula (scipy 1.17
    ``_yeojohnson_transform``) applied to all columns at once, then its standard scaling."""
    lam = np.asarray(transformer.lambdas_, dtype=float)
    eps = np.finfo(float).eps
    log_branch_pos = np.abs(lam) < eps
    log_branch_neg = ~(np.abs(lam - 2) > eps)
    scale = _scaler(transformer._scaler) if transformer.standardize else None

    def transform(X: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):  # each branch is computed everywhere, kept where valid
            up = np.log1p(X)
            positive = np.where(log_branch_pos, up, np.expm1(lam * up) / lam)
            down = np.log1p(-X)
            negative = np.where(log_branch_neg, -down, -np.expm1((2 - lam) * down) / (2 - lam))
        out = np.where(X >= 0, positive, negative)
        return scale(out) if scale is not None else out

    return transform


@dataclass(frozen=True)
class _Categories:
    """Category strings, most-frequent imputation and one-hot (unknown categories: all zeros)."""

    fill: list[str]
    index: list[dict[str, int]]
    width: int

    @classmethod
    def of(cls, pipe: Pipeline) -> _Categories:
        kinds = [type(step) for _, step in pipe.steps]
        if kinds != [FunctionTransformer, SimpleImputer, OneHotEncoder]:
            raise Unsupported(str(kinds))
        if pipe.steps[0][1].func is not to_category_strings:
            raise Unsupported("category function")
        imputer: SimpleImputer = pipe.steps[1][1]
        encoder: OneHotEncoder = pipe.steps[2][1]
        if imputer.strategy != "most_frequent" or encoder.handle_unknown != "ignore":
            raise Unsupported("categorical settings")
        if encoder.drop_idx_ is not None or getattr(encoder, "_infrequent_enabled", False):
            raise Unsupported("one-hot drop or infrequent categories")
        index = [{str(c): i for i, c in enumerate(cats)} for cats in encoder.categories_]
        return cls(
            [str(s) for s in imputer.statistics_], index, sum(len(c) for c in encoder.categories_)
        )

    def __call__(self, values: list[Any]) -> np.ndarray:
        out = np.zeros(self.width)
        offset = 0
        for value, fill, index in zip(values, self.fill, self.index, strict=True):
            text = fill if _is_missing(value) else canonical_category(value)
            position = index.get(text)
            if position is not None:
                out[offset + position] = 1.0
            offset += len(index)
        return out


class RowModel:
    """A fitted medsight pipeline compiled for one row (a dict) at a time."""

    def __init__(
        self,
        missing: _MissingCodes,
        numeric: list[str],
        numeric_steps: list[Step],
        categorical: list[str],
        categories: _Categories | None,
        classifier: Any,
    ) -> None:
        self._missing = missing
        self._numeric = numeric
        self._numeric_steps = numeric_steps
        self._categorical = categorical
        self._categories = categories
        self._classifier = classifier

    def features(self, row: dict[str, Any]) -> np.ndarray:
        """The preprocessed feature vector (1 x n), as the fitted preprocessing would give it."""
        row = self._missing(row)
        parts = []
        if self._numeric:
            X = np.array(
                [[np.nan if _is_missing(v := row.get(n)) else float(v) for n in self._numeric]]
            )
            for step in self._numeric_steps:
                X = step(X)
            parts.append(X)
        if self._categories is not None:
            parts.append(self._categories([row.get(n) for n in self._categorical])[None, :])
        return parts[0] if len(parts) == 1 else np.hstack(parts)

    def predict_proba(self, row: dict[str, Any]) -> float:
        """P(positive class) for one row (validated against the schema beforehand)."""
        return float(self._classifier.predict_proba(self.features(row))[0, 1])


def compile_row_model(pipeline: Pipeline) -> RowModel | None:
    """The one-row form of a fitted ``Pipeline([("preprocess", ...), ("model", ...)])`` built by
    medsight, or ``None`` when a step is not one this module reproduces exactly."""
    try:
        preprocess, classifier = pipeline[:-1], pipeline[-1]
        steps = [s for _, s in preprocess.steps]
        if len(steps) == 1 and isinstance(steps[0], Pipeline):
            steps = [s for _, s in steps[0].steps]
        if len(steps) != 2 or not isinstance(steps[0], MissingValueCoder):
            raise Unsupported("layout")
        columns = steps[1]
        if not isinstance(columns, ColumnTransformer) or columns.remainder != "drop":
            raise Unsupported("columns")
        numeric: list[str] = []
        numeric_steps: list[Step] = []
        categorical: list[str] = []
        categories = None
        for name, transformer, selected in columns.transformers_:
            if name == "remainder":
                continue
            if name == "num" and isinstance(transformer, Pipeline):
                numeric, numeric_steps = list(selected), _numeric_steps(transformer)
            elif name == "cat" and isinstance(transformer, Pipeline):
                categorical, categories = list(selected), _Categories.of(transformer)
            else:
                raise Unsupported(name)
        if categorical and numeric and [t[0] for t in columns.transformers_][:2] != ["num", "cat"]:
            raise Unsupported("column order")
    except (Unsupported, AttributeError, TypeError, ValueError, IndexError):
        return None
    pack_forests(classifier)
    lean_calibration(classifier)
    return RowModel(
        _MissingCodes.of(steps[0]), numeric, numeric_steps, categorical, categories, classifier
    )
