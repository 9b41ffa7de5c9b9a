"""Retraining an image bundle: the original train split plus feedback images, the champion's recipe.

The champion's training config is found as for tables: ``--config``, else ``config`` in the
bundle's ``bundle.json`` (written by retraining), else ``config.yaml`` in the run folder the bundle
was registered from. Its ``data.path`` (or ``--data``) is read again with the run's own splits
(:func:`~medsight.tasks.image_data.load_image_splits`, same seed): the challenger is trained by
:func:`~medsight.tasks.image.train_image_model` on the train split plus the feedback images and
early-stopped on the val split; both models are scored on the original test split (which neither
trained nor early-stopped on) or on every image of ``--holdout``.

A feedback input is the uploaded file (PNG, JPEG or DICOM), decoded by the service's own decoder
and fitted to the bundle's input by :meth:`~medsight.bundle.image.ImageBundle.prepare`, exactly as
at prediction. Images are matched by their pixels (at 8-bit precision): a held-out or validation
image that is also a feedback case leaves the comparison / early stopping, and an original
training image with a clinician's verdict is replaced by the feedback case.

Multi-label bundles (several findings per image) take the clinician's set of findings (``a|b``,
``none``) as a 0/1 row, and the gate compares every finding
(:func:`~medsight.retrain.gate.decide_findings`).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from medsight.bundle.image import BUNDLE_FORMAT, FILES, TASK, ImageBundle
from medsight.bundle.prediction import class_text, findings_row
from medsight.config import ImageDataConfig, ImageTrainConfig
from medsight.data.image_audit import SPLIT_THRESHOLD_KEY
from medsight.errors import ConfigError, DataError
from medsight.evaluate.thresholds import finding_thresholds
from medsight.io.images import ImageSet, read_image_csv, read_image_folder, read_medmnist_npz
from medsight.retrain.base import (
    Challenge,
    Champion,
    FeedbackCase,
    HeldOut,
    RetrainOptions,
    UnusableCase,
)
from medsight.retrain.challenger import (
    challenger_model_card,
    class_of,
    copy_scored_bundle,
    feedback_counts,
    retraining_provenance,
)
from medsight.retrain.feedback_split import holdout_notes, split_out_feedback
from medsight.retrain.gate import MIN_CASES_PER_SIDE, judgeable
from medsight.retrain.recipe import champion_config, locate_original
from medsight.tasks.image import bundle_metadata, train_image_model
from medsight.tasks.image_data import PHANTOM, ImageSplits, check_splits, load_image_splits


@dataclass
class _Payload:
    """What saving needs: the scored challenger bundle (a temporary folder) and provenance."""

    scratch: tempfile.TemporaryDirectory[str]
    folder: Path
    metadata: dict[str, Any]
    config: ImageTrainConfig
    champion: Champion
    champion_metadata: dict[str, Any]


class ImageRetrainer:
    """The :class:`~medsight.retrain.base.Retrainer` of ``image-classification`` bundles."""

    kind = TASK

    def train(
        self, champion: Champion, cases: Sequence[FeedbackCase], options: RetrainOptions
    ) -> Challenge:
        bundle = ImageBundle.load(champion.folder)
        classes = bundle.class_names
        positive = None if bundle.multi_label else _positive_index(bundle)
        config, config_source = champion_config(
            bundle.metadata, champion, options.config, ImageTrainConfig, "images"
        )
        data_path = resolve_data_spec(options.data or config.data.path, config_source)
        config = config.model_copy(
            update={"data": champion_split_settings(config.data, bundle, data_path)}
        )
        splits = load_image_splits(config.data, seed=config.seed)
        _check_like_champion(splits.train, bundle, splits.source)
        feedback, used, unusable = feedback_images(
            cases, bundle, require_deidentified=config.data.require_deidentified
        )
        keys = {image_key(image) for image in feedback.images}
        notes: list[str] = []

        if options.holdout is not None:
            held = read_holdout(options.holdout, bundle, size=config.data.image_size)
            holdout_source = f"every image of {options.holdout}"
        else:
            held = splits.test
            holdout_source = (
                f"the original test split of {splits.source} (neither model trained or "
                "early-stopped on it)"
            )
        notes += holdout_notes(options, "image")
        split = split_out_feedback(
            splits.train,
            splits.val,
            held,
            keys,
            _image_keys,
            noun="images",
            any_feedback=bool(used),
        )
        train, val, held = split.train, split.val, split.held
        notes += split.notes

        training = concat_sets([train, feedback], classes)
        challenger_splits = ImageSplits(training, val, held, splits.source, splits.official_splits)
        check_splits(challenger_splits)
        y_holdout = _holdout_targets(held, positive, holdout_source)
        trained = train_image_model(config, challenger_splits, progress=False)
        metadata = bundle_metadata(config, challenger_splits, trained, {}, positive)
        scratch = tempfile.TemporaryDirectory(prefix="medsight-retrain-")
        folder = Path(scratch.name) / "bundle"
        challenger = ImageBundle.save_model(
            trained.model, folder, metadata, parity_inputs=held.images[:16]
        )
        held_out = HeldOut(
            y=y_holdout,
            champion_probability=_scores(bundle, held.images, positive),
            challenger_probability=_scores(challenger, held.images, positive),
            champion_threshold=_threshold(bundle),
            challenger_threshold=_threshold(challenger),
            groups=held.patient_ids,
            findings=list(classes) if bundle.multi_label else None,
        )
        counts = {
            "original_rows": sum(len(s) for _, s in splits.items()),
            "original_training_rows": len(train),
            **feedback_counts(used),
            "training_rows": len(training),
            "validation_rows": len(val),
            "holdout_rows": len(y_holdout),
            # multi-label: the held-out images with at least one finding
            "holdout_positive": int(np.sum(y_holdout.reshape(len(y_holdout), -1).any(axis=1))),
            **split.counts,
        }
        sources = {
            "config": config_source,
            "original_data": splits.source,
            "holdout": holdout_source,
            "model": _describe_model(config),
        }
        payload = _Payload(scratch, folder, challenger.metadata, config, champion, bundle.metadata)
        return Challenge(held_out, used, unusable, counts, sources, notes, payload)

    def save(self, challenge: Challenge, folder: Path, metadata: dict[str, Any]) -> Path:
        """Copy the scored challenger's network files and write its ``bundle.json``."""
        payload: _Payload = challenge.payload
        counts = challenge.counts
        full = {
            **payload.metadata,
            **retraining_provenance(payload.champion, payload.champion_metadata, counts),
            "evaluation": (
                f"held-out comparison with the champion on {counts['holdout_rows']} images "
                f"({challenge.sources['holdout']})"
            ),
            "config": payload.config.model_dump(mode="json"),
            **metadata,
        }
        card = challenger_model_card(
            full, challenge, "images", ["Metrics in bundle.json are from that held-out comparison."]
        )
        folder = copy_scored_bundle(
            payload.folder,
            folder,
            FILES[1:],
            full,
            task=TASK,
            bundle_format=BUNDLE_FORMAT,
            model_card=card,
        )
        payload.scratch.cleanup()
        return folder


# ------------------------------------------------------------------------------ config and data


def champion_split_settings(
    data: ImageDataConfig, bundle: ImageBundle, path: str
) -> ImageDataConfig:
    """``data`` reading ``path`` and splitting unsplit data as the champion's run did: the
    near-duplicate grouping its bundle records, or none for bundles made before it existed."""
    stored = bundle.metadata.get("data", {})
    threshold = stored.get(SPLIT_THRESHOLD_KEY)  # absent: images were split independently
    return data.model_copy(update={"path": path, "near_duplicate_threshold": threshold})


def resolve_data_spec(spec: str | Path | None, config_source: str) -> str:
    """The original images: ``phantom``, ``medmnist:NAME``, or an existing file or folder."""
    if spec is not None and (str(spec) == PHANTOM or str(spec).lower().startswith("medmnist:")):
        return str(spec)
    return str(locate_original(spec, config_source, what="training images"))


def _holdout_targets(held: ImageSet, positive: int | None, where: str) -> np.ndarray:
    """0/1 targets of the comparison: the positive class, or every finding (multi-label); a
    :class:`DataError` when nothing could be compared."""
    if positive is None:
        y = held.labels.astype(int)
        if not judgeable(y).any():
            raise DataError(
                f"the held-out set ({where}) has no finding with {MIN_CASES_PER_SIDE} images "
                "with it and without it; the comparison needs both. Pass a larger --holdout."
            )
        return y
    y = (held.labels == positive).astype(int)
    if not judgeable(y):
        raise DataError(
            f"the held-out set ({where}) has fewer than {MIN_CASES_PER_SIDE} images of a class; "
            "the comparison needs both classes. Pass a larger --holdout."
        )
    return y


def _scores(bundle: ImageBundle, images: np.ndarray, positive: int | None) -> np.ndarray:
    """The probability the gate compares: the positive class's, or every finding's."""
    probabilities = bundle.predict_proba(images)
    return probabilities if positive is None else probabilities[:, positive]


def _positive_index(bundle: ImageBundle) -> int:
    if bundle.positive_index is None:
        raise ConfigError(
            f"the champion has classes {bundle.class_names} and no positive class; the "
            "retraining gate (AUROC and sensitivity) needs a two-class model."
        )
    return bundle.positive_index


def _threshold(bundle: ImageBundle) -> float | np.ndarray:
    """The operating threshold of a two-class bundle, or one per finding of a multi-label one
    (each model is judged at its own)."""
    threshold = bundle.threshold
    if bundle.multi_label:
        assert threshold is not None, "a multi-label bundle always has a threshold"
        return finding_thresholds(threshold, len(bundle.class_names))
    assert isinstance(threshold, float), "a two-class bundle always has one threshold"
    return threshold


def _check_like_champion(images: ImageSet, bundle: ImageBundle, where: str) -> None:
    if images.class_names != bundle.class_names:
        raise DataError(
            f"{where}: classes {images.class_names} differ from the champion's "
            f"{bundle.class_names}; is this the data it was trained on?"
        )
    if images.image_shape != bundle.input_shape:
        raise DataError(
            f"{where}: images of shape {images.image_shape}, the champion takes "
            f"{bundle.input_shape}; is this the data it was trained on?"
        )


def read_holdout(path: Path, bundle: ImageBundle, *, size: int | None) -> ImageSet:
    """Every image of a labelled source (class folders, ``path,label`` CSV, or a ``.npz`` whose
    splits are all held out), fitted to the champion's input and class order."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        sets = list(read_medmnist_npz(path, class_names=bundle.class_names).values())
        read = concat_sets(sets, bundle.class_names)
    elif path.is_dir():
        read = read_image_folder(path, size=size)
    elif path.suffix.lower() == ".csv":
        read = read_image_csv(path, size=size)
    else:
        raise DataError(
            f"{path}: a held-out image set is a folder of class folders, a path,label CSV or a "
            ".npz."
        )
    unknown = sorted(set(read.class_names) - set(bundle.class_names))
    if unknown:
        raise DataError(f"{path}: classes {unknown} are not the model's {bundle.class_names}.")
    if read.multi_label != bundle.multi_label:
        raise DataError(
            f"{path}: {'findings' if read.multi_label else 'one label'} per image, the champion "
            f"takes {'findings' if bundle.multi_label else 'one label'}."
        )
    order = np.array([bundle.class_names.index(name) for name in read.class_names])
    if read.multi_label:
        labels = np.zeros((len(read), len(bundle.class_names)), dtype=np.int64)
        labels[:, order] = read.labels  # the held-out file's columns in the model's order
    else:
        labels = order[read.labels]
    images = [
        bundle.prepare(image, f"{path}: {source}")[0]
        for image, source in zip(read.images, read.sources, strict=True)
    ]
    return ImageSet(np.stack(images), labels, bundle.class_names, read.sources, read.patient_ids)


# ------------------------------------------------------------------------------ feedback


def feedback_images(
    cases: Sequence[FeedbackCase], bundle: ImageBundle, *, require_deidentified: bool = False
) -> tuple[ImageSet, list[FeedbackCase], list[UnusableCase]]:
    """The usable cases' images (prepared as at prediction) and labels, those cases, and the
    unusable ones with the reason."""
    from medsight.serve.inputs import decode_image
    from medsight.serve.settings import ServeSettings

    # the service's own upload limit, so retraining accepts what prediction accepted
    max_pixels = int(ServeSettings.model_fields["max_image_pixels"].default)
    classes = bundle.class_names
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    used: list[FeedbackCase] = []
    unusable: list[UnusableCase] = []
    for case in cases:
        where = f"prediction {case.prediction_id}"
        try:
            label, target = _feedback_target(case.label, classes, bundle.multi_label)
            image, _ = decode_image(
                case.raw_input, max_pixels=max_pixels, require_deidentified=require_deidentified
            )
            prepared, _ = bundle.prepare(image, where)
        except DataError as exc:
            unusable.append(UnusableCase(case.prediction_id, case.feedback_id, str(exc)))
            continue
        images.append(prepared)
        labels.append(target)
        used.append(replace(case, label=label))
    shape = bundle.input_shape
    stacked = np.stack(images) if images else np.zeros((0, *shape), np.float32)
    width = (len(classes),) if bundle.multi_label else ()
    targets = np.stack(labels) if labels else np.zeros((0, *width), np.int64)
    sources = [f"feedback on prediction {c.prediction_id}" for c in used]
    return ImageSet(stacked, targets, classes, sources), used, unusable


def _feedback_target(label: str, classes: list[str], multi_label: bool) -> tuple[str, np.ndarray]:
    """A clinician's label as the model writes it, and as a training target: the class index, or
    the 0/1 row of findings (``a|b``, ``none``) of a multi-label model."""
    if not multi_label:
        name = class_of(label, classes)
        return name, np.asarray(classes.index(name), dtype=np.int64)
    try:
        row = findings_row(label, classes)
    except ValueError as exc:
        raise DataError(f"label {label!r}: {exc}") from None
    return class_text(row, classes), row


def image_key(image: np.ndarray) -> str:
    """A digest of an image's pixels at 8-bit precision: equal for the same picture whether it
    was read from the data set or decoded from an uploaded PNG of it."""
    pixels = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    return hashlib.sha256(repr(pixels.shape).encode() + pixels.tobytes()).hexdigest()


def _image_keys(images: ImageSet) -> list[str]:
    return [image_key(image) for image in images.images]


def concat_sets(sets: Sequence[ImageSet], class_names: list[str]) -> ImageSet:
    """One set of ``sets`` in order; patient ids kept when any set has them (the sources stand
    in for the others')."""
    parts = [s for s in sets if len(s)]
    if not parts:
        raise DataError("no images to train on.")
    ids = None
    if any(s.patient_ids is not None for s in parts):
        ids = np.concatenate(
            [
                np.asarray(s.patient_ids if s.patient_ids is not None else s.sources, dtype=str)
                for s in parts
            ]
        )
    return ImageSet(
        np.concatenate([s.images for s in parts]),
        np.concatenate([s.labels for s in parts]),
        list(class_names),
        [source for s in parts for source in s.sources],
        ids,
    )


# ------------------------------------------------------------------------------ reporting


def _describe_model(config: ImageTrainConfig) -> str:
    members = config.model.ensemble
    return f"{members} x {config.model.name}" if members > 1 else config.model.name
