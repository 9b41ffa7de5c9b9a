"""Migrations build exactly the models' schema; engine settings; store settings from the env."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from medsight.errors import ConfigError
from medsight.store.database import (
    Database,
    alembic_config,
    normalise_url,
    open_database,
    upgrade_database,
)
from medsight.store.models import Base
from medsight.store.settings import StoreSettings
from medsight.store.testing import BACKENDS, fresh_database

TABLES = {
    "users",
    "api_tokens",
    "model_versions",
    "predictions",
    "feedback",
    "audit_log",
    "login_throttle",
}


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with fresh_database(request.param, tmp_path) as database:
        yield database


def _differences(db: Database) -> list[object]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_migrated_schema_equals_models(db: Database) -> None:
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    assert _differences(db) == []


def test_compare_detects_a_missing_index(db: Database) -> None:
    # the comparison above is not vacuous: dropping an index is reported
    with db.engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_predictions_task"))
    assert any("ix_predictions_task" in str(d) for d in _differences(db))


def test_one_production_index_is_partial_and_unique(db: Database) -> None:
    indexes = {i["name"]: i for i in inspect(db.engine).get_indexes("model_versions")}
    assert indexes["uq_model_versions_one_production"]["unique"]


def test_upgrade_is_idempotent_and_downgrade_clean(db: Database) -> None:
    db.upgrade()  # second run: nothing to do
    config = alembic_config(db.url)
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert not TABLES & set(inspect(db.engine).get_table_names())
    db.upgrade()
    assert _differences(db) == []


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sub' / 'store.db'}"
    upgrade_database(url)  # creates the folder
    db = Database(url)
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    db.dispose()


def test_sqlite_enforces_foreign_keys(tmp_path: Path) -> None:
    from sqlalchemy.exc import IntegrityError

    insert = text(
        "INSERT INTO api_tokens (user_id, name, token_hash, hint, created_at) "
        "VALUES (999, 'x', 'h', 'msk_', '2026-01-01 00:00:00')"
    )
    with (
        fresh_database("sqlite", tmp_path) as db,
        pytest.raises(IntegrityError),
        db.transaction() as session,
    ):
        session.execute(insert)


def test_postgres_urls_get_psycopg3_driver() -> None:
    assert normalise_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalise_url("sqlite:///x.db").drivername == "sqlite"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url"])
def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="database URL"):
        normalise_url(url)


def test_settings_defaults_and_environment(tmp_path: Path) -> None:
    default = StoreSettings.from_env({})
    assert default.data_dir == Path("~/.medsight").expanduser()
    assert default.store_raw_inputs is False
    assert default.url == f"sqlite:///{(default.data_dir / 'medsight.db').resolve()}"
    env = {
        "MEDSIGHT_DATA_DIR": str(tmp_path),
        "MEDSIGHT_STORE_INPUTS": "yes",
    }
    settings = StoreSettings.from_env(env)
    assert settings.registry_dir == tmp_path / "registry"
    assert settings.store_raw_inputs is True
    assert settings.url.endswith(f"{tmp_path}/medsight.db")
    pg = StoreSettings.from_env({**env, "MEDSIGHT_DATABASE_URL": "postgresql://h/db"})
    assert pg.url == "postgresql://h/db"


def test_settings_reject_a_bad_flag() -> None:
    with pytest.raises(ConfigError, match="MEDSIGHT_STORE_INPUTS"):
        StoreSettings.from_env({"MEDSIGHT_STORE_INPUTS": "maybe"})


def test_open_database_migrates_the_data_dir_file(tmp_path: Path) -> None:
    db = open_database(StoreSettings(data_dir=tmp_path / "data"))
    assert (tmp_path / "data" / "medsight.db").exists()
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    db.dispose()
