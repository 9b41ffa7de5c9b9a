"""The clinical store: users and roles, API tokens, predictions, feedback and the audit log.

SQLAlchemy 2 models on SQLite (default, a WAL-mode file in the data directory) or PostgreSQL,
with Alembic migrations shipped in the package and run by :func:`upgrade_database`. Modules:

- :mod:`~medsight.store.settings`: data directory, database URL, raw-input policy (environment).
- :mod:`~medsight.store.database`: engine, sessions, transactions, migrations.
- :mod:`~medsight.store.models`: the tables.
- :mod:`~medsight.store.permissions`: roles, actions, the permission table, ``require``.
- :mod:`~medsight.store.auth`: argon2 password hashes, API token generation and hashing.
- :mod:`~medsight.store.users`: accounts, login, tokens, the local CLI account.
- :mod:`~medsight.store.records`: predictions and feedback under the ownership rules.
- :mod:`~medsight.store.audit`: the append-only audit trail.
"""

from __future__ import annotations

from medsight.store.audit import AuditAction
from medsight.store.database import Database, open_database, upgrade_database
from medsight.store.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDenied,
    StoreError,
)
from medsight.store.models import (
    ApiToken,
    AuditEvent,
    Feedback,
    ModelVersion,
    Prediction,
    Stage,
    User,
    Verdict,
)
from medsight.store.permissions import PERMISSIONS, Action, Role, can, require
from medsight.store.settings import StoreSettings

__all__ = [
    "PERMISSIONS",
    "Action",
    "ApiToken",
    "AuditAction",
    "AuditEvent",
    "AuthenticationError",
    "ConflictError",
    "Database",
    "Feedback",
    "ModelVersion",
    "NotFoundError",
    "PermissionDenied",
    "Prediction",
    "Role",
    "Stage",
    "StoreError",
    "StoreSettings",
    "User",
    "Verdict",
    "can",
    "open_database",
    "require",
    "upgrade_database",
]
