"""Evaluation figures built on matplotlib.figure.Figure (no pyplot, no global backend state).

Repeated cross-validation probabilities (n_repeats, n) are drawn from the first repeat only, and
the legend says so: one curve per repeat would hide the model behind spaghetti.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.calibration import calibration_curve
from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

from medsight.errors import DataError
from medsight.evaluate._validate import check_binary_labels, check_probabilities
from medsight.evaluate.metrics import binary_metrics, expected_calibration_error

Probabilities = ArrayLike | Mapping[str, ArrayLike]

_DPI = 110
_CHANCE = {"color": "grey", "linestyle": "--", "linewidth": 0.9}


def plot_roc(y_true: ArrayLike, y_prob: Probabilities, label: str | None = None) -> Figure:
    """ROC curve(s); `y_prob` may map model names to probabilities. AUROC in the legend."""
    y, curves = _curves(y_true, y_prob, label, both_classes=True)
    figure, axis = _figure((5.5, 5))
    for name, p in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        axis.plot(fpr, tpr, lw=1.8, label=f"{name} (AUROC {binary_metrics(y, p)['auroc']:.3f})")
    axis.plot([0, 1], [0, 1], label="chance", **_CHANCE)
    _finish(
        axis,
        "ROC curve: sensitivity against false alarms",
        "1 − specificity (false-positive rate)",
        "Sensitivity (true-positive rate)",
        legend_loc="lower right",
    )
    return figure


def plot_roc_per_class(
    indicator: ArrayLike,
    y_prob: ArrayLike,
    names: Sequence[str],
    thresholds: Sequence[float] | None = None,
    *,
    noun: str = "class",
) -> Figure:
    """One ROC curve per class against the rest (multi-class) or per finding (multi-label):
    ``indicator`` and ``y_prob`` are ``(n, K)``; with ``thresholds`` (one per column) each
    curve's operating point is marked. Columns without positive and negative rows are left
    out and named under the plot."""
    y = np.asarray(indicator)
    p = np.asarray(y_prob, dtype=float)
    if y.ndim != 2 or p.shape != y.shape or len(names) != y.shape[1]:
        raise DataError(
            f"per-class ROC needs (n, K) 0/1 labels and probabilities and K names; got "
            f"{y.shape}, {p.shape} and {len(names)} names."
        )
    figure, axis = _figure((6, 5.5))
    if len(names) > 10:  # the default cycle repeats after 10 colours
        axis.set_prop_cycle(color=[colormaps["tab20"](i % 20) for i in range(len(names))])
    skipped = []
    for k, name in enumerate(names):
        column = y[:, k].astype(int)
        if column.min() == column.max():
            skipped.append(str(name))
            continue
        fpr, tpr, _ = roc_curve(column, p[:, k])
        auroc = binary_metrics(column, p[:, k])["auroc"]
        (line,) = axis.plot(fpr, tpr, lw=1.3, label=f"{name} ({auroc:.3f})")
        if thresholds is not None:
            called = p[:, k] >= thresholds[k]
            axis.plot(
                called[column == 0].mean(),
                called[column == 1].mean(),
                "o",
                ms=5,
                color=line.get_color(),
            )
    axis.plot([0, 1], [0, 1], label="chance", **_CHANCE)
    note = " (dots: operating points)" if thresholds is not None else ""
    _finish(
        axis,
        f"ROC curve per {noun}, AUROC in the legend" + note,
        "1 − specificity (false-positive rate)"
        + (f"\nno curve without both kinds of image: {', '.join(skipped)}" if skipped else ""),
        "Sensitivity (true-positive rate)",
        legend_loc="lower right",
    )
    axis.legend(loc="lower right", fontsize=7 if len(names) > 6 else 9)
    return figure


def plot_pr(y_true: ArrayLike, y_prob: Probabilities, label: str | None = None) -> Figure:
    """Precision–recall curve(s) with average precision in the legend and prevalence as baseline."""
    y, curves = _curves(y_true, y_prob, label, both_classes=True)
    figure, axis = _figure((5.5, 5))
    for name, p in curves.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ap = binary_metrics(y, p)["auprc"]
        axis.step(recall, precision, where="post", lw=1.8, label=f"{name} (AP {ap:.3f})")
    axis.axhline(y.mean(), label=f"prevalence ({y.mean():.1%})", **_CHANCE)
    _finish(
        axis,
        "Precision–recall: how many positive calls are right",
        "Sensitivity (recall)",
        "Precision (positive predictive value)",
        legend_loc="lower left",
    )
    return figure


def plot_calibration(y_true: ArrayLike, y_prob: ArrayLike, n_bins: int = 10) -> Figure:
    """Reliability diagram (observed rate per probability bin) over a histogram of predictions."""
    y, curves = _curves(y_true, y_prob, None)
    p = next(iter(curves.values()))
    observed, predicted = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    ece = expected_calibration_error(y, p, n_bins)
    figure = Figure(figsize=(5.5, 6.2), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.plot([0, 1], [0, 1], label="perfectly calibrated", **_CHANCE)
    top.plot(predicted, observed, marker="o", lw=1.8, label=f"model (ECE {ece:.3f})")
    _finish(
        top,
        "Calibration: do predicted risks match observed rates?",
        "",
        "Observed fraction positive",
        legend_loc="upper left",
    )
    edges = np.linspace(0, 1, n_bins + 1)
    bottom.hist(
        [p[y == 0], p[y == 1]],
        bins=edges,
        stacked=True,
        color=["#7fa7c9", "#c0504d"],
        label=["negative cases", "positive cases"],
    )
    bottom.set_xlabel("Predicted probability")
    bottom.set_ylabel("Rows")
    bottom.set_ylim(top=bottom.get_ylim()[1] * 1.4)  # room for the legend above the bars
    bottom.legend(loc="upper center", fontsize=8, frameon=False, ncols=2)
    return figure


def plot_confusion_matrix(
    y_true: ArrayLike, y_pred: ArrayLike, class_names: Sequence[str]
) -> Figure:
    """Counts with the share of each true class (row %); classes indexed 0..K-1."""
    names = [str(c) for c in class_names]
    actual, predicted = np.asarray(y_true), np.asarray(y_pred)
    if actual.shape != predicted.shape or actual.ndim != 1:
        raise DataError(
            f"y_true {actual.shape} and y_pred {predicted.shape} must be 1-D and the same length."
        )
    if actual.size and max(actual.max(), predicted.max()) >= len(names):
        raise DataError(
            f"labels go up to {max(actual.max(), predicted.max())} but only {len(names)} "
            f"class_names were given ({names}); pass one name per class index."
        )
    counts = confusion_matrix(actual, predicted, labels=np.arange(len(names)))
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    size = 2.2 + 1.1 * len(names)
    figure, axis = _figure((size + 1, size))
    image = axis.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            colour = "white" if share[i, j] > 0.6 else "black"
            text = f"{counts[i, j]}\n({share[i, j]:.0%} of row)"
            axis.text(j, i, text, ha="center", va="center", color=colour, fontsize=10)
    axis.set_xticks(range(len(names)), names)
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("Predicted by the model")
    axis.set_ylabel("Actual (reference diagnosis)")
    axis.set_title("Confusion matrix")
    figure.colorbar(image, ax=axis, label="Share of the actual class")
    return figure


def figure_to_png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (no software metadata, so output is reproducible)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def figure_to_png_base64(fig: Figure) -> str:
    """The figure as a base64 PNG string, ready for a data: URI."""
    return base64.b64encode(figure_to_png_bytes(fig)).decode("ascii")


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write the figure; the format follows the file extension (.png, .svg, .pdf)."""
    path = Path(path)
    fig.savefig(path, dpi=_DPI)
    return path


def _curves(
    y_true: ArrayLike, y_prob: Probabilities, label: str | None, *, both_classes: bool = False
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels and a name → 1-D probabilities mapping; 2-D repeats keep the first repeat."""
    y = check_binary_labels(y_true)
    if both_classes and y.min() == y.max():
        raise DataError(
            f"this curve needs positive and negative rows; all {y.size} rows are {y[0]}."
        )
    named = dict(y_prob) if isinstance(y_prob, Mapping) else {label or "model": y_prob}
    curves = {}
    for name, probabilities in named.items():
        p = check_probabilities(probabilities, y.size, ndims=(1, 2))
        if p.ndim == 2:
            name, p = f"{name}, repeat 1 of {p.shape[0]}", p[0]
        curves[name] = p
    return y, curves


def _figure(size: tuple[float, float]) -> tuple[Figure, Axes]:
    figure = Figure(figsize=size, layout="constrained")
    return figure, figure.subplots()


def _finish(axis: Axes, title: str, xlabel: str, ylabel: str, *, legend_loc: str) -> None:
    axis.set_xlim(-0.01, 1.01)
    axis.set_ylim(-0.01, 1.02)
    axis.set_title(title)
    if xlabel:
        axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend(loc=legend_loc, fontsize=9)
