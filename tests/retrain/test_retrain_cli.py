"""``medsight retrain`` through Typer's CliRunner on a data directory in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from retrain_support import give_feedback, train_champion
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

from medsight.bundle.tabular import TASK
from medsight.cli.retrain import retrain_command
from medsight.data.synthetic import make_risk_table
from medsight.registry import ModelRegistry
from medsight.store.database import open_database
from medsight.store.models import AuditEvent
from medsight.store.permissions import Role
from medsight.store.settings import StoreSettings
from medsight.store.testing import add_user

app = typer.Typer()
app.command()(retrain_command)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("USER", "alice")
    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.delenv("MEDSIGHT_DATABASE_URL", raising=False)
    monkeypatch.setattr("medsight.cli.retrain.console", Console(width=200))
    return {"MEDSIGHT_DATA_DIR": str(tmp_path / "data")}


def test_refused_challenger_exits_0_or_1_with_strict_and_reports(
    tmp_path: Path, env: dict[str, str]
) -> None:
    settings = StoreSettings(data_dir=tmp_path / "data")
    database = open_database(settings)
    registry = ModelRegistry.from_settings(settings)
    try:
        with database.transaction() as session:
            add_user(session, "sci", Role.DATA_SCIENTIST)
            add_user(session, "doc", Role.CLINICIAN)
        train_champion(tmp_path, database, registry, make_risk_table(300, seed=41))
        new = make_risk_table(200, seed=42)
        give_feedback(database, registry, new, list(np.where(new["disease"] == "yes", "no", "yes")))
    finally:
        database.dispose()

    runner = CliRunner()
    result = runner.invoke(app, [TASK, "--bootstrap", "100"], env=env)
    assert result.exit_code == 0, result.output
    assert "NOT PROMOTED" in result.output and "stays in production" in result.output
    assert "feedback used 200 (" in result.output and "unusable 0" in result.output
    assert "not shown non-inferior" in result.output and "DeLong" in result.output
    runs = sorted((tmp_path / "data" / "retrain").iterdir())
    assert len(runs) == 1 and (runs[0] / "report.html").is_file()
    assert json.loads((runs[0] / "comparison.json").read_text())["promoted"] is False

    strict = runner.invoke(app, [TASK, "--bootstrap", "100", "--strict"], env=env)
    assert strict.exit_code == 1, strict.output
    assert "NOT PROMOTED" in strict.output

    database = open_database(settings)
    try:
        with database.transaction() as session:
            events = session.scalars(select(AuditEvent).where(AuditEvent.action == "retrain"))
            assert [e.actor for e in events] == ["cli:alice", "cli:alice"]
            stages = {r.version: str(r.stage) for r in registry.list_versions(session, TASK)}
        assert stages == {1: "production", 2: "candidate", 3: "candidate"}
    finally:
        database.dispose()


def test_errors_are_one_line_with_exit_code_2(tmp_path: Path, env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, [TASK], env=env)
    assert result.exit_code == 2
    assert "no production model" in result.output
    bad = CliRunner().invoke(app, [TASK, "--holdout-fraction", "0.95"], env=env)
    assert bad.exit_code == 2 and "holdout fraction" in bad.output
