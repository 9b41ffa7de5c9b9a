"""What the running service holds: settings, database, registry, loaded models, transactions.

SQLite allows one writer at a time, and a transaction that read before it writes fails at once
(``SQLITE_BUSY_SNAPSHOT``) when another connection committed in between; the busy timeout does
not help there. Writing transactions therefore take a process-wide lock on SQLite (threads hand
it over without sleeping) and begin ``IMMEDIATE``, so writers in other worker processes wait
for SQLite's lock (the busy timeout) instead of failing. Model inference runs outside any
transaction, so the locks are held only for the few statements of each request.
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
from medsight.serve.recent import CheckedTokens, Recent
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
    tokens: CheckedTokens = field(init=False)
    _production: Recent[tuple[Served, Predictor]] = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = CheckedTokens(self.settings.cache_seconds)
        self._production = Recent(self.settings.cache_seconds)

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
        """One transaction, committed at the end (rolled back on error). On SQLite it is
        serialised by a lock within the process and begun IMMEDIATE across processes."""
        lock = self._write_lock if self.serialise_writes else contextlib.nullcontext()
        with lock, self.database.transaction(immediate=self.serialise_writes) as session:
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

    def production(self, task: str) -> tuple[Served, Predictor]:
        """:meth:`predictor` in its own read session, reused for ``cache_seconds``."""
        found = self._production.get(task)
        if found is None:
            with self.read() as session:
                found = self.predictor(session, task)
            self._production.put(task, found)
        return found

    def forget_production(self) -> None:
        """Promotion or rollback here: look the production versions up again."""
        self._production.forget()

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
