"""Percentile bootstrap intervals, resampling rows or whole patients (cluster bootstrap)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from medsight.errors import ConfigError, DataError
from medsight.evaluate._validate import (
    check_alpha,
    check_binary_labels,
    check_class_labels,
    check_groups,
    check_probabilities,
    check_probability_values,
    check_threshold,
)
from medsight.evaluate.metrics import (
    binary_metrics_block,
    check_class_names,
    multiclass_metrics_unchecked,
    multilabel_metrics_unchecked,
)
from medsight.evaluate.thresholds import finding_thresholds

Statistic = Callable[[np.ndarray], float | dict[str, float]]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval."""

    value: float
    lo: float
    hi: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "lo": self.lo, "hi": self.hi}

    def __str__(self) -> str:
        if math.isnan(self.value):
            return "n/a"
        if math.isnan(self.lo) or math.isnan(self.hi):
            return f"{self.value:.3f} (CI n/a)"
        return f"{self.value:.3f} ({self.lo:.3f}–{self.hi:.3f})"


def bootstrap_ci(
    statistic: Statistic,
    n: int,
    *,
    groups: ArrayLike | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Estimate | dict[str, Estimate]:
    """Point = statistic(arange(n)); interval = percentiles of statistic over resampled indices.

    With `groups`, whole groups (patients) are resampled so their rows stay together. That cluster
    bootstrap is why this is hand-written: scipy.stats.bootstrap resamples rows only.
    Resamples where the statistic is NaN are skipped; under half valid gives a (nan, nan) CI.
    The percentile interval is widened, if needed, to contain the point: for a statistic biased
    under resampling (ECE: resampling noise only adds miscalibration) every resample can land on
    one side of the point, and an interval that excludes its own estimate would mislead.
    """
    if n < 1:
        raise DataError(f"bootstrap needs at least one row; got n={n}.")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 1:
        raise ConfigError(f"n_boot must be a positive integer (e.g. 1000); got {n_boot!r}.")
    alpha = check_alpha(alpha)
    draw = _resampler(n, check_groups(groups, n), np.random.default_rng(seed))
    point = statistic(np.arange(n))
    if isinstance(point, dict):
        keys = list(point)
        samples = np.empty((n_boot, len(keys)))
        for b in range(n_boot):
            values = statistic(draw())
            samples[b] = [values[key] for key in keys]
        return {
            key: _percentile_estimate(float(point[key]), samples[:, j], alpha)
            for j, key in enumerate(keys)
        }
    samples = np.array([statistic(draw()) for _ in range(n_boot)], dtype=float)
    return _percentile_estimate(float(point), samples, alpha)


def binary_metrics_with_ci(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    threshold: float | ArrayLike = 0.5,
    *,
    groups: ArrayLike | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Estimate]:
    """binary_metrics with bootstrap intervals.

    `y_prob` is (n,) or (n_repeats, n) for repeated CV; the value is then the mean over repeats of
    each repeat's metric, and every resample scores all repeats on the same resampled rows.
    `threshold` is a number, (n,) per row, or (n_repeats, n).
    """
    y = check_binary_labels(y_true)
    p = np.atleast_2d(check_probabilities(y_prob, y.size, ndims=(1, 2)))
    t = check_threshold(threshold, p.shape)

    def statistic(index: np.ndarray) -> dict[str, float]:
        block = binary_metrics_block(y[index], p[:, index], t[:, index])
        return {name: _mean_skipping_nan(values) for name, values in block.items()}

    return bootstrap_ci(statistic, y.size, groups=groups, n_boot=n_boot, alpha=alpha, seed=seed)


def multiclass_metrics_with_ci(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    class_names: Sequence[str] | None = None,
    *,
    groups: ArrayLike | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Estimate]:
    """multiclass_metrics with bootstrap intervals; `y_prob` is (n, K) or (n_repeats, n, K)."""
    p = np.asarray(y_prob, dtype=float)
    if p.ndim not in (2, 3) or p.shape[-1] < 2:
        raise DataError(
            f"y_prob must be (n, n_classes) or (n_repeats, n, n_classes) with at least 2 "
            f"classes; got shape {p.shape}."
        )
    p = p.reshape((-1, *p.shape[-2:]))
    y = check_class_labels(y_true, p.shape[-1])
    check_probability_values(p, y.size, row_axis=1)
    names = check_class_names(class_names, p.shape[-1])

    def statistic(index: np.ndarray) -> dict[str, float]:
        repeats = [multiclass_metrics_unchecked(y[index], block[index], names) for block in p]
        return {key: _mean_skipping_nan(np.array([r[key] for r in repeats])) for key in repeats[0]}

    return bootstrap_ci(statistic, y.size, groups=groups, n_boot=n_boot, alpha=alpha, seed=seed)


def multilabel_metrics_with_ci(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    names: Sequence[str] | None = None,
    *,
    threshold: float | Sequence[float] = 0.5,
    groups: ArrayLike | None = None,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, Estimate]:
    """:func:`~medsight.evaluate.metrics.multilabel_metrics_unchecked` with bootstrap intervals;
    ``y_true`` ``(n, L)`` of 0/1 findings, ``y_prob`` ``(n, L)``, ``threshold`` one cut or one
    per finding."""
    y = np.asarray(y_true)
    p = np.asarray(y_prob, dtype=float)
    if y.ndim != 2 or p.shape != y.shape or y.shape[1] < 2:
        raise DataError(
            f"multi-label metrics need y_true and y_prob of the same shape (n, findings >= 2); "
            f"got {y.shape} and {p.shape}."
        )
    if not np.isin(y, (0, 1)).all():
        raise DataError("multi-label y_true must hold 0 and 1 only.")
    check_probability_values(p, y.shape[0], row_axis=0)
    labels = check_class_names(names, y.shape[1])
    cuts = finding_thresholds(threshold, y.shape[1])
    y = y.astype(np.int8)

    def statistic(index: np.ndarray) -> dict[str, float]:
        return multilabel_metrics_unchecked(y[index], p[index], labels, cuts)

    return bootstrap_ci(statistic, y.shape[0], groups=groups, n_boot=n_boot, alpha=alpha, seed=seed)


def _resampler(
    n: int, codes: np.ndarray | None, rng: np.random.Generator
) -> Callable[[], np.ndarray]:
    """A function drawing one resample of row indices (of rows, or of whole groups)."""
    if codes is None:
        return lambda: rng.integers(0, n, size=n)
    order = np.argsort(codes, kind="stable")
    sizes = np.bincount(codes)
    starts = np.cumsum(sizes) - sizes
    n_groups = sizes.size

    def draw() -> np.ndarray:
        chosen = rng.integers(0, n_groups, size=n_groups)
        lengths = sizes[chosen]
        # Row positions of each chosen group, concatenated without a Python loop.
        offsets = np.repeat(starts[chosen] - (np.cumsum(lengths) - lengths), lengths)
        return order[offsets + np.arange(lengths.sum())]

    return draw


def _percentile_estimate(point: float, samples: np.ndarray, alpha: float) -> Estimate:
    valid = samples[~np.isnan(samples)]
    if valid.size < samples.size / 2 or valid.size == 0:
        return Estimate(point, math.nan, math.nan)
    lo, hi = np.percentile(valid, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    if math.isnan(point):
        return Estimate(point, float(lo), float(hi))
    return Estimate(point, min(float(lo), point), max(float(hi), point))


def _mean_skipping_nan(values: np.ndarray) -> float:
    """Mean of the non-NaN entries, NaN (without a warning) when there are none."""
    valid = values[~np.isnan(values)]
    return float(valid.mean()) if valid.size else math.nan
