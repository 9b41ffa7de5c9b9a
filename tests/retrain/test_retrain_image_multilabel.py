"""Retraining a multi-label image model (several findings per image) from clinicians' findings.

Three findings, each a bright square at its own place on noise. At the champion's site every
training image was read without finding "2" (its squares are there, its labels are 0), so the
champion cannot call it. Clinicians correct the training images that show it; the challenger
learns it, and the gate compares every finding on the untouched test split.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from retrain_support import png_bytes, production_image_answers, user
from rich.console import Console

from medsight.bundle.image import ImageBundle
from medsight.bundle.prediction import class_text
from medsight.cli.retrain import print_outcome
from medsight.config import ImageDataConfig, ImageTrainConfig
from medsight.errors import DataError
from medsight.registry import ModelRegistry
from medsight.retrain import RetrainOptions, retrain
from medsight.retrain.base import Champion
from medsight.retrain.image import ImageRetrainer, feedback_images, read_holdout
from medsight.store.database import Database
from medsight.store.models import User
from medsight.store.records import add_feedback, record_prediction
from medsight.tasks.image import run_image
from shared_helpers import FINDINGS_SIZES, write_findings_npz

TASK = "findings"
FINDINGS = ["0", "1", "2"]
MISSED = 2  # the finding the champion's readers never labelled


def _champion_run(folder: Path, npz: Path) -> Path:
    config = ImageTrainConfig(
        data=ImageDataConfig(path=str(npz)), output_dir=folder, name="findings-cnn"
    )
    config.model.ensemble = 2
    config.model.params = {"width": 8}
    config.engine.epochs = 6
    config.evaluation.n_bootstrap = 100
    config.evaluation.gradcam_cases = 0
    return run_image(config, progress=False).bundle_path


def _ask_and_correct(
    db: Database, registry: ModelRegistry, images: np.ndarray, truths: np.ndarray
) -> int:
    """Clinician 'doc' asks the production model about each image (PNG, stored raw) and
    answers with the findings truly present; the number of corrections."""
    corrected = 0
    with db.transaction() as session:
        doc, version, bundle, probabilities = production_image_answers(
            session, registry, TASK, images
        )
        for image, truth, row in zip(images, truths, probabilities, strict=True):
            answer = class_text(bundle.decide(row[None])[0], FINDINGS)
            prediction = record_prediction(
                session,
                doc,
                task=TASK,
                input_bytes=png_bytes(image),
                label=answer,
                probability=float(row.max()),
                output={"classes": FINDINGS, "multi_label": True},
                model_version=version,
                input_type="image/png",
                store_raw=True,
                source="test",
            )
            # clinicians write findings in their own order; the store keeps the model's
            said = "|".join(reversed(class_text(truth, FINDINGS).split("|")))
            verdict = "confirmed" if class_text(truth, FINDINGS) == answer else "corrected"
            corrected += verdict == "corrected"
            add_feedback(
                session,
                doc,
                prediction.id,
                verdict=verdict,
                label=said if verdict == "corrected" else None,
                source="t",
            )
    return corrected


def test_corrected_findings_teach_the_missed_one_and_every_finding_is_gated(
    tmp_path: Path, db: Database, registry: ModelRegistry
) -> None:
    truth = np.load(write_findings_npz(tmp_path / "truth.npz"))
    npz = write_findings_npz(tmp_path / "site.npz", unlabelled_in_train=MISSED)
    with db.transaction() as session:
        sci = session.query(User).filter_by(username="sci").one()
        row = registry.register(
            session, _champion_run(tmp_path / "runs", npz), actor=sci, source="t", task=TASK
        )
        registry.promote(session, TASK, row.version, actor=sci, source="t")
    shows_missed = truth["train_labels"][:, MISSED] == 1
    images, labels = truth["train_images"][shows_missed], truth["train_labels"][shows_missed]
    corrected = _ask_and_correct(db, registry, images, labels)

    outcome = retrain(
        db,
        registry,
        TASK,
        actor=user(db, "sci"),
        options=RetrainOptions(n_bootstrap=200),
        output_dir=tmp_path / "retrain",
    )

    decision = outcome.decision
    judged = {f["finding"]: f for f in decision.findings}
    assert set(judged) == set(FINDINGS) and all(f["judged"] for f in judged.values())
    # the champion ranks the missed finding no better than chance; the challenger learnt it
    assert judged["2"]["auroc_champion"] < 0.7 < 0.9 < judged["2"]["auroc_challenger"]
    assert judged["2"]["sensitivity_challenger"] > judged["2"]["sensitivity_champion"]
    assert decision.passed and all(f["passed"] for f in judged.values()), decision.reasons
    assert outcome.promoted and outcome.challenger_version == row.version + 1
    assert decision.auroc_champion == pytest.approx(
        np.mean([f["auroc_champion"] for f in judged.values()])
    )
    counts = outcome.counts
    assert counts["feedback_used"] == len(images) and outcome.unusable == []
    assert counts["feedback_corrected"] == corrected > 0.9 * len(images)
    assert counts["original_replaced_by_feedback"] == len(images)  # matched by pixels via PNG
    assert counts["holdout_rows"] == FINDINGS_SIZES["test"]
    assert counts["holdout_positive"] == int(truth["test_labels"].any(axis=1).sum())

    # the comparison's figures are the challenger bundle's own, at its own per-finding cuts
    with db.transaction() as session:
        bundle = ImageBundle.load(registry.verify(registry.production(session, TASK)))
    assert bundle.multi_label and bundle.metadata["retrained_from"]["version"] == row.version
    test_images = truth["test_images"][:, None].astype(np.float32) / 255.0
    np.testing.assert_allclose(
        bundle.predict_proba(test_images), outcome.held_out.challenger_probability, atol=1e-6
    )
    np.testing.assert_array_equal(outcome.held_out.y, truth["test_labels"])
    document = json.loads(outcome.json_path.read_text())
    assert [f["finding"] for f in document["gate"]["findings"]] == FINDINGS
    assert document["metrics"]["challenger"]["macro_auroc"]["value"] > 0.9
    html = outcome.report_path.read_text()
    assert "Each finding" in html and "mean over judged findings" in html
    assert "AUROC (mean over findings)" in html and "of which with at least one finding" in html
    assert "ROC curve per finding of the champion v1" in html
    assert "ROC curve per finding of the challenger" in html

    console = Console(record=True, width=200)
    print_outcome(console, outcome)  # what `medsight retrain` prints
    printed = console.export_text()
    assert "mean AUROC (95% CI)" in printed and "per finding" in printed
    assert "bound and p of the weakest" in printed and "PROMOTED" in printed


def test_feedback_findings_become_rows_and_bad_ones_are_listed(tmp_path: Path) -> None:
    from medsight.retrain.base import FeedbackCase

    npz = write_findings_npz(tmp_path / "f.npz", seed=1)
    folder = _champion_run(tmp_path / "runs", npz)
    bundle = ImageBundle.load(folder)
    image = np.load(npz)["test_images"][0]
    cases = [
        FeedbackCase(1, 11, "corrected", "2|0", png_bytes(image)),
        FeedbackCase(2, 12, "corrected", "none", png_bytes(image)),
        FeedbackCase(3, 13, "corrected", "0|cyst", png_bytes(image)),
    ]
    images, used, unusable = feedback_images(cases, bundle)
    np.testing.assert_array_equal(images.labels, [[1, 0, 1], [0, 0, 0]])
    assert [c.label for c in used] == ["0|2", "none"]
    assert [
        (u.prediction_id, "'cyst' is not one of the findings" in u.reason) for u in unusable
    ] == [(3, True)]

    # a held-out file of one label per image does not fit a model of findings
    single = tmp_path / "single.npz"
    one_label = {k: v[:, :1] if k.endswith("_labels") else v for k, v in np.load(npz).items()}
    np.savez(single, **one_label)
    with pytest.raises(DataError, match="one label per image, the champion takes findings"):
        read_holdout(single, bundle, size=None)

    # a held-out set without two images with and without some finding cannot judge anything
    held = tmp_path / "held.npz"
    arrays = dict(np.load(npz))
    for split in ("train", "val", "test"):
        arrays[f"{split}_labels"] = np.zeros_like(arrays[f"{split}_labels"])
    np.savez(held, **arrays)
    champion = Champion(TASK, 1, 1, "findings-cnn", "image-classification", folder, folder)
    with pytest.raises(DataError, match="no finding with 2 images with it and without it"):
        ImageRetrainer().train(champion, [], RetrainOptions(holdout=held))
