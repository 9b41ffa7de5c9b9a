"""Retraining an image task: phantom images whose labels the data decides, a tiny CNN champion.

The phantom's ``lesion`` class (label 1) carries a dark or bright blob and ``normal`` (0) does not;
only clearly visible lesions are kept, so a small CNN learns them in a few epochs (AUROC about
0.97). A model trained where bright lesions were read as normal misses them (its AUROC and its
sensitivity fall by about the bright share), and one trained on flipped labels ranks images upside
down: the outcomes below are set by the labels, not by the seed. Images are 8-bit, like the PNGs
clinicians upload.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from retrain_support import png_bytes, production_image_answers, user
from sqlalchemy import select

from medsight.bundle.image import ImageBundle
from medsight.config import ImageDataConfig, parse_config
from medsight.data.image_audit import SPLIT_THRESHOLD_KEY
from medsight.data.phantom import make_phantom_images
from medsight.registry import ModelRegistry
from medsight.retrain import RetrainOptions, retrain, retrainer_for
from medsight.retrain.image import ImageRetrainer, champion_split_settings, image_key
from medsight.store.database import Database
from medsight.store.models import AuditEvent, User
from medsight.store.records import add_feedback, record_prediction
from medsight.tasks.image import run_image

TASK = "lesions"
SIZES = {"train": 300, "val": 200, "test": 200}
NORMAL, DARK, BRIGHT = 0, 1, 2  # what a phantom image shows; label 1 (lesion) = DARK or BRIGHT
SHARES = (0.6, 0.15, 0.25)
MIN_CONTRAST = 0.15  # the phantom's blobs have a peak contrast of 0.06-0.3


def _phantom(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 8-bit phantom images ``(n, 28, 28)`` and what each shows (:data:`NORMAL`,
    :data:`DARK` or :data:`BRIGHT` lesion, in :data:`SHARES`). Each lesion image is drawn with
    and without its lesion from the same seed (same texture), so the difference is the blob:
    its sign tells dark from bright, and faint blobs (< :data:`MIN_CONTRAST`) are drawn again."""
    rng = np.random.default_rng(seed)
    images, kinds, k = [], [], seed * 100_000
    for kind in rng.choice(3, size=n, p=SHARES):
        while True:
            k += 1
            image = make_phantom_images(1, lesion_fraction=float(kind > 0), seed=k).images[0, 0]
            if kind == NORMAL:
                break
            blob = image - make_phantom_images(1, lesion_fraction=0.0, seed=k).images[0, 0]
            peak = blob.flat[np.abs(blob).argmax()]
            if abs(peak) >= MIN_CONTRAST and (peak > 0) == (kind == BRIGHT):
                break
        images.append(image)
        kinds.append(kind)
    return np.round(np.stack(images) * 255).astype(np.uint8), np.array(kinds)


def _sets(seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Independent draws per split: 8-bit images ``(N, 28, 28)`` and what they show."""
    return {split: _phantom(n, seed * 10 + i) for i, (split, n) in enumerate(SIZES.items())}


def _write_npz(
    path: Path, sets: dict[str, tuple[np.ndarray, np.ndarray]], *, bright_read_as_normal: bool
) -> Path:
    """A MedMNIST-style file with official splits; optionally, the training labels of a site
    whose readers missed every bright lesion (labelled normal)."""
    arrays = {}
    for split, (images, kinds) in sets.items():
        labels = (kinds > NORMAL).astype(np.int64)
        if split == "train" and bright_read_as_normal:
            labels[kinds == BRIGHT] = 0
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
    np.savez(path, **arrays)
    return path


def _train_run(folder: Path, npz: Path) -> Path:
    """The champion as `medsight train` makes it (run folder with bundle and config.yaml)."""
    config = parse_config(
        {
            "task": "image-classification",
            "name": "lesion-cnn",
            "output_dir": str(folder),
            "data": {"path": str(npz)},
            # the pixel SVM member rides along: challengers are retrained with it too. It is
            # pinned as this test was written (pixels, an equal share): the default scattering
            # member ranks the mislabelled champion's images well enough (AUROC about 0.855) to
            # sit on this scenario's 0.85 bound, so the outcome would hang on the run's order
            "model": {
                "name": "small_cnn",
                "ensemble": 1,
                "params": {"width": 8},
                "svm_member": {"enabled": True, "features": "pixels", "weight": 0.5},
            },
            "augment": {"affine_probability": 0.0, "gamma": 1.0},
            "engine": {
                "epochs": 10,
                "batch_size": 16,
                "patience": None,
                "class_balance": "weights",
                # keep the epoch of lowest val loss: on these easy images val AUROC is ~0.99 from
                # the first epoch, and keeping an under-trained first epoch by a tie on AUROC left
                # its probabilities below 0.5 (sensitivity 0.13 at AUROC 0.96), which is decided by
                # the training stream, not by the labels this test is about
                "monitor": "loss",
                "tta": False,
            },
            "evaluation": {"n_bootstrap": 100, "gradcam_cases": 0},
        }
    )
    return run_image(config, progress=False).bundle_path


def _promote(db: Database, registry: ModelRegistry, bundle: Path) -> int:
    with db.transaction() as session:
        sci = session.query(User).filter_by(username="sci").one()
        row = registry.register(session, bundle, actor=sci, source="test", task=TASK)
        registry.promote(session, TASK, row.version, actor=sci, source="test")
        return row.version


def _feedback(
    db: Database,
    registry: ModelRegistry,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    store_raw: bool = True,
    raw: bytes | None = None,
) -> list[int]:
    """Clinician 'doc' asks the production model about each 8-bit image, as the service does
    (PNG upload, stored raw), then confirms or corrects it with ``labels`` (0/1)."""
    ids = []
    with db.transaction() as session:
        doc, version, bundle, probabilities = production_image_answers(
            session, registry, TASK, images
        )
        for image, label, row in zip(images, labels, probabilities, strict=True):
            answer = bundle.class_names[int(row.argmax())]
            prediction = record_prediction(
                session,
                doc,
                task=TASK,
                input_bytes=raw if raw is not None else png_bytes(image),
                label=answer,
                probability=float(row[1]),
                output={"classes": bundle.class_names},
                model_version=version,
                input_type="image/png",
                store_raw=store_raw,
                source="test",
            )
            truth = bundle.class_names[int(label)]
            verdict = "confirmed" if truth == answer else "corrected"
            add_feedback(session, doc, prediction.id, verdict=verdict, label=truth, source="t")
            ids.append(prediction.id)
    return ids


def _retrain(db: Database, registry: ModelRegistry, tmp_path: Path, **options: object):
    return retrain(
        db,
        registry,
        TASK,
        actor=user(db, "sci"),
        options=RetrainOptions(n_bootstrap=200, **options),  # type: ignore[arg-type]
        output_dir=tmp_path / "retrain",
    )


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A champion trained on correct labels (shared: training it takes a few seconds)."""
    folder = tmp_path_factory.mktemp("clean")
    sets = _sets(seed=5)
    npz = _write_npz(folder / "clean.npz", sets, bright_read_as_normal=False)
    return _train_run(folder / "runs", npz), sets


def test_image_bundles_have_a_retrainer() -> None:
    assert isinstance(retrainer_for("image-classification"), ImageRetrainer)


def test_corrected_labels_of_missed_lesions_make_a_challenger_that_is_promoted(
    tmp_path: Path, db: Database, registry: ModelRegistry
) -> None:
    sets = _sets(seed=3)
    npz = _write_npz(tmp_path / "original.npz", sets, bright_read_as_normal=True)
    champion = _promote(db, registry, _train_run(tmp_path / "runs", npz))
    # clinicians see the mislabelled pictures again and give their true label (lesion)
    images, kinds = sets["train"]
    missed = images[kinds == BRIGHT]
    ids = _feedback(db, registry, missed, np.ones(len(missed), dtype=int))

    outcome = _retrain(db, registry, tmp_path)

    decision = outcome.decision
    assert decision.passed, decision.reasons
    # the champion learnt "bright blob = normal": it misses the bright half of the lesions
    assert decision.auroc_champion < 0.85 < 0.9 < decision.auroc_challenger
    assert decision.sensitivity_challenger > decision.sensitivity_champion
    assert outcome.promoted and outcome.challenger_version == champion + 1
    counts = outcome.counts
    assert counts["feedback_used"] == len(ids) == len(missed) > 40 and outcome.unusable == []
    assert counts["feedback_corrected"] > 0.9 * len(missed)  # the champion called them normal
    assert counts["original_replaced_by_feedback"] == len(missed)  # matched by pixels via PNG
    assert counts["original_training_rows"] == SIZES["train"] - len(missed)
    assert counts["training_rows"] == SIZES["train"]
    assert counts["holdout_rows"] == SIZES["test"] and counts["holdout_excluded_as_feedback"] == 0
    assert "original test split" in outcome.sources["holdout"]
    assert outcome.sources["config"].endswith("config.yaml")

    # the promoted bundle is a normal image bundle that carries its recipe for the next retrain
    document = json.loads(outcome.json_path.read_text())
    assert document["promoted"] is True and document["gate"]["passed"] is True
    with db.transaction() as session:
        folder = registry.verify(registry.production(session, TASK))
    bundle = ImageBundle.load(folder)
    assert bundle.metadata["retrained_from"]["version"] == champion
    assert bundle.metadata["name"] == "lesion-cnn-retrained"
    assert bundle.metadata["model"]["svm_member"]  # the challenger has its own SVM member
    assert bundle.metadata["config"]["data"]["path"] == str(npz.resolve())
    assert bundle.metadata["metrics"]["auroc"]["value"] == pytest.approx(decision.auroc_challenger)
    # the held-out figures are the saved bundle's own (ONNX) probabilities
    test_images = sets["test"][0][:, None].astype(np.float32) / 255.0
    np.testing.assert_allclose(
        bundle.predict_proba(test_images)[:, 1],
        outcome.held_out.challenger_probability,
        atol=1e-6,
    )


def test_poisoned_feedback_is_refused_with_the_reason_in_the_report(
    tmp_path: Path, db: Database, registry: ModelRegistry, clean_run: tuple[Path, dict]
) -> None:
    bundle, sets = clean_run
    champion = _promote(db, registry, bundle)
    train_images, train_kinds = sets["train"]
    test_images, test_kinds = sets["test"]
    new_images, new_kinds = _phantom(150, seed=77)
    # flipped labels: half the original training images, new images, and 20 test images
    for images, kinds in (
        (train_images[:150], train_kinds[:150]),
        (new_images, new_kinds),
        (test_images[:20], test_kinds[:20]),
    ):
        _feedback(db, registry, images, (kinds == NORMAL).astype(int))

    outcome = _retrain(db, registry, tmp_path)

    decision = outcome.decision
    assert not decision.passed and not decision.auroc_noninferior
    assert decision.auroc_champion > 0.9 and decision.auroc_challenger < 0.5
    assert not outcome.promoted and outcome.challenger_version == champion + 1
    counts = outcome.counts
    assert counts["feedback_used"] == 320
    assert counts["feedback_corrected"] > counts["feedback_confirmed"]  # the champion disagreed
    assert counts["original_replaced_by_feedback"] == 150
    assert counts["holdout_excluded_as_feedback"] == 20  # never scored on what it trained on
    assert counts["holdout_rows"] == SIZES["test"] - 20
    assert counts["training_rows"] == SIZES["train"] - 150 + 320
    document = json.loads(outcome.json_path.read_text())
    assert document["promoted"] is False
    assert any("not shown non-inferior" in r for r in document["gate"]["reasons"])
    html = outcome.report_path.read_text()
    assert "NOT PROMOTED" in html and "not shown non-inferior" in html
    with db.transaction() as session:
        assert registry.production(session, TASK).version == champion


def test_unusable_image_cases_are_listed_not_fatal(
    tmp_path: Path, db: Database, registry: ModelRegistry, clean_run: tuple[Path, dict]
) -> None:
    bundle, sets = clean_run
    _promote(db, registry, bundle)
    images, kinds = sets["train"]
    labels = (kinds > NORMAL).astype(int)
    usable = _feedback(db, registry, images[:5], labels[:5])
    not_stored = _feedback(db, registry, images[5:6], labels[5:6], store_raw=False)
    not_image = _feedback(db, registry, images[6:7], labels[6:7], raw=b"%PDF-1.4 a letter")
    broken = _feedback(db, registry, images[7:8], labels[7:8], raw=png_bytes(images[7])[:60])
    # a trusted held-out set of class folders ("0", "1") given with --holdout
    holdout = tmp_path / "holdout"
    for i, (pixels, kind) in enumerate(zip(*_phantom(60, seed=91), strict=True)):
        label = str(int(kind > NORMAL))
        (holdout / label).mkdir(parents=True, exist_ok=True)
        (holdout / label / f"{i}.png").write_bytes(png_bytes(pixels))

    outcome = _retrain(db, registry, tmp_path, holdout=holdout)

    reasons = {u.prediction_id: u.reason for u in outcome.unusable}
    assert set(reasons) == {*not_stored, *not_image, *broken}
    assert "input was not stored" in reasons[not_stored[0]]
    assert "not a PNG, JPEG or DICOM" in reasons[not_image[0]]
    assert "damaged or truncated" in reasons[broken[0]]
    assert outcome.counts["feedback_used"] == len(usable) == 5
    assert outcome.counts["original_replaced_by_feedback"] == 5
    assert outcome.counts["holdout_rows"] == 60
    assert outcome.sources["holdout"] == f"every image of {holdout}"
    document = json.loads(outcome.json_path.read_text())
    assert {u["prediction_id"] for u in document["feedback"]["unusable"]} == set(reasons)
    with db.transaction() as session:
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "retrain"))
        assert event.detail["feedback_unusable"] == 3 and event.detail["feedback_used"] == 5


def test_image_key_matches_a_picture_and_itspng_bytes() -> None:
    image = make_phantom_images(1, seed=1).images[0]
    pixels = np.round(image[0] * 255).astype(np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(png_bytes(pixels))), dtype=np.float32)[None] / 255.0
    assert image_key(image) == image_key(decoded)
    assert image_key(image) != image_key(np.flip(image, axis=2))


def test_unsplit_data_are_split_again_as_the_champion_split_them() -> None:
    data = ImageDataConfig(path="old/path", image_size=32)  # today's default groups at 0.97
    grouped = ImageBundle({"data": {SPLIT_THRESHOLD_KEY: 0.99}})
    assert champion_split_settings(data, grouped, "scans/").near_duplicate_threshold == 0.99
    older = ImageBundle({"data": {"source": "scans/"}})  # made before near-duplicate grouping
    settings = champion_split_settings(data, older, "scans/")
    assert settings.near_duplicate_threshold is None
    assert settings.path == "scans/" and settings.image_size == 32
