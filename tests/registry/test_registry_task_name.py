"""Service task names: several bundles of one kind filed under their own task names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

from medsight.cli.registry import registry_app
from medsight.errors import ConfigError
from medsight.registry import ModelRegistry
from medsight.registry.testing import write_test_bundle
from medsight.store.database import Database
from medsight.store.models import AuditEvent, ModelVersion
from medsight.store.permissions import Role
from medsight.store.testing import add_user, fresh_database

KIND = "tabular-classification"


def test_register_under_task_names(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "registry")
    heart = write_test_bundle(tmp_path / "heart", task=KIND, tabular_layout=True)
    kidney = write_test_bundle(tmp_path / "kidney", task=KIND, tabular_layout=True, content=b"k")
    with fresh_database("sqlite", tmp_path) as db, db.transaction() as session:
        scientist = add_user(session, "sci", Role.DATA_SCIENTIST)
        h1 = registry.register(session, heart, actor=scientist, source="ip", task="heart-failure")
        k1 = registry.register(session, kidney, actor=scientist, source="ip", task="ckd")
        h2 = registry.register(session, kidney, actor=scientist, source="ip", task="heart-failure")
        default = registry.register(session, heart, actor=scientist, source="ip")
        assert [(v.task, v.version) for v in (h1, k1, h2, default)] == [
            ("heart-failure", 1),
            ("ckd", 1),
            ("heart-failure", 2),
            (KIND, 1),
        ]
        folder = registry.path_of(h2)
        assert folder == registry.root / "heart-failure" / "v2"
        # the bundle keeps its kind: that is what decides how it is served
        assert json.loads((folder / "bundle.json").read_text())["task"] == KIND
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "register")).first()
        assert event is not None
        assert (event.detail["task"], event.detail["kind"]) == ("heart-failure", KIND)
        with pytest.raises(ConfigError, match="not valid"):
            registry.register(session, heart, actor=scientist, source="ip", task="Heart Failure")
        assert (
            session.scalar(select(ModelVersion).where(ModelVersion.task == "Heart Failure")) is None
        )


def test_cli_register_with_task_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "alice")
    monkeypatch.delenv("MEDSIGHT_DATABASE_URL", raising=False)
    monkeypatch.setattr("medsight.cli.registry.console", Console(width=200))
    env = {"MEDSIGHT_DATA_DIR": str(tmp_path / "data")}
    bundle = write_test_bundle(tmp_path / "b", task=KIND, tabular_layout=True)
    runner = CliRunner()
    result = runner.invoke(registry_app, ["register", str(bundle), "--task", "sepsis"], env=env)
    assert result.exit_code == 0, result.output
    assert "Registered sepsis v1" in result.output
    assert (tmp_path / "data" / "registry" / "sepsis" / "v1" / "model.joblib").exists()
    bad = runner.invoke(registry_app, ["register", str(bundle), "--task", "../x"], env=env)
    assert bad.exit_code == 2 and "not valid" in bad.output
    database = Database(f"sqlite:///{tmp_path / 'data' / 'medsight.db'}")
    try:
        with database.transaction() as session:
            tasks = session.scalars(select(ModelVersion.task)).all()
    finally:
        database.dispose()
    assert tasks == ["sepsis"]
