"""Stored predictions and feedback: ``/v1/predictions``, ``/v1/predictions/{id}[/feedback]``.

Ownership rules and audit lines come from :mod:`medsight.store.records`: a clinician sees and
answers only their own predictions (403 for another's); data scientists and admins read all.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, status

from medsight.serve.auth import Caller, caller, user_of
from medsight.serve.schemas import (
    TASK_NAME_REGEX,
    FeedbackRequest,
    FeedbackResponse,
    PredictionList,
    PredictionRecord,
    PredictionSummary,
)
from medsight.serve.state import ServiceState
from medsight.store import records
from medsight.store.models import Feedback, Prediction

router = APIRouter(prefix="/v1/predictions", tags=["cases"])
Who = Annotated[Caller, Depends(caller)]
MAX_ID = 2**31 - 1  # the id columns' range on every supported database
PredictionId = Annotated[int, Path(ge=1, le=MAX_ID)]
_ERRORS = {
    401: {"description": "No or invalid API token."},
    403: {"description": "Not the user's own record, or the role forbids it."},
    404: {"description": "No such prediction."},
}


@router.get("", response_model=PredictionList, responses=_ERRORS)
def list_predictions(
    request: Request,
    who: Who,
    task: Annotated[str | None, Query(pattern=TASK_NAME_REGEX)] = None,
    owner_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Data scientists, admins.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=records.MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> PredictionList:
    """Predictions newest first: a clinician's own; everyone's for data scientists and admins."""
    state: ServiceState = request.app.state.medsight
    with state.write() as session:
        rows = records.list_predictions(
            session,
            user_of(session, who),
            source=who.source,
            task=task,
            owner_id=owner_id,
            limit=limit,
            offset=offset,
        )
        return PredictionList(predictions=[_summary(row) for row in rows])


@router.get("/{prediction_id}", response_model=PredictionRecord, responses=_ERRORS)
def get_prediction(request: Request, who: Who, prediction_id: PredictionId) -> PredictionRecord:
    """One prediction with its stored output and feedback (the view is audited)."""
    state: ServiceState = request.app.state.medsight
    with state.write() as session:
        row = records.get_prediction(
            session, user_of(session, who), prediction_id, source=who.source
        )
        return PredictionRecord(
            **_summary(row).model_dump(),
            output=row.output,
            feedback=[_feedback(f) for f in row.feedback],
        )


@router.post(
    "/{prediction_id}/feedback",
    response_model=FeedbackResponse,
    status_code=status.HTTP_201_CREATED,
    responses={**_ERRORS, 422: {"description": "Inconsistent verdict and label."}},
)
def add_feedback(
    request: Request,
    who: Who,
    prediction_id: PredictionId,
    body: FeedbackRequest,
) -> FeedbackResponse:
    """Confirm or correct one of your own predictions (clinicians)."""
    state: ServiceState = request.app.state.medsight
    with state.write() as session:
        feedback = records.add_feedback(
            session,
            user_of(session, who),
            prediction_id,
            verdict=body.verdict,
            label=body.label,
            comment=body.comment,
            source=who.source,
        )
        return _feedback(feedback)


def _summary(row: Prediction) -> PredictionSummary:
    return PredictionSummary(
        id=row.id,
        task=row.task,
        label=row.label,
        probability=row.probability,
        user_id=row.user_id,
        model_version=row.model_version.version if row.model_version is not None else None,
        input_sha256=row.input_sha256,
        input_type=row.input_type,
        created_at=row.created_at,
    )


def _feedback(row: Feedback) -> FeedbackResponse:
    return FeedbackResponse(
        id=row.id,
        prediction_id=row.prediction_id,
        verdict=str(row.verdict),
        label=row.label,
        comment=row.comment,
        created_at=row.created_at,
    )
