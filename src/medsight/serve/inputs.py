"""Turning request bodies into what the bundles take: image arrays and ECG records.

Formats are told by content, not by the file name a client sends: PNG and JPEG by their
signatures, DICOM by the ``DICM`` marker at byte 128. Decoding reuses :mod:`medsight.io` (Pillow
for PNG/JPEG, :func:`medsight.io.images.read_image_file` for DICOM's display pipeline,
:func:`medsight.io.ecg.read_ecg` for ECG files); readers that need a path get a private temporary
folder, and error messages are stripped of that folder so they show only the client's file name.

``require_deidentified`` (``ServeSettings.require_deidentified``) refuses, as a 422, a DICOM image
or waveform that is not de-identified and a WFDB header whose comments look like identifiers
(:mod:`medsight.privacy.gate`); PNG, JPEG, CSV, NumPy and JSON samples carry no patient header and
are not checked.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import numpy as np

from medsight.errors import DataError, MedsightError
from medsight.io.ecg import ARRAY_SUFFIXES, DICOM_SUFFIXES, WFDB_SUFFIXES, EcgRecord, read_ecg
from medsight.serve.errors import UnsupportedMediaError

PNG: Final = "image/png"
JPEG: Final = "image/jpeg"
DICOM: Final = "application/dicom"
IMAGE_TYPES: Final = (PNG, JPEG, DICOM)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
# how the service stores each kind of ECG input (Prediction.input_type), read back by retraining
ECG_SAMPLES_INPUT: Final = "application/json; ecg samples"  # the JSON request body
ZIP_INPUT: Final = "application/zip"  # several uploaded files (a WFDB pair), zipped
FILE_INPUT: Final = "file"  # one uploaded file as it is; "file; fs=RATE" when a rate was given
ECG_SUFFIXES: Final = WFDB_SUFFIXES | DICOM_SUFFIXES | ARRAY_SUFFIXES
T = TypeVar("T")


@dataclass(frozen=True)
class Upload:
    """One uploaded file: the name the client gave (may be empty) and its bytes."""

    name: str
    data: bytes


def sniff_image(data: bytes) -> str | None:
    """``image/png``, ``image/jpeg`` or ``application/dicom`` from the bytes, else ``None``."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if len(data) >= 132 and data[128:132] == b"DICM":
        return DICOM
    return None


def decode_image(
    data: bytes, *, max_pixels: int, require_deidentified: bool = False
) -> tuple[np.ndarray, str]:
    """An uploaded image as float32 ``(C, H, W)`` in [0, 1], and its media type.

    Anything but PNG, JPEG or DICOM is an :class:`UnsupportedMediaError` (HTTP 415); a damaged
    file, one with more than ``max_pixels`` pixels or, with ``require_deidentified``, a DICOM file
    that is not de-identified, a :class:`DataError` (HTTP 422).
    """
    kind = sniff_image(data)
    if kind is None:
        raise UnsupportedMediaError(
            "the upload is not a PNG, JPEG or DICOM image (its first bytes match none of them)."
        )
    if kind == DICOM:
        return _decode_dicom(data, require_deidentified), kind
    return _decode_pil(data, max_pixels), kind


def _decode_pil(data: bytes, max_pixels: int) -> np.ndarray:
    from PIL import Image

    from medsight.io.images import pil_to_array

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise DataError(
                    f"image is {width}x{height} pixels; the service takes at most {max_pixels:,}."
                )
            image.load()
            return pil_to_array(image)
    except MedsightError:
        raise
    except Exception as exc:  # Pillow raises many types for broken files (OSError, SyntaxError...)
        raise DataError(f"the image is damaged or truncated ({type(exc).__name__}).") from exc


def _decode_dicom(data: bytes, require_deidentified: bool) -> np.ndarray:
    from medsight.io.dicom import require_deidentified_file
    from medsight.io.images import read_image_file

    def read(path: Path) -> np.ndarray:
        if require_deidentified:
            require_deidentified_file(path)  # the header only, before any pixel is decoded
        return read_image_file(path)

    with _scratch([Upload("upload.dcm", data)]) as (folder, paths):
        return _quiet_paths(folder, lambda: read(paths[0]))


# --------------------------------------------------------------------------------------- ECG


def ecg_from_samples(
    samples: Sequence[float] | Sequence[Sequence[float]],
    fs: float,
    lead_names: Sequence[str] | None = None,
) -> EcgRecord:
    """A record from JSON numbers: one list (one lead) or one list per lead (leads x samples)."""
    try:
        array = np.asarray(samples, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise DataError(
            "samples: every lead must be a list of numbers of the same length."
        ) from exc
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] == 0:
        raise DataError(
            f"samples: expected [..] or [[..], ..] (leads x samples); got {array.shape}."
        )
    if not np.isfinite(array).all():
        raise DataError("samples: every value must be a finite number (no NaN or infinity).")
    names = list(lead_names) if lead_names else [f"lead{i + 1}" for i in range(array.shape[0])]
    return EcgRecord(signal=array.T, fs=fs, lead_names=names, name="samples", source="samples")


def ecg_from_files(
    files: Sequence[Upload], fs: float | None, *, require_deidentified: bool = False
) -> EcgRecord:
    """A record from uploaded files: a CSV/NumPy signal (with ``fs``), a DICOM waveform, or a WFDB
    header with its data file (two files, the header ending in ``.hea``). ``require_deidentified``
    refuses a DICOM waveform or WFDB header that is not de-identified (:func:`read_ecg`)."""
    if not 1 <= len(files) <= 2:
        raise DataError(
            f"{len(files)} files uploaded; send one ECG file, or a WFDB .hea with its .dat."
        )
    named = [Upload(_ecg_name(f, i), f.data) for i, f in enumerate(files)]
    if len(named) == 2 and not any(f.name.lower().endswith(".hea") for f in named):
        raise DataError("two files uploaded but none is a WFDB header (.hea); send the pair.")
    if len({f.name for f in named}) != len(named):
        raise DataError("the two uploaded files have the same name; send x.hea and x.dat.")
    with _scratch(named) as (folder, paths):
        main = next((p for p in paths if p.suffix.lower() == ".hea"), paths[0])
        return _quiet_paths(
            folder, lambda: read_ecg(main, fs=fs, require_deidentified=require_deidentified)
        )


def _ecg_name(upload: Upload, index: int) -> str:
    name = _SAFE_NAME.sub("_", Path(upload.name or "").name).lstrip(".")
    if Path(name).suffix.lower() in ECG_SUFFIXES:
        return name
    if len(upload.data) >= 132 and upload.data[128:132] == b"DICM":
        return f"upload{index}.dcm"
    if upload.data.startswith(b"\x93NUMPY"):
        return f"upload{index}.npy"
    return f"upload{index}.csv"  # the CSV reader says clearly when it is not text


def bundle_of(files: Sequence[Upload], fs: float | None = None) -> tuple[bytes, str]:
    """The bytes to fingerprint (and maybe store) for uploaded files, and their input type.

    One file is kept as it is (its input type records the form's ``fs``, which a CSV or NumPy
    signal needs to be read again); several (a WFDB pair) as a ZIP of them, so they can be
    recovered.
    """
    if len(files) == 1:
        return files[0].data, FILE_INPUT if fs is None else f"{FILE_INPUT}; fs={float(fs)!r}"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for i, item in enumerate(files):
            archive.writestr(_ecg_name(item, i), item.data)
    return buffer.getvalue(), ZIP_INPUT


def stored_rate(input_type: str) -> float | None:
    """The ``fs`` recorded by :func:`bundle_of` in a stored input type, if any."""
    _, _, rate = input_type.partition("; fs=")
    try:
        return float(rate) if rate else None
    except ValueError:
        return None


# --------------------------------------------------------------------------------------- helpers


@contextmanager
def _scratch(files: Sequence[Upload]) -> Iterator[tuple[Path, list[Path]]]:
    """A private temporary folder holding ``files``; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="medsight-upload-") as name:
        folder = Path(name)
        paths = []
        for item in files:
            path = folder / item.name
            path.write_bytes(item.data)
            paths.append(path)
        yield folder, paths


def _quiet_paths(folder: Path, read: Callable[[], T]) -> T:
    """Run ``read``; an error's message loses the temporary folder, keeping the file name."""
    try:
        return read()
    except MedsightError as exc:
        message = str(exc).replace(f"{folder}/", "").replace(str(folder), "upload")
        raise type(exc)(message) from exc
