"""The audit trail: who did what, when, from where, with a small JSON detail and no PHI.

Write with :func:`record` in the same session (transaction) as the action it describes, so an action
and its audit line are committed together or not at all. The table is append-only in the database
(triggers created by the migration reject UPDATE and DELETE), not only in this module.

``detail`` carries ids, digests, versions and labels, never names, dates of birth or raw values;
:func:`record` refuses keys that usually hold identifying data and details larger than 4 KiB.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from medsight.store.models import AuditEvent, User
from medsight.store.permissions import Action, require

MAX_DETAIL_BYTES: Final = 4096
PHI_KEYS: Final = frozenset(
    {
        "patient",
        "patient_name",
        "patient_id",
        "name_of_patient",
        "birth_date",
        "date_of_birth",
        "dob",
        "mrn",
        "address",
        "phone",
        "email",
        "ssn",
        "raw_input",
        "input_bytes",
        "password",
        "token",
    }
)
CLI_SOURCE: Final = "cli"
_INSERT_EVENT: Final = insert(AuditEvent)


class AuditAction(StrEnum):
    """What an audit line records."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    PREDICTION = "prediction"
    VIEW = "view"
    FEEDBACK = "feedback"
    REGISTER = "register"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    RETRAIN = "retrain"
    USER_CREATE = "user_create"
    USER_UPDATE = "user_update"
    TOKEN_CREATE = "token_create"
    TOKEN_REVOKE = "token_revoke"


def record(
    session: Session,
    action: AuditAction | str,
    *,
    actor: User | None,
    source: str,
    target_type: str = "",
    target_id: object = "",
    detail: dict[str, Any] | None = None,
    actor_name: str | None = None,
) -> AuditEvent:
    """Add one audit line to ``session`` (flushed, so it has an id) and return it.

    ``actor`` is the acting user (``None`` for an unknown one, e.g. a failed login; then give
    ``actor_name``); ``source`` is where the request came from: an IP address or host, or ``"cli"``.
    """
    event = AuditEvent(
        **event_values(
            action,
            actor=actor,
            source=source,
            target_type=target_type,
            target_id=target_id,
            detail=detail,
            actor_name=actor_name,
        )
    )
    session.add(event)
    session.flush()
    return event


def event_values(
    action: AuditAction | str,
    *,
    actor: User | None,
    source: str,
    target_type: str = "",
    target_id: object = "",
    detail: dict[str, Any] | None = None,
    actor_name: str | None = None,
) -> dict[str, Any]:
    """The column values of one audit line (arguments as for :func:`record`), checked for PHI
    and size; for writers that insert many lines in one statement (:func:`insert_events`)."""
    detail = dict(detail or {})
    _check_detail(detail)
    name = actor.username if actor is not None else (actor_name or "anonymous")
    return {
        "actor_id": actor.id if actor is not None else None,
        "actor": name[:150],
        "action": str(action),
        "target_type": target_type,
        "target_id": str(target_id),
        "source": (source or "unknown")[:255],
        "detail": detail,
    }


def insert_events(session: Session, events: Sequence[dict[str, Any]]) -> None:
    """Insert audit lines made by :func:`event_values` in ``session``'s transaction, in one
    statement (the time of each line is set by the column default)."""
    if events:
        session.flush()  # earlier ORM changes first, so the log keeps the order of actions
        session.connection().execute(_INSERT_EVENT, list(events))


def _check_detail(detail: dict[str, Any]) -> None:
    """Refuse details that look like PHI or are too large (a programming error: ValueError)."""
    flagged = sorted(_keys(detail) & PHI_KEYS)
    if flagged:
        raise ValueError(f"audit detail must not carry identifying data; remove keys {flagged}.")
    size = len(json.dumps(detail, default=str))
    if size > MAX_DETAIL_BYTES:
        raise ValueError(f"audit detail is {size} bytes; keep it under {MAX_DETAIL_BYTES}.")


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {str(k).lower() for k in value}
        for item in value.values():
            found |= _keys(item)
        return found
    if isinstance(value, list | tuple):
        return set().union(*(_keys(item) for item in value)) if value else set()
    return set()


def list_events(
    session: Session,
    viewer: User,
    *,
    actor_id: int | None = None,
    action: AuditAction | str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[AuditEvent]:
    """Audit lines, newest first, filtered; only administrators may read the log."""
    require(viewer, Action.AUDIT_READ)
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if action is not None:
        query = query.where(AuditEvent.action == str(action))
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    return session.scalars(query.limit(min(limit, 1000)).offset(offset)).all()
