"""Bad input is quarantined (or failed) with a reason, never a crash, never an identified output."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medsight.errors import ConfigError
from medsight.privacy import dicom_deid
from medsight.privacy.dicom_deid import LOG_NAME, MAX_SEQUENCE_DEPTH, deidentify_paths
from medsight.privacy.dicom_profile import DeidOptions
from medsight.privacy.keys import DeidKey
from medsight.privacy.pseudonym import load_reid_map
from medsight.privacy.verify_dicom import scan_dicom_tree

KEY = DeidKey(b"k" * 32)
NAME = "Doe^Jane"
PID = "MRN-4711-SECRET"


def _ct() -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = NAME
    ds.PatientID = PID
    return ds


def _deep(levels: int) -> Dataset:
    ds = _ct()
    inner = Dataset()
    inner.CodeValue = "1"
    for _ in range(levels):
        outer = Dataset()
        outer.ContentSequence = Sequence([inner])
        inner = outer
    ds.ContentSequence = Sequence([inner])
    return ds


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "a").mkdir(parents=True)
    _ct().save_as(root / "a" / "good.dcm")
    (root / "a" / "notes.txt").write_text(f"patient {NAME}, id {PID}\n")
    data = (root / "a" / "good.dcm").read_bytes()
    (root / "a" / "truncated.dcm").write_bytes(data[: len(data) * 6 // 10])
    _deep(MAX_SEQUENCE_DEPTH + 5).save_as(root / "a" / "deep.dcm")
    no_id = _ct()
    del no_id.PatientID
    no_id.save_as(root / "a" / "no_id.dcm")
    burned = _ct()
    burned.BurnedInAnnotation = "YES"
    burned.save_as(root / "burned.dcm")
    us = _ct()
    us.Modality = "US"
    us.save_as(root / "us.dcm")
    (root / "locked").mkdir()
    (root / "locked" / "x.dcm").write_bytes(data)
    return root


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def test_bad_inputs_are_quarantined_with_reasons(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_scandir = os.scandir

    def scandir(path: object) -> object:
        if Path(str(path)).name == "locked":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(dicom_deid.os, "scandir", scandir)
    before = _digest(tree)
    out = tmp_path / "out"
    outcomes = deidentify_paths([tree], out, KEY, DeidOptions())
    reasons = {Path(o.source).name: (o.status, o.reason) for o in outcomes}
    assert reasons["good.dcm"] == ("ok", None)
    expected = {
        "notes.txt": "not a DICOM file",
        "truncated.dcm": "truncated",
        "deep.dcm": "nested deeper",
        "no_id.dcm": "no Patient ID",
        "burned.dcm": "Burned In Annotation is YES",
        "us.dcm": "modality US",
        "locked": "unreadable folder: permission denied",
    }
    for name, fragment in expected.items():
        status, reason = reasons[name]
        assert status == "quarantined" and fragment in reason, (name, reason)
        assert any((out / "quarantine").rglob(f"{name}.reason.txt")), name
    assert _digest(tree) == before  # inputs never modified
    # nothing identified anywhere under OUT: only the good file, reason notes and the log
    dicom_files = [p for p in out.rglob("*.dcm") if p.is_file()]
    assert dicom_files == [out / "a" / "good.dcm"]
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert NAME.encode() not in text and PID.encode() not in text, path
    assert scan_dicom_tree(out) == []
    records = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    assert len(records) == len(outcomes) == 8
    assert {r["status"] for r in records} == {"ok", "quarantined"}
    assert all(r["key"] == KEY.fingerprint() for r in records)


def test_unreadable_file_and_write_failure(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = tree / "a" / "good.dcm"
    real_read = pydicom.dcmread

    def deny(path: object, *args: object, **kwargs: object) -> object:
        if Path(str(path)).name == "us.dcm":
            raise PermissionError(13, "Permission denied")
        return real_read(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dicom_deid.pydicom, "dcmread", deny)
    outcomes = deidentify_paths([tree / "us.dcm"], tmp_path / "o1", KEY)
    assert (outcomes[0].status, outcomes[0].reason) == (
        "quarantined",
        "unreadable: permission denied",
    )

    def broken(self: Dataset, *args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(Dataset, "save_as", broken)
    out = tmp_path / "o2"
    outcomes = deidentify_paths([good], out, KEY)
    assert (outcomes[0].status, outcomes[0].reason) == ("failed", "error: OSError")
    assert sorted(p.name for p in out.iterdir()) == [LOG_NAME]  # no partial or temporary file


def test_reid_map_round_trip(tree: Path, tmp_path: Path) -> None:
    reid = tmp_path / "map.bin"
    outcomes = deidentify_paths([tree / "a" / "good.dcm"], tmp_path / "out", KEY, reid_map=reid)
    assert outcomes[0].status == "ok"
    assert PID.encode() not in reid.read_bytes()
    mapping = load_reid_map(reid, KEY)
    ds = pydicom.dcmread(tmp_path / "out" / "good.dcm")
    assert mapping == {str(ds.PatientID): PID}
    with pytest.raises(ConfigError):
        load_reid_map(reid, DeidKey(b"z" * 32))


def test_pixel_cleaning_is_a_clear_config_error() -> None:
    with pytest.raises(ConfigError, match="pixel cleaning"):
        DeidOptions(clean_pixels=True)
