"""The store's tables as typed SQLAlchemy 2 declarative models.

The schema itself is created and changed only by the Alembic migrations in
``medsight/store/migrations`` (a test checks that they produce exactly this metadata); the
append-only triggers on ``audit_log`` exist only there.

No table holds PHI by design: a prediction keeps the SHA-256 of its input (and the input itself only
when ``store_raw_inputs`` is on), audit details carry ids and digests, not names or values.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from medsight.store.permissions import Role

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware time (UTC).")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Stage(enum.StrEnum):
    """Life stage of a registered model version; at most one ``production`` per task."""

    CANDIDATE = "candidate"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class ArchiveReason(enum.StrEnum):
    """Why a version left production: replaced by a promotion, or undone by a rollback."""

    SUPERSEDED = "superseded"
    ROLLED_BACK = "rolled_back"


class Verdict(enum.StrEnum):
    """A clinician's answer to a prediction."""

    CONFIRMED = "confirmed"
    CORRECTED = "corrected"


def _enum(kind: type[enum.StrEnum], name: str) -> Enum:
    """A portable enum column: VARCHAR plus a CHECK constraint (no native PostgreSQL type)."""
    return Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints the same way."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
    }


class User(Base):
    """A person (or the local CLI account) with one role; no password means no web login."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "role"))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", passive_deletes=True)

    def __repr__(self) -> str:
        return f"User(id={self.id}, username={self.username!r}, role={self.role})"


class ApiToken(Base):
    """An API token: only its SHA-256 is stored; the plain token was shown once at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")

    def __repr__(self) -> str:
        return f"ApiToken(id={self.id}, user_id={self.user_id}, name={self.name!r})"


class ModelVersion(Base):
    """A registered bundle: ``<registry>/<task>/v<version>`` plus its stage history."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("task", "version"),
        Index(
            "uq_model_versions_one_production",
            "task",
            unique=True,
            sqlite_where=text("stage = 'production'"),
            postgresql_where=text("stage = 'production'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    stage: Mapped[Stage] = mapped_column(_enum(Stage, "stage"), default=Stage.CANDIDATE)
    path: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(200), default="")
    bundle_sha256: Mapped[str] = mapped_column(String(64))
    files: Mapped[dict[str, Any]] = mapped_column(default=dict)
    registered_from: Mapped[str] = mapped_column(String(1024), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    promoted_at: Mapped[datetime | None]
    archived_at: Mapped[datetime | None]
    archived_reason: Mapped[ArchiveReason | None] = mapped_column(
        _enum(ArchiveReason, "archived_reason")
    )

    created_by: Mapped[User | None] = relationship()

    def __repr__(self) -> str:
        return f"ModelVersion(task={self.task!r}, version={self.version}, stage={self.stage})"


class Prediction(Base):
    """One prediction served: who asked, which model, the input's SHA-256 and the result."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    task: Mapped[str] = mapped_column(String(64), index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    input_sha256: Mapped[str] = mapped_column(String(64), index=True)
    input_size: Mapped[int]
    input_type: Mapped[str] = mapped_column(String(100), default="")
    raw_input: Mapped[bytes | None] = mapped_column(LargeBinary)
    label: Mapped[str] = mapped_column(String(200))
    probability: Mapped[float | None] = mapped_column(Float)
    output: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    model_version: Mapped[ModelVersion | None] = relationship()
    feedback: Mapped[list[Feedback]] = relationship(
        back_populates="prediction", passive_deletes=True, order_by="Feedback.id"
    )

    def __repr__(self) -> str:
        return f"Prediction(id={self.id}, task={self.task!r}, label={self.label!r})"


class Feedback(Base):
    """A clinician's confirmation or correction of a prediction, with an optional comment."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    prediction_id: Mapped[int] = mapped_column(
        ForeignKey("predictions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    verdict: Mapped[Verdict] = mapped_column(_enum(Verdict, "verdict"))
    label: Mapped[str] = mapped_column(String(200))
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    prediction: Mapped[Prediction] = relationship(back_populates="feedback")

    def __repr__(self) -> str:
        return f"Feedback(id={self.id}, prediction_id={self.prediction_id}, {self.verdict})"


class AuditEvent(Base):
    """One line of the append-only audit log (the database refuses UPDATE and DELETE on it)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    actor: Mapped[str] = mapped_column(String(150))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(64), default="")
    target_id: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)

    def __repr__(self) -> str:
        return f"AuditEvent(id={self.id}, actor={self.actor!r}, action={self.action!r})"


class LoginThrottleEntry(Base):
    """Failed sign-ins of one username from one source address, shared by every worker process
    (``medsight.serve.throttle``). Times are seconds since the epoch; a row whose window and
    lockout have both passed (``expires_s``) is deleted by the next failure of any pair."""

    __tablename__ = "login_throttle"

    username_key: Mapped[str] = mapped_column(String(150), primary_key=True)
    source: Mapped[str] = mapped_column(String(255), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start_s: Mapped[float] = mapped_column(Float)
    locked_until_s: Mapped[float] = mapped_column(Float, default=0.0)
    expires_s: Mapped[float] = mapped_column(Float, index=True)

    def __repr__(self) -> str:
        return f"LoginThrottleEntry({self.username_key!r}, {self.source!r}, {self.failures})"
