"""Metrics within subgroups (sex, age band, site, …), each with a bootstrap interval."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from itertools import pairwise

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from medsight.errors import ConfigError, DataError
from medsight.evaluate._validate import (
    check_binary_labels,
    check_groups,
    check_probabilities,
    check_threshold,
)
from medsight.evaluate.bootstrap import binary_metrics_with_ci
from medsight.evaluate.metrics import BINARY_METRICS

MISSING = "missing"
DEFAULT_METRICS: tuple[str, ...] = ("auroc", "sensitivity", "specificity", "ppv", "npv", "accuracy")
DEFAULT_AGE_EDGES: tuple[float, ...] = (0, 40, 50, 60, 70, 200)


def subgroup_table(
    y_true: ArrayLike,
    y_prob: ArrayLike,
    subgroups: Mapping[str, ArrayLike],
    threshold: float | ArrayLike = 0.5,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    groups: ArrayLike | None = None,
    n_boot: int = 500,
    seed: int = 0,
    min_size: int = 10,
) -> pd.DataFrame:
    """One row per (variable, level): n, n_positive, each metric and its 95% CI, and a note.

    `y_prob` / `threshold` may be (n_repeats, n) or per-row as in binary_metrics_with_ci.
    Levels with fewer than `min_size` rows get NaN metrics and the note "too few rows".
    """
    unknown = [m for m in metrics if m not in BINARY_METRICS]
    if unknown:
        raise ConfigError(f"unknown subgroup metrics {unknown}; allowed: {list(BINARY_METRICS)}.")
    y = check_binary_labels(y_true)
    p = np.atleast_2d(check_probabilities(y_prob, y.size, ndims=(1, 2)))
    t = check_threshold(threshold, p.shape)
    codes = check_groups(groups, y.size)
    columns = ["variable", "level", "n", "n_positive"]
    columns += [c for m in metrics for c in (m, f"{m}_ci")] + ["note"]
    rows = []
    for variable, values in subgroups.items():
        labels = _level_labels(variable, values, y.size)
        for level in sorted(set(labels), key=_natural_key):
            mask = labels == level
            n, n_positive = int(mask.sum()), int(y[mask].sum())
            row = {"variable": variable, "level": level, "n": n, "n_positive": n_positive}
            row |= {c: math.nan if c in metrics else "" for c in columns[4:]}
            row["note"] = _note(n, n_positive, min_size)
            if n >= min_size:
                subset_groups = None if codes is None else codes[mask]
                estimates = binary_metrics_with_ci(
                    y[mask], p[:, mask], t[:, mask], groups=subset_groups, n_boot=n_boot, seed=seed
                )
                for metric in metrics:
                    estimate = estimates[metric]
                    row[metric] = estimate.value
                    row[f"{metric}_ci"] = _format_ci(estimate.lo, estimate.hi)
            rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def age_bands(values: ArrayLike, edges: Sequence[float] = DEFAULT_AGE_EDGES) -> np.ndarray:
    """Band labels "<40", "40–49", …, "≥70"; values outside the edges join the end bands.

    Only the inner edges cut; NaN becomes "missing".
    """
    cuts = [float(e) for e in edges]
    if len(cuts) < 3 or any(b <= a for a, b in pairwise(cuts)):
        raise ConfigError(
            f"age band edges must be at least 3 increasing numbers, e.g. {list(DEFAULT_AGE_EDGES)};"
            f" got {list(edges)}."
        )
    try:
        numbers = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise DataError(f"age bands need numeric values; {error}. Convert the column.") from error
    inner = cuts[1:-1]
    labels = [f"<{_number(inner[0])}"]
    labels += [_band(a, b) for a, b in pairwise(inner)]
    labels += [f"≥{_number(inner[-1])}"]
    index = np.digitize(np.nan_to_num(numbers, nan=cuts[0]), inner)
    bands = np.asarray(labels, dtype=object)[index]
    bands[np.isnan(numbers)] = MISSING
    return bands.astype(str)


def _format_ci(estimate_lo: float, estimate_hi: float) -> str:
    if math.isnan(estimate_lo) or math.isnan(estimate_hi):
        return ""
    return f"{estimate_lo:.3f}–{estimate_hi:.3f}"


def _note(n: int, n_positive: int, min_size: int) -> str:
    if n < min_size:
        return "too few rows"
    if n_positive in (0, n):
        return "one class only: AUROC undefined"
    return ""


def _level_labels(variable: str, values: ArrayLike, n: int) -> np.ndarray:
    series = pd.Series(np.asarray(values, dtype=object))
    if series.size != n:
        raise DataError(
            f"subgroup {variable!r} has {series.size} values but there are {n} rows; "
            "pass one value per row."
        )
    return np.where(series.isna(), MISSING, series.astype(str)).astype(str)


_LEADING_NUMBER = re.compile(r"^\s*([<≤>≥]?)\s*(-?\d+(?:\.\d+)?)(.*)$")
_SIGN_ORDER = {"<": -1, "≤": -1, "": 0, ">": 1, "≥": 1}


def _natural_key(label: str) -> tuple:
    """Numeric-leading labels by number ("<40" < "40–49" < "≥70"), then text, "missing" last."""
    if label == MISSING:
        return (2,)
    match = _LEADING_NUMBER.match(label)
    if match:
        sign, number, rest = match.groups()
        return (0, float(number), _SIGN_ORDER[sign], _chunks(rest))
    return (1, _chunks(label))


def _chunks(text: str) -> tuple:
    # Digits compare as numbers ("site 2" < "site 10"); tagging keeps int/str from meeting.
    parts = re.split(r"(\d+)", text.casefold())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _band(low: float, high: float) -> str:
    if float(low).is_integer() and float(high).is_integer():
        return f"{int(low)}–{int(high) - 1}"
    return f"{low:g}–<{high:g}"
