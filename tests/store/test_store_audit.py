"""The audit log: written for every action, append-only in the database, free of PHI keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError

from medsight.store import audit
from medsight.store.audit import AuditAction, list_events
from medsight.store.database import Database
from medsight.store.errors import PermissionDenied
from medsight.store.models import AuditEvent
from medsight.store.permissions import Role
from medsight.store.records import add_feedback, get_prediction, record_prediction
from medsight.store.testing import BACKENDS, add_user, fresh_database


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with fresh_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
def event_id(db: Database) -> int:
    with db.transaction() as session:
        user = add_user(session, "root", Role.ADMIN)
        event = audit.record(session, AuditAction.VIEW, actor=user, source="127.0.0.1")
        return event.id


def _count(db: Database) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent))


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_log SET action = 'nothing' WHERE id = :id",
        "UPDATE audit_log SET detail = '{}'",
        "DELETE FROM audit_log WHERE id = :id",
        "DELETE FROM audit_log",
    ],
)
def test_database_rejects_update_and_delete(db: Database, event_id: int, statement: str) -> None:
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as connection:
        connection.execute(text(statement), {"id": event_id})
    with db.transaction() as session:
        assert session.get(AuditEvent, event_id).action == "view"
    assert _count(db) == 1


def test_orm_update_and_delete_are_rejected_too(db: Database, event_id: int) -> None:
    with pytest.raises(DBAPIError, match="append-only"), db.transaction() as session:
        session.execute(update(AuditEvent).values(source="elsewhere"))
    with pytest.raises(DBAPIError, match="append-only"), db.transaction() as session:
        session.execute(delete(AuditEvent))
    assert _count(db) == 1


def test_postgres_rejects_truncate(db: Database, event_id: int) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("TRUNCATE exists on PostgreSQL only")
    with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as connection:
        connection.execute(text("TRUNCATE audit_log"))


def test_prediction_view_and_feedback_are_audited(db: Database) -> None:
    with db.transaction() as session:
        doctor = add_user(session, "doc", Role.CLINICIAN)
        prediction = record_prediction(
            session, doctor, task="t", input_bytes=b"xray", label="benign", source="10.1.1.1"
        )
        get_prediction(session, doctor, prediction.id, source="10.1.1.1")
        add_feedback(
            session, doctor, prediction.id, verdict="corrected", label="malignant", source="ws-3"
        )
    with db.transaction() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    assert [(e.action, e.actor, e.source) for e in events] == [
        ("prediction", "doc", "10.1.1.1"),
        ("view", "doc", "10.1.1.1"),
        ("feedback", "doc", "ws-3"),
    ]
    assert all(e.target_type == "prediction" and e.target_id == str(prediction.id) for e in events)
    assert events[0].at.tzinfo is not None
    assert events[2].detail["verdict"] == "corrected"


def test_detail_with_phi_keys_or_too_large_is_refused(db: Database) -> None:
    with db.transaction() as session:
        user = add_user(session, "root", Role.ADMIN)
        with pytest.raises(ValueError, match="patient_name"):
            audit.record(
                session, "view", actor=user, source="h", detail={"x": {"patient_name": "Doe"}}
            )
        with pytest.raises(ValueError, match="bytes"):
            audit.record(session, "view", actor=user, source="h", detail={"x": "y" * 5000})


def test_only_admins_read_the_log(db: Database) -> None:
    with db.transaction() as session:
        admin = add_user(session, "root", Role.ADMIN)
        scientist = add_user(session, "sci", Role.DATA_SCIENTIST)
        audit.record(session, "login", actor=scientist, source="h")
        audit.record(session, "view", actor=admin, source="h")
        assert [e.action for e in list_events(session, admin)] == ["view", "login"]
        assert [e.action for e in list_events(session, admin, actor_id=scientist.id)] == ["login"]
        with pytest.raises(PermissionDenied, match="audit:read"):
            list_events(session, scientist)
