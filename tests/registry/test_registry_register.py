"""Registering bundles: checksums verified, copied to <root>/<task>/v<N>, versions per task."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from medsight.errors import BundleError
from medsight.registry import ModelRegistry, inspect_bundle
from medsight.registry.testing import write_test_bundle
from medsight.store.database import Database
from medsight.store.errors import NotFoundError, PermissionDenied
from medsight.store.models import AuditEvent, ModelVersion, Stage, User
from medsight.store.permissions import Role
from medsight.store.testing import BACKENDS, add_user, fresh_database


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with fresh_database(request.param, tmp_path) as database:
        yield database


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "data" / "registry")


def test_register_copies_and_numbers_versions(
    db: Database, registry: ModelRegistry, tmp_path: Path
) -> None:
    first = write_test_bundle(tmp_path / "a", name="cnn-a")
    second = write_test_bundle(tmp_path / "b", content=b"other weights")
    write_test_bundle(
        tmp_path / "run" / "bundle", task="tabular-classification", tabular_layout=True
    )
    with db.transaction() as session:
        scientist = add_user(session, "sci", Role.DATA_SCIENTIST)
        v1 = registry.register(session, first, actor=scientist, source="10.0.0.5")
        v2 = registry.register(session, second, actor=scientist, source="10.0.0.5")
        t1 = registry.register(session, tmp_path / "run", actor=scientist, source="10.0.0.5")
    assert [(v.task, v.version, v.stage) for v in (v1, v2, t1)] == [
        ("image-classification", 1, Stage.CANDIDATE),
        ("image-classification", 2, Stage.CANDIDATE),
        ("tabular-classification", 1, Stage.CANDIDATE),
    ]
    assert (v1.name, t1.name) == ("cnn-a", "test-model")
    folder = registry.path_of(v2)
    assert folder == registry.root / "image-classification" / "v2"
    assert (folder / "model.onnx").read_bytes() == b"other weights"
    assert set(v2.files) == {"bundle.json", "model.onnx", "weights.pt", "model_card.md"}
    assert inspect_bundle(folder).bundle_sha256 == v2.bundle_sha256
    assert (registry.root / "tabular-classification" / "v1" / "model.joblib").exists()
    with db.transaction() as session:
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "register")).all()
        assert [e.detail["version"] for e in events] == [1, 2, 1]
        assert {(e.actor, e.source) for e in events} == {("sci", "10.0.0.5")}
        assert registry.get(session, "image-classification", 2).created_by.username == "sci"


def test_register_refuses_a_modified_bundle(
    db: Database, registry: ModelRegistry, tmp_path: Path
) -> None:
    original = write_test_bundle(tmp_path / "original")
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    (copy / "weights.pt").write_bytes(b"tampered")
    with db.transaction() as session:
        admin = add_user(session, "root", Role.ADMIN)
        with pytest.raises(BundleError, match=r"refusing to register.*weights\.pt does not match"):
            registry.register(session, copy, actor=admin, source="h")
        assert session.scalars(select(ModelVersion)).all() == []
    assert not (registry.root / "image-classification" / "v1").exists()


def test_register_refuses_missing_checksums_files_and_bad_tasks(
    db: Database, registry: ModelRegistry, tmp_path: Path
) -> None:
    cases = []
    no_sums = write_test_bundle(tmp_path / "no-sums")
    metadata = json.loads((no_sums / "bundle.json").read_text())
    (no_sums / "bundle.json").write_text(json.dumps({**metadata, "sha256": {}}))
    cases.append((no_sums, "records no checksums"))
    missing = write_test_bundle(tmp_path / "missing")
    (missing / "model.onnx").unlink()
    cases.append((missing, "missing model.onnx"))
    bad_task = write_test_bundle(tmp_path / "bad-task", task="../escape")
    cases.append((bad_task, "not a valid task name"))
    outside = write_test_bundle(tmp_path / "outside")
    metadata = json.loads((outside / "bundle.json").read_text())
    metadata["sha256"]["../no-sums/model.onnx"] = "0" * 64
    (outside / "bundle.json").write_text(json.dumps(metadata))
    cases.append((outside, "outside the bundle"))
    cases.append((tmp_path / "nowhere", "neither a bundle"))
    with db.transaction() as session:
        admin = add_user(session, "root", Role.ADMIN)
        for path, message in cases:
            with pytest.raises(BundleError, match=message):
                registry.register(session, path, actor=admin, source="h")


def test_only_scientists_and_admins_register(
    db: Database, registry: ModelRegistry, tmp_path: Path
) -> None:
    bundle = write_test_bundle(tmp_path / "b")
    with db.transaction() as session:
        clinician = add_user(session, "doc", Role.CLINICIAN)
        with pytest.raises(PermissionDenied, match="model:register"):
            registry.register(session, bundle, actor=clinician, source="h")


def test_failed_registration_leaves_no_row_and_no_folder(
    db: Database, registry: ModelRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medsight.store import audit

    bundle = write_test_bundle(tmp_path / "b")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    with db.transaction() as session:
        admin = add_user(session, "root", Role.ADMIN)
        monkeypatch.setattr(audit, "record", broken)
        with pytest.raises(RuntimeError, match="disk full"):
            registry.register(session, bundle, actor=admin, source="h")
        monkeypatch.undo()
        assert session.scalars(select(ModelVersion)).all() == []
    assert not (registry.root / "image-classification" / "v1").exists()
    # an orphan folder from a rolled-back transaction is replaced by the next registration
    orphan = registry.root / "image-classification" / "v1"
    orphan.mkdir(parents=True)
    (orphan / "junk").write_text("x")
    with db.transaction() as session:
        admin = session.get(User, admin.id)
        row = registry.register(session, bundle, actor=admin, source="h")
    assert row.version == 1 and not (orphan / "junk").exists()


def test_verify_detects_changes_to_the_registered_copy(
    db: Database, registry: ModelRegistry, tmp_path: Path
) -> None:
    with db.transaction() as session:
        admin = add_user(session, "root", Role.ADMIN)
        row = registry.register(session, write_test_bundle(tmp_path / "b"), actor=admin, source="h")
    registry.verify(row)
    (registry.path_of(row) / "extra.txt").write_text("x")
    (registry.path_of(row) / "model_card.md").write_text("edited")
    with pytest.raises(BundleError, match=r"added: extra\.txt; changed: model_card\.md"):
        registry.verify(row)


def test_get_names_known_versions(db: Database, registry: ModelRegistry, tmp_path: Path) -> None:
    with db.transaction() as session:
        admin = add_user(session, "root", Role.ADMIN)
        registry.register(session, write_test_bundle(tmp_path / "b"), actor=admin, source="h")
        with pytest.raises(NotFoundError, match=r"no version 7; known versions: \[1\]"):
            registry.get(session, "image-classification", 7)
        with pytest.raises(NotFoundError, match="no versions are registered"):
            registry.get(session, "ecg-rhythm", 1)
