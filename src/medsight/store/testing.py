"""Helpers for tests of code built on the store: a fresh, migrated database per test on SQLite or
PostgreSQL, and users of each role.

PostgreSQL is used when ``MEDSIGHT_TEST_POSTGRES_URL`` names a server where the test user may
create schemas; each database is a new schema (dropped afterwards). Without it a PostgreSQL
request raises ``unittest.SkipTest``, which pytest reports as a skip with the reason. Typical use::

    @pytest.fixture(params=BACKENDS)
    def db(request, tmp_path):
        with fresh_database(request.param, tmp_path) as database:
            yield database
"""

from __future__ import annotations

import os
import secrets
import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from sqlalchemy import text
from sqlalchemy.orm import Session

from medsight.store.auth import hash_password
from medsight.store.database import Database, make_engine, normalise_url
from medsight.store.models import User
from medsight.store.permissions import Role

POSTGRES_ENV: Final = "MEDSIGHT_TEST_POSTGRES_URL"
BACKENDS: Final = ("sqlite", "postgresql")


def postgres_url() -> str | None:
    """The PostgreSQL server for tests, from ``MEDSIGHT_TEST_POSTGRES_URL``, or ``None``."""
    return os.environ.get(POSTGRES_ENV) or None


@contextmanager
def fresh_database(backend: str, tmp_path: Path) -> Iterator[Database]:
    """A new migrated database: a SQLite file in ``tmp_path`` or a throw-away PostgreSQL schema."""
    if backend == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'medsight-test.db'}")
        try:
            database.upgrade()
            yield database
        finally:
            database.dispose()
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}; use one of {BACKENDS}.")
    server = postgres_url()
    if server is None:
        raise unittest.SkipTest(f"PostgreSQL tests need {POSTGRES_ENV} (a server URL).")
    schema = f"medsight_test_{secrets.token_hex(6)}"
    admin = make_engine(server)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = normalise_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
    database = Database(url)
    try:
        database.upgrade()
        yield database
    finally:
        database.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def add_user(
    session: Session, username: str, role: Role | str, *, password: str | None = None
) -> User:
    """Insert a user directly (no permission check, no audit line): for test set-up only."""
    user = User(
        username=username,
        role=Role(role),
        password_hash=hash_password(password) if password is not None else None,
        is_active=True,
    )
    session.add(user)
    session.flush()
    return user
