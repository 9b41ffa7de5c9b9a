"""Password hashing, API tokens, login and the local CLI account."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from medsight.store.auth import (
    hash_password,
    hash_token,
    new_token,
    token_matches,
    verify_password,
)
from medsight.store.database import Database
from medsight.store.errors import (
    AuthenticationError,
    ConflictError,
    PermissionDenied,
    StoreError,
)
from medsight.store.models import ApiToken, AuditEvent, User, utcnow
from medsight.store.permissions import Role
from medsight.store.testing import BACKENDS, add_user, fresh_database
from medsight.store.users import (
    authenticate,
    create_api_token,
    create_user,
    local_cli_user,
    require_token_user,
    revoke_api_token,
    set_active,
    user_for_token,
)

PASSWORD = "correct horse battery staple"


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with fresh_database(request.param, tmp_path) as database:
        yield database


def test_password_hash_is_salted_argon2_and_verifies() -> None:
    first, second = hash_password(PASSWORD), hash_password(PASSWORD)
    assert first != PASSWORD and PASSWORD not in first
    assert first.startswith("$argon2id$")
    assert first != second  # salted
    assert verify_password(first, PASSWORD)
    assert not verify_password(first, PASSWORD + "!")
    assert not verify_password(None, PASSWORD)
    assert not verify_password("not-a-hash", PASSWORD)


def test_short_passwords_are_refused() -> None:
    with pytest.raises(StoreError, match="at least 12"):
        hash_password("short")


def test_tokens_are_random_and_stored_as_digests() -> None:
    token = new_token()
    assert token.startswith("msk_") and len(token) > 40
    assert token != new_token()
    digest = hash_token(token)
    assert digest != token and len(digest) == 64
    assert token_matches(token, digest)
    assert not token_matches(new_token(), digest)


def test_api_token_right_wrong_revoked_expired(db: Database) -> None:
    with db.transaction() as session:
        user = add_user(session, "dr.who", Role.CLINICIAN)
        row, plain = create_api_token(session, user, "laptop", actor=user, source="10.0.0.1")
        _, short = create_api_token(
            session, user, "short", actor=user, source="10.0.0.1", expires_in=timedelta(hours=1)
        )
        assert row.token_hash == hash_token(plain) and row.token_hash != plain
        stored = session.scalars(select(ApiToken.token_hash)).all()
        assert plain not in stored and short not in stored

    with db.transaction() as session:
        assert user_for_token(session, plain).username == "dr.who"
        assert user_for_token(session, plain + "x") is None
        assert user_for_token(session, new_token()) is None
        later = utcnow() + timedelta(hours=2)
        assert user_for_token(session, short) is not None
        assert user_for_token(session, short, now=later) is None
        with pytest.raises(AuthenticationError, match="API token"):
            require_token_user(session, "msk_wrong")
        me = session.scalar(select(User).where(User.username == "dr.who"))
        revoke_api_token(session, row.id, actor=me, source="10.0.0.1")

    with db.transaction() as session:
        assert user_for_token(session, plain) is None
        assert session.get(ApiToken, row.id).last_used_at is not None


def test_tokens_of_deactivated_users_stop_working(db: Database) -> None:
    with db.transaction() as session:
        admin = add_user(session, "root", Role.ADMIN)
        user = add_user(session, "ds", Role.DATA_SCIENTIST)
        _, plain = create_api_token(session, user, "ci", actor=user, source="host")
        set_active(session, user, False, actor=admin, source="host")
        assert user_for_token(session, plain) is None


def test_token_for_someone_else_needs_admin(db: Database) -> None:
    with db.transaction() as session:
        admin = add_user(session, "root", Role.ADMIN)
        alice = add_user(session, "alice", Role.CLINICIAN)
        bob = add_user(session, "bob", Role.CLINICIAN)
        with pytest.raises(PermissionDenied, match="token:manage"):
            create_api_token(session, bob, "x", actor=alice, source="h")
        _, plain = create_api_token(session, bob, "pacs", actor=admin, source="h")
        assert user_for_token(session, plain).id == bob.id


def test_login_right_and_wrong_password_is_audited(db: Database) -> None:
    with db.transaction() as session:
        create_user(session, "admin", Role.ADMIN, password=PASSWORD, actor=None, source="setup")
    with db.transaction() as session:
        assert authenticate(session, "admin", PASSWORD, source="192.0.2.7") is not None
        assert authenticate(session, "admin", "wrong password!", source="192.0.2.8") is None
        assert authenticate(session, "nobody", PASSWORD, source="192.0.2.9") is None
    with db.transaction() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        actions = [(e.action, e.actor, e.source) for e in events]
        assert actions[-3:] == [
            ("login", "admin", "192.0.2.7"),
            ("login_failed", "admin", "192.0.2.8"),
            ("login_failed", "nobody", "192.0.2.9"),
        ]
        assert events[-1].actor_id is None
        assert events[-2].detail == {"reason": "wrong password"}
        assert all(PASSWORD not in str(e.detail) for e in events)


def test_create_user_rules(db: Database) -> None:
    with db.transaction() as session:
        admin = create_user(session, "admin", "admin", actor=None, source="setup")
        with pytest.raises(StoreError, match="needs an administrator"):
            create_user(session, "second", "admin", actor=None, source="setup")
        clinician = create_user(session, "c1", Role.CLINICIAN, actor=admin, source="h")
        with pytest.raises(PermissionDenied, match="user:manage"):
            create_user(session, "c2", Role.CLINICIAN, actor=clinician, source="h")
        with pytest.raises(ConflictError, match="already exists"):
            create_user(session, "c1", Role.CLINICIAN, actor=admin, source="h")
        with pytest.raises(StoreError, match="unknown role"):
            create_user(session, "c3", "nurse", actor=admin, source="h")
        with pytest.raises(StoreError, match="not allowed"):
            create_user(session, "cli:alice", Role.ADMIN, actor=admin, source="h")
        assert clinician.password_hash is None


def test_local_cli_user_is_a_passwordless_admin(db: Database) -> None:
    with db.transaction() as session:
        user = local_cli_user(session, "alice")
        assert (user.username, user.role, user.password_hash) == ("cli:alice", Role.ADMIN, None)
        assert local_cli_user(session, "alice").id == user.id
        assert authenticate(session, "cli:alice", "", source="h") is None
