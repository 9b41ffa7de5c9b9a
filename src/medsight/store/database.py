"""Engine, sessions and schema upgrades for SQLite (default) and PostgreSQL.

SQLite connections get ``journal_mode=WAL`` (readers do not block the writer),
``synchronous=NORMAL`` unless told ``FULL`` (see :mod:`medsight.store.settings` for the
trade-off), ``foreign_keys=ON`` and a busy timeout, and transactions begin with a real
``BEGIN`` so that reads and writes of one session are one serialisable transaction (Python's
sqlite3 module otherwise starts transactions late, only at the first write). PostgreSQL URLs
(``postgresql://...``) use the psycopg 3 driver.

Typical use::

    db = open_database(StoreSettings.from_env())   # runs the migrations
    with db.transaction() as session:               # commit on success, rollback on error
        ...
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

from medsight.errors import ConfigError
from medsight.store.settings import StoreSettings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_SYNCHRONOUS: Final = ("normal", "full")
# execution options of a writing transaction: BEGIN IMMEDIATE on SQLite, nothing elsewhere
WRITE_TRANSACTION: Final = {"sqlite_begin": "IMMEDIATE"}

log = logging.getLogger(__name__)


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL; ``postgresql://`` and ``postgres://`` get the psycopg 3 driver."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"database URL {_safe(url)!r} is not a valid SQLAlchemy URL.") from exc
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError(
            f"database URL {_safe(parsed)!r}: medsight supports sqlite and postgresql only."
        )
    return parsed


def _safe(url: str | URL) -> str:
    """A URL for messages, with any password hidden."""
    try:
        return make_url(str(url)).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def make_engine(url: str | URL, *, sqlite_synchronous: str = "normal", **kwargs: Any) -> Engine:
    """An engine for ``url``; SQLite files get their folder created and the pragmas above
    (``sqlite_synchronous``: ``normal`` or ``full``; ignored for PostgreSQL)."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        if sqlite_synchronous not in SQLITE_SYNCHRONOUS:
            raise ConfigError(
                f"SQLite synchronous mode {sqlite_synchronous!r}: use 'normal' or 'full'."
            )
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine, sqlite_synchronous.upper())
        return engine
    return create_engine(parsed, pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (below)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL under WAL: commits survive a killed process, not a power loss (settings.py)
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # a writer asks for IMMEDIATE (session.connection(execution_options=WRITE_TRANSACTION)):
        # it takes SQLite's write lock at BEGIN, waiting up to the busy timeout for another
        # process's writer, instead of failing when it first writes after a read
        mode = connection.get_execution_options().get("sqlite_begin", "")
        connection.exec_driver_sql(f"BEGIN {mode}".strip())


def alembic_config(url: str | URL) -> Config:
    """An Alembic configuration for the migrations shipped in the package (no alembic.ini).

    Developers make a new revision from it, e.g.
    ``alembic.command.revision(alembic_config(url), message="...", autogenerate=True)``.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    rendered = normalise_url(url).render_as_string(hide_password=False)
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def upgrade_database(url: str | URL | Engine, revision: str = "head") -> None:
    """Migrate the database at ``url`` (or behind ``engine``) to ``revision`` (default: latest).

    Safe to call at every start-up: an up-to-date database is left as it is.
    """
    engine = url if isinstance(url, Engine) else make_engine(url)
    try:
        config = alembic_config(engine.url)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if not isinstance(url, Engine):
            engine.dispose()


class Database:
    """An engine and its session factory: the one handle the service and CLI pass around."""

    def __init__(self, url: str | URL, **engine_kwargs: Any) -> None:
        self.engine: Engine = make_engine(url, **engine_kwargs)
        self.sessions: sessionmaker[Session] = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def url(self) -> URL:
        return self.engine.url

    def upgrade(self, revision: str = "head") -> None:
        """Run the migrations up to ``revision``."""
        upgrade_database(self.engine, revision)

    @contextmanager
    def transaction(self, *, immediate: bool = False) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error.

        ``immediate`` takes SQLite's write lock at the start (other processes' writers wait
        for it, up to the busy timeout), for transactions that will write."""
        with self.sessions() as session, session.begin():
            if immediate:
                session.connection(execution_options=WRITE_TRANSACTION)
            yield session

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_database(settings: StoreSettings | None = None, *, upgrade: bool = True) -> Database:
    """The database of ``settings`` (default: from the environment), migrated unless told not to."""
    settings = settings or StoreSettings.from_env()
    database = Database(settings.url, sqlite_synchronous=settings.sqlite_synchronous)
    if upgrade:
        database.upgrade()
    log.debug("database ready at %s", _safe(database.url))
    return database
