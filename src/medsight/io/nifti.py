"""NIfTI volumes through nibabel, in canonical RAS+ orientation, and 2D slices shown radiologically.

:func:`read_nifti` reorients with :func:`nibabel.as_closest_canonical`, so ``volume[x, y, z]`` has
x growing to the patient's Right, y to Anterior and z to Superior whatever the file's affine says.
:func:`nifti_slices` cuts that volume into images the way a radiologist views them: axial and
coronal slices with the patient's right on the image's left, anterior (axial) or superior (coronal,
sagittal) at the top, and sagittal slices with anterior on the left. Intensities are the file's
scaled values (``scl_slope``/``scl_inter`` applied) as float32; NaNs are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from medsight.errors import ConfigError, DataError

NIFTI_CLASSES = (nib.Nifti1Image, nib.Nifti2Image, nib.Nifti1Pair, nib.Nifti2Pair)
AXIS_NAMES = {0: "sagittal", 1: "coronal", 2: "axial"}


def read_nifti(path: str | Path) -> np.ndarray:
    """A NIfTI file as float32 ``(X, Y, Z)`` (or ``(X, Y)`` for a 2D image) in RAS+ orientation.

    Trailing singleton dimensions are dropped (a volume one slice thick is a 2D image); 4D series
    with more than one volume raise :class:`DataError`, as do files that are not NIfTI or are
    truncated.
    """
    volume, flat_axis = _canonical_volume(Path(path))
    return volume if flat_axis is None else np.squeeze(volume, axis=flat_axis)


def nifti_slices(
    path: str | Path, axis: int | None = None, indices: Sequence[int] | None = None
) -> np.ndarray:
    """2D slices of a NIfTI volume as float32 ``(n, H, W)``, oriented for radiological display.

    ``axis`` is the canonical axis cut across: 0 sagittal, 1 coronal, 2 axial. ``None`` means axial
    for volumes and the flat axis for 2D images (which then give one slice). ``indices`` count
    along that axis in RAS+ order (0 = most right / posterior / inferior); ``None`` gives all.
    """
    path = Path(path)
    volume, flat_axis = _canonical_volume(path)
    if axis is None:
        axis = flat_axis if flat_axis is not None else 2
    if axis not in AXIS_NAMES:
        raise ConfigError(f"axis must be 0 (sagittal), 1 (coronal) or 2 (axial); got {axis!r}.")
    count = volume.shape[axis]
    chosen = list(range(count)) if indices is None else [int(i) for i in indices]
    outside = [i for i in chosen if not 0 <= i < count]
    if outside or not chosen:
        raise DataError(
            f"{path}: {AXIS_NAMES[axis]} slice indices must lie in 0..{count - 1}; "
            f"got {outside or 'none'}."
        )
    slices = np.take(volume, chosen, axis=axis)  # keeps the cut axis, length len(chosen)
    slices = np.moveaxis(slices, axis, 0)  # (n, a, b) with a < b the remaining RAS axes
    # Reverse both in-plane axes, then put the higher RAS axis on rows: this gives, for every cut,
    # rows from superior/anterior down and columns from patient-right / anterior across.
    return np.ascontiguousarray(np.swapaxes(slices[:, ::-1, ::-1], 1, 2), dtype=np.float32)


def _canonical_volume(path: Path) -> tuple[np.ndarray, int | None]:
    """The RAS+ 3D volume and, for a 2D image (an axis of length 1), that axis (else None)."""
    image = _load(path)
    shape = tuple(int(s) for s in image.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 3:
        raise DataError(
            f"{path}: a {len(shape)}D NIfTI series of shape {shape}; medsight reads 2D images and "
            "3D volumes. Split it first (e.g. nibabel's four_to_three)."
        )
    if len(shape) < 2:
        raise DataError(f"{path}: NIfTI image of shape {shape} is not an image.")
    shape = shape + (1,) * (3 - len(shape))
    singletons = [axis for axis in range(3) if shape[axis] == 1]
    flat_original = singletons[-1] if singletons else None
    try:
        data = np.asarray(image.get_fdata(dtype=np.float32)).reshape(shape)
        canonical = nib.as_closest_canonical(nib.Nifti1Image(data, image.affine))
        volume = np.asarray(canonical.dataobj, dtype=np.float32)
        # io_orientation gives, per original axis, the canonical axis it lands on.
        landing = nib.io_orientation(image.affine)[:, 0]
    except Exception as exc:  # nibabel raises OSError/EOFError/zlib errors for truncated files
        raise DataError(
            f"{path}: the NIfTI data cannot be read; the file may be truncated or damaged "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    if flat_original is None:
        return volume, None
    flat_axis = landing[flat_original]
    return volume, int(flat_axis) if np.isfinite(flat_axis) else flat_original


def _load(path: Path) -> nib.spatialimages.SpatialImage:
    if not path.is_file():
        raise DataError(f"{path}: file not found.")
    try:
        image = nib.load(path)
    except Exception as exc:  # ImageFileError, HeaderDataError, gzip/zlib errors ...
        raise DataError(
            f"{path}: not a readable NIfTI file (.nii or .nii.gz); it may be truncated or in "
            f"another format ({type(exc).__name__}: {exc})."
        ) from exc
    if not isinstance(image, NIFTI_CLASSES):
        raise DataError(
            f"{path}: nibabel reads this as {type(image).__name__}, not NIfTI; convert it to "
            ".nii or .nii.gz."
        )
    return image
