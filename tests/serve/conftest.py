"""Fixtures for the service tests: tiny real bundles of each kind, and a ready-to-call service.

Bundles are trained or built once per session: a logistic tabular run on a synthetic table, and
untrained small networks saved as real image and ECG bundles (ONNX + weights); the service tests
check the plumbing, not the accuracy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

import pytest
from fastapi.testclient import TestClient
from serve_helpers import PASSWORD, write_untrained_image_bundle

from medsight.registry import ModelRegistry
from medsight.serve import ServeSettings, create_app
from medsight.store.database import Database
from medsight.store.permissions import Role
from medsight.store.settings import StoreSettings
from medsight.store.testing import add_user, fresh_database
from medsight.store.users import create_api_token
from shared_helpers import write_untrained_ecg_bundle


@pytest.fixture(scope="session")
def tabular_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A logistic model fitted once on a synthetic table (no cross-validation: fast)."""
    from medsight.bundle.tabular import TabularBundle
    from medsight.config import DataConfig, EvaluationConfig, ModelConfig, TrainConfig
    from medsight.data.synthetic import make_risk_table
    from medsight.tasks.tabular import prepare_table
    from medsight.train.tabular import fit_tabular_model

    config = TrainConfig(
        name="risk",
        data=DataConfig(target="disease", patient_id="patient_id"),
        model=ModelConfig(name="logistic"),
        evaluation=EvaluationConfig(inner_folds=2),
    )
    prepared = prepare_table(config, make_risk_table(150, seed=3))
    X = prepared.frame[prepared.schema.feature_columns]
    fitted = fit_tabular_model(
        X,
        prepared.y,
        prepared.groups,
        prepared.schema,
        model=config.model,
        cleaning=config.cleaning,
        evaluation=config.evaluation,
        seed=0,
    )
    bundle = TabularBundle.from_fit(fitted, prepared.schema, X, {"name": "risk"})
    return bundle.save(tmp_path_factory.mktemp("tabular") / "bundle")


@pytest.fixture(scope="session")
def image_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("image") / "bundle"
    return write_untrained_image_bundle(folder, ["benign", "malignant"], positive_class="malignant")


@pytest.fixture(scope="session")
def ecg_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_untrained_ecg_bundle(tmp_path_factory.mktemp("ecg") / "bundle", "tiny-rhythm")


@dataclass
class Service:
    """A running app (in-process) with users, their tokens and promoted models."""

    client: TestClient
    database: Database
    settings: ServeSettings
    tokens: dict[str, str] = field(default_factory=dict)

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """``make_service({task: bundle}, **settings)``: users admin, sci, alice, bob (clinicians)."""
    stack = ExitStack()

    def make(models: dict[str, Path] | None = None, **options: object) -> Service:
        data = Path(stack.enter_context(TemporaryDirectory(dir=tmp_path)))
        raw = bool(options.pop("store_raw_inputs", False))
        store = StoreSettings(data_dir=data, store_raw_inputs=raw)
        settings = ServeSettings(store=store, **options)  # type: ignore[arg-type]
        database = stack.enter_context(fresh_database("sqlite", data))
        client = stack.enter_context(TestClient(create_app(settings, database)))
        service = Service(client, database, settings)
        registry = ModelRegistry.from_settings(store)
        with database.transaction() as session:
            users = {
                "admin": add_user(session, "admin", Role.ADMIN, password=PASSWORD),
                "sci": add_user(session, "sci", Role.DATA_SCIENTIST),
                "alice": add_user(session, "alice", Role.CLINICIAN, password=PASSWORD),
                "bob": add_user(session, "bob", Role.CLINICIAN),
            }
            for name, user in users.items():
                _, plain = create_api_token(session, user, "test", actor=user, source="test")
                service.tokens[name] = plain
            for task, bundle in (models or {}).items():
                row = registry.register(session, bundle, actor=users["sci"], source="t", task=task)
                registry.promote(session, task, row.version, actor=users["sci"], source="t")
        return service

    with stack:
        yield make
