"""Labelled image sets from class folders, CSV manifests and MedMNIST ``.npz`` files.

Every reader returns :class:`ImageSet`: float32 arrays ``(N, C, H, W)`` scaled to [0, 1], integer
labels and the class names. Decoding is delegated to Pillow (PNG, JPEG, TIFF, BMP), pydicom
(:mod:`medsight.io.dicom`) and nibabel (:mod:`medsight.io.nifti`); resizing to MONAI's ``Resize``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medsight.errors import DataError

PIL_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
NIFTI_SUFFIXES = (".nii", ".nii.gz")
SPLITS = ("train", "val", "test")


@dataclass
class ImageSet:
    """Images ``(N, C, H, W)`` in [0, 1], labels ``(N,)`` indexing ``class_names``, or for
    multi-label data (several findings per image, e.g. ChestMNIST) 0/1 labels ``(N, L)`` with
    one column per name in ``class_names``."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    sources: list[str] = field(default_factory=list)
    patient_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.images = np.ascontiguousarray(self.images, dtype=np.float32)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.images.ndim != 4:
            raise DataError(f"images must be (N, C, H, W); got shape {self.images.shape}.")
        if len(self.images) != len(self.labels):
            raise DataError(f"{len(self.images)} images but {len(self.labels)} labels.")
        if not self.sources:
            self.sources = [f"#{i}" for i in range(len(self.labels))]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: np.ndarray) -> ImageSet:
        """The rows at ``index`` (same class names)."""
        return ImageSet(
            self.images[index],
            self.labels[index],
            list(self.class_names),
            [self.sources[i] for i in index],
            None if self.patient_ids is None else self.patient_ids[index],
        )

    @property
    def multi_label(self) -> bool:
        return self.labels.ndim == 2

    def class_counts(self) -> dict[str, int]:
        """Images per class (multi-label: images with each finding)."""
        if self.multi_label:
            counts = self.labels.sum(axis=0)
        else:
            counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(n) for name, n in zip(self.class_names, counts, strict=True)}


# --------------------------------------------------------------------------------------- files


def read_image_file(path: str | Path) -> np.ndarray:
    """One image file as float32 ``(C, H, W)`` in [0, 1]; the format is taken from the suffix."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image file not found.")
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return _read_nifti_middle_slice(path)
    if path.suffix.lower() in DICOM_SUFFIXES or _has_dicom_preamble(path):
        return _read_dicom_first_frame(path)
    return _read_pil(path)


def _read_pil(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return pil_to_array(image)
    except UnidentifiedImageError as exc:
        raise DataError(
            f"{path}: not an image file Pillow can read (PNG, JPEG, TIFF ...)."
        ) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: the image is damaged or truncated ({exc}).") from exc


def pil_to_array(image) -> np.ndarray:
    """A Pillow image as float32 ``(C, H, W)`` in [0, 1]: grey keeps 1 channel, colour is RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        pixels = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(pixels.max()), 1.0)
        return (pixels / top).astype(np.float32)[None]
    if image.mode == "F":
        return _min_max(np.asarray(image, dtype=np.float32))[None]
    if image.mode in ("1", "L", "LA", "P") and _is_grey_palette(image):
        return (np.asarray(image.convert("L"), dtype=np.float32) / 255.0)[None]
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return np.moveaxis(rgb, -1, 0)


def _is_grey_palette(image) -> bool:
    if image.mode != "P":
        return True
    palette = np.asarray(image.convert("RGB"), dtype=np.int16)
    return bool(
        np.all(palette[..., 0] == palette[..., 1]) and np.all(palette[..., 1] == palette[..., 2])
    )


def _has_dicom_preamble(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def _read_dicom_first_frame(path: Path) -> np.ndarray:
    from medsight.io.dicom import read_dicom

    pixels = read_dicom(path).pixels[0]  # (H, W) or (H, W, 3), VOI/window applied
    pixels = _min_max(pixels)
    return np.moveaxis(pixels, -1, 0) if pixels.ndim == 3 else pixels[None]


def _read_nifti_middle_slice(path: Path) -> np.ndarray:
    from medsight.io.nifti import nifti_slices

    slices = nifti_slices(path)
    return _min_max(slices[len(slices) // 2])[None]


def _min_max(pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels, dtype=np.float32)
    low, high = float(np.min(pixels)), float(np.max(pixels))
    if high <= low:
        return np.zeros_like(pixels)
    return (pixels - low) / (high - low)


def channels_last(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` as a picture: ``(H, W)`` for grey, ``(H, W, 3)`` for colour."""
    return image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)


# --------------------------------------------------------------------------------------- sets


def read_image_folder(
    root: str | Path, *, size: int | None = None, dicom_patient_ids: bool = True
) -> ImageSet:
    """A folder with one subfolder per class (the subfolder name is the class name). With
    ``dicom_patient_ids`` a DICOM file's Patient ID groups it with that patient's other images."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: folder not found.")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(
            f"{root}: no class subfolders. Put each class's images in its own subfolder "
            "(e.g. normal/, pneumonia/) or pass a CSV with path,label columns."
        )
    paths: list[Path] = []
    labels: list[str] = []
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and is_image_name(p))
        if not files:
            raise DataError(
                f"{class_dir}: class folder '{class_dir.name}' holds no image files "
                f"(looked for {', '.join(sorted(PIL_SUFFIXES | DICOM_SUFFIXES))}, .nii[.gz])."
            )
        paths.extend(files)
        labels.extend([class_dir.name] * len(files))
    patients = [None] * len(paths)
    return _build_set(paths, labels, patients, dicom_patient_ids, size=size, origin=str(root))


def read_image_csv(
    csv_path: str | Path,
    *,
    size: int | None = None,
    dicom_folder: str | Path | None = None,
    dicom_patient_ids: bool = True,
) -> ImageSet:
    """A CSV of ``path,label[,patient_id]`` (relative paths are relative to the CSV's folder), or
    of ``sop_instance_uid,label[,patient_id]`` for DICOM files found under ``dicom_folder``
    (default: the CSV's folder, searched recursively; files the CSV does not list are left out).

    A blank or missing ``patient_id`` is the DICOM Patient ID with ``dicom_patient_ids`` (else
    the image is a group of its own)."""
    csv_path = Path(csv_path)
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{csv_path}: cannot read the CSV ({exc}).") from exc
    frame.columns = [str(column).strip().lower() for column in frame.columns]
    key = "sop_instance_uid" if "path" not in frame and "sop_instance_uid" in frame else "path"
    missing = {key, "label"} - set(frame.columns)
    if missing:
        raise DataError(
            f"{csv_path}: needs columns path,label[,patient_id] (or sop_instance_uid,label"
            f"[,patient_id] for DICOM files); missing {sorted(missing)} "
            f"(found {list(frame.columns)})."
        )
    if frame.empty:
        raise DataError(f"{csv_path}: the CSV has no rows.")
    blank = frame.index[(frame[key].str.strip() == "") | (frame["label"].str.strip() == "")]
    if len(blank):
        raise DataError(f"{csv_path}: empty {key} or label on data row(s) {list(blank[:5] + 1)}.")
    if key == "path":
        paths = [_resolve(csv_path.parent, p) for p in frame["path"]]
    else:
        folder = Path(dicom_folder) if dicom_folder is not None else csv_path.parent
        paths = _dicom_files_by_uid(csv_path, list(frame["sop_instance_uid"]), folder)
    given = [p.strip() or None for p in frame["patient_id"]] if "patient_id" in frame else None
    return _build_set(
        paths,
        list(frame["label"]),
        given or [None] * len(paths),
        dicom_patient_ids,
        size=size,
        origin=str(csv_path),
    )


def _dicom_files_by_uid(csv_path: Path, uids: list[str], folder: Path) -> list[Path]:
    """The DICOM file of each SOP Instance UID, found under ``folder``; every UID must have one."""
    from medsight.io.dicom import index_by_sop_instance_uid

    if not folder.is_dir():
        raise DataError(f"{csv_path}: the DICOM folder {folder} does not exist.")
    uids = [uid.strip() for uid in uids]
    repeated = sorted(uid for uid, n in Counter(uids).items() if n > 1)
    if repeated:
        raise DataError(f"{csv_path}: sop_instance_uid listed more than once: {repeated[:3]}.")
    index = index_by_sop_instance_uid(sorted(p for p in folder.rglob("*") if p.is_file()))
    absent = [uid for uid in uids if uid not in index]
    if absent:
        raise DataError(
            f"{csv_path}: {len(absent)} sop_instance_uid(s) match no DICOM file under {folder} "
            f"({len(index)} DICOM files found), e.g. {absent[:3]}."
        )
    return [index[uid] for uid in uids]


def _patient_ids(
    paths: Sequence[Path], given: Sequence[str | None], from_dicom: bool
) -> np.ndarray | None:
    """Split groups: the given id, else (``from_dicom``) the DICOM Patient ID, else a group of
    the image alone; ``None`` when no image has an id (the splits are then not grouped)."""
    from medsight.io.dicom import looks_like_dicom, patient_id_of

    ids = list(given)
    if from_dicom:
        ids = [
            known or (patient_id_of(path) if looks_like_dicom(path) else None)
            for known, path in zip(ids, paths, strict=True)
        ]
    if all(value is None for value in ids):
        return None
    return np.array([value or f"image:{path}" for value, path in zip(ids, paths, strict=True)])


def is_image_name(path: Path) -> bool:
    name = path.name.lower()
    return (
        path.suffix.lower() in PIL_SUFFIXES | DICOM_SUFFIXES
        or name.endswith(NIFTI_SUFFIXES)
        or (path.suffix == "" and _has_dicom_preamble(path))
    )


def _resolve(base: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base / path


def _build_set(
    paths: Sequence[Path],
    label_names: Sequence[str],
    patient_ids: Sequence[str | None],
    dicom_patient_ids: bool,
    *,
    size: int | None,
    origin: str,
) -> ImageSet:
    """The images read, checked and labelled; ``patient_ids`` completed by :func:`_patient_ids`
    once every file has been read (so a bad file's own error comes first)."""
    class_names = sorted(set(label_names))
    if len(class_names) < 2:
        raise DataError(
            f"{origin}: only one class ({class_names[0]!r}) found; a classifier needs at least two."
        )
    images = [read_image_file(p) for p in paths]
    images = _unify_channels(images)
    if size is not None:
        images = [resize_image(image, size) for image in images]
    _check_same_size(images, paths, origin)
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.array([index[name] for name in label_names], dtype=np.int64)
    groups = _patient_ids(paths, patient_ids, dicom_patient_ids)
    return ImageSet(np.stack(images), labels, class_names, [str(p) for p in paths], groups)


def _unify_channels(images: list[np.ndarray]) -> list[np.ndarray]:
    """Grey images are repeated to RGB when any image of the set is in colour."""
    if all(image.shape[0] == 1 for image in images):
        return images
    return [np.repeat(image, 3, axis=0) if image.shape[0] == 1 else image for image in images]


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(C, H, W)`` to ``(C, size, size)`` with MONAI (area to shrink, else bilinear)."""
    from monai.transforms import Resize

    if image.shape[1:] == (size, size):
        return image
    mode = "area" if min(image.shape[1:]) >= size else "bilinear"
    resized = Resize((size, size), mode=mode)(image)
    return np.asarray(resized, dtype=np.float32).clip(0.0, 1.0)


def _check_same_size(images: list[np.ndarray], paths: Sequence[Path], origin: str) -> None:
    shapes = Counter(image.shape[1:] for image in images)
    if len(shapes) == 1:
        return
    (common, _), *_ = shapes.most_common()
    odd = [str(p) for p, image in zip(paths, images, strict=True) if image.shape[1:] != common]
    described = ", ".join(f"{h}x{w} ({n} images)" for (h, w), n in shapes.most_common(4))
    raise DataError(
        f"{origin}: images have different sizes: {described}; e.g. {odd[0]}. Set "
        "data.image_size (or --image-size) to resize them all to one size."
    )


def read_medmnist_npz(
    path: str | Path, *, class_names: Sequence[str] | None = None
) -> dict[str, ImageSet]:
    """A MedMNIST-style ``.npz`` (``{train,val,test}_images``/``_labels``): a set per split."""
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({exc}).") from exc
    with archive:
        keys = set(archive.files)
        splits = [s for s in SPLITS if f"{s}_images" in keys and f"{s}_labels" in keys]
        if "train" not in splits:
            raise DataError(
                f"{path}: expected MedMNIST keys train_images/train_labels "
                f"(and val_*, test_*); found {sorted(keys)}."
            )
        raw = {s: (archive[f"{s}_images"], archive[f"{s}_labels"]) for s in splits}
    multi_label = {labels.ndim == 2 and labels.shape[1] > 1 for _, labels in raw.values()}
    if len(multi_label) > 1:
        raise DataError(f"{path}: some splits have one label per image, others several.")
    if multi_label == {True}:
        n_classes = int(raw["train"][1].shape[1])
    else:
        n_classes = 1 + max(int(labels.max()) for _, labels in raw.values())
    names = list(class_names) if class_names is not None else [str(i) for i in range(n_classes)]
    if multi_label == {True} and len(names) != n_classes:
        raise DataError(f"{path}: {n_classes} finding columns but {len(names)} names given.")
    if len(names) < n_classes:
        raise DataError(
            f"{path}: labels go up to {n_classes - 1} but {len(names)} class names given."
        )
    return {
        split: ImageSet(
            _npz_images(images, path, split),
            _npz_labels(labels, path, split),
            names,
            [f"{path.name}:{split}[{i}]" for i in range(len(labels))],
        )
        for split, (images, labels) in raw.items()
    }


def _npz_images(images: np.ndarray, path: Path, split: str) -> np.ndarray:
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3):
        images = np.moveaxis(images, -1, 1)
    else:
        raise DataError(f"{path}: {split}_images has shape {images.shape}; expected (N,H,W[,C]).")
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return images.astype(np.float32) / scale


def _npz_labels(labels: np.ndarray, path: Path, split: str) -> np.ndarray:
    """``(N,)`` class indices, or ``(N, L)`` 0/1 findings when there are several columns
    (MedMNIST's multi-label ChestMNIST)."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:
        if not np.isin(labels, (0, 1)).all():
            raise DataError(
                f"{path}: {split}_labels has {labels.shape[1]} columns, read as multi-label "
                "findings, but holds values other than 0 and 1."
            )
        return labels.astype(np.int64)
    return labels.reshape(-1).astype(np.int64)
