"""The de-identified-only checks as pure functions: DICOM data sets, text values and tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medsight.errors import DataError
from medsight.privacy.dicom_deid import deidentify_paths
from medsight.privacy.gate import (
    require_deidentified_dicom,
    require_deidentified_table,
    require_deidentified_text,
)
from medsight.privacy.keys import DeidKey

KEY = DeidKey(b"gate-test-key-" + b"k" * 32)


@pytest.fixture(scope="module")
def ct_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """pydicom's CT_small.dcm and the same file after ``medsight deid dicom``."""
    source = Path(get_testdata_file("CT_small.dcm"))
    out = tmp_path_factory.mktemp("deid")
    (outcome,) = deidentify_paths([source], out, KEY)
    assert outcome.status == "ok", outcome.reason
    return source, Path(outcome.output)


def test_identified_dicom_is_refused_without_quoting_identity(ct_pair) -> None:
    source, _ = ct_pair
    ds = pydicom.dcmread(source)
    with pytest.raises(DataError) as caught:
        require_deidentified_dicom(ds, "CT_small.dcm")
    message = str(caught.value)
    assert message.startswith("CT_small.dcm: not de-identified")
    assert "Patient Identity Removed (0012,0062) is missing" in message
    assert "medsight deid dicom IN OUT" in message
    assert str(ds.PatientName) not in message and str(ds.PatientID) not in message


def test_the_same_file_after_deid_is_accepted(ct_pair) -> None:
    _, output = ct_pair
    ds = pydicom.dcmread(output)
    assert ds.PatientIdentityRemoved == "YES"
    require_deidentified_dicom(ds, str(output))  # no exception
    require_deidentified_dicom(ds, str(output), verify=False)


def test_marker_without_the_work_is_refused_by_verify(ct_pair) -> None:
    source, output = ct_pair
    ds = pydicom.dcmread(source)
    ds.PatientIdentityRemoved = "YES"  # a claim, nothing removed
    with pytest.raises(DataError) as caught:
        require_deidentified_dicom(ds, "claimed.dcm")
    message = str(caught.value)
    assert "marked de-identified but" in message and "identifying attribute(s) remain" in message
    assert "and " in message and "more" in message  # long lists are cut after three
    assert str(ds.PatientName) not in message
    require_deidentified_dicom(ds, "claimed.dcm", verify=False)  # the flags alone pass
    leaked = pydicom.dcmread(output)
    leaked.ReferringPhysicianName = "Okafor^Chidi"
    with pytest.raises(DataError, match=r"\(0008,0090\) ReferringPhysicianName"):
        require_deidentified_dicom(leaked, "leaked.dcm")


def test_marker_no_and_burned_in_annotation_are_refused(ct_pair) -> None:
    _, output = ct_pair
    ds = pydicom.dcmread(output)
    ds.PatientIdentityRemoved = "NO"
    with pytest.raises(DataError, match=r"\(0012,0062\) is 'NO'"):
        require_deidentified_dicom(ds, "x.dcm")
    ds = pydicom.dcmread(output)
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(DataError, match="Burned In Annotation"):
        require_deidentified_dicom(ds, "x.dcm", verify=False)


def test_text_with_phi_is_refused_naming_field_and_type_not_value() -> None:
    values = ["no acute distress", "call 555-123-4567 tomorrow", "SSN 123-45-6789 on file", ""]
    with pytest.raises(DataError) as caught:
        require_deidentified_text(values, "notes.csv: column 'comment'")
    message = str(caught.value)
    assert message.startswith("notes.csv: column 'comment': 2 of 3 value(s) checked")
    assert "PHONE (1)" in message and "SSN (1)" in message
    assert "555-123-4567" not in message and "123-45-6789" not in message
    assert "medsight deid text IN OUT" in message
    require_deidentified_text(["no acute distress", "benign", None, "P-ABCDEFGHIJKLMNOP"], "x")


def test_a_label_makes_bare_cells_recognisable_but_is_not_itself_a_finding() -> None:
    require_deidentified_text(["123456789"], "t: column 'code'")
    with pytest.raises(DataError, match=r"column 'ssn'.*SSN \(1\)"):
        require_deidentified_text(["123456789"], "t: column 'ssn'", label="ssn")
    require_deidentified_text(["benign"], "t", label="Dr. Smith")  # the name is in the label


def test_max_values_bounds_the_scan() -> None:
    values = ["benign"] * 3 + ["john@example.org"]
    require_deidentified_text(values, "t", max_values=3)
    with pytest.raises(DataError, match="EMAIL"):
        require_deidentified_text(values, "t", max_values=4)


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient_id": ["P-ABCDEFGHIJKLMNOP", "1042", "1043", "1044"],
            "age": [54.0, 61.0, 47.5, None],
            "sex": ["F", "M", "M", "F"],
            "cholesterol": [201.3, 180.0, 240.2, 199.9],
            "disease": ["yes", "no", "no", "yes"],
        }
    )


def test_a_clean_table_passes_and_identifying_columns_are_named() -> None:
    require_deidentified_table(_table(), "risk.csv", bare_columns=["patient_id"])
    with pytest.raises(DataError, match=r"column 'patient_id'.*MRN"):
        require_deidentified_table(_table(), "risk.csv")  # "patient id: 1042" is a record number
    named = _table().assign(full_name=["Mary Johnson", "Chidi Okafor", "Ana Lopez", "Li Wei"])
    with pytest.raises(DataError) as caught:
        require_deidentified_table(named, "risk.csv", bare_columns=["patient_id"])
    message = str(caught.value)
    assert "risk.csv: column 'full_name'" in message and "NAME" in message
    assert "Johnson" not in message
    ssn = _table().assign(ssn=[123456789, 234567890, 345678901, 456789012])
    with pytest.raises(DataError, match=r"column 'ssn'.*SSN \(4\)"):
        require_deidentified_table(ssn, "risk.csv", bare_columns=["patient_id"])


def test_ages_over_89_are_identifiers_with_the_safe_harbor_hint() -> None:
    old = _table().assign(age=[54.0, 93.0, 61.0, 90.0])
    with pytest.raises(DataError) as caught:
        require_deidentified_table(old, "risk.csv", bare_columns=["patient_id"])
    message = str(caught.value)
    assert "column 'age'" in message and "AGE (2)" in message
    assert "ages over 89 must be one group" in message


def test_a_dataset_the_verifier_cannot_read_is_refused(ct_pair, monkeypatch) -> None:
    import medsight.privacy.verify_dicom as verify_dicom

    def broken(ds, path):
        raise ValueError("a value pydicom cannot convert")

    monkeypatch.setattr(verify_dicom, "scan_dataset", broken)
    ds = pydicom.dcmread(ct_pair[1])
    with pytest.raises(DataError, match=r"could not be checked \(ValueError\)"):
        require_deidentified_dicom(ds, "odd.dcm")
