"""Readers with ``require_deidentified``: DICOM images and series, DICOM and WFDB ECGs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

from medsight.errors import DataError
from medsight.io.dicom import (
    looks_like_dicom,
    read_dicom,
    read_dicom_series,
    require_deidentified_file,
)
from medsight.io.ecg import read_dicom_ecg, read_ecg, read_wfdb
from medsight.privacy.dicom_deid import deidentify_paths
from medsight.privacy.keys import DeidKey
from shared_helpers import write_wfdb

KEY = DeidKey(b"io-gate-test-key-" + b"k" * 32)
MARKER = r"Patient Identity Removed \(0012,0062\) is missing"


def _deid(source: Path, out: Path) -> Path:
    (outcome,) = deidentify_paths([source], out, KEY)
    assert outcome.status == "ok", outcome.reason
    return Path(outcome.output)


@pytest.fixture(scope="module")
def ct(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    source = Path(get_testdata_file("CT_small.dcm"))
    return source, _deid(source, tmp_path_factory.mktemp("ct"))


@pytest.fixture(scope="module")
def ecg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    source = Path(get_testdata_file("waveform_ecg.dcm"))
    return source, _deid(source, tmp_path_factory.mktemp("ecg"))


def test_read_dicom_refuses_an_identified_image_only_when_asked(ct) -> None:
    source, deidentified = ct
    with pytest.raises(DataError, match=rf"CT_small.dcm: not de-identified: {MARKER}"):
        read_dicom(source, require_deidentified=True)
    assert read_dicom(source).pixels.shape == (1, 128, 128)  # the default is unchanged
    image = read_dicom(deidentified, require_deidentified=True)
    np.testing.assert_array_equal(image.pixels, read_dicom(source).pixels)
    require_deidentified_file(deidentified)
    with pytest.raises(DataError, match=MARKER):
        require_deidentified_file(source)


def test_series_folder_is_refused_when_one_image_is_identified(ct, tmp_path: Path) -> None:
    source, deidentified = ct
    folder = tmp_path / "series"
    folder.mkdir()
    shutil.copy(deidentified, folder / "a.dcm")
    (folder / "notes.txt").write_text("not DICOM: skipped as before\n")
    with pytest.warns(UserWarning, match="skipped 1 file"):
        assert len(read_dicom_series(folder, require_deidentified=True)) == 1
    shutil.copy(source, folder / "b.dcm")
    with pytest.raises(DataError, match=rf"b.dcm: not de-identified: {MARKER}"):
        read_dicom_series(folder, require_deidentified=True)
    with pytest.warns(UserWarning):
        assert len(read_dicom_series(folder)) == 2


def test_looks_like_dicom_by_name_or_marker(ct, tmp_path: Path) -> None:
    source, _ = ct
    plain = tmp_path / "IM0001"
    shutil.copy(source, plain)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert looks_like_dicom(source) and looks_like_dicom(plain)
    assert not looks_like_dicom(text) and not looks_like_dicom(tmp_path / "missing")


def test_dicom_ecg_is_refused_until_deidentified(ecg) -> None:
    source, deidentified = ecg
    with pytest.raises(DataError, match=rf"waveform_ecg.dcm: not de-identified: {MARKER}"):
        read_dicom_ecg(source, require_deidentified=True)
    with pytest.raises(DataError, match=MARKER):
        read_ecg(source, require_deidentified=True)
    record = read_ecg(deidentified, require_deidentified=True)
    np.testing.assert_allclose(record.signal, read_ecg(source).signal)


def _wfdb_record(folder: Path, name: str, comments: list[str]) -> Path:
    return write_wfdb(folder, name, np.sin(np.linspace(0, 20, 1000)), fs=250, comments=comments)


def test_wfdb_header_comments_are_checked(tmp_path: Path) -> None:
    clean = _wfdb_record(tmp_path, "clean", ["69 M 1085 1629 x1", "Aldomet, Inderal"])
    assert read_wfdb(clean, require_deidentified=True).comments == [
        "69 M 1085 1629 x1",
        "Aldomet, Inderal",
    ]
    named = _wfdb_record(tmp_path, "named", ["Patient: Chidi Okafor", "MRN: 83321907"])
    with pytest.raises(DataError) as caught:
        read_ecg(named, require_deidentified=True)
    message = str(caught.value)
    assert "named.hea: header comments: 2 of 2 value(s)" in message
    assert "NAME (1)" in message and "MRN (1)" in message and "Okafor" not in message
    assert read_wfdb(named).comments[0].startswith("Patient")  # the default is unchanged
