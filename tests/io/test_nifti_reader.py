"""NIfTI reader: canonical RAS+ orientation, radiological slices, clear errors."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medsight.errors import ConfigError, DataError
from medsight.io.nifti import nifti_slices, read_nifti

SHAPE = (4, 5, 6)


def _coded_volume(shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    """Each voxel holds 100*i + 10*j + k, so its value says where it came from."""
    i, j, k = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    return (100 * i + 10 * j + k).astype(np.float32)


def _save(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_identity_affine_is_left_alone(tmp_path: Path) -> None:
    data = _coded_volume()
    volume = read_nifti(_save(tmp_path / "ras.nii.gz", data, np.diag([2.0, 3.0, 4.0, 1.0])))
    assert volume.dtype == np.float32 and volume.shape == SHAPE
    np.testing.assert_array_equal(volume, data)


def test_flipped_x_axis_is_made_canonical(tmp_path: Path) -> None:
    data = _coded_volume()
    affine = np.diag([-2.0, 3.0, 4.0, 1.0])  # LAS: voxel i grows to the patient's left
    affine[:3, 3] = [10.0, -20.0, 5.0]
    volume = read_nifti(_save(tmp_path / "las.nii", data, affine))
    np.testing.assert_array_equal(volume, data[::-1, :, :])


def test_permuted_axes_are_made_canonical(tmp_path: Path) -> None:
    data = _coded_volume()
    # voxel axis 0 -> superior, axis 1 -> patient left, axis 2 -> anterior
    affine = np.array(
        [[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0, 0, 0, 1.0]]
    )
    volume = read_nifti(_save(tmp_path / "permuted.nii.gz", data, affine))
    n1 = SHAPE[1]
    assert volume.shape == (SHAPE[1], SHAPE[2], SHAPE[0])
    x, y, z = 1, 2, 3
    assert volume[x, y, z] == data[z, n1 - 1 - x, y]
    # world positions agree: canonical voxel (x, y, z) sits where the file's voxel sits
    world = affine @ np.array([z, n1 - 1 - x, y, 1.0])
    assert world[2] == z and world[0] == -(n1 - 1 - x)


def _marked(shape: tuple[int, int, int], marks: list[tuple[int, int, int]]) -> np.ndarray:
    data = np.zeros(shape, dtype=np.float32)
    for voxel in marks:
        data[voxel] = 1.0
    return data


def test_slices_are_radiological(tmp_path: Path) -> None:
    x, y, z = 7, 8, 9
    # one marker at the patient's right-anterior-superior corner (RAS+: the last voxel on each axis)
    data = _marked((x, y, z), [(x - 1, y - 1, z - 1)])
    path = _save(tmp_path / "ras.nii", data, np.eye(4))

    axial = nifti_slices(path)  # default: axial
    assert axial.shape == (z, y, x) and axial.dtype == np.float32
    # anterior at the top (row 0), patient's right on the image's left (column 0)
    assert axial[z - 1, 0, 0] == 1.0 and axial.sum() == 1.0

    coronal = nifti_slices(path, axis=1)
    assert coronal.shape == (y, z, x)
    assert coronal[y - 1, 0, 0] == 1.0  # superior at the top, right on the left

    sagittal = nifti_slices(path, axis=0)
    assert sagittal.shape == (x, z, y)
    assert sagittal[x - 1, 0, 0] == 1.0  # superior at the top, anterior on the left


def test_slices_do_not_depend_on_the_file_orientation(tmp_path: Path) -> None:
    data = _coded_volume((6, 7, 8))
    ras = _save(tmp_path / "ras.nii", data, np.eye(4))
    # the same anatomy stored LPS (x and y flipped), as DICOM-derived files often are
    lps_affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    lps_affine[:3, 3] = [5.0, 6.0, 0.0]
    lps = _save(tmp_path / "lps.nii.gz", data[::-1, ::-1, :].copy(), lps_affine)
    for axis in (0, 1, 2):
        np.testing.assert_array_equal(nifti_slices(ras, axis=axis), nifti_slices(lps, axis=axis))


def test_slice_indices_and_argument_errors(tmp_path: Path) -> None:
    data = _coded_volume()
    path = _save(tmp_path / "v.nii", data, np.eye(4))
    two = nifti_slices(path, axis=2, indices=[0, 5])
    assert two.shape == (2, SHAPE[1], SHAPE[0])
    np.testing.assert_array_equal(two[1], data[::-1, ::-1, 5].T)
    with pytest.raises(DataError, match=r"0\.\.5"):
        nifti_slices(path, indices=[6])
    with pytest.raises(ConfigError, match="axis"):
        nifti_slices(path, axis=3)


def test_two_dimensional_images(tmp_path: Path) -> None:
    plane = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = _save(tmp_path / "flat.nii", plane, np.diag([-1.0, 1.0, 1.0, 1.0]))
    image = read_nifti(path)
    assert image.shape == (3, 4)
    np.testing.assert_array_equal(image, plane[::-1])
    slices = nifti_slices(path)
    assert slices.shape == (1, 4, 3)
    np.testing.assert_array_equal(slices[0], image[::-1, ::-1].T)

    # a one-slice coronal image: its flat axis is y, and slices default to it
    coronal = _save(tmp_path / "coronal.nii", plane[:, None, :], np.eye(4))
    assert read_nifti(coronal).shape == (3, 4)
    assert nifti_slices(coronal).shape == (1, 4, 3)


def test_scaling_and_singleton_fourth_dimension(tmp_path: Path) -> None:
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4, 1)
    image = nib.Nifti1Image(data, np.eye(4))
    image.header.set_slope_inter(2.0, -1.0)
    path = tmp_path / "scaled.nii"
    nib.save(image, path)
    volume = read_nifti(path)
    assert volume.shape == (2, 3, 4)
    np.testing.assert_allclose(volume, data[..., 0] * 2.0 - 1.0)


def test_four_dimensional_series_is_refused(tmp_path: Path) -> None:
    path = _save(tmp_path / "fmri.nii", np.zeros((3, 3, 3, 5), np.float32), np.eye(4))
    with pytest.raises(DataError, match="4D"):
        read_nifti(path)


@pytest.mark.parametrize("name", ["cut.nii", "cut.nii.gz"])
def test_truncated_file_gives_data_error(tmp_path: Path, name: str) -> None:
    full = _save(tmp_path / f"full_{name}", _coded_volume((16, 16, 16)), np.eye(4))
    data = full.read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated") as caught:
        read_nifti(path)
    assert name in str(caught.value)
    short_header = tmp_path / f"header_{name}"
    raw = gzip.decompress(data)[:100] if name.endswith(".gz") else data[:100]
    short_header.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    with pytest.raises(DataError, match=re.escape(f"header_{name}")):
        nifti_slices(short_header)


def test_non_nifti_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.nii"
    text.write_text("not a volume " * 40)
    with pytest.raises(DataError, match=r"notes\.nii"):
        read_nifti(text)
    other = tmp_path / "scan.mgz"
    nib.save(nib.MGHImage(np.zeros((2, 2, 2), np.float32), np.eye(4)), other)
    with pytest.raises(DataError, match="not NIfTI"):
        read_nifti(other)
    with pytest.raises(DataError, match="not found"):
        read_nifti(tmp_path / "absent.nii.gz")
