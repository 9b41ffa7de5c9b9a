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
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

try:
    import fcntl
except ImportError:  # Windows: SQLite's busy timeout alone
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import text
from sqlalchemy.orm import Session

from medsight.registry import ModelRegistry
from medsight.serve.errors import NoProductionModelError
from medsight.serve.group_commit import GroupCommit, write_alone
from medsight.serve.predictors import Predictor, PredictorCache, Served
from medsight.serve.recent import CheckedTokens, Recent
from medsight.serve.settings import ServeSettings
from medsight.serve.throttle import LoginThrottle
from medsight.store.database import Database

T = TypeVar("T")


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
    logins: LoginThrottle = field(init=False)
    _production: Recent[tuple[Served, Predictor]] = field(init=False)
    _group_commit: GroupCommit = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = CheckedTokens(self.settings.cache_seconds)
        self.logins = LoginThrottle(
            self.settings.login_max_failures, lockout_seconds=self.settings.login_lockout_seconds
        )
        self._production = Recent(self.settings.cache_seconds)
        self._group_commit = GroupCommit(self.write)

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
        serialised by a lock within the process and a lock file across worker processes, and
        begun IMMEDIATE."""
        if not self.serialise_writes:
            with self.database.transaction() as session:
                yield session
            return
        with (
            self._write_lock,
            _file_lock(self._lock_path),
            self.database.transaction(immediate=True) as session,
        ):
            yield session

    def store(self, work: Callable[[Session], T]) -> Future[T]:
        """Run ``work`` in a writing transaction: on SQLite a shared one with concurrent
        requests' works when ``group_commit`` is on, else its own. The future
        is set after the commit.

        PostgreSQL always gets one transaction per request: it overlaps the commits of
        concurrent connections itself, and funnelling them through one writer thread cut
        throughput to 0.4x (benchmarks/group_commit.py); SQLite serialises writers anyway."""
        if self.settings.group_commit and self.serialise_writes:
            return self._group_commit.submit(work)
        future: Future[T] = Future()
        write_alone(self.write, work, future)
        return future

    @property
    def _lock_path(self) -> Path | None:
        database = self.database.url.database
        if not database or database == ":memory:":
            return None
        return Path(database).with_name(Path(database).name + ".write-lock")

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

    def serves_quick(self, task: str) -> bool:
        """Whether ``task``'s production model (as last looked up) answers in about a
        millisecond without an explanation: a tabular model compiled for one row."""
        found = self._production.get(task)
        return found is not None and getattr(found[1], "quick", False)

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
        self._group_commit.close()
        if self.owns_database:
            self.database.dispose()


@contextlib.contextmanager
def _file_lock(path: Path | None) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` for the block (POSIX ``flock``; elsewhere none).

    Hand-written: SQLite's own busy handler makes a waiting writer in another process sleep and
    poll (1, 2, 5, 10 ... ms), which put 200 ms into the p99 with two workers; ``flock`` wakes
    the waiter as soon as the lock is released."""
    if path is None or fcntl is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
