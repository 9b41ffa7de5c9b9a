"""Original train, val and held-out cases with the feedback cases taken out, and the notes on it.

Image and ECG retraining reuse the champion's own splits. A feedback case that is also an
original case (matched by content) is a training case now: it leaves the held-out comparison and
early stopping, and replaces its original training copy (the clinician's label is the newer one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, Self, TypeVar

import numpy as np

from medsight.retrain.base import DEFAULT_HOLDOUT_FRACTION, RetrainOptions


class Subsettable(Protocol):
    def __len__(self) -> int: ...

    def subset(self, index: np.ndarray) -> Self: ...


Cases = TypeVar("Cases", bound=Subsettable)


@dataclass
class FeedbackSplit(Generic[Cases]):
    """The three sets after feedback came out, the counts for the report, and its notes."""

    train: Cases
    val: Cases
    held: Cases
    counts: dict[str, int]
    notes: list[str] = field(default_factory=list)


def holdout_notes(options: RetrainOptions, kind: str) -> list[str]:
    """What the report says about the held-out set chosen (``kind``: e.g. ``"image"``)."""
    if options.holdout is not None:
        return [
            "The original test split was not used: the comparison is on --holdout, and the "
            "challenger trains on the original train split as the champion did."
        ]
    if options.holdout_fraction != DEFAULT_HOLDOUT_FRACTION:
        return [
            f"--holdout-fraction does not apply to {kind} tasks: the original test split is the "
            "held-out set (or pass --holdout)."
        ]
    return []


def split_out_feedback(
    train: Cases,
    val: Cases,
    held: Cases,
    keys: set[str],
    keys_of: Callable[[Cases], list[str]],
    *,
    noun: str,
    any_feedback: bool,
) -> FeedbackSplit[Cases]:
    """``train``, ``val`` and ``held`` less the cases whose key (``keys_of`` gives one per case)
    is in ``keys``; ``noun`` names the cases in notes (``"images"``, ``"records"``)."""

    def without(cases: Cases) -> tuple[Cases, int]:
        if not keys or len(cases) == 0:
            return cases, 0
        keep = np.array([key not in keys for key in keys_of(cases)])
        return cases.subset(np.flatnonzero(keep)), int((~keep).sum())

    held, excluded = without(held)
    val, val_excluded = without(val)
    train, replaced = without(train)
    notes = []
    if excluded:
        notes.append(
            f"{excluded} held-out {noun} identical to feedback cases were left out of the "
            "comparison (the challenger trained on them)."
        )
    if val_excluded:
        notes.append(
            f"{val_excluded} validation {noun} identical to feedback cases were left out of "
            "early stopping (they are training cases now)."
        )
    if replaced:
        notes.append(
            f"{replaced} original training {noun} identical to feedback cases were replaced "
            "by the feedback (the clinician's label is the newer one)."
        )
    if not any_feedback:
        notes.append(
            "No usable feedback: the challenger is the champion's recipe retrained on the "
            "original data only."
        )
    counts = {
        "holdout_excluded_as_feedback": excluded,
        "validation_excluded_as_feedback": val_excluded,
        "original_replaced_by_feedback": replaced,
    }
    return FeedbackSplit(train, val, held, counts, notes)
