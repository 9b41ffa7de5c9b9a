"""Helpers for retraining tests: a real champion, clinicians' predictions and feedback."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from medsight.bundle.tabular import TASK, TabularBundle
from medsight.config import DataConfig, EvaluationConfig, ModelConfig, TrainConfig, dump_config
from medsight.registry import ModelRegistry
from medsight.store.database import Database
from medsight.store.models import ModelVersion, User
from medsight.store.records import add_feedback, record_prediction
from medsight.tasks.tabular import prepare_table
from medsight.train.tabular import fit_tabular_model
from medsight.transforms.tabular import source_columns

if TYPE_CHECKING:
    from medsight.bundle.image import ImageBundle

FEATURES = ["age", "sex", "systolic_bp", "cholesterol", "biomarker", "chest_pain", "smoker"]


def user(db: Database, name: str) -> User:
    with db.transaction() as session:
        found = session.query(User).filter_by(username=name).one()
        session.expunge(found)
        return found


def train_champion(
    tmp_path: Path, db: Database, registry: ModelRegistry, frame: pd.DataFrame
) -> ModelVersion:
    """Fit a small logistic model on ``frame`` read from a CSV, write it as a run folder (bundle
    and config.yaml, as `medsight train` does, without the slow CV, SHAP and report), register
    the bundle and put it in production."""
    csv = tmp_path / "original.csv"
    frame.to_csv(csv, index=False)
    config = TrainConfig(
        name="risk",
        data=DataConfig(path=csv, target="disease", patient_id="patient_id"),
        model=ModelConfig(name="logistic", tune=False),
        evaluation=EvaluationConfig(inner_folds=3),
        output_dir=tmp_path / "runs",
    )
    prepared = prepare_table(config)
    X = prepared.frame[prepared.schema.feature_columns]
    fitted = fit_tabular_model(
        X,
        prepared.y,
        prepared.groups,
        prepared.schema,
        model=config.model,
        cleaning=config.cleaning,
        evaluation=config.evaluation,
        seed=config.seed,
    )
    preprocess = fitted.pipeline[:-1]
    bundle = TabularBundle(
        fitted,
        prepared.schema,
        np.asarray(preprocess.transform(X), dtype=float)[:20],  # a small SHAP background
        source_columns(preprocess, prepared.schema),
        {"name": "risk", "model": "logistic", "metrics": {}},
    )
    run_dir = tmp_path / "runs" / "risk-run"
    bundle.save(run_dir / "bundle")
    (run_dir / "config.yaml").write_text(dump_config(config))
    with db.transaction() as session:
        sci = session.query(User).filter_by(username="sci").one()
        row = registry.register(session, run_dir / "bundle", actor=sci, source="test")
        registry.promote(session, TASK, row.version, actor=sci, source="test")
        session.expunge(row)
        return row


def give_feedback(
    db: Database,
    registry: ModelRegistry,
    frame: pd.DataFrame,
    labels: list[str],
    *,
    store_raw: bool = True,
    raw: Callable[[dict], bytes] | None = None,
) -> list[int]:
    """Clinician 'doc' asks the production model about each row, then confirms or corrects it
    with ``labels``; returns the prediction ids."""
    encode = raw or (lambda row: json.dumps({"row": row}).encode())
    rows = json.loads(frame[FEATURES].to_json(orient="records"))
    ids = []
    with db.transaction() as session:
        doc = session.query(User).filter_by(username="doc").one()
        version = registry.production(session, TASK)
        bundle = TabularBundle.load(registry.verify(version))
        answers = bundle.predict(frame[FEATURES], explain=False)
        for row, answer, label in zip(rows, answers, labels, strict=True):
            prediction = record_prediction(
                session,
                doc,
                task=TASK,
                input_bytes=encode(row),
                label=answer["prediction"],
                probability=answer["probability"],
                output={"classes": bundle.schema.classes},
                model_version=version,
                input_type="application/json",
                store_raw=store_raw,
                source="test",
            )
            verdict = "confirmed" if label == answer["prediction"] else "corrected"
            add_feedback(session, doc, prediction.id, verdict=verdict, label=label, source="t")
            ids.append(prediction.id)
    return ids


def png_bytes(image: np.ndarray) -> bytes:
    """An 8-bit ``(H, W)`` image as the PNG a clinician uploads."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def production_image_answers(
    session: Session, registry: ModelRegistry, task: str, images: np.ndarray
) -> tuple[User, ModelVersion, ImageBundle, np.ndarray]:
    """Clinician 'doc', the task's production version and bundle, and its probabilities for
    8-bit images ``(N, H, W)``, as the service computes them for uploads."""
    from medsight.bundle.image import ImageBundle

    doc = session.query(User).filter_by(username="doc").one()
    version = registry.production(session, task)
    bundle = ImageBundle.load(registry.verify(version))
    return doc, version, bundle, bundle.predict_proba(images[:, None].astype(np.float32) / 255.0)
