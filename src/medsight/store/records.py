"""Predictions and clinician feedback: writing them, reading them under the ownership rules.

A prediction keeps the SHA-256 of its input bytes; the bytes themselves only when the caller
passes ``store_raw=True`` (``StoreSettings.store_raw_inputs``). Every write and every read is
audited in the caller's transaction. Clinicians see only their own predictions and feedback;
data scientists and admins see all of them (:mod:`medsight.store.permissions`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from medsight.bundle.prediction import class_text, findings_row
from medsight.store import audit
from medsight.store.audit import AuditAction
from medsight.store.errors import NotFoundError, PermissionDenied, StoreError
from medsight.store.models import Feedback, ModelVersion, Prediction, User, Verdict
from medsight.store.permissions import Action, can, require, require_owner

MAX_PAGE: Final = 200
MAX_COMMENT: Final = 2000
# rows come back in the order given, also where the driver inserts them in several batches
_INSERT_PREDICTIONS: Final = insert(Prediction).returning(
    Prediction.id, sort_by_parameter_order=True
)


def fingerprint(data: bytes) -> str:
    """Hex SHA-256 of an input's bytes: how a prediction identifies its input."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class PredictionEntry:
    """One prediction to store: what was asked (the input's bytes) and the model's answer.

    ``output`` is the model's full answer (probabilities, classes, warnings), without PHI."""

    task: str
    input_bytes: bytes
    label: str
    probability: float | None = None
    output: dict[str, Any] = field(default_factory=dict)
    model_version_id: int | None = None
    input_type: str = ""


def record_predictions(
    session: Session,
    user: User,
    entries: Sequence[PredictionEntry],
    *,
    store_raw: bool = False,
    source: str,
) -> list[int]:
    """Store predictions made for ``user`` (who must be allowed to predict) with one audit line
    each, in ``session``'s transaction; return their ids in the order of ``entries``.

    Two multi-row inserts, not ORM objects: the service writes this for every request, and the
    ORM's unit of work cost about twice the statements themselves.
    """
    require(user, Action.PREDICT)
    if not entries:
        return []
    rows = [
        {
            "user_id": user.id,
            "task": entry.task,
            "model_version_id": entry.model_version_id,
            "input_sha256": fingerprint(entry.input_bytes),
            "input_size": len(entry.input_bytes),
            "input_type": entry.input_type[:100],
            "raw_input": bytes(entry.input_bytes) if store_raw else None,
            "label": entry.label,
            "probability": entry.probability,
            "output": dict(entry.output),
        }
        for entry in entries
    ]
    session.flush()  # pending ORM changes first
    result = session.connection().execute(_INSERT_PREDICTIONS, rows)
    ids = list(result.scalars())
    audit.insert_events(
        session,
        [
            audit.event_values(
                AuditAction.PREDICTION,
                actor=user,
                source=source,
                target_type="prediction",
                target_id=prediction_id,
                detail={
                    "task": row["task"],
                    "model_version_id": row["model_version_id"],
                    "input_sha256": row["input_sha256"],
                    "raw_stored": store_raw,
                },
            )
            for prediction_id, row in zip(ids, rows, strict=True)
        ],
    )
    return ids


def record_prediction(
    session: Session,
    user: User,
    *,
    task: str,
    input_bytes: bytes,
    label: str,
    probability: float | None = None,
    output: dict[str, Any] | None = None,
    model_version: ModelVersion | None = None,
    model_version_id: int | None = None,
    input_type: str = "",
    store_raw: bool = False,
    source: str,
) -> Prediction:
    """Store one prediction (:func:`record_predictions`) and return it as a loaded row. The
    model is ``model_version`` or, when only its id is at hand, ``model_version_id``."""
    if model_version is not None:
        model_version_id = model_version.id
    entry = PredictionEntry(
        task=task,
        input_bytes=input_bytes,
        label=label,
        probability=probability,
        output=dict(output or {}),
        model_version_id=model_version_id,
        input_type=input_type,
    )
    (prediction_id,) = record_predictions(
        session, user, [entry], store_raw=store_raw, source=source
    )
    prediction = session.get(Prediction, prediction_id)
    assert prediction is not None  # inserted in this transaction
    return prediction


def get_prediction(session: Session, user: User, prediction_id: int, *, source: str) -> Prediction:
    """One prediction, if ``user`` may see it (their own, or any for data scientists and admins)."""
    prediction = session.get(Prediction, prediction_id)
    if prediction is None:
        raise NotFoundError(f"prediction {prediction_id} does not exist.")
    require_owner(
        user,
        prediction.user_id,
        own=Action.PREDICTION_READ_OWN,
        any_owner=Action.PREDICTION_READ_ALL,
        what=f"prediction {prediction_id}",
    )
    audit.record(
        session,
        AuditAction.VIEW,
        actor=user,
        source=source,
        target_type="prediction",
        target_id=prediction.id,
    )
    return prediction


def list_predictions(
    session: Session,
    user: User,
    *,
    source: str,
    task: str | None = None,
    owner_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Sequence[Prediction]:
    """Predictions newest first: a clinician's own only; others may filter by ``owner_id``."""
    if can(user, Action.PREDICTION_READ_ALL):
        owner = owner_id
    else:
        require(user, Action.PREDICTION_READ_OWN)
        owner = user.id
    query = select(Prediction).order_by(Prediction.id.desc())
    if owner is not None:
        query = query.where(Prediction.user_id == owner)
    if task is not None:
        query = query.where(Prediction.task == task)
    rows = session.scalars(query.limit(_page(limit)).offset(max(offset, 0))).all()
    _audit_list(session, user, "prediction", [r.id for r in rows], source)
    return rows


def add_feedback(
    session: Session,
    user: User,
    prediction_id: int,
    *,
    verdict: Verdict | str,
    label: str | None = None,
    comment: str = "",
    source: str,
) -> Feedback:
    """A clinician confirms or corrects one of their own predictions.

    ``confirmed`` takes the prediction's label when ``label`` is omitted; ``corrected`` needs a
    different label, one of the model's classes when the prediction recorded them. For a
    multi-label prediction the label is the set of present findings (``a|b`` in any order and
    case, or ``none``), stored as the model writes labels.
    """
    require(user, Action.FEEDBACK_WRITE)
    prediction = session.get(Prediction, prediction_id)
    if prediction is None:
        raise NotFoundError(f"prediction {prediction_id} does not exist.")
    if prediction.user_id != user.id:
        raise PermissionDenied(
            f"prediction {prediction_id} belongs to another user; feedback comes from the "
            "clinician who asked for the prediction."
        )
    verdict, label = _checked_feedback(prediction, verdict, label, comment)
    feedback = Feedback(
        prediction_id=prediction.id,
        user_id=user.id,
        verdict=verdict,
        label=label,
        comment=comment.strip(),
    )
    session.add(feedback)
    session.flush()
    audit.record(
        session,
        AuditAction.FEEDBACK,
        actor=user,
        source=source,
        target_type="prediction",
        target_id=prediction.id,
        detail={"feedback_id": feedback.id, "verdict": str(verdict), "task": prediction.task},
    )
    return feedback


def _checked_feedback(
    prediction: Prediction, verdict: Verdict | str, label: str | None, comment: str
) -> tuple[Verdict, str]:
    try:
        verdict = Verdict(verdict)
    except ValueError:
        raise StoreError(f"verdict {verdict!r}: use 'confirmed' or 'corrected'.") from None
    if len(comment) > MAX_COMMENT:
        raise StoreError(f"comment is {len(comment)} characters; keep it under {MAX_COMMENT}.")
    classes = prediction.output.get("classes")
    known = [str(c) for c in classes] if isinstance(classes, list) else []
    multi_label = bool(known) and multi_label_output(prediction.output)
    if multi_label and label:
        label = _findings_label(label, known)
    if verdict is Verdict.CONFIRMED:
        if label not in (None, "", prediction.label):
            raise StoreError(
                f"a confirmation keeps the predicted label {prediction.label!r}; "
                f"to give {label!r}, send verdict 'corrected'."
            )
        return verdict, prediction.label
    if not label:
        raise StoreError("a correction needs the correct label.")
    if known and not multi_label and label not in known:
        raise StoreError(f"label {label!r} is not one of the model's classes {classes}.")
    if label == prediction.label:
        raise StoreError(f"the correction {label!r} equals the prediction; send 'confirmed'.")
    return verdict, label


def multi_label_output(output: dict[str, Any]) -> bool:
    """Whether a stored prediction called each finding separately (older multi-label rows have
    per-finding thresholds but no flag)."""
    return bool(output.get("multi_label")) or isinstance(output.get("finding_thresholds"), dict)


def _findings_label(label: str, findings: list[str]) -> str:
    """A correction of a multi-label prediction as the model writes labels: the present
    findings in the model's order joined by ``|``, or ``none``."""
    try:
        row = findings_row(label, findings)
    except ValueError as exc:
        raise StoreError(f"correction {label!r}: {exc}.") from None
    return class_text(row, findings)


def list_feedback(
    session: Session,
    user: User,
    *,
    source: str,
    task: str | None = None,
    prediction_id: int | None = None,
    limit: int = 50,
    offset: int = 0,
) -> Sequence[Feedback]:
    """Feedback newest first: a clinician's own only; data scientists and admins see all."""
    query = select(Feedback).join(Prediction).order_by(Feedback.id.desc())
    if not can(user, Action.FEEDBACK_READ_ALL):
        require(user, Action.FEEDBACK_READ_OWN)
        query = query.where(Feedback.user_id == user.id)
    if task is not None:
        query = query.where(Prediction.task == task)
    if prediction_id is not None:
        query = query.where(Feedback.prediction_id == prediction_id)
    rows = session.scalars(query.limit(_page(limit)).offset(max(offset, 0))).all()
    _audit_list(session, user, "feedback", [r.id for r in rows], source)
    return rows


def _page(limit: int) -> int:
    if not 1 <= limit <= MAX_PAGE:
        raise StoreError(f"page size {limit}: choose 1 to {MAX_PAGE}.")
    return limit


def _audit_list(session: Session, user: User, kind: str, ids: list[int], source: str) -> None:
    audit.record(
        session,
        AuditAction.VIEW,
        actor=user,
        source=source,
        target_type=kind,
        detail={"count": len(ids), "ids": ids},
    )
