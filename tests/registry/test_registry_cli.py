"""``medsight registry`` commands through Typer's CliRunner, on a data directory in tmp_path."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

from medsight.cli.registry import registry_app
from medsight.registry.testing import write_test_bundle
from medsight.store.database import Database
from medsight.store.models import AuditEvent, User

TASK = "image-classification"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.delenv("MEDSIGHT_DATABASE_URL", raising=False)
    monkeypatch.setattr("medsight.cli.registry.console", Console(width=200))
    return {"MEDSIGHT_DATA_DIR": str(tmp_path / "data")}


def _invoke(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(registry_app, list(args), env=env)
    return result.exit_code, result.output


def test_register_promote_rollback_list(tmp_path: Path, env: dict[str, str]) -> None:
    code, out = _invoke(env, "list")
    assert (code, out.strip()) == (0, "No model versions registered.")
    for n in (1, 2):
        bundle = write_test_bundle(tmp_path / f"b{n}", name=f"net-{n}", content=bytes([n]))
        code, out = _invoke(env, "register", str(bundle))
        assert code == 0, out
        assert f"Registered {TASK} v{n} (net-{n}) as candidate" in out
    assert (tmp_path / "data" / "registry" / TASK / "v2" / "bundle.json").exists()

    assert _invoke(env, "promote", TASK, "1")[0] == 0
    code, out = _invoke(env, "promote", TASK, "2")
    assert (code, "v2 is in production" in out) == (0, True)
    code, out = _invoke(env, "rollback", TASK)
    assert code == 0 and f"{TASK} v1 is in production (was v2)" in out

    code, out = _invoke(env, "list", "--task", TASK)
    assert code == 0
    lines = [line for line in out.splitlines() if "net-" in line]
    assert "production" in lines[0] and "cli:alice" in lines[0]
    assert "archived (rolled_back)" in lines[1]

    db = Database(f"sqlite:///{tmp_path / 'data' / 'medsight.db'}")
    with db.transaction() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        user = session.scalar(select(User).where(User.username == "cli:alice"))
    db.dispose()
    assert user is not None and user.role == "admin" and user.password_hash is None
    assert [e.action for e in events] == [
        "user_create",
        "register",
        "register",
        "promote",
        "promote",
        "rollback",
    ]
    assert {(e.actor, e.source) for e in events} == {("cli:alice", "cli")}


def test_errors_are_one_line_with_exit_code_2(tmp_path: Path, env: dict[str, str]) -> None:
    bundle = write_test_bundle(tmp_path / "b")
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle, tampered)
    (tampered / "model.onnx").write_bytes(b"changed")
    code, out = _invoke(env, "register", str(tampered))
    assert code == 2
    assert "error: refusing to register" in out and "model.onnx does not match" in out
    assert "Traceback" not in out
    assert _invoke(env, "promote", TASK, "1")[0] == 2
    assert _invoke(env, "register", str(bundle))[0] == 0
    code, out = _invoke(env, "rollback", TASK)
    assert code == 2 and "no production model" in out
    code, out = _invoke(env, "promote", TASK, "5")
    assert code == 2 and "no version 5" in out
