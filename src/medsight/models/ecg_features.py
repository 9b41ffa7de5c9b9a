"""Gradient boosting on per-record ECG features (HRV, morphology, quality) in the registry.

LightGBM handles the NaN a feature takes when it cannot be computed (too few beats), needs no
scaling, and trains on thousands of records in seconds; the number of trees is chosen on the
validation part (early stopping on its multi-class log-loss).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pandas as pd

from medsight.models.registry import register_model


class FeatureBoostingClassifier:
    """A LightGBM multi-class model whose tree count is early-stopped on validation data."""

    def __init__(self, seed: int = 0, early_stopping_rounds: int = 50, **params: Any) -> None:
        defaults = {
            "n_estimators": 2000,
            "learning_rate": 0.03,
            "num_leaves": 31,
            "min_child_samples": 10,
            "subsample": 0.8,
            "subsample_freq": 1,
            "colsample_bytree": 0.7,
            "class_weight": "balanced",
            "n_jobs": 2,
            "verbose": -1,
        }
        self.params = {**defaults, **params, "random_state": seed}
        self.early_stopping_rounds = early_stopping_rounds
        self.model: Any = None
        self.feature_names: list[str] = []

    def fit_with_validation(
        self, x: pd.DataFrame, y: np.ndarray, x_val: pd.DataFrame, y_val: np.ndarray
    ) -> FeatureBoostingClassifier:
        import lightgbm

        self.feature_names = list(x.columns)
        self.model = lightgbm.LGBMClassifier(**self.params)
        validation = x_val[self.feature_names]
        # LightGBM 4.7 deprecates eval_set for eval_X / eval_y; older releases know only eval_set
        takes_eval_x = "eval_X" in inspect.signature(self.model.fit).parameters
        self.model.fit(
            x,
            y,
            **(
                {"eval_X": (validation,), "eval_y": (y_val,)}
                if takes_eval_x
                else {"eval_set": [(validation, y_val)]}
            ),
            callbacks=[lightgbm.early_stopping(self.early_stopping_rounds, verbose=False)],
        )
        return self

    @property
    def best_iteration(self) -> int:
        return int(self.model.best_iteration_ or self.model.n_estimators)

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        return self.model.predict_proba(x[self.feature_names])

    def feature_importance(self) -> pd.Series:
        """Total gain per feature, largest first."""
        gain = self.model.booster_.feature_importance(importance_type="gain")
        return pd.Series(gain, index=self.feature_names).sort_values(ascending=False)


@register_model(
    "ecg_hrv_lightgbm",
    family="signal-features",
    description="LightGBM on per-record HRV, morphology and signal-quality features.",
)
def ecg_hrv_lightgbm(seed: int = 0, **params: Any) -> FeatureBoostingClassifier:
    return FeatureBoostingClassifier(seed=seed, **params)
