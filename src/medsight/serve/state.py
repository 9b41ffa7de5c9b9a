"""What the running service holds: settings, database, registry, loaded models, transactions.

SQLite allows one writer at a time, and a transaction that read before it writes fails at once
(``SQLITE_BUSY_SNAPSHOT``) when another connection committed in between; the busy timeout does
not help there. Writing transactions therefore take a process-wide lock on SQLite (one service
process; use PostgreSQL for several). Model inference runs outside any transaction, so the lock
is held only for the few statements of each request.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from medsight.registry import ModelRegistry
from medsight.serve.errors import NoProductionModelError
from medsight.serve.predictors import Predictor, PredictorCache, Served
from medsight.serve.settings import ServeSettings
from medsight.store.database import Database


@dataclass
class ServiceState:
    """Everything request handlers share; one per app (``app.state.medsight``)."""

    settings: ServeSettings
    database: Database
    registry: ModelRegistry
    predictors: PredictorCache
    owns_database: bool = False
    _write_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def serialise_writes(self) -> bool:
        return self.database.url.get_backend_name() == "sqlite"

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads only; changes are rolled back at the end, and the objects read
        stay usable (detached with their loaded values)."""
        with self.database.sessions() as session:
            try:
                yield session
            finally:
                session.expunge_all()
                session.rollback()

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction, committed at the end (rolled back on error); serialised on SQLite."""
        lock = self._write_lock if self.serialise_writes else contextlib.nullcontext()
        with lock, self.database.transaction() as session:
            yield session

    def served(self, session: Session, task: str) -> Served:
        """The production version of ``task`` (404 when there is none)."""
        row = self.registry.production(session, task)
        if row is None:
            raise NoProductionModelError(
                f"task {task!r} has no model in production; register a bundle and promote it "
                "(medsight registry register / promote)."
            )
        return Served(
            task=row.task,
            version=row.version,
            version_id=row.id,
            name=row.name,
            folder=self.registry.path_of(row),
            bundle_sha256=row.bundle_sha256,
        )

    def predictor(self, session: Session, task: str) -> tuple[Served, Predictor]:
        """The production version of ``task`` and its loaded adapter (loaded on first use)."""
        served = self.served(session, task)

        def verify() -> Path:
            row = self.registry.get(session, served.task, served.version)
            return self.registry.verify(row)

        return served, self.predictors.get(served, verify)

    def ping(self) -> dict[str, int]:
        """Check the database answers; return task -> production version."""
        from sqlalchemy import select

        from medsight.store.models import ModelVersion, Stage

        with self.read() as session:
            session.execute(text("SELECT 1"))
            rows = session.execute(
                select(ModelVersion.task, ModelVersion.version).where(
                    ModelVersion.stage == Stage.PRODUCTION
                )
            ).all()
        return {task: version for task, version in rows}

    def close(self) -> None:
        if self.owns_database:
            self.database.dispose()
