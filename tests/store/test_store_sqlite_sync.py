"""SQLite's ``synchronous`` setting: NORMAL under WAL by default, FULL on request."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from medsight.errors import ConfigError
from medsight.store.database import Database, make_engine, open_database
from medsight.store.settings import StoreSettings

LEVELS = {0: "off", 1: "normal", 2: "full", 3: "extra"}


def _pragmas(database: Database) -> tuple[str, str]:
    with database.transaction() as session:
        journal = session.execute(text("PRAGMA journal_mode")).scalar_one()
        level = session.execute(text("PRAGMA synchronous")).scalar_one()
    return str(journal), LEVELS[int(level)]


def test_default_is_normal_under_wal(tmp_path: Path) -> None:
    database = open_database(StoreSettings(data_dir=tmp_path))
    try:
        assert _pragmas(database) == ("wal", "normal")
    finally:
        database.dispose()


def test_full_from_the_environment(tmp_path: Path) -> None:
    env = {"MEDSIGHT_DATA_DIR": str(tmp_path), "MEDSIGHT_SQLITE_SYNC": " FULL "}
    settings = StoreSettings.from_env(env)
    assert settings.sqlite_synchronous == "full"
    database = open_database(settings)
    try:
        assert _pragmas(database) == ("wal", "full")
    finally:
        database.dispose()


def test_unknown_mode_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sqlite_synchronous"):
        StoreSettings.from_env({"MEDSIGHT_SQLITE_SYNC": "off"})
    with pytest.raises(ConfigError, match="'off'"):
        make_engine(f"sqlite:///{tmp_path / 'x.db'}", sqlite_synchronous="off")


def test_postgresql_urls_ignore_the_sqlite_setting() -> None:
    engine = make_engine("postgresql://u@127.0.0.1:1/db", sqlite_synchronous="full")
    try:
        assert engine.url.get_backend_name() == "postgresql"
    finally:
        engine.dispose()
