"""ANSI/AAMI EC57-style tables: beat classification per AAMI class and R-peak detection.

Beat classes are the AAMI groups N, S, V, F, Q (:data:`medsight.signal.beats.AAMI_CLASSES`; map
MIT-BIH symbols with :func:`medsight.signal.beats.beat_labels`). Per class, one-vs-rest from the
confusion matrix: sensitivity (Se) = TP / (TP + FN), positive predictivity (+P, PPV) =
TP / (TP + FP), F1, and the support (reference beats). "Gross" statistics pool the beats (or
detections) of all records before dividing, as EC57 asks; "average" detection statistics are the
mean over records. EC57's special cases (e.g. not counting fusion beats called V against VEB +P)
are not applied: the tables are plain confusion-matrix statistics. Undefined ratios are NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from medsight.errors import DataError
from medsight.signal.beats import AAMI_CLASSES

if TYPE_CHECKING:
    from medsight.signal.peaks import PeakMatch

BEAT_COLUMNS: tuple[str, ...] = (
    "support",
    "predicted",
    "tp",
    "fn",
    "fp",
    "sensitivity",
    "ppv",
    "f1",
)
DETECTION_COLUMNS: tuple[str, ...] = ("tp", "fn", "fp", "sensitivity", "ppv")


def beat_confusion(
    reference: ArrayLike, predicted: ArrayLike, classes: Sequence[str] = AAMI_CLASSES
) -> pd.DataFrame:
    """Counts of reference class (rows) by predicted class (columns), in ``classes`` order."""
    ref, pred = _check_labels(reference, predicted, classes)
    index = {name: i for i, name in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, ([index[r] for r in ref], [index[p] for p in pred]), 1)
    return pd.DataFrame(
        counts,
        index=pd.Index(list(classes), name="reference"),
        columns=pd.Index(list(classes), name="predicted"),
    )


def beat_class_table(
    reference: ArrayLike, predicted: ArrayLike, classes: Sequence[str] = AAMI_CLASSES
) -> pd.DataFrame:
    """Per-class support, TP, FN, FP, Se, PPV and F1, with two summary rows.

    Rows are ``classes``, then ``"macro"`` (the unweighted mean of Se, PPV and F1 over classes
    that have reference beats) and ``"gross"`` (all beats pooled: TP = correctly classified,
    so Se = PPV = F1 = accuracy).
    """
    confusion = beat_confusion(reference, predicted, classes).to_numpy()
    tp = np.diag(confusion)
    support, n_predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    counts = pd.DataFrame(
        {"support": support, "predicted": n_predicted, "tp": tp},
        index=pd.Index(list(classes), name="class"),
    ).assign(fn=support - tp, fp=n_predicted - tp)
    counts.loc["gross"] = counts.sum()
    table = _with_rates(counts)
    present = table.loc[list(classes)].query("support > 0")
    table.loc["macro"] = {"support": support.sum(), **present[["sensitivity", "ppv", "f1"]].mean()}
    return table.loc[[*classes, "macro", "gross"], list(BEAT_COLUMNS)]


def rpeak_detection_table(matches: Mapping[str, PeakMatch]) -> pd.DataFrame:
    """One row per record of R-peak TP, FN, FP, Se and PPV, then ``"gross"`` and ``"average"``.

    ``matches`` maps record names to :func:`medsight.signal.peaks.match_peaks` results.
    ``"gross"`` pools the counts of all records; ``"average"`` is the mean of the per-record
    Se and PPV (records where one is undefined are left out of that mean).
    """
    if not matches:
        raise DataError("No records to tabulate: matches is empty.")
    rows = {str(name): {"tp": m.tp, "fn": m.fn, "fp": m.fp} for name, m in matches.items()}
    counts = pd.DataFrame.from_dict(rows, orient="index").rename_axis("record")
    counts.loc["gross"] = counts.sum()
    table = _with_rates(counts)
    table.loc["average"] = table.drop(index="gross")[["sensitivity", "ppv"]].mean()
    return table.loc[:, list(DETECTION_COLUMNS)]


def _with_rates(counts: pd.DataFrame) -> pd.DataFrame:
    """``counts`` (tp, fn, fp columns) as floats with sensitivity, PPV and F1 added."""
    table = counts.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["sensitivity"] = table["tp"] / (table["tp"] + table["fn"])
        table["ppv"] = table["tp"] / (table["tp"] + table["fp"])
        table["f1"] = 2 * table["tp"] / (2 * table["tp"] + table["fn"] + table["fp"])
    return table


def _check_labels(
    reference: ArrayLike, predicted: ArrayLike, classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=object).astype(str).ravel()
    pred = np.asarray(predicted, dtype=object).astype(str).ravel()
    if ref.size != pred.size:
        raise DataError(
            f"reference has {ref.size} beat labels and predicted {pred.size}; they must pair up."
        )
    if ref.size == 0:
        raise DataError("No beats: reference and predicted labels are empty.")
    unknown = sorted((set(ref) | set(pred)) - set(classes))
    if unknown:
        raise DataError(
            f"Beat labels {unknown} are not among the classes {tuple(classes)}; map MIT-BIH "
            "symbols with medsight.signal.beats.beat_labels first."
        )
    return ref, pred
