"""The permission table, require(), and the ownership rules on predictions and feedback."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from medsight.store.database import Database
from medsight.store.errors import NotFoundError, PermissionDenied, StoreError
from medsight.store.permissions import PERMISSIONS, Action, Role, can, require
from medsight.store.records import (
    add_feedback,
    get_prediction,
    list_feedback,
    list_predictions,
    record_prediction,
)
from medsight.store.testing import BACKENDS, add_user, fresh_database


@dataclass
class Person:
    id: int
    username: str
    role: Role
    is_active: bool = True


CLINICIAN = Person(1, "c", Role.CLINICIAN)
SCIENTIST = Person(2, "d", Role.DATA_SCIENTIST)
ADMIN = Person(3, "a", Role.ADMIN)


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with fresh_database(request.param, tmp_path) as database:
        yield database


def test_every_action_has_an_entry() -> None:
    assert set(PERMISSIONS) == set(Action)
    assert all(PERMISSIONS[a] for a in Action)


@pytest.mark.parametrize(
    ("action", "allowed"),
    [
        (Action.PREDICT, {Role.CLINICIAN, Role.DATA_SCIENTIST}),
        (Action.FEEDBACK_WRITE, {Role.CLINICIAN}),
        (Action.PREDICTION_READ_ALL, {Role.DATA_SCIENTIST, Role.ADMIN}),
        (Action.MODEL_PROMOTE, {Role.DATA_SCIENTIST, Role.ADMIN}),
        (Action.MODEL_ROLLBACK, {Role.DATA_SCIENTIST, Role.ADMIN}),
        (Action.MODEL_READ, {Role.CLINICIAN, Role.DATA_SCIENTIST, Role.ADMIN}),
        (Action.USER_MANAGE, {Role.ADMIN}),
        (Action.AUDIT_READ, {Role.ADMIN}),
    ],
)
def test_roles_allowed_and_denied(action: Action, allowed: set[Role]) -> None:
    for person in (CLINICIAN, SCIENTIST, ADMIN):
        if person.role in allowed:
            require(person, action)
            assert can(person, action)
        else:
            with pytest.raises(PermissionDenied, match=f"may not do {action}"):
                require(person, action)


def test_inactive_users_may_do_nothing() -> None:
    gone = Person(9, "gone", Role.ADMIN, is_active=False)
    assert not any(can(gone, a) for a in Action)
    with pytest.raises(PermissionDenied, match="deactivated"):
        require(gone, Action.MODEL_READ)


def test_clinician_sees_only_own_predictions_and_feedback(db: Database) -> None:
    with db.transaction() as session:
        alice = add_user(session, "alice", Role.CLINICIAN)
        bob = add_user(session, "bob", Role.CLINICIAN)
        scientist = add_user(session, "sci", Role.DATA_SCIENTIST)
        admin = add_user(session, "root", Role.ADMIN)
        mine = record_prediction(
            session, alice, task="t", input_bytes=b"a", label="benign", source="h"
        )
        theirs = record_prediction(
            session, bob, task="t", input_bytes=b"b", label="benign", source="h"
        )
        add_feedback(session, alice, mine.id, verdict="confirmed", source="h")
        add_feedback(session, bob, theirs.id, verdict="confirmed", source="h")

        assert get_prediction(session, alice, mine.id, source="h").id == mine.id
        with pytest.raises(PermissionDenied, match="belongs to another user"):
            get_prediction(session, alice, theirs.id, source="h")
        with pytest.raises(PermissionDenied, match="belongs to another user"):
            add_feedback(session, alice, theirs.id, verdict="confirmed", source="h")
        with pytest.raises(NotFoundError, match="does not exist"):
            get_prediction(session, alice, 10_000, source="h")

        assert [p.id for p in list_predictions(session, alice, source="h")] == [mine.id]
        assert [p.id for p in list_predictions(session, alice, owner_id=bob.id, source="h")] == [
            mine.id
        ]
        assert {f.user_id for f in list_feedback(session, alice, source="h")} == {alice.id}

        for viewer in (scientist, admin):
            assert get_prediction(session, viewer, theirs.id, source="h").id == theirs.id
            assert len(list_predictions(session, viewer, source="h")) == 2
            assert len(list_predictions(session, viewer, owner_id=bob.id, source="h")) == 1
            assert len(list_feedback(session, viewer, source="h")) == 2
        with pytest.raises(PermissionDenied, match="feedback:write"):
            add_feedback(session, scientist, theirs.id, verdict="confirmed", source="h")
        with pytest.raises(PermissionDenied, match="predict"):
            record_prediction(session, admin, task="t", input_bytes=b"c", label="x", source="h")
        with pytest.raises(StoreError, match="page size"):
            list_predictions(session, admin, source="h", limit=0)
