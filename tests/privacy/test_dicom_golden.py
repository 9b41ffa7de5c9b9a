"""Golden tests on the real files of pydicom and pydicom-data: every Basic Profile attribute
present in an input is handled with its action, verify finds nothing, pixels are untouched, UIDs
are consistent per key and date intervals within a patient are kept."""

from __future__ import annotations

import datetime as dt
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset

from medsight.privacy.dicom_deid import DUMMY_TEXT, deidentify_paths
from medsight.privacy.dicom_profile import ActionTable, DeidOptions, action_table
from medsight.privacy.keys import DeidKey
from medsight.privacy.pseudonym import Pseudonymizer
from medsight.privacy.verify_dicom import PSEUDONYM, scan_dicom_tree

KEY_A = DeidKey(b"a" * 32)
KEY_B = DeidKey(b"b" * 32)
SHIFTING = DeidOptions(retain_longitudinal_modified_dates=True, retain_patient_characteristics=True)
PIXELS = 0x7FE00010
MARKERS = {0x00120062, 0x00120063, 0x00120064, 0x00280303}  # written by the de-identifier


def _sources() -> list[Path]:
    files = [Path(p) for p in get_testdata_files() if Path(p).is_file()]
    assert len(files) > 150, "pydicom and pydicom-data test files are expected"
    return files


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list]]:
    # The structured reports in the set have an empty Patient ID (quarantined by design): copies
    # with one exercise Content Sequence trees.
    extra = tmp_path_factory.mktemp("sr")
    for name in ("test-SR.dcm", "reportsi.dcm"):
        ds = _read(get_testdata_file(name))
        ds.PatientID = "SR-PATIENT-1"
        ds.save_as(extra / name)
    sources = [*_sources(), extra]
    result = {}
    for name, key, options in [
        ("a", KEY_A, SHIFTING),
        ("a2", KEY_A, SHIFTING),
        ("b", KEY_B, SHIFTING),
        ("basic", KEY_A, DeidOptions()),
    ]:
        out = tmp_path_factory.mktemp(name)
        result[name] = (out, deidentify_paths(sources, out, key, options))
    return result


def _read(path: str | Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path)


def _ok(outcomes: list) -> list:
    return [o for o in outcomes if o.status == "ok"]


def test_many_real_files_are_deidentified(runs: dict) -> None:
    _, outcomes = runs["a"]
    ok = _ok(outcomes)
    assert len(ok) >= 100
    modalities = {str(_read(o.output).get("Modality", "")) for o in ok}
    assert {"CT", "MR", "RTDOSE", "RTPLAN", "SEG", "SR", "CR"} <= modalities
    assert all(o.status in ("ok", "quarantined") for o in outcomes), [
        (o.source, o.reason) for o in outcomes if o.status == "failed"
    ]


@pytest.mark.parametrize("run", ["a", "basic"])
def test_every_attribute_is_handled_with_its_action(runs: dict, run: str) -> None:
    _, outcomes = runs[run]
    options = SHIFTING if run == "a" else DeidOptions()
    table = action_table(options)
    checked = 0
    for outcome in _ok(outcomes):
        source, output = _read(outcome.source), _read(outcome.output)
        pid = str(source.PatientID).strip()
        shift = Pseudonymizer(KEY_A).date_shift_days(pid) if options.shift_dates else 0
        checked += _compare(source, output, table, shift, outcome.source)
        assert output.PatientIdentityRemoved == "YES"
        codes = [item.CodeValue for item in output.DeidentificationMethodCodeSequence]
        assert codes[0] == "113100"
        assert ("113107" in codes) == options.shift_dates
        assert output.file_meta.MediaStorageSOPInstanceUID == output.get("SOPInstanceUID")
        assert output.preamble == b"\x00" * 128
    assert checked > 5000


def _compare(src: Dataset, out: Dataset, table: ActionTable, shift: int, where: str) -> int:
    checked = 0
    for elem in src:
        tag = int(elem.tag)
        if not tag & 0xFFFF or tag in MARKERS:
            continue  # group lengths are dropped; the de-identification markers are rewritten
        checked += 1
        action = table.action(tag)
        present = tag in out
        label = f"{where} {elem.tag} {elem.keyword} {action}"
        if tag >> 16 & 1 or action == "X":
            assert not present, label
            continue
        assert present, label
        new = out[tag]
        if elem.VR == "SQ" or new.VR == "SQ":
            if action == "Z":
                assert len(new.value) == 0, label
            else:
                assert len(new.value) == len(elem.value or []), label
                for a, b in zip(elem.value or [], new.value, strict=True):
                    checked += _compare(a, b, table, shift, where)
            continue
        old_value, value = elem.value, new.value
        if tag in (0x00100010, 0x00100020):
            assert not value or PSEUDONYM.match(str(value)), label
        elif action == "Z":
            assert value in (None, "", b"") or str(value) == DUMMY_TEXT, label
        elif action in ("U", "D") and new.VR == "UI":
            values = [value] if isinstance(value, str) else list(value or [])
            assert all(str(v).startswith("2.25.") for v in values), label
            if old_value:
                assert value != old_value, label
        elif action == "D":
            assert value not in (None, ""), label
            if new.VR == "PN":
                assert str(value) == DUMMY_TEXT, label
        elif action == "S" or (action is None and shift and new.VR in ("DA", "DT")):
            _assert_shifted(old_value, value, new.VR, shift, label)
        elif action is None and new.VR == "PN":
            assert not value or str(value) == DUMMY_TEXT, label
        elif action in (None, "K"):
            assert value == old_value, label
    return checked


def _assert_shifted(old: object, new: object, vr: str, shift: int, label: str) -> None:
    if vr == "TM" or not old:
        assert new == old, label
        return
    first_old = str(old if isinstance(old, str) else old[0]).replace(".", "")
    first_new = str(new if isinstance(new, str) else new[0])
    if len(first_old) < 8 or not first_old[:8].isdigit():
        return  # imprecise or invalid dates: emptied or moved at their precision
    try:
        original = dt.datetime.strptime(first_old[:8], "%Y%m%d").date()
    except ValueError:
        return
    moved = dt.datetime.strptime(first_new[:8], "%Y%m%d").date()
    assert (moved - original).days == shift, label
    assert first_new[8:] == first_old[8:], label  # the DT time part is kept


@pytest.mark.parametrize("run", ["a", "basic"])
def test_verify_finds_nothing(runs: dict, run: str) -> None:
    out, _ = runs[run]
    assert scan_dicom_tree(out) == []


def test_pixel_data_unchanged_byte_for_byte(runs: dict) -> None:
    _, outcomes = runs["a"]
    compared = 0
    for outcome in _ok(outcomes):
        source, output = _read(outcome.source), _read(outcome.output)
        if PIXELS in source:
            assert output[PIXELS].value == source[PIXELS].value, outcome.source
            compared += 1
    assert compared >= 60


def _uids(outcomes: list) -> dict[str, tuple[str, str]]:
    return {
        Path(o.source).name + o.source: (
            str(_read(o.output).SOPInstanceUID),
            str(_read(o.output).get("StudyInstanceUID", "")),
        )
        for o in _ok(outcomes)
        if "SOPInstanceUID" in _read(o.output)
    }


def test_uids_consistent_per_key_and_different_across_keys(runs: dict) -> None:
    first, again, other = (_uids(runs[name][1]) for name in ("a", "a2", "b"))
    assert first == again and len(first) >= 100
    assert all(first[name][0] != other[name][0] for name in first)
    # one study keeps one Study Instance UID across its files
    study = _read(get_testdata_file("CT_small.dcm")).StudyInstanceUID
    mapped = Pseudonymizer(KEY_A).uid(study)
    assert any(uids[1] == mapped for uids in first.values())


def test_date_shift_keeps_intervals_within_a_patient(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name, date in [("first.dcm", "20200105"), ("second.dcm", "20200320")]:
        ds = _read(get_testdata_file("CT_small.dcm"))
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = date
        ds.SOPInstanceUID = pydicom.uid.generate_uid()
        ds.save_as(inputs / name)
    outcomes = deidentify_paths([inputs], tmp_path / "out", KEY_A, SHIFTING)
    assert [o.status for o in outcomes] == ["ok", "ok"]
    dates = [
        dt.datetime.strptime(_read(tmp_path / "out" / n).StudyDate, "%Y%m%d").date()
        for n in ("first.dcm", "second.dcm")
    ]
    assert (dates[1] - dates[0]).days == 75
    assert dates[0] != dt.date(2020, 1, 5)
    assert -1095 <= (dates[0] - dt.date(2020, 1, 5)).days <= -1
