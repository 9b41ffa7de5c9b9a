"""The service part of the demo: models registered and promoted, a working clinician login."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from rich.console import Console
from sqlalchemy import select

from medsight.demo_service import (
    DEFAULT_DATA_DIR,
    DEMO_USERNAME,
    IMAGE_TASK,
    TABULAR_TASK,
    demo_store_settings,
    prepare_demo_service,
)
from medsight.errors import MedsightError
from medsight.registry.testing import write_test_bundle
from medsight.serve import ServeSettings, create_app
from medsight.store.database import open_database
from medsight.store.models import ModelVersion, Stage, User
from medsight.store.permissions import Role
from medsight.store.testing import add_user


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MEDSIGHT_DATA_DIR", "MEDSIGHT_DATABASE_URL", "MEDSIGHT_STORE_INPUTS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def bundles(tmp_path: Path) -> dict[str, Path]:
    tabular = write_test_bundle(
        tmp_path / "wdbc", task="tabular-classification", name="wdbc", tabular_layout=True
    )
    return {TABULAR_TASK: tabular, IMAGE_TASK: write_test_bundle(tmp_path / "image")}


def _prepare(data_dir: Path, bundles: dict[str, Path]):
    console = Console(record=True, width=200)
    login = prepare_demo_service(console, data_dir, bundles)
    return login, console.export_text()


def _login(data_dir: Path, password: str) -> tuple[int, dict]:
    settings = ServeSettings.from_env({"MEDSIGHT_DATA_DIR": str(data_dir)})
    with TestClient(create_app(settings)) as client:
        reply = client.post(
            "/v1/auth/token", json={"username": DEMO_USERNAME, "password": password}
        )
        if reply.status_code != 200:
            return reply.status_code, {}
        token = reply.json()["token"]
        models = client.get("/v1/models", headers={"Authorization": f"Bearer {token}"})
        assert models.status_code == 200, models.text
        return 200, {m["task"]: (m["version"], m["stage"]) for m in models.json()["models"]}


def _rows(data_dir: Path, model):
    database = open_database(demo_store_settings(data_dir), upgrade=False)
    try:
        with database.transaction() as session:
            return list(session.scalars(select(model)))
    finally:
        database.dispose()


def test_models_served_and_login_works(tmp_path: Path, bundles: dict[str, Path]) -> None:
    login, text = _prepare(tmp_path / "svc", bundles)
    assert login.data_dir == (tmp_path / "svc").resolve()
    assert login.models == {TABULAR_TASK: 1, IMAGE_TASK: 1}
    assert login.username == DEMO_USERNAME and len(login.password) >= 16
    assert f"MEDSIGHT_DATA_DIR={login.data_dir} medsight serve" in text
    assert "http://127.0.0.1:8000/" in text and "http://127.0.0.1:8000/docs" in text
    assert login.password in text
    status, models = _login(login.data_dir, login.password)
    assert status == 200
    assert models == {TABULAR_TASK: (1, "production"), IMAGE_TASK: (1, "production")}
    [user] = [u for u in _rows(login.data_dir, User) if u.username == DEMO_USERNAME]
    assert user.role == Role.CLINICIAN


def test_second_run_reuses_models_and_account(tmp_path: Path, bundles) -> None:
    data_dir = tmp_path / "svc"
    first, _ = _prepare(data_dir, bundles)
    second, text = _prepare(data_dir, bundles)
    assert second.models == first.models == {TABULAR_TASK: 1, IMAGE_TASK: 1}
    assert second.password != first.password and second.password in text
    assert _login(data_dir, first.password)[0] == 401
    assert _login(data_dir, second.password)[0] == 200
    assert [u.username for u in _rows(data_dir, User)].count(DEMO_USERNAME) == 1
    assert len(_rows(data_dir, ModelVersion)) == 2


def test_new_bundle_becomes_next_production_version(tmp_path: Path, bundles) -> None:
    data_dir = tmp_path / "svc"
    _prepare(data_dir, bundles)
    retrained = write_test_bundle(tmp_path / "image-2", content=b"other weights")
    login, _ = _prepare(data_dir, {**bundles, IMAGE_TASK: retrained})
    assert login.models == {TABULAR_TASK: 1, IMAGE_TASK: 2}
    stages = {(v.task, v.version): v.stage for v in _rows(data_dir, ModelVersion)}
    assert stages[(IMAGE_TASK, 1)] is Stage.ARCHIVED
    assert stages[(IMAGE_TASK, 2)] is Stage.PRODUCTION
    # the old bundle again: its version comes back to production, nothing is re-registered
    login, _ = _prepare(data_dir, bundles)
    assert login.models[IMAGE_TASK] == 1
    assert len(_rows(data_dir, ModelVersion)) == 3


def test_refuses_to_reset_a_non_clinician_account(tmp_path: Path, bundles) -> None:
    data_dir = tmp_path / "svc"
    database = open_database(demo_store_settings(data_dir))
    try:
        with database.transaction() as session:
            add_user(session, DEMO_USERNAME, Role.ADMIN, password="keep this passphrase")
    finally:
        database.dispose()
    with pytest.raises(MedsightError, match="resets only a clinician"):
        _prepare(data_dir, bundles)
    assert _rows(data_dir, ModelVersion) == []  # one transaction: nothing half-done


def test_data_dir_default_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert demo_store_settings().data_dir == (tmp_path / DEFAULT_DATA_DIR).resolve()
    monkeypatch.setenv("MEDSIGHT_DATA_DIR", str(tmp_path / "site"))
    assert demo_store_settings().data_dir == (tmp_path / "site").resolve()
    assert demo_store_settings(tmp_path / "given").data_dir == (tmp_path / "given").resolve()
