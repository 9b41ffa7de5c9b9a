"""Feedback cases for retraining: the latest clinician verdict on each prediction of a task.

A confirmed prediction trains on the model's label, a corrected one on the clinician's label.
Only predictions whose raw input was stored (``MEDSIGHT_STORE_INPUTS=true``) can become training
cases; the others are counted as unusable with the reason, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from medsight.retrain.base import FeedbackCase, UnusableCase
from medsight.store.models import Feedback, User
from medsight.store.records import MAX_PAGE, list_feedback

NO_RAW_INPUT = (
    "the prediction's input was not stored (MEDSIGHT_STORE_INPUTS was off when it was made), "
    "so there is nothing to train on"
)


@dataclass
class FeedbackCases:
    """Usable cases, unusable ones with reasons, and how many feedback rows were read."""

    usable: list[FeedbackCase] = field(default_factory=list)
    unusable: list[UnusableCase] = field(default_factory=list)
    feedback_rows: int = 0
    superseded: int = 0

    @property
    def predictions(self) -> int:
        """Predictions with at least one verdict."""
        return len(self.usable) + len(self.unusable)


def collect_cases(session: Session, user: User, task: str, *, source: str) -> FeedbackCases:
    """Every prediction of ``task`` with feedback, newest verdict first (the one that counts).

    Reads through :func:`medsight.store.records.list_feedback`, so the permission check and the
    audit lines of reading feedback are the store's own.
    """
    result = FeedbackCases()
    seen: set[int] = set()
    offset = 0
    while True:
        page = list_feedback(session, user, source=source, task=task, limit=MAX_PAGE, offset=offset)
        for feedback in page:  # newest first: the first verdict seen per prediction wins
            result.feedback_rows += 1
            if feedback.prediction_id in seen:
                result.superseded += 1
                continue
            seen.add(feedback.prediction_id)
            _add(result, feedback)
        if len(page) < MAX_PAGE:
            return result
        offset += MAX_PAGE


def _add(result: FeedbackCases, feedback: Feedback) -> None:
    prediction = feedback.prediction
    if prediction.raw_input is None:
        result.unusable.append(UnusableCase(prediction.id, feedback.id, NO_RAW_INPUT))
        return
    result.usable.append(
        FeedbackCase(
            prediction_id=prediction.id,
            feedback_id=feedback.id,
            verdict=str(feedback.verdict),
            label=feedback.label,
            raw_input=bytes(prediction.raw_input),
            input_type=prediction.input_type,
        )
    )
