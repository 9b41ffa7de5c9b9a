"""DICOM reader: each pydicom test file loads right or fails clearly; LUTs, orientation, series."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data.data_manager import DATA_ROOT, DataTypes, external_data_sources
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.pixels import pixel_array as pydicom_pixels

import medsight.io.dicom as dicom_module
from medsight.errors import ConfigError, DataError, MissingDependencyError
from medsight.io.dicom import (
    NoPixelDataError,
    NotDicomError,
    dicom_volume,
    read_dicom,
    read_dicom_labels,
    read_dicom_series,
)
from shared_helpers import write_dicom

BUNDLED_ROOT = Path(DATA_ROOT) / "test_files"
LARGE_BYTES = 50_000_000  # decoded float32 size above which a walk case is marked slow

# ------------------------------------------------------------------------- pydicom test files


def _offline_test_files() -> dict[str, Path]:
    """pydicom's bundled test files plus pydicom-data's, found on disk only.

    pydicom.data.get_testdata_files() would also try to download files missing from the local
    cache, so the two sources are globbed directly.
    """
    files = {
        f"pydicom/{p.relative_to(BUNDLED_ROOT)}": p
        for p in sorted(BUNDLED_ROOT.rglob("*"))
        if p.is_file() and p.suffix != ".py"
    }
    source = external_data_sources().get("pydicom-data")
    if source is not None:
        for name in sorted(source.get_paths("**/*", DataTypes.DATASET)):
            files[f"pydicom-data/{Path(name).name}"] = Path(name)
    return files


TEST_FILES = _offline_test_files()
HAS_PYDICOM_DATA = any(key.startswith("pydicom-data/") for key in TEST_FILES)


def _test_file(name: str) -> Path:
    """A pydicom test file by name, or skip when only pydicom-data (absent) has it."""
    for path in TEST_FILES.values():
        if path.name == name:
            return path
    pytest.skip(f"{name} is not installed (pip install pydicom-data)")


def _header(path: Path) -> Dataset | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's notes on deliberately odd test files
            return pydicom.dcmread(path, force=True)
    except Exception:
        return None


def _walk_params() -> list:
    params = []
    for key, path in TEST_FILES.items():
        marks = []
        ds = _header(path)
        if ds is not None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    size = int(ds.Rows) * int(ds.Columns) * int(ds.get("NumberOfFrames") or 1)
                    size *= int(ds.get("SamplesPerPixel") or 1) * 4
            except Exception:
                size = 0
            if size > LARGE_BYTES:
                marks.append(pytest.mark.slow)
        params.append(pytest.param(path, id=key, marks=marks))
    return params


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything in these tests asks pydicom to fetch test data."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a test tried to download pydicom test data")

    monkeypatch.setattr("pydicom.data.download.download_with_progress", refuse)


def _has_pixels(ds: Dataset | None) -> bool:
    return ds is not None and any(k in ds for k in dicom_module.PIXEL_KEYWORDS)


def _rescales(ds: Dataset) -> list[tuple[float, float]]:
    """(slope, intercept) pairs from the top level or the functional groups."""
    pairs = []
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        pairs.append((float(ds.RescaleSlope), float(ds.RescaleIntercept)))
    for group_name in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in ds.get(group_name) or []:
            for item in group.get("PixelValueTransformationSequence") or []:
                pairs.append((float(item.RescaleSlope), float(item.RescaleIntercept)))
    return pairs or [(1.0, 0.0)]


def _header_range(ds: Dataset) -> tuple[float, float]:
    """The range the header allows for modality values (grey) or RGB samples (colour)."""
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if photometric == "PALETTE COLOR":
        return 0.0, 65535.0
    bits = int(ds.BitsStored)
    if int(ds.get("SamplesPerPixel") or 1) == 3:
        return 0.0, 2.0**bits - 1
    if ds.get("ModalityLUTSequence"):
        return 0.0, 2.0 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    low, high = (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1) if signed else (0.0, 2.0**bits - 1)
    ends = [v * s + i for s, i in _rescales(ds) for v in (low, high)]
    return min(ends), max(ends)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom's notes on deliberately odd files
@pytest.mark.parametrize("path", _walk_params())
def test_every_pydicom_test_file_loads_or_fails_clearly(path: Path) -> None:
    header = _header(path)
    try:
        image = read_dicom(path, apply_voi=False)
    except (MissingDependencyError, DataError) as exc:
        message = str(exc)
        assert str(path) in message
        if _has_pixels(header):
            syntax = getattr(header.file_meta, "TransferSyntaxUID", None)
            assert (str(syntax) in message) if syntax else ("transfer syntax" in message.lower())
        else:
            assert isinstance(exc, NoPixelDataError | NotDicomError)
        return

    assert _has_pixels(header)
    rows, cols = int(header.Rows), int(header.Columns)
    frames = int(header.get("NumberOfFrames") or 1)
    colour = int(header.get("SamplesPerPixel") or 1) == 3 or image.photometric == "PALETTE COLOR"
    assert image.pixels.shape == ((frames, rows, cols, 3) if colour else (frames, rows, cols))
    assert image.pixels.dtype == np.float32
    assert np.isfinite(image.pixels).all()

    low, high = _header_range(header)
    assert image.value_range == pytest.approx((low, high))
    slack = 1e-4 * max(abs(low), abs(high), 1.0)
    assert image.pixels.min() >= low - slack and image.pixels.max() <= high + slack

    # Same layout as pydicom's own array (rows first, no transposition), MONOCHROME1 inverted.
    syntax = getattr(header.file_meta, "TransferSyntaxUID", None)
    plain = image.photometric in ("MONOCHROME1", "MONOCHROME2", "RGB")
    if syntax and plain and not header.get("ModalityLUTSequence") and len(_rescales(header)) == 1:
        raw = pydicom_pixels(header).reshape(image.pixels.shape).astype(np.float64)
        slope, intercept = _rescales(header)[0]
        expected = raw * slope + intercept if not colour else raw
        if image.photometric == "MONOCHROME1":
            expected = (low + high) - expected
        np.testing.assert_allclose(image.pixels, expected, rtol=1e-6, atol=slack)

    windowed = read_dicom(path)  # the default applies VOI LUT / window when present
    w_low, w_high = windowed.value_range
    w_slack = 1e-4 * max(abs(w_low), abs(w_high), 1.0)
    assert windowed.pixels.shape == image.pixels.shape
    assert windowed.pixels.min() >= w_low - w_slack and windowed.pixels.max() <= w_high + w_slack


def test_the_walk_covers_pydicom_data() -> None:
    if not HAS_PYDICOM_DATA:
        pytest.skip("pydicom-data is not installed")
    names = {path.name for path in TEST_FILES.values()}
    assert {"RG1_UNCR.dcm", "US1_J2KR.dcm", "emri_small.dcm", "vlut_04.dcm"} <= names


# -------------------------------------------------------------------- LUTs and photometrics


def test_monochrome1_is_inverted_so_high_is_bright() -> None:
    path = next(BUNDLED_ROOT.rglob("6154"))  # a bundled MONOCHROME1 CR image
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    image = read_dicom(path, apply_voi=False)
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    low, high = intercept, (2**ds.BitsStored - 1) * slope + intercept
    assert image.inverted and image.value_range == pytest.approx((low, high))
    modality = ds.pixel_array * slope + intercept
    np.testing.assert_allclose(image.first_frame, (low + high) - modality, rtol=1e-6)
    # The stored image's darkest pixel is the returned image's brightest.
    darkest = np.unravel_index(np.argmax(ds.pixel_array), ds.pixel_array.shape)
    assert image.first_frame[darkest] == image.first_frame.min()


def test_monochrome1_inversion_also_after_windowing() -> None:
    path = _test_file("RG1_UNCR.dcm")
    ds = pydicom.dcmread(path)
    image = read_dicom(path)
    assert image.voi_applied and image.inverted
    assert image.value_range == (0.0, 2.0**ds.BitsStored - 1)
    raw = ds.pixel_array.astype(np.float64)
    assert np.corrcoef(raw.ravel(), image.first_frame.ravel())[0, 1] < -0.9


def test_ct_rescale_gives_hounsfield_units() -> None:
    path = _test_file("CT_small.dcm")
    ds = pydicom.dcmread(path)
    image = read_dicom(path, apply_voi=False)
    assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (1.0, -1024.0)
    np.testing.assert_array_equal(image.first_frame, ds.pixel_array.astype(np.float32) - 1024)
    assert image.modality == "CT"
    assert -1000 <= image.pixels.min() < -800  # air / lung
    assert 0 < image.pixels.max() < 3072
    assert image.value_range == (-32768.0 - 1024, 32767.0 - 1024)


def test_window_centre_width_maps_to_the_expected_range() -> None:
    path = _test_file("MR_small.dcm")
    ds = pydicom.dcmread(path)
    centre, width = float(ds.WindowCenter), float(ds.WindowWidth)
    assert (centre, width) == (600.0, 1600.0)
    image = read_dicom(path)
    assert image.voi_applied
    low, high = -32768.0, 32767.0  # signed 16-bit output range, PS3.3 C.11.2.1.2.1
    assert image.value_range == (low, high)
    x = ds.pixel_array.astype(np.float64)
    c, w = centre - 0.5, width - 1
    expected = np.clip(((x - c) / w + 0.5) * (high - low) + low, low, high)
    expected[x <= c - w / 2] = low
    expected[x > c + w / 2] = high
    np.testing.assert_allclose(image.first_frame, expected, rtol=1e-6, atol=0.01)
    unit = image.to_unit_range()
    assert unit.min() >= 0 and unit.max() <= 1 and unit.dtype == np.float32


def test_own_window_on_modality_values() -> None:
    path = _test_file("CT_small.dcm")
    image = read_dicom(path, apply_voi=False)
    unit = image.to_unit_range(window=(40, 400))
    hu = image.pixels
    np.testing.assert_allclose(unit, np.clip((hu - (40 - 200)) / 400, 0, 1), atol=1e-6)
    assert (unit[hu < -160] == 0).all() and (unit[hu > 240] == 1).all()
    with pytest.raises(ConfigError, match="apply_voi=False"):
        read_dicom(_test_file("MR_small.dcm")).to_unit_range(window=(40, 400))


def test_own_window_on_monochrome1_keeps_high_bright() -> None:
    path = next(BUNDLED_ROOT.rglob("6154"))
    image = read_dicom(path, apply_voi=False)
    low, high = image.value_range
    modality = (low + high) - image.pixels
    unit = image.to_unit_range(window=(1800, 400))
    np.testing.assert_allclose(unit, 1 - np.clip((modality - 1600) / 400, 0, 1), atol=1e-6)


def test_voi_lut_sequence_and_modality_lut_sequence() -> None:
    voi_path = _test_file("vlut_04.dcm")
    ds = pydicom.dcmread(voi_path)
    image = read_dicom(voi_path)
    depth = int(ds.VOILUTSequence[0].LUTDescriptor[2])
    assert image.voi_applied and image.value_range == (0.0, 2.0**depth - 1)
    np.testing.assert_array_equal(image.first_frame, apply_voi_lut(ds.pixel_array, ds))
    assert not read_dicom(voi_path, apply_voi=False).voi_applied

    lut_path = _test_file("mlut_18.dcm")
    ds = pydicom.dcmread(lut_path)
    image = read_dicom(lut_path, apply_voi=False)
    np.testing.assert_array_equal(image.first_frame, apply_modality_lut(ds.pixel_array, ds))
    assert image.value_range == (0.0, 65535.0)


def test_enhanced_multiframe_takes_rescale_from_functional_groups() -> None:
    path = _test_file("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    assert "RescaleIntercept" not in ds  # only in the functional groups
    image = read_dicom(path, apply_voi=False)
    np.testing.assert_array_equal(image.pixels, ds.pixel_array.astype(np.float32) - 1024)
    assert image.pixel_spacing == pytest.approx((0.388672, 0.388672))
    assert read_dicom(path).voi_applied  # the frame VOI LUT sequence holds a window


def test_multiframe_gives_number_of_frames_and_single_frames() -> None:
    path = _test_file("rtdose.dcm")
    ds = pydicom.dcmread(path)
    image = read_dicom(path)
    assert image.n_frames == int(ds.NumberOfFrames) == 15
    assert image.pixels.shape == (15, int(ds.Rows), int(ds.Columns))
    seventh = read_dicom(path, frame=7)
    assert seventh.pixels.shape == (1, int(ds.Rows), int(ds.Columns))
    assert seventh.frame_indices == [7]
    np.testing.assert_array_equal(seventh.first_frame, image.pixels[7])
    with pytest.raises(DataError, match="15 frame"):
        read_dicom(path, frame=15)


def test_palette_colour_becomes_rgb() -> None:
    path = _test_file("OBXXXX1A.dcm")
    ds = pydicom.dcmread(path)
    image = read_dicom(path)
    assert image.is_colour and image.photometric == "PALETTE COLOR"
    assert image.pixels.shape == (1, int(ds.Rows), int(ds.Columns), 3)
    grey_lut = np.all(image.pixels[..., 0] == image.pixels[..., 1])
    assert not grey_lut  # a real colour palette, expanded per channel


TWINS = [  # (reference, compressed twin, max abs difference allowed)
    ("MR_small.dcm", "MR_small_jp2klossless.dcm", 0),
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm", 0),
    ("MR_small.dcm", "MR_small_RLE.dcm", 0),
    ("MR_small.dcm", "MR_small_bigendian.dcm", 0),
    ("rtdose.dcm", "rtdose_rle.dcm", 0),
    ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm", 0),
    ("US1_UNCR.dcm", "US1_J2KR.dcm", 0),
    ("US1_UNCI.dcm", "US1_J2KI.dcm", 0),  # UNCI = the decoded lossy image
    ("RG3_UNCR.dcm", "RG3_J2KR.dcm", 0),
    ("SC_rgb.dcm", "SC_rgb_jpeg_gdcm.dcm", 0),  # JPEG lossless
    ("SC_rgb.dcm", "SC_rgb_gdcm_KY.dcm", 0),
    ("SC_rgb.dcm", "SC_rgb_jpeg_dcmtk.dcm", 8),  # JPEG baseline, YBR_FULL
    ("SC_rgb.dcm", "SC_rgb_dcmtk_+eb+cy+s2.dcm", 8),  # JPEG baseline, YBR_FULL_422
    ("SC_rgb.dcm", "SC_ybr_full_uncompressed.dcm", 8),  # YBR -> RGB rounding
    ("SC_rgb.dcm", "SC_rgb_jls_lossy_line.dcm", 3),  # JPEG-LS near-lossless
]


@pytest.mark.parametrize(("reference", "twin", "tolerance"), TWINS, ids=[t[1] for t in TWINS])
def test_compressed_file_matches_its_uncompressed_twin(
    reference: str, twin: str, tolerance: float
) -> None:
    expected = read_dicom(_test_file(reference), apply_voi=False)
    actual = read_dicom(_test_file(twin), apply_voi=False)
    assert actual.pixels.shape == expected.pixels.shape
    difference = np.abs(actual.pixels.astype(np.float64) - expected.pixels)
    assert difference.max() <= tolerance
    assert difference.mean() <= max(tolerance / 4, 1e-9)


# ---------------------------------------------------------------------------- orientation


def test_orientation_rows_first_and_top_left_stays_top_left(tmp_path: Path) -> None:
    pixels = np.zeros((6, 10), dtype=np.uint16)
    pixels[0, 0] = 4000  # bright top-left corner on a non-square image
    pixels[0, 1:] = 1000  # first row is the top row
    image = read_dicom(write_dicom(tmp_path / "corner.dcm", pixels))
    assert image.pixels.shape == (1, 6, 10)
    assert image.first_frame[0, 0] == image.pixels.max() == 4000
    assert (image.first_frame[0, 1:] == 1000).all() and (image.first_frame[1:] == 0).all()

    inverse = read_dicom(write_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1"))
    assert inverse.first_frame[0, 0] == inverse.pixels.min()  # stored bright = displayed dark
    assert inverse.first_frame[5, 9] == inverse.pixels.max() == 4095


def test_file_without_preamble_uses_the_detected_encoding(tmp_path: Path) -> None:
    source = _test_file("CT_small.dcm")
    ds = pydicom.dcmread(source)
    ds.file_meta = FileMetaDataset()
    ds.preamble = None
    path = tmp_path / "headerless"
    pydicom.dcmwrite(path, ds, implicit_vr=True, little_endian=True, enforce_file_format=False)
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(path)
    image = read_dicom(path, apply_voi=False)
    assert image.transfer_syntax == "1.2.840.10008.1.2"
    np.testing.assert_array_equal(image.pixels, read_dicom(source, apply_voi=False).pixels)


# ---------------------------------------------------------------------------- clear errors


def test_dicom_without_pixel_data_names_file_sop_class_and_modality(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_test_file("CT_small.dcm"))
    del ds.PixelData
    path = tmp_path / "no_pixels.dcm"
    ds.save_as(path)
    with pytest.raises(NoPixelDataError) as caught:
        read_dicom(path)
    message = str(caught.value)
    assert str(path) in message and "CT Image Storage" in message and "modality CT" in message
    assert isinstance(caught.value, DataError)


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.95])
def test_truncated_file_gives_data_error(tmp_path: Path, keep: float) -> None:
    data = _test_file("MR_small.dcm").read_bytes()
    path = tmp_path / "truncated.dcm"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match="truncated") as caught:
        read_dicom(path)
    assert str(path) in str(caught.value)


def test_non_dicom_and_missing_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.dcm"
    text.write_text("patient,label\n1,0\n" * 20)
    with pytest.raises(NotDicomError, match=r"notes\.dcm"):
        read_dicom(text)
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.dcm"):
        read_dicom(empty)
    with pytest.raises(DataError, match="not found"):
        read_dicom(tmp_path / "absent.dcm")


class _NoDecoder:
    is_available = False
    missing_dependencies = ("pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-openjpeg>=2.0",)


@pytest.mark.parametrize(
    ("name", "syntax", "package"),
    [
        ("MR_small_jp2klossless.dcm", "1.2.840.10008.1.2.4.90", "pylibjpeg-openjpeg"),
        ("MR_small_jpeg_ls_lossless.dcm", "1.2.840.10008.1.2.4.80", "pyjpegls"),
        ("SC_rgb_jpeg_dcmtk.dcm", "1.2.840.10008.1.2.4.50", "pylibjpeg-libjpeg"),
    ],
)
def test_missing_decoder_names_syntax_and_package(
    monkeypatch: pytest.MonkeyPatch, name: str, syntax: str, package: str
) -> None:
    monkeypatch.setattr(dicom_module, "get_decoder", lambda uid: _NoDecoder())
    path = _test_file(name)
    with pytest.raises(MissingDependencyError) as caught:
        read_dicom(path)
    message = str(caught.value)
    assert syntax in message and package in message and "python-gdcm" in message
    assert pydicom.uid.UID(syntax).name in message and str(path) in message


def test_unsupported_transfer_syntax_is_a_data_error(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_test_file("MR_small_jp2klossless.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video: no decoder exists
    path = tmp_path / "video.dcm"
    ds.save_as(path)
    with pytest.raises(DataError, match=r"MPEG2 .*1\.2\.840\.10008\.1\.2\.4\.100"):
        read_dicom(path)


# -------------------------------------------------------------------------------- series


def _series(folder: Path, positions: list[float], instances: list[int | None]) -> None:
    folder.mkdir(exist_ok=True)
    for index, (position, instance) in enumerate(zip(positions, instances, strict=True)):
        pixels = np.full((4, 5), 100 * (index + 1), dtype=np.uint16)
        write_dicom(
            folder / f"im{index}.dcm",
            pixels,
            index=index + 1,
            instance=instance,
            position=position,
            patient=f"P{index % 2}",
        )


def test_series_sorted_by_position_and_stacked(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    # file order im0..im3 has z = 3, 1, 4, 2; instance numbers disagree on purpose
    _series(folder, [3.0, 1.0, 4.0, 2.0], [1, 2, 3, 4])
    (folder / "notes.txt").write_text("not an image")
    with pytest.warns(UserWarning, match="notes.txt"):
        images = read_dicom_series(folder)
    assert [img.image_position[2] for img in images] == [1.0, 2.0, 3.0, 4.0]
    volume = dicom_volume(images)
    assert volume.shape == (4, 4, 5) and volume.dtype == np.float32
    assert volume[:, 0, 0].tolist() == [200.0, 400.0, 100.0, 300.0]


def test_series_without_positions_sorted_by_instance_number(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    for index, instance in enumerate([3, 1, 2]):
        write_dicom(folder / f"a{index}.dcm", np.full((4, 5), index, np.uint16), index=index + 1,
                     instance=instance)  # fmt: skip
    images = read_dicom_series(folder)
    assert [img.instance_number for img in images] == [1, 2, 3]


def test_series_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("nothing here")
    with pytest.raises(DataError, match="no DICOM images"):
        read_dicom_series(empty)
    with pytest.raises(DataError, match="folder not found"):
        read_dicom_series(tmp_path / "absent")

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_dicom(mixed / "small.dcm", np.zeros((4, 5), np.uint16), index=1)
    write_dicom(mixed / "large.dcm", np.zeros((6, 7), np.uint16), index=2)
    with pytest.raises(DataError, match=r"4x5.*small\.dcm|6x7.*large\.dcm") as caught:
        dicom_volume(read_dicom_series(mixed))
    assert "4x5" in str(caught.value) and "6x7" in str(caught.value)

    two = tmp_path / "two"
    two.mkdir()
    write_dicom(two / "a.dcm", np.zeros((4, 5), np.uint16), series="1.2.3.1")
    write_dicom(two / "b.dcm", np.zeros((4, 5), np.uint16), series="1.2.3.2")
    with pytest.raises(DataError, match="2 series"):
        dicom_volume(read_dicom_series(two))
    with pytest.raises(DataError, match="grey"):
        dicom_volume([read_dicom(_test_file("SC_rgb_jpeg_dcmtk.dcm"))])


def test_series_does_not_hide_damaged_images(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    _series(folder, [1.0, 2.0], [1, 2])
    data = (folder / "im1.dcm").read_bytes()
    (folder / "im1.dcm").write_bytes(data[: len(data) - 20])
    with pytest.raises(DataError, match=r"im1\.dcm"):
        read_dicom_series(folder)


# -------------------------------------------------------------------------------- labels


def test_labels_by_relative_path_and_by_sop_uid(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    _series(folder, [3.0, 1.0, 2.0], [1, 2, 3])
    images = read_dicom_series(folder)
    by_path = tmp_path / "labels.csv"
    by_path.write_text("path,label\nseries/im0.dcm,tumour\nseries/im1.dcm,normal\n"
                       f"{folder / 'im2.dcm'},normal\n")  # fmt: skip
    labels = read_dicom_labels(by_path, images)
    assert labels.labels == ["normal", "normal", "tumour"]  # images sorted by z: im1, im2, im0
    assert labels.patient_ids == ["P1", "P0", "P0"]
    assert labels.class_names == ["normal", "tumour"]

    by_uid = tmp_path / "uids.csv"
    rows = [f"{img.sop_instance_uid},{img.path.stem},X{i}" for i, img in enumerate(images)]
    by_uid.write_text("sop_instance_uid,label,patient_id\n" + "\n".join(rows[::-1]) + "\n")
    labels = read_dicom_labels(by_uid, images)
    assert labels.labels == ["im1", "im2", "im0"]
    assert labels.patient_ids == ["X0", "X1", "X2"]


def test_label_errors_name_examples(tmp_path: Path) -> None:
    folder = tmp_path / "series"
    _series(folder, [1.0, 2.0], [1, 2])
    images = read_dicom_series(folder)
    csv = tmp_path / "labels.csv"

    csv.write_text("path,label\nseries/im0.dcm,a\n")
    with pytest.raises(DataError, match=r"no row for 1 image.*im1\.dcm"):
        read_dicom_labels(csv, images)

    csv.write_text("path,label\nseries/im0.dcm,a\nseries/im1.dcm,b\nseries/ghost.dcm,c\n")
    with pytest.raises(DataError, match=r"match no image.*ghost\.dcm"):
        read_dicom_labels(csv, images)

    csv.write_text("file,diagnosis\nseries/im0.dcm,a\n")
    with pytest.raises(DataError, match="needs columns"):
        read_dicom_labels(csv, images)

    csv.write_text("path,label\nseries/im0.dcm,a\nseries/im1.dcm,\n")
    with pytest.raises(DataError, match="empty label"):
        read_dicom_labels(csv, images)

    csv.write_text("path,label\nseries/im0.dcm,a\nseries/im0.dcm,b\nseries/im1.dcm,b\n")
    with pytest.raises(DataError, match="more than once"):
        read_dicom_labels(csv, images)


def test_identifiers_are_read() -> None:
    image = read_dicom(_test_file("CT_small.dcm"))
    ds = pydicom.dcmread(_test_file("CT_small.dcm"))
    assert image.sop_instance_uid == ds.SOPInstanceUID
    assert image.patient_id == (ds.PatientID or None)
    assert image.series_instance_uid == ds.SeriesInstanceUID
    assert image.instance_number == (int(ds.InstanceNumber) if "InstanceNumber" in ds else None)
    assert image.pixel_spacing == pytest.approx(tuple(float(v) for v in ds.PixelSpacing))
    assert os.fspath(image.path) == os.fspath(_test_file("CT_small.dcm"))
