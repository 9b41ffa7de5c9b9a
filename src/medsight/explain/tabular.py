"""SHAP explanations for tabular pipelines, reported per original column.

The explained function is the deployed model's probability of the positive class, computed on
preprocessed features; attributions of one-hot and missing-indicator features are summed back to
the column they came from (SHAP values are additive), so a clinician reads "chest-pain type",
not "cp_4".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shap
from sklearn.pipeline import Pipeline

BACKGROUND_CENTROIDS = 25


@dataclass(frozen=True)
class Contribution:
    """One column's push on one prediction, in probability points."""

    feature: str
    value: object
    shap_value: float

    def to_dict(self) -> dict[str, object]:
        value = self.value
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and np.isnan(value):
            value = None
        return {"feature": self.feature, "value": value, "shap": round(self.shap_value, 5)}


@dataclass
class Explanation:
    """SHAP values per row and original column, with the base value they add up from."""

    values: pd.DataFrame
    base_value: float

    def top(self, row: int, frame: pd.DataFrame, k: int = 5) -> list[Contribution]:
        """The ``k`` columns that moved row ``row``'s probability most, largest first."""
        shap_row = self.values.iloc[row]
        order = shap_row.abs().sort_values(ascending=False).index[:k]
        return [Contribution(c, frame.iloc[row][c], float(shap_row[c])) for c in order]

    def global_importance(self) -> pd.Series:
        """Mean absolute SHAP value per column, largest first."""
        return self.values.abs().mean().sort_values(ascending=False)


def summarise_background(features: np.ndarray) -> np.ndarray:
    """Weighted k-means centroids of preprocessed training rows as the SHAP background.

    Centroids rather than raw rows, so the bundle does not carry individual patients' records.
    """
    k = min(BACKGROUND_CENTROIDS, len(features))
    summary = shap.kmeans(features, k)
    return np.asarray(summary.data, dtype=float)


def explain_pipeline(
    pipeline: Pipeline,
    frame: pd.DataFrame,
    background: np.ndarray,
    sources: list[str],
    *,
    seed: int = 0,
) -> Explanation:
    """Permutation SHAP of ``pipeline``'s positive-class probability for each row of ``frame``."""
    preprocess, model = pipeline[:-1], pipeline[-1]
    features = np.asarray(preprocess.transform(frame), dtype=float)

    def positive_probability(z: np.ndarray) -> np.ndarray:
        return model.predict_proba(z)[:, 1]

    explainer = shap.PermutationExplainer(
        positive_probability, shap.maskers.Independent(background), seed=seed
    )
    result = explainer(features, max_evals=max(2 * features.shape[1] + 1, 500), silent=True)
    per_feature = pd.DataFrame(result.values, columns=sources, index=frame.index)
    per_column = per_feature.T.groupby(level=0, sort=False).sum().T
    base = float(np.mean(np.atleast_1d(result.base_values)))
    return Explanation(per_column, base)
