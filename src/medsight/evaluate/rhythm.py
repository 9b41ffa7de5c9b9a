"""Rhythm-classification metrics: the PhysioNet/CinC 2017 challenge score with bootstrap CIs.

The challenge scored an entry by the mean F1 of the normal (N), atrial-fibrillation (A) and other
rhythm (O) classes; the noisy class (~) counts only through the errors it causes in the others
(Clifford et al. 2017).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from medsight.errors import ConfigError
from medsight.evaluate._validate import check_class_labels, check_probability_values
from medsight.evaluate.bootstrap import Estimate, bootstrap_ci
from medsight.evaluate.metrics import check_class_names, multiclass_metrics_unchecked

SCORED_CLASSES = ("N", "A", "O")
CHALLENGE_SCORE = "challenge_score"


def challenge_score(
    y_true: ArrayLike, y_prob: ArrayLike, class_names: Sequence[str]
) -> tuple[float, dict[str, float]]:
    """The challenge score of argmax predictions and each class's F1."""
    metrics = _rhythm_metrics(*_checked(y_true, y_prob, class_names))
    f1 = {name: metrics[f"{name}/f1"] for name in class_names}
    return metrics[CHALLENGE_SCORE], f1


def rhythm_metrics_with_ci(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    class_names: Sequence[str],
    *,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Multi-class metrics plus ``challenge_score``, each with a percentile bootstrap interval."""
    y, prob, names = _checked(y_true, y_prob, class_names)

    def statistic(index: np.ndarray) -> dict[str, float]:
        return _rhythm_metrics(y[index], prob[index], names)

    result = bootstrap_ci(statistic, y.size, n_boot=n_boot, alpha=alpha, seed=seed)
    assert isinstance(result, dict)
    return result


def _checked(
    y_true: ArrayLike, y_prob: ArrayLike, class_names: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    prob = np.asarray(y_prob, dtype=float)
    names = check_class_names(class_names, prob.shape[-1] if prob.ndim == 2 else 0)
    missing = [name for name in SCORED_CLASSES if name not in names]
    if missing:
        raise ConfigError(
            f"the challenge score needs classes {', '.join(SCORED_CLASSES)}; "
            f"{', '.join(missing)} not among {names}."
        )
    y = check_class_labels(y_true, prob.shape[1])
    check_probability_values(prob, y.size, row_axis=0)
    return y, prob, names


def _rhythm_metrics(y: np.ndarray, prob: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    metrics = multiclass_metrics_unchecked(y, prob, names)
    f1 = [metrics[f"{name}/f1"] for name in SCORED_CLASSES]
    # a class absent from both truth and prediction has F1 0/0; the challenge counts it as 0
    metrics[CHALLENGE_SCORE] = float(np.mean(np.nan_to_num(f1, nan=0.0)))
    return metrics
