"""``medsight users``: accounts, passwords and API tokens from the CLI, all audited."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

from medsight.cli.users import users_app
from medsight.store.database import Database
from medsight.store.models import AuditEvent
from medsight.store.users import authenticate, get_user, user_for_token


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("USER", "it-admin")
    monkeypatch.setenv("LOGNAME", "it-admin")
    monkeypatch.delenv("MEDSIGHT_DATABASE_URL", raising=False)
    monkeypatch.setattr("medsight.cli.users.console", Console(width=200))
    return {"MEDSIGHT_DATA_DIR": str(tmp_path / "data")}


def _invoke(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(users_app, list(args), env=env, input=stdin)
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def _db(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'data' / 'medsight.db'}")


def test_add_list_token_revoke_and_deactivate(tmp_path: Path, env: dict[str, str]) -> None:
    code, out = _invoke(env, "add", "a.smith", "--password-stdin", stdin="correct horse 42\n")
    assert code == 0 and "Created a.smith (clinician)" in out, out
    code, out = _invoke(env, "add", "ds1", "--role", "data_scientist", "--generate")
    assert code == 0
    generated = re.search(r"Password \(shown once\): (\S+)", out)
    assert generated is not None

    code, out = _invoke(env, "token", "a.smith", "--name", "pacs-bridge", "--days", "30")
    assert code == 0 and "expires" in out
    plain = re.search(r"Token \(shown once\): (\S+)", out)
    assert plain is not None
    code, out = _invoke(env, "list")
    assert code == 0
    row = next(line for line in out.splitlines() if "a.smith" in line)
    assert "clinician" in row and "yes" in row and " 1 " in row

    database = _db(tmp_path)
    with database.transaction() as session:
        assert user_for_token(session, plain.group(1)).username == "a.smith"
        assert authenticate(session, "ds1", generated.group(1), source="test") is not None
    _, out = _invoke(env, "tokens", "a.smith")
    token_id = re.search(r"│\s*(\d+)\s*│\s*pacs-bridge", out)
    assert token_id is not None, out
    assert plain.group(1) not in out  # the token itself is never shown again
    assert _invoke(env, "revoke-token", token_id.group(1))[0] == 0
    assert _invoke(env, "deactivate", "ds1")[0] == 0
    with database.transaction() as session:
        assert user_for_token(session, plain.group(1)) is None
        assert authenticate(session, "ds1", generated.group(1), source="test") is None
        assert get_user(session, "ds1").is_active is False
        actions = [e.action for e in session.scalars(select(AuditEvent)).all()]
    assert actions.count("user_create") == 3  # the CLI admin, a.smith, ds1
    assert {"token_create", "token_revoke", "user_update"} <= set(actions)
    database.dispose()


@pytest.mark.parametrize(
    "args, stdin, message",
    [
        (("add", "x", "--role", "surgeon", "--no-password"), None, "unknown role 'surgeon'"),
        (("add", "bad name", "--no-password"), None, "is not allowed"),
        (("add", "x", "--password-stdin"), "\n", "no password on standard input"),
        (("token", "nobody", "--name", "t"), None, "user 'nobody' does not exist"),
        (("password", "nobody", "--generate"), None, "user 'nobody' does not exist"),
        (("revoke-token", "99"), None, "API token 99 does not exist"),
    ],
)
def test_bad_input_is_one_clear_error(
    env: dict[str, str], args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    code, out = _invoke(env, *args, stdin=stdin)
    assert code == 2 and message in out, out


def test_a_duplicate_user_is_refused(env: dict[str, str]) -> None:
    assert _invoke(env, "add", "a.smith", "--no-password")[0] == 0
    code, out = _invoke(env, "add", "a.smith", "--no-password")
    assert code == 2 and "already exists" in out
