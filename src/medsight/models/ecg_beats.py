"""Gradient boosting on per-beat features (AAMI N, S, V, F, Q) in the model registry.

LightGBM's multi-class objective on the rows of :mod:`medsight.signal.beat_features`, trained
with per-beat weights against the AAMI classes' imbalance (in MIT-BIH DS1 about 90% of beats are
N): each class weighs ``n_largest / n_class``, capped at ``max_class_weight`` so that a class of
a handful of beats (Q) does not dominate. The number of trees is fixed (no validation part is
taken from the few training patients). The fitted booster is kept as a ``lightgbm.Booster``,
whose text file is what a bundle stores, so a saved and reloaded model predicts the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medsight.errors import DataError
from medsight.models.registry import register_model
from medsight.signal.beats import AAMI_CLASSES

SMALL_TRAINING_SET = 20_000  # beats; below it LightGBM trains on one thread


class BeatBoostingClassifier:
    """LightGBM multi-class on beat feature rows; classes are the AAMI classes seen in training."""

    def __init__(self, seed: int = 0, max_class_weight: float = 100.0, **params: Any) -> None:
        defaults = {
            "num_iterations": 200,
            "learning_rate": 0.05,
            "num_leaves": 15,
            "min_data_in_leaf": 20,
            "feature_fraction": 0.8,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 1.0,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        self.params = {**defaults, **params, "seed": seed}
        self.max_class_weight = float(max_class_weight)
        self.booster: Any = None
        self.classes: list[str] = []
        self.feature_names: list[str] = []

    def fit(
        self, x: np.ndarray, labels: Sequence[str] | np.ndarray, feature_names: Sequence[str]
    ) -> BeatBoostingClassifier:
        """Train on rows ``x`` (n, F) with AAMI labels; needs beats of at least two classes."""
        import lightgbm

        y_text = np.asarray(labels).astype(str)
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] != y_text.size or x.shape[0] == 0:
            raise DataError(f"{x.shape[0]} feature rows but {y_text.size} beat labels.")
        unknown = sorted(set(y_text) - set(AAMI_CLASSES))
        if unknown:
            raise DataError(f"beat labels {unknown} are not AAMI classes {AAMI_CLASSES}.")
        self.classes = [c for c in AAMI_CLASSES if c in set(y_text)]
        if len(self.classes) < 2:
            raise DataError(
                f"the training beats are all of class {self.classes}; a beat classifier needs "
                "at least two AAMI classes."
            )
        self.feature_names = list(feature_names)
        # AAMI order (N, S, V, F, Q) is not alphabetical, so no searchsorted: map by name.
        index = {name: i for i, name in enumerate(self.classes)}
        y = np.array([index[label] for label in y_text], dtype=np.int64)
        dataset = lightgbm.Dataset(
            x,
            label=y,
            weight=self.class_weights(y),
            feature_name=self.feature_names,
            free_raw_data=True,
        )
        # Threads cost more than they save on small sets (measured: 375 beats fit in 0.1 s on
        # one thread, 0.3-1.1 s on two of a busy 2-core machine); `num_threads` overrides.
        threads = 1 if x.shape[0] < SMALL_TRAINING_SET else 2
        params = {
            "objective": "multiclass",
            "num_class": len(self.classes),
            "num_threads": threads,
            **self.params,
        }
        self.booster = lightgbm.train(params, dataset)
        return self

    def class_weights(self, y: np.ndarray) -> np.ndarray:
        """Per-beat weight ``min(n_largest / n_class, max_class_weight)``."""
        counts = np.bincount(y, minlength=len(self.classes)).astype(float)
        weight = np.minimum(counts.max() / np.maximum(counts, 1), self.max_class_weight)
        return weight[y]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (n, len(classes)) in :attr:`classes` order."""
        return predict_booster(self.booster, x, len(self.classes))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.array(self.classes)[self.predict_proba(x).argmax(axis=1)]

    def feature_importance(self) -> dict[str, float]:
        """Total gain per feature, largest first."""
        gain = self.booster.feature_importance(importance_type="gain")
        pairs = sorted(zip(self.feature_names, gain, strict=True), key=lambda p: -p[1])
        return {name: float(g) for name, g in pairs}


def predict_booster(booster: Any, x: np.ndarray, n_classes: int, threads: int = 0) -> np.ndarray:
    """A multi-class booster's probabilities as (n, n_classes), also for zero rows."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] == 0:
        return np.empty((0, n_classes))
    kwargs = {"num_threads": threads} if threads else {}
    return np.asarray(booster.predict(x, **kwargs)).reshape(x.shape[0], n_classes)


@register_model(
    "ecg_beat_lightgbm",
    family="beat-features",
    description="LightGBM on per-beat RR and morphology features (AAMI N, S, V, F, Q classes).",
)
def ecg_beat_lightgbm(seed: int = 0, **params: Any) -> BeatBoostingClassifier:
    return BeatBoostingClassifier(seed=seed, **params)
