"""Fixtures for retraining tests: a fresh SQLite store with users, and an empty registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from medsight.registry import ModelRegistry
from medsight.store.database import Database
from medsight.store.permissions import Role
from medsight.store.testing import add_user, fresh_database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """A migrated SQLite store with a data scientist 'sci' and a clinician 'doc'."""
    with fresh_database("sqlite", tmp_path) as database:
        with database.transaction() as session:
            add_user(session, "sci", Role.DATA_SCIENTIST)
            add_user(session, "doc", Role.CLINICIAN)
        yield database


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")
