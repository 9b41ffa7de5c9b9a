"""DICOM images through pydicom: display-ready float32 pixels plus the identifiers a study needs.

Grey images follow the DICOM display pipeline (PS3.3 C.11): stored values -> Modality LUT (rescale
slope/intercept or a Modality LUT Sequence, :func:`pydicom.pixels.apply_modality_lut`) -> VOI LUT
or window centre/width when ``apply_voi`` (:func:`pydicom.pixels.apply_voi` /
:func:`~pydicom.pixels.apply_windowing`) -> MONOCHROME1 inverted, so that in every returned image a
higher value is brighter. The Presentation LUT Shape is not applied (for MONOCHROME1 X-rays it only
restates the inversion). Colour images come back as RGB: pydicom converts YBR_* to RGB and
PALETTE COLOR is expanded through its lookup table (:func:`pydicom.pixels.apply_color_lut`).

Values stay in the units of the last step (e.g. Hounsfield units for CT without VOI); the range the
header allows for them is :attr:`DicomImage.value_range` and :meth:`DicomImage.to_unit_range` maps
it, or a window of your choice, to [0, 1]. Arrays keep DICOM's row-major layout: ``pixels[f, r, c]``
is frame ``f``, row ``r`` (top to bottom), column ``c`` (left to right), as in ``ds.pixel_array``.

``require_deidentified=True`` refuses images that are not de-identified
(:func:`medsight.privacy.gate.require_deidentified_dicom`) before their pixels are decoded.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    apply_windowing,
    get_decoder,
    pixel_array,
)
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from medsight.errors import ConfigError, DataError, MedsightError, MissingDependencyError
from medsight.privacy.gate import require_deidentified_dicom

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# What to pip install per compressed transfer syntax, from the plugins pydicom 3 registers for each
# decoder (pydicom.pixels.decoders): pylibjpeg-libjpeg reads JPEG and JPEG-LS, pylibjpeg-openjpeg
# JPEG 2000 and HTJ2K; pyjpegls is the alternative for JPEG-LS, python-gdcm for most of them.
_JPEG = "pylibjpeg pylibjpeg-libjpeg"
_J2K = "pylibjpeg pylibjpeg-openjpeg"
_INSTALL_HINTS: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": _JPEG,  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.51": _JPEG,  # JPEG Extended (Process 2 and 4)
    "1.2.840.10008.1.2.4.57": _JPEG,  # JPEG Lossless (Process 14)
    "1.2.840.10008.1.2.4.70": _JPEG,  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": f"{_JPEG}' or 'pyjpegls",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": f"{_JPEG}' or 'pyjpegls",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90": _J2K,  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": _J2K,  # JPEG 2000
    "1.2.840.10008.1.2.4.201": _J2K,  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": _J2K,  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": _J2K,  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg pylibjpeg-rle",  # RLE Lossless (pydicom has its own)
}

# Enhanced multi-frame files keep rescale, window and geometry per frame in functional groups;
# pydicom's LUT helpers only read the top level, so these are lifted into a per-frame view.
_FUNCTIONAL_GROUPS: dict[str, tuple[str, ...]] = {
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept", "RescaleType"),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "VOILUTFunction"),
    "PixelMeasuresSequence": ("PixelSpacing",),
    "PlanePositionSequence": ("ImagePositionPatient",),
    "PlaneOrientationSequence": ("ImageOrientationPatient",),
}


_GEOMETRY = ("ImagePositionPatient", "ImageOrientationPatient", "ImagerPixelSpacing")


class NotDicomError(DataError):
    """The file is not DICOM at all (or its header is too damaged to parse)."""


class NoPixelDataError(DataError):
    """The file is DICOM but holds no image (a report, DICOMDIR, RT structure set ...)."""


@dataclass(eq=False)
class DicomImage:
    """One DICOM file's pixels and identifiers.

    ``pixels`` is float32 ``(frames, rows, cols)`` for grey or ``(frames, rows, cols, 3)`` RGB,
    higher = brighter. ``value_range`` is the (low, high) the header allows for those values;
    ``photometric`` is the header's Photometric Interpretation before any conversion.
    """

    pixels: np.ndarray
    value_range: tuple[float, float]
    photometric: str
    path: Path
    transfer_syntax: str
    modality: str | None = None
    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    patient_id: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    instance_number: int | None = None
    pixel_spacing: tuple[float, float] | None = None
    image_position: tuple[float, float, float] | None = None
    image_orientation: tuple[float, ...] | None = None
    voi_applied: bool = False
    inverted: bool = False
    frame_indices: list[int] = field(default_factory=list)

    @property
    def first_frame(self) -> np.ndarray:
        """The first returned frame, ``(rows, cols)`` or ``(rows, cols, 3)``."""
        return self.pixels[0]

    @property
    def n_frames(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def is_colour(self) -> bool:
        return self.pixels.ndim == 4

    def to_unit_range(self, window: tuple[float, float] | None = None) -> np.ndarray:
        """The pixels as float32 in [0, 1], higher = brighter.

        Without ``window`` the header's :attr:`value_range` maps to [0, 1] (the same file always
        gives the same scale, unlike a per-image min/max). ``window=(centre, width)`` is a linear
        window in modality units (e.g. ``(40, 400)`` for CT soft tissue); it needs a grey image read
        with ``apply_voi=False``.
        """
        low, high = self.value_range
        if window is None:
            if high <= low:
                return np.zeros_like(self.pixels)
            unit = (self.pixels - np.float32(low)) / np.float32(high - low)
            return np.clip(unit, 0.0, 1.0).astype(np.float32, copy=False)
        if self.voi_applied or self.is_colour:
            raise ConfigError(
                f"{self.path}: a window applies to grey pixels in modality units; read the file "
                "with read_dicom(..., apply_voi=False) to set your own window."
            )
        centre, width = (float(v) for v in window)
        if not width > 0:
            raise ConfigError(f"window width must be > 0; got {width}.")
        # Written by hand: pydicom's apply_windowing needs a Dataset and maps to the stored range.
        modality = (low + high) - self.pixels if self.inverted else self.pixels
        unit = np.clip((modality - (centre - width / 2.0)) / width, 0.0, 1.0)
        if self.inverted:
            unit = 1.0 - unit
        return unit.astype(np.float32, copy=False)


@dataclass
class DicomLabels:
    """Labels (as written in the CSV) and patient ids, aligned with the images given."""

    labels: list[str]
    patient_ids: list[str | None]

    @property
    def class_names(self) -> list[str]:
        return sorted(set(self.labels))


# ------------------------------------------------------------------------------------ reading


def read_dicom(
    path: str | Path,
    *,
    apply_voi: bool = True,
    frame: int | None = None,
    require_deidentified: bool = False,
) -> DicomImage:
    """Read one DICOM file (all frames, or only ``frame``) as a :class:`DicomImage`.

    Raises :class:`NotDicomError` / :class:`NoPixelDataError` (both :class:`DataError`) for files
    that are not DICOM images, :class:`MissingDependencyError` when the pixel data is compressed in
    a transfer syntax no installed decoder reads, and :class:`DataError` for damaged pixel data or,
    with ``require_deidentified``, an image that is not de-identified.
    """
    path = Path(path)
    ds = _read_dataset(path)
    if require_deidentified and any(k in ds for k in PIXEL_KEYWORDS):
        require_deidentified_dicom(ds, str(path))
    try:
        return _to_image(ds, path, apply_voi=apply_voi, frame=frame)
    except MedsightError:
        raise
    except Exception as exc:  # pydicom raises many types for malformed headers; name the file
        syntax = _syntax_text(ds)
        raise DataError(
            f"{path}: pydicom could not interpret the image ({syntax}): {type(exc).__name__}: {exc}"
        ) from exc


def read_dicom_series(
    folder: str | Path,
    *,
    apply_voi: bool = True,
    recursive: bool = False,
    require_deidentified: bool = False,
) -> list[DicomImage]:
    """Every DICOM image in ``folder``, grouped by series and sorted within each series.

    Files that are not DICOM, hidden files and DICOM files without pixel data (DICOMDIR, reports)
    are skipped with one :class:`UserWarning` listing them; damaged images and missing decoders
    raise. Within a series the order is by position along the slice normal when every image has
    Image Position/Orientation (Patient), else by Instance Number, else by file name. Raises
    :class:`DataError` when the folder holds no readable image, and with ``require_deidentified``
    when any image in it is not de-identified.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found.")
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in candidates if p.is_file() and not p.name.startswith("."))
    images: list[DicomImage] = []
    skipped: list[str] = []
    for file in files:
        try:
            images.append(
                read_dicom(file, apply_voi=apply_voi, require_deidentified=require_deidentified)
            )
        except (NotDicomError, NoPixelDataError):
            skipped.append(str(file.relative_to(folder)))
    if not images:
        raise DataError(
            f"{folder}: no DICOM images found among {len(files)} file(s)"
            + (f" (not DICOM images: {_examples(skipped)})" if skipped else "")
            + (". Use recursive=True to search subfolders." if not recursive else ".")
        )
    if skipped:
        warnings.warn(
            f"{folder}: skipped {len(skipped)} file(s) that are not DICOM images: "
            f"{_examples(skipped)}",
            UserWarning,
            stacklevel=2,
        )
    return _sort_series(images)


def dicom_volume(images: Sequence[DicomImage]) -> np.ndarray:
    """Stack grey images of one series, in the given order, into float32 ``(slices, rows, cols)``.

    Multi-frame images contribute all their frames. Raises :class:`DataError` for colour images,
    several series or mixed slice sizes, naming them.
    """
    if not images:
        raise DataError("no DICOM images to stack into a volume.")
    colour = [img.path.name for img in images if img.is_colour]
    if colour:
        raise DataError(f"a volume needs grey images; these are colour: {_examples(colour)}.")
    series = sorted({img.series_instance_uid for img in images if img.series_instance_uid})
    if len(series) > 1:
        raise DataError(
            f"the images belong to {len(series)} series ({_examples(series)}); stack one "
            "series at a time (DicomImage.series_instance_uid)."
        )
    by_size: dict[tuple[int, int], list[str]] = {}
    for img in images:
        by_size.setdefault(img.pixels.shape[1:3], []).append(img.path.name)
    if len(by_size) > 1:
        sizes = "; ".join(
            f"{rows}x{cols}: {len(names)} file(s), e.g. {_examples(names, 2)}"
            for (rows, cols), names in by_size.items()
        )
        raise DataError(f"the slices have different sizes (rows x cols) - {sizes}.")
    return np.concatenate([img.pixels for img in images], axis=0).astype(np.float32, copy=False)


def read_dicom_labels(csv_path: str | Path, images: Sequence[DicomImage]) -> DicomLabels:
    """Labels for ``images`` from a CSV with columns ``path,label[,patient_id]`` or
    ``sop_instance_uid,label[,patient_id]``.

    A ``path`` is absolute or relative to the CSV's folder. Every image needs exactly one row and
    every row must match an image; otherwise :class:`DataError` names a few offenders. Without a
    ``patient_id`` column (or where it is blank) the DICOM Patient ID is used.
    """
    csv_path = Path(csv_path)
    table = _read_label_csv(csv_path)
    key_column = "path" if "path" in table.columns else "sop_instance_uid"
    for column in (key_column, "label"):
        if column not in table.columns:
            raise DataError(
                f"{csv_path}: needs columns 'path,label' or 'sop_instance_uid,label' "
                f"(optionally 'patient_id'); found {', '.join(map(str, table.columns))}."
            )
    if key_column == "path":
        base = csv_path.parent
        keys = [str(_resolve(base, value)) for value in table["path"]]
        image_keys = [str(img.path.resolve()) for img in images]
    else:
        keys = [value.strip() for value in table["sop_instance_uid"]]
        image_keys = [img.sop_instance_uid or "" for img in images]

    blank = [i + 2 for i, value in enumerate(table["label"]) if not value.strip()]
    if blank:
        raise DataError(f"{csv_path}: empty label on line(s) {_examples(blank)}.")
    duplicated = sorted(key for key, n in Counter(keys).items() if n > 1)
    if duplicated:
        raise DataError(f"{csv_path}: {key_column} listed more than once: {_examples(duplicated)}.")

    rows = dict(zip(keys, range(len(keys)), strict=True))
    missing = [
        img.path.name for img, key in zip(images, image_keys, strict=True) if key not in rows
    ]
    if missing:
        raise DataError(
            f"{csv_path}: no row for {len(missing)} image(s), e.g. {_examples(missing)} "
            f"(matched by {key_column})."
        )
    known = set(image_keys)
    unknown = [table[key_column].iloc[i] for i, key in enumerate(keys) if key not in known]
    if unknown:
        raise DataError(
            f"{csv_path}: {len(unknown)} row(s) match no image read, e.g. {_examples(unknown)} "
            f"(matched by {key_column})."
        )

    labels = [table["label"].iloc[rows[key]].strip() for key in image_keys]
    patient_ids: list[str | None] = []
    for img, key in zip(images, image_keys, strict=True):
        given = table["patient_id"].iloc[rows[key]].strip() if "patient_id" in table else ""
        patient_ids.append(given or img.patient_id)
    return DicomLabels(labels=labels, patient_ids=patient_ids)


def patient_id_of(path: str | Path) -> str | None:
    """The file's Patient ID (header only; ``None`` when absent or blank)."""
    return _text(_read_dataset(Path(path), stop_before_pixels=True), "PatientID")


def index_by_sop_instance_uid(paths: Iterable[Path]) -> dict[str, Path]:
    """SOP Instance UID -> file for the DICOM files among ``paths`` (headers only; other files
    are skipped). One instance in two files is a :class:`DataError` naming both."""
    index: dict[str, Path] = {}
    for path in paths:
        if not looks_like_dicom(path):
            continue
        uid = _text(_read_dataset(path, stop_before_pixels=True), "SOPInstanceUID")
        if uid is None:
            continue
        if uid in index:
            raise DataError(
                f"SOP Instance UID {uid} is in two files, {index[uid]} and {path}; keep one."
            )
        index[uid] = path
    return index


def looks_like_dicom(path: str | Path) -> bool:
    """A ``.dcm`` / ``.dicom`` name or the ``DICM`` marker at byte 128 (as the image readers)."""
    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def require_deidentified_file(path: str | Path) -> None:
    """Raise :class:`DataError` unless the DICOM file is de-identified (header read, no pixels)."""
    path = Path(path)
    require_deidentified_dicom(_read_dataset(path, stop_before_pixels=True), str(path))


# ------------------------------------------------------------------------------------ helpers


def _read_dataset(path: Path, *, stop_before_pixels: bool = False) -> Dataset:
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        pass  # no 128-byte preamble + 'DICM': try the older headerless layout below
    except Exception as exc:
        raise NotDicomError(
            f"{path}: not a readable DICOM file; it may be truncated or damaged "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=stop_before_pixels)
    except Exception as exc:
        raise NotDicomError(f"{path}: not a DICOM file ({type(exc).__name__}).") from exc
    # force=True parses any bytes; accept the result only if it has ordinary DICOM groups.
    groups = {tag.group for tag in ds.keys()}  # noqa: SIM118 - iterating a Dataset parses values
    if not groups & {0x0008, 0x0010, 0x0020, 0x0028}:
        raise NotDicomError(f"{path}: not a DICOM file (no DICOM header found).")
    return ds


def _to_image(ds: Dataset, path: Path, *, apply_voi: bool, frame: int | None) -> DicomImage:
    keyword = next((k for k in PIXEL_KEYWORDS if k in ds), None)
    if keyword is None:
        raise NoPixelDataError(
            f"{path}: DICOM file without pixel data ({_describe(ds)}); it is not an image "
            "(e.g. a report or DICOMDIR), or the file is truncated."
        )
    syntax = _transfer_syntax(ds, path, keyword)
    _check_decoder(syntax, path)

    n_frames = _number_of_frames(ds, path)
    if frame is not None and not 0 <= frame < n_frames:
        raise DataError(f"{path}: frame {frame} requested but the file has {n_frames} frame(s).")
    try:
        raw = pixel_array(ds, index=frame)
    except MedsightError:
        raise
    except Exception as exc:
        raise DataError(
            f"{path}: the pixel data ({syntax.name}, transfer syntax {syntax}) could not be "
            f"decoded; the file may be truncated or damaged ({type(exc).__name__}: {exc})."
        ) from exc

    photometric = str(ds.get("PhotometricInterpretation", "") or "").strip().upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    indices = [frame] if frame is not None else list(range(n_frames))
    grey = samples == 1 and photometric != "PALETTE COLOR"
    stacked = raw[None] if raw.ndim == (2 if samples == 1 else 3) else raw
    if stacked.shape[0] != len(indices):
        raise DataError(
            f"{path}: decoded {stacked.shape[0]} frame(s) but the header says {len(indices)}."
        )

    voi_applied = inverted = False
    if grey:
        pixels, value_range, voi_applied = _grey_pipeline(stacked, ds, indices, apply_voi, path)
        inverted = photometric == "MONOCHROME1"
    elif photometric == "PALETTE COLOR":
        rgb = apply_color_lut(stacked, ds)[..., :3]
        pixels, value_range = rgb.astype(np.float32), (0.0, float(np.iinfo(rgb.dtype).max))
    elif samples == 3:
        # pydicom already returns RGB for YBR_FULL(_422), YBR_ICT and YBR_RCT.
        bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
        pixels, value_range = stacked.astype(np.float32), (0.0, float(2**bits - 1))
    else:
        raise DataError(
            f"{path}: unsupported image type ({samples} samples per pixel, photometric "
            f"interpretation {photometric or 'missing'}); expected grey, RGB, YBR or palette."
        )

    view = _frame_view(ds, indices[0])
    return DicomImage(
        pixels=np.ascontiguousarray(pixels, dtype=np.float32),
        value_range=value_range,
        photometric=photometric,
        path=path,
        transfer_syntax=str(syntax),
        modality=_text(ds, "Modality"),
        sop_class_uid=_text(ds, "SOPClassUID"),
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        patient_id=_text(ds, "PatientID"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        instance_number=_integer(ds, "InstanceNumber"),
        pixel_spacing=_floats(view, "PixelSpacing", 2) or _floats(view, "ImagerPixelSpacing", 2),
        image_position=_floats(view, "ImagePositionPatient", 3),
        image_orientation=_floats(view, "ImageOrientationPatient", 6),
        voi_applied=voi_applied,
        inverted=inverted,
        frame_indices=indices,
    )


def _grey_pipeline(
    frames: np.ndarray, ds: Dataset, indices: list[int], apply_voi: bool, path: Path
) -> tuple[np.ndarray, tuple[float, float], bool]:
    """Modality LUT -> VOI -> MONOCHROME1 inversion; per frame when functional groups differ."""
    has_groups = "SharedFunctionalGroupsSequence" in ds or "PerFrameFunctionalGroupsSequence" in ds
    chunks = (
        [(slice(i, i + 1), _frame_view(ds, index)) for i, index in enumerate(indices)]
        if has_groups
        else [(slice(None), ds)]
    )
    out = np.empty(frames.shape, dtype=np.float32)
    low, high, voi_applied = math.inf, -math.inf, False
    floating = not np.issubdtype(frames.dtype, np.integer)
    for where, view in chunks:
        values = apply_modality_lut(frames[where], view)
        span = _data_range(values) if floating else _modality_range(view)
        if apply_voi:
            values, span, applied = _apply_voi(values, view, span, path)
            voi_applied = voi_applied or applied
        if str(view.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
            values = (span[0] + span[1]) - np.asarray(values, dtype=np.float64)
        out[where] = values
        low, high = min(low, span[0]), max(high, span[1])
    return out, (float(low), float(high)), voi_applied


def _apply_voi(
    values: np.ndarray, view: Dataset, span: tuple[float, float], path: Path
) -> tuple[np.ndarray, tuple[float, float], bool]:
    voi = view.get("VOILUTSequence")
    if voi and voi[0].get("LUTDescriptor") is not None and voi[0].get("LUTData") is not None:
        # A VOI LUT is indexed by integer modality values; pydicom warns on float input.
        indexed = np.rint(values).astype(np.int64)
        depth = int(voi[0].LUTDescriptor[2])
        return apply_voi(indexed, view, index=0), (0.0, float(2**depth - 1)), True
    if view.get("WindowCenter") is not None and view.get("WindowWidth") is not None:
        try:
            return apply_windowing(values, view, index=0), span, True
        except (ValueError, TypeError) as exc:
            warnings.warn(
                f"{path}: window centre/width ignored ({exc}); pixels are in modality units.",
                UserWarning,
                stacklevel=4,
            )
    return values, span, False


def _modality_range(view: Dataset) -> tuple[float, float]:
    """Values the Modality LUT step can produce, as pydicom's apply_windowing assumes."""
    lut = view.get("ModalityLUTSequence")
    if lut:
        return 0.0, float(2 ** int(lut[0].LUTDescriptor[2]) - 1)
    bits = int(view.get("BitsStored") or view.get("BitsAllocated"))
    if int(view.get("PixelRepresentation", 0) or 0) == 0:
        low, high = 0.0, float(2**bits - 1)
    else:
        low, high = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    slope, intercept = view.get("RescaleSlope"), view.get("RescaleIntercept")
    if slope is not None and intercept is not None:
        ends = (low * float(slope) + float(intercept), high * float(slope) + float(intercept))
        low, high = min(ends), max(ends)
    return low, high


def _data_range(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)


def _frame_view(ds: Dataset, index: int) -> Dataset:
    """``ds`` itself, or for enhanced multi-frame files a dataset with frame ``index``'s values."""
    shared = ds.get("SharedFunctionalGroupsSequence")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if not shared and not per_frame:
        return ds
    view = Dataset()
    view.file_meta = ds.file_meta  # apply_voi reads the byte order of OW LUT data from it
    for elem in ds:  # the image pixel, LUT and VOI modules (group 0028) plus top-level geometry
        if elem.tag.group == 0x0028 or elem.keyword in _GEOMETRY:
            view.add(elem)
    groups = [shared[0]] if shared else []
    if per_frame and index < len(per_frame):
        groups.append(per_frame[index])
    for group in groups:
        for sequence, keywords in _FUNCTIONAL_GROUPS.items():
            items = group.get(sequence)
            if not items:
                continue
            for keyword in keywords:
                if keyword in items[0]:
                    view.add(items[0][keyword])
    return view


def _transfer_syntax(ds: Dataset, path: Path, keyword: str) -> UID:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax:
        return UID(str(syntax))
    # Headerless (ACR-NEMA style) files: native pixel data can be read with the byte order and
    # VR mode the parser detected; compressed data cannot be guessed.
    if ds[keyword].is_undefined_length:
        raise DataError(
            f"{path}: the file does not state its transfer syntax (0002,0010) and its pixel "
            "data is compressed, so it cannot be decoded."
        )
    implicit, little = ds.original_encoding
    if little is False:
        syntax = ExplicitVRBigEndian
    else:
        syntax = ImplicitVRLittleEndian if implicit in (True, None) else ExplicitVRLittleEndian
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax
    return syntax


def _check_decoder(syntax: UID, path: Path) -> None:
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise DataError(
            f"{path}: the pixel data uses transfer syntax {syntax.name} ({syntax}), which no "
            "pydicom decoder supports (video and other exotic encodings); convert the file to an "
            "uncompressed transfer syntax, e.g. with 'gdcmconv --raw' or dcmtk."
        ) from None
    if not decoder.is_available:
        hint = _INSTALL_HINTS.get(str(syntax), "python-gdcm")
        detail = "; ".join(decoder.missing_dependencies)
        raise MissingDependencyError(
            f"{path}: the pixel data is compressed as {syntax.name} ({syntax}) and no installed "
            f"decoder can read it. Install one: pip install '{hint}' (or 'python-gdcm'). "
            f"pydicom reports: {detail}."
        )


def _number_of_frames(ds: Dataset, path: Path) -> int:
    value = ds.get("NumberOfFrames")
    try:
        count = int(value) if value not in (None, "") else 1
    except (TypeError, ValueError):
        raise DataError(
            f"{path}: invalid Number of Frames (0028,0008) {value!r} ({_syntax_text(ds)})."
        ) from None
    return max(count, 1)


def _sort_series(images: list[DicomImage]) -> list[DicomImage]:
    series: dict[str, list[DicomImage]] = {}
    for img in images:  # files arrive sorted by name; series keep their first-seen order
        series.setdefault(img.series_instance_uid or "", []).append(img)
    ordered: list[DicomImage] = []
    for group in series.values():
        ordered.extend(_sort_one_series(group))
    return ordered


def _sort_one_series(images: list[DicomImage]) -> list[DicomImage]:
    orientations = {img.image_orientation for img in images}
    if (
        len(orientations) == 1
        and None not in orientations
        and all(img.image_position is not None for img in images)
    ):
        row, col = (
            np.asarray(images[0].image_orientation[:3]),
            np.asarray(images[0].image_orientation[3:6]),
        )
        normal = np.cross(row, col)
        return sorted(images, key=lambda img: float(np.dot(normal, img.image_position)))
    if all(img.instance_number is not None for img in images):
        return sorted(images, key=lambda img: img.instance_number)
    return images


def _read_label_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: label CSV not found.")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises several parser error types
        raise DataError(f"{path}: cannot be read as CSV ({exc}).") from exc
    table.columns = [str(c).strip().lower() for c in table.columns]
    if table.empty:
        raise DataError(f"{path}: the label CSV has no rows.")
    return table


def _resolve(base: Path, value: str) -> Path:
    candidate = Path(value.strip())
    return (candidate if candidate.is_absolute() else base / candidate).resolve()


def _describe(ds: Dataset) -> str:
    parts = []
    sop_class = ds.get("SOPClassUID") or getattr(
        ds.get("file_meta"), "MediaStorageSOPClassUID", None
    )
    if sop_class:
        parts.append(f"SOP class {UID(str(sop_class)).name}")
    if modality := _text(ds, "Modality"):
        parts.append(f"modality {modality}")
    return ", ".join(parts) or "no SOP class or modality given"


def _syntax_text(ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if not syntax:
        return "transfer syntax not stated"
    return f"transfer syntax {UID(str(syntax)).name} ({syntax})"


def _text(ds: Dataset, keyword: str) -> str | None:
    try:
        value = ds.get(keyword)
    except Exception:  # an unparseable value is treated as absent
        return None
    text = str(value).strip() if value is not None else ""
    return text or None


def _integer(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(float(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _floats(ds: Dataset, keyword: str, count: int) -> tuple[float, ...] | None:
    try:
        value = ds.get(keyword)
        numbers = tuple(float(v) for v in (value if isinstance(value, Iterable) else [value]))
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == count else None


def _examples(items: Sequence[object], limit: int = 3) -> str:
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
