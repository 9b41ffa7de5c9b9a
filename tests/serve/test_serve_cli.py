"""``medsight serve``: database created, first administrator bootstrapped, uvicorn started."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from medsight.cli import serve as serve_cli
from medsight.store.database import Database
from medsight.store.models import User
from medsight.store.permissions import Role
from medsight.store.testing import add_user, fresh_database
from medsight.store.users import authenticate


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    calls: list[dict[str, object]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append({"app": app, **kw}))
    monkeypatch.delenv("MEDSIGHT_DATABASE_URL", raising=False)
    monkeypatch.delenv("MEDSIGHT_ADMIN_PASSWORD", raising=False)
    return calls


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("serve")(serve_cli.serve_command)
    app.command("other")(lambda: None)  # two commands, so "serve" is a sub-command as in main
    return app


def test_serve_creates_database_and_prints_a_generated_password_once(
    tmp_path: Path, started: list[dict[str, object]]
) -> None:
    runner = CliRunner()
    args = ["serve", "--data-dir", str(tmp_path / "data"), "--port", "8123"]
    first = runner.invoke(_cli(), args)
    assert first.exit_code == 0, first.output
    assert started[0]["host"] == "127.0.0.1" and started[0]["port"] == 8123
    password = first.output.split("with password ")[1].split()[0]
    database = Database(f"sqlite:///{tmp_path / 'data' / 'medsight.db'}")
    try:
        with database.transaction() as session:
            admin = authenticate(session, "admin", password, source="test")
            assert admin is not None and admin.role == Role.ADMIN
    finally:
        database.dispose()
    second = runner.invoke(_cli(), args)
    assert second.exit_code == 0 and "password" not in second.output
    assert len(started) == 2


def test_admin_password_from_the_environment(
    tmp_path: Path, started: list[dict[str, object]]
) -> None:
    with fresh_database("sqlite", tmp_path) as database:
        with database.transaction() as session:
            add_user(session, "cli:alice", Role.ADMIN)  # an admin who cannot log in
        assert serve_cli.bootstrap_admin(database, "a long enough passphrase") is None
        with database.transaction() as session:
            assert authenticate(session, "admin", "a long enough passphrase", source="t")
            names = session.scalars(select(User.username).order_by(User.id)).all()
        assert names[0] == "cli:alice" and "admin" in names
        assert serve_cli.bootstrap_admin(database, "another passphrase!") is None
    result = CliRunner().invoke(
        _cli(),
        ["serve", "--data-dir", str(tmp_path / "d2")],
        env={"MEDSIGHT_ADMIN_PASSWORD": "short"},
    )
    assert result.exit_code == 2 and "password too short" in result.output
    assert started == []


def test_workers_build_their_app_from_the_environment(
    tmp_path: Path, started: list[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MEDSIGHT_DATA_DIR", "MEDSIGHT_REQUIRE_DEIDENTIFIED"):
        monkeypatch.setenv(name, "")  # so the test's end restores the environment the CLI sets
        monkeypatch.delenv(name)
    data = tmp_path / "data"
    args = ["serve", "--data-dir", str(data), "--workers", "2", "--require-deidentified"]
    result = CliRunner().invoke(_cli(), args)
    assert result.exit_code == 0, result.output
    call = started[-1]
    assert call["app"] == "medsight.serve.app:create_app" and call["factory"] is True
    assert call["workers"] == 2
    import os

    from medsight.serve.settings import ServeSettings

    worker_settings = ServeSettings.from_env(os.environ)  # what each worker will build
    assert worker_settings.store.data_dir == data.resolve()
    assert worker_settings.require_deidentified is True
    assert (data / "medsight.db").exists()  # migrated once, before the workers start


def test_servers_starting_together_create_one_admin(tmp_path: Path) -> None:
    """Two ``medsight serve`` processes on one SQLite file (two engines here) bootstrap at once:
    neither fails on SQLite's lock, and one admin is created."""
    import threading

    with fresh_database("sqlite", tmp_path) as migrated:
        databases = [Database(migrated.url), Database(migrated.url)]
        barrier = threading.Barrier(2)
        failures: list[BaseException] = []

        def start(database: Database) -> None:
            barrier.wait()
            try:
                serve_cli.bootstrap_admin(database, "a long enough passphrase")
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=start, args=(db,)) for db in databases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        try:
            assert failures == []
            with databases[0].transaction() as session:
                admins = session.scalars(select(User.username).where(User.role == Role.ADMIN))
                assert list(admins) == ["admin"]
        finally:
            for database in databases:
                database.dispose()
