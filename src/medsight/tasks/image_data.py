"""Resolve an image data spec to train / validation / test sets.

``data.path`` may be ``medmnist:NAME``, a MedMNIST-style ``.npz`` (its official splits are kept),
``phantom`` (generated, offline), a folder with one subfolder per class, or a
``path,label[,patient_id]`` CSV (``sop_instance_uid,label[,patient_id]`` for DICOM files under
``data.dicom_folder``). Sets without official splits are split here, stratified by class and
grouped by patient: the CSV's ``patient_id``, else a DICOM file's Patient ID
(``data.dicom_patient_groups``).

With ``data.require_deidentified`` every DICOM file of a folder or CSV must be de-identified
(:func:`medsight.privacy.gate.require_deidentified_dicom`); other formats carry no patient header
and are accepted (burned-in text in pixels is not detected), as are ``.npz``, MedMNIST and the
phantom.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

from medsight.config import ImageDataConfig
from medsight.data.image_audit import MAX_IMAGES, duplicate_groups
from medsight.data.phantom import make_phantom_splits
from medsight.errors import ConfigError, DataError
from medsight.io.dicom import looks_like_dicom, require_deidentified_file
from medsight.io.images import (
    ImageSet,
    read_image_csv,
    read_image_folder,
    read_medmnist_npz,
    resize_image,
)
from medsight.io.medmnist import PREFIX, load_medmnist
from medsight.io.medmnist_catalog import MEDMNIST_2D

PHANTOM = "phantom"

logger = logging.getLogger(__name__)


@dataclass
class ImageSplits:
    """The three sets of a run and where they came from."""

    train: ImageSet
    val: ImageSet
    test: ImageSet
    source: str
    official_splits: bool

    @property
    def class_names(self) -> list[str]:
        return self.train.class_names

    def items(self) -> list[tuple[str, ImageSet]]:
        return [("train", self.train), ("val", self.val), ("test", self.test)]


def load_image_splits(config: ImageDataConfig, *, seed: int = 0) -> ImageSplits:
    """Read the data named by ``config.path`` and return resized, checked splits."""
    if not config.path:
        raise ConfigError(
            "no image data given: set data.path (or --data) to a .npz, medmnist:NAME, "
            "a class-folder tree, a path,label CSV, or 'phantom'."
        )
    spec = str(config.path)
    official, source = _read_source(spec, config, seed)
    if official is not None:
        splits = ImageSplits(official["train"], official["val"], official["test"], source, True)
    else:
        data = _read_unsplit(spec, config)
        if config.require_deidentified:
            check_deidentified_sources(data)
        splits = _split(data, config, seed, source)
    if config.image_size is not None:
        for _, image_set in splits.items():
            image_set.images = np.stack(
                [resize_image(i, config.image_size) for i in image_set.images]
            )
    check_splits(splits)
    return splits


def _read_source(
    spec: str, config: ImageDataConfig, seed: int
) -> tuple[dict[str, ImageSet] | None, str]:
    if spec == PHANTOM:
        return make_phantom_splits(size=config.image_size or 28, seed=seed), "generated phantom"
    if spec.lower().startswith(PREFIX):
        return load_medmnist(spec), spec.lower()
    path = Path(spec)
    if path.suffix.lower() == ".npz":
        known = MEDMNIST_2D.get(path.stem.lower())
        names = known.class_names if known else None
        sets = read_medmnist_npz(path, class_names=names)
        missing = {"val", "test"} - set(sets)
        if missing:
            raise DataError(
                f"{path}: has no {'/'.join(sorted(missing))} split (keys *_images, *_labels)."
            )
        return sets, str(path)
    if not path.exists():
        raise DataError(f"{path}: not found (expected a folder, a .csv or a .npz).")
    return None, str(path)


def _read_unsplit(spec: str, config: ImageDataConfig) -> ImageSet:
    path = Path(spec)
    if path.is_dir():
        return read_image_folder(
            path, size=config.image_size, dicom_patient_ids=config.dicom_patient_groups
        )
    if path.suffix.lower() == ".csv":
        return read_image_csv(
            path,
            size=config.image_size,
            dicom_folder=config.dicom_folder,
            dicom_patient_ids=config.dicom_patient_groups,
        )
    raise DataError(f"{path}: unsupported data source; use a folder, a .csv or a .npz.")


def check_deidentified_sources(data: ImageSet) -> None:
    """Raise :class:`DataError` for the first DICOM file among ``data.sources`` that is not
    de-identified (headers only; the other formats have none to check)."""
    for source in data.sources:
        path = Path(source)
        if path.is_file() and looks_like_dicom(path):
            require_deidentified_file(path)


def _split(data: ImageSet, config: ImageDataConfig, seed: int, source: str) -> ImageSplits:
    """Stratified test, then validation, parts of ``data``, grouped so that one patient's images
    and near-duplicate images stay on one side."""
    groups = split_groups(data, config.near_duplicate_threshold)
    rest, test = _holdout(data.labels, groups, config.test_fraction, seed)
    val_share = config.val_fraction / (1.0 - config.test_fraction)
    rest_groups = None if groups is None else groups[rest]
    train_in_rest, val_in_rest = _holdout(data.labels[rest], rest_groups, val_share, seed + 1)
    return ImageSplits(
        data.subset(rest[train_in_rest]),
        data.subset(rest[val_in_rest]),
        data.subset(test),
        source,
        False,
    )


def split_groups(data: ImageSet, threshold: float | None) -> np.ndarray | None:
    """Group ids for splitting: patients joined with near-duplicate clusters (``threshold``
    None: the patient ids alone)."""
    if threshold is None:
        return data.patient_ids
    if len(data) > MAX_IMAGES:
        logger.warning(
            "%d images: more than %d, so near-duplicates are not searched and may fall on both "
            "sides of the splits (group them with patient ids)",
            len(data),
            MAX_IMAGES,
        )
    groups = duplicate_groups(data, threshold=threshold)
    if groups is not None and data.patient_ids is None:  # grouped by near-duplicates alone
        sizes = np.bincount(groups)
        logger.info(
            "near-duplicates: %d images in %d groups, each kept on one side of the splits",
            int(sizes[sizes > 1].sum()),
            int((sizes > 1).sum()),
        )
    return groups


def _holdout(
    labels: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """One fold of a stratified (grouped) k-fold with k = round(1 / fraction)."""
    folds = max(2, round(1.0 / fraction))
    smallest = int(np.bincount(labels).min())
    if smallest < folds:
        raise DataError(
            f"a class has only {smallest} images; at least {folds} per class are needed to hold "
            f"out "
            f"{fraction:.0%} stratified by class. Add images or give official splits (.npz)."
        )
    if groups is None:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        keep, held = next(splitter.split(np.zeros(len(labels)), labels))
    else:
        if (n_groups := len(np.unique(groups))) < folds:
            raise DataError(
                f"the images form only {n_groups} groups (one patient's images, by the CSV's "
                f"patient_id or the DICOM Patient ID, and near-duplicate images stay "
                f"together); holding out {fraction:.0%} needs at least {folds}. Add images, "
                "or set data.near_duplicate_threshold: null if near-duplicate images are "
                "separate cases, or data.dicom_patient_groups: false if the DICOM Patient IDs "
                "do not tell patients apart."
            )
        splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
        keep, held = next(splitter.split(np.zeros(len(labels)), labels, groups))
    return keep, held


def check_splits(splits: ImageSplits) -> None:
    """Two or more classes to learn, every split non-empty, one image shape, finite pixels."""
    n_classes = len(splits.class_names)
    if splits.train.multi_label:
        _check_findings(splits)
    elif len(present := np.unique(splits.train.labels)) < 2:
        raise DataError(
            f"{splits.source}: the training split has a single class "
            f"({splits.class_names[int(present[0])]!r}); a classifier needs at least two."
        )
    shapes = {name: s.image_shape for name, s in splits.items()}
    for name, image_set in splits.items():
        if len(image_set) == 0:
            raise DataError(f"{splits.source}: the {name} split is empty.")
        if not np.isfinite(image_set.images).all():
            raise DataError(f"{splits.source}: the {name} split has non-finite pixel values.")
        if image_set.multi_label != splits.train.multi_label:
            raise DataError(f"{splits.source}: {name} is not labelled like the training split.")
        if not image_set.multi_label and image_set.labels.max() >= n_classes:
            raise DataError(f"{splits.source}: {name} has labels beyond the {n_classes} classes.")
    if len(set(shapes.values())) > 1:
        raise DataError(
            f"{splits.source}: splits have different image shapes {shapes}; set data.image_size."
        )


def _check_findings(splits: ImageSplits) -> None:
    """Multi-label: one column per finding, and some finding both present and absent in train."""
    names = splits.class_names
    for name, image_set in splits.items():
        if image_set.labels.shape[1] != len(names):
            raise DataError(
                f"{splits.source}: {name} has {image_set.labels.shape[1]} label columns for "
                f"{len(names)} findings."
            )
    positives = splits.train.labels.sum(axis=0)
    if not ((positives > 0) & (positives < len(splits.train))).any():
        raise DataError(
            f"{splits.source}: no finding is both present and absent in the training split; "
            "there is nothing to learn."
        )
