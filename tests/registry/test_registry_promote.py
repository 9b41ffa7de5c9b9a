"""Promotion and rollback: one production model per task, atomic, audited, role-checked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medsight.errors import BundleError
from medsight.registry import ModelRegistry
from medsight.registry.testing import write_test_bundle
from medsight.store import audit
from medsight.store.database import Database
from medsight.store.errors import ConflictError, NotFoundError, PermissionDenied
from medsight.store.models import ArchiveReason, AuditEvent, ModelVersion, Stage, User
from medsight.store.permissions import Role
from medsight.store.testing import BACKENDS, add_user, fresh_database

TASK = "image-classification"


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with fresh_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
def registry(db: Database, tmp_path: Path) -> ModelRegistry:
    """A registry with three candidate versions of TASK and users 'sci' and 'doc'."""
    registry = ModelRegistry(tmp_path / "registry")
    with db.transaction() as session:
        scientist = add_user(session, "sci", Role.DATA_SCIENTIST)
        add_user(session, "doc", Role.CLINICIAN)
        for n in (1, 2, 3):
            bundle = write_test_bundle(tmp_path / f"bundle{n}", content=f"w{n}".encode())
            registry.register(session, bundle, actor=scientist, source="h")
    return registry


def _user(session: Session, name: str) -> User:
    return session.scalar(select(User).where(User.username == name))


def _stages(db: Database, task: str = TASK) -> dict[int, str]:
    with db.transaction() as session:
        rows = session.scalars(select(ModelVersion).where(ModelVersion.task == task))
        return {r.version: str(r.stage) for r in rows}


def test_promote_archives_the_previous_production(db: Database, registry: ModelRegistry) -> None:
    with db.transaction() as session:
        sci = _user(session, "sci")
        assert registry.production(session, TASK) is None
        registry.promote(session, TASK, 1, actor=sci, source="10.0.0.9")
    assert _stages(db) == {1: "production", 2: "candidate", 3: "candidate"}
    with db.transaction() as session:
        registry.promote(session, TASK, 2, actor=_user(session, "sci"), source="10.0.0.9")
    assert _stages(db) == {1: "archived", 2: "production", 3: "candidate"}
    with db.transaction() as session:
        old = registry.get(session, TASK, 1)
        assert old.archived_reason is ArchiveReason.SUPERSEDED and old.archived_at is not None
        assert registry.production(session, TASK).version == 2
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "promote")).all()
        assert [(e.actor, e.source, e.detail["version"]) for e in events] == [
            ("sci", "10.0.0.9", 1),
            ("sci", "10.0.0.9", 2),
        ]
        assert [e.detail["previous_version"] for e in events] == [None, 1]


def test_rollback_walks_back_through_production_history(
    db: Database, registry: ModelRegistry
) -> None:
    with db.transaction() as session:
        sci = _user(session, "sci")
        for version in (1, 2, 3):
            registry.promote(session, TASK, version, actor=sci, source="h")
    with db.transaction() as session:
        restored = registry.rollback(session, TASK, actor=_user(session, "sci"), source="h")
        assert restored.version == 2
    assert _stages(db) == {1: "archived", 2: "production", 3: "archived"}
    with db.transaction() as session:
        assert registry.get(session, TASK, 3).archived_reason is ArchiveReason.ROLLED_BACK
        assert (
            registry.rollback(session, TASK, actor=_user(session, "sci"), source="h").version == 1
        )
    assert _stages(db) == {1: "production", 2: "archived", 3: "archived"}
    with db.transaction() as session:
        with pytest.raises(ConflictError, match="no earlier production version"):
            registry.rollback(session, TASK, actor=_user(session, "sci"), source="h")
        # a rolled-back version comes back only by an explicit promotion
        registry.promote(session, TASK, 3, actor=_user(session, "sci"), source="h")
        assert (
            registry.rollback(session, TASK, actor=_user(session, "sci"), source="h").version == 1
        )
    with db.transaction() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "rollback")).all()
        assert [(e.detail["from_version"], e.detail["version"]) for e in events] == [
            (3, 2),
            (2, 1),
            (3, 1),
        ]


def test_database_allows_one_production_per_task(db: Database, registry: ModelRegistry) -> None:
    with db.transaction() as session:
        registry.promote(session, TASK, 1, actor=_user(session, "sci"), source="h")
    with pytest.raises(IntegrityError), db.engine.begin() as connection:
        connection.execute(text("UPDATE model_versions SET stage = 'production' WHERE version = 2"))
    assert _stages(db) == {1: "production", 2: "candidate", 3: "candidate"}


def test_other_tasks_have_their_own_production(
    db: Database, registry: ModelRegistry, tmp_path: Path
) -> None:
    with db.transaction() as session:
        sci = _user(session, "sci")
        ecg = write_test_bundle(tmp_path / "ecg", task="ecg-rhythm")
        registry.register(session, ecg, actor=sci, source="h")
        registry.promote(session, TASK, 3, actor=sci, source="h")
        registry.promote(session, "ecg-rhythm", 1, actor=sci, source="h")
    assert _stages(db, "ecg-rhythm") == {1: "production"}
    assert _stages(db)[3] == "production"


@pytest.mark.parametrize("operation", ["promote", "rollback"])
def test_failure_half_way_changes_nothing(
    db: Database, registry: ModelRegistry, operation: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with db.transaction() as session:
        sci = _user(session, "sci")
        registry.promote(session, TASK, 1, actor=sci, source="h")
        registry.promote(session, TASK, 2, actor=sci, source="h")
    before = _stages(db)

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("crash after the stage changes, before the audit line")

    with db.transaction() as session:  # the caller goes on and commits after the error
        sci = _user(session, "sci")
        monkeypatch.setattr(audit, "record", crash)
        with pytest.raises(RuntimeError, match="crash"):
            if operation == "promote":
                registry.promote(session, TASK, 3, actor=sci, source="h")
            else:
                registry.rollback(session, TASK, actor=sci, source="h")
        monkeypatch.undo()
    assert _stages(db) == before == {1: "archived", 2: "production", 3: "candidate"}
    with db.transaction() as session:
        assert registry.get(session, TASK, 1).archived_reason is ArchiveReason.SUPERSEDED


def test_only_scientists_and_admins_promote_or_roll_back(
    db: Database, registry: ModelRegistry
) -> None:
    with db.transaction() as session:
        doc = _user(session, "doc")
        with pytest.raises(PermissionDenied, match="model:promote"):
            registry.promote(session, TASK, 1, actor=doc, source="h")
        with pytest.raises(PermissionDenied, match="model:rollback"):
            registry.rollback(session, TASK, actor=doc, source="h")
        admin = add_user(session, "root", Role.ADMIN)
        registry.promote(session, TASK, 1, actor=admin, source="h")
    assert _stages(db)[1] == "production"


def test_state_errors_are_clear(db: Database, registry: ModelRegistry) -> None:
    with db.transaction() as session:
        sci = _user(session, "sci")
        with pytest.raises(ConflictError, match="no production model"):
            registry.rollback(session, TASK, actor=sci, source="h")
        with pytest.raises(NotFoundError, match="no registered versions"):
            registry.rollback(session, "ecg-rhythm", actor=sci, source="h")
        with pytest.raises(NotFoundError, match="no version 9"):
            registry.promote(session, TASK, 9, actor=sci, source="h")
        registry.promote(session, TASK, 1, actor=sci, source="h")
        with pytest.raises(ConflictError, match="already the production model"):
            registry.promote(session, TASK, 1, actor=sci, source="h")


def test_promote_refuses_a_modified_registered_copy(db: Database, registry: ModelRegistry) -> None:
    with db.transaction() as session:
        row = registry.get(session, TASK, 2)
    (registry.path_of(row) / "model.onnx").write_bytes(b"swapped")
    with db.transaction() as session, pytest.raises(BundleError, match=r"changed: model\.onnx"):
        registry.promote(session, TASK, 2, actor=_user(session, "sci"), source="h")
    assert Stage.PRODUCTION not in set(_stages(db).values())
