"""Pictures of SHAP explanations: global importance and a per-row spread (beeswarm-like)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from medsight.explain.tabular import Contribution, Explanation

TOP_FEATURES = 15


def plot_shap_summary(explanation: Explanation, frame: pd.DataFrame) -> Figure:
    """Left: mean |SHAP| per column. Right: each row's SHAP value, coloured by its value."""
    importance = explanation.global_importance().head(TOP_FEATURES)[::-1]
    names = list(importance.index)
    figure = Figure(figsize=(11, 0.38 * len(names) + 1.6), layout="constrained")
    bars, spread = figure.subplots(1, 2, sharey=True)
    positions = np.arange(len(names))
    bars.barh(positions, importance.to_numpy(), color="#3b6ea5")
    bars.set_yticks(positions, names)
    bars.set_xlabel("mean |SHAP| (probability points)")
    bars.set_title("Which columns matter most")

    rng = np.random.default_rng(0)
    for position, name in zip(positions, names, strict=True):
        values = explanation.values[name].to_numpy()
        colour = _rank_colour(frame.loc[explanation.values.index, name])
        jitter = rng.uniform(-0.25, 0.25, size=len(values))
        spread.scatter(values, position + jitter, c=colour, cmap="coolwarm", s=9, vmin=0, vmax=1)
    spread.axvline(0, color="grey", lw=0.8)
    spread.set_xlabel("SHAP value: push towards the positive class (+) or away (-)")
    spread.set_title("Per patient (red = high value, blue = low)")
    return figure


def plot_contributions(contributions: list[Contribution], title: str) -> Figure:
    """One patient's top contributions as signed horizontal bars."""
    labels = [f"{c.feature} = {_short(c.value)}" for c in contributions][::-1]
    values = [c.shap_value for c in contributions][::-1]
    figure = Figure(figsize=(6.5, 0.45 * len(labels) + 1.2), layout="constrained")
    axis = figure.subplots()
    axis.barh(labels, values, color=["#c0392b" if v > 0 else "#2e86c1" for v in values])
    axis.axvline(0, color="grey", lw=0.8)
    axis.set_xlabel("change in predicted probability")
    axis.set_title(title)
    return figure


def _rank_colour(values: pd.Series) -> np.ndarray:
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().sum() == 0:
        numeric = values.astype("category").cat.codes.astype(float)
    ranks = numeric.rank(pct=True)
    return ranks.fillna(0.5).to_numpy()


def _short(value: object) -> str:
    if isinstance(value, float):
        return "missing" if np.isnan(value) else f"{value:.3g}"
    return str(value)
