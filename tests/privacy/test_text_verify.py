"""Verification of scrubbed notes: nothing left in scrubbed output, PHI found in raw notes."""

from __future__ import annotations

from pathlib import Path

from medsight.privacy.keys import DeidKey
from medsight.privacy.text_deid import scrub_paths
from medsight.privacy.verify_text import mask, scan_text_paths

RAW = (
    "Patient: Aoife Brannigan    MRN: 00482913\n"
    "DOB: 03/14/1931    SSN: 123-45-6789\n"
    "Ms. Brannigan is a 93-year-old woman. Call (555) 234-5678.\n"
    "Signed: Tamati Convey, MD on 04/02/2019\n"
)


def test_raw_notes_have_findings_with_masked_excerpts(tmp_path: Path) -> None:
    (tmp_path / "note.txt").write_text(RAW, encoding="utf-8")
    findings = scan_text_paths([tmp_path], allow_dates=False)
    types = {(f.line, f.phi_type) for f in findings}
    assert {(1, "NAME"), (1, "MRN"), (2, "DATE"), (2, "SSN"), (3, "AGE"), (3, "PHONE")} <= types
    excerpts = {(f.line, f.phi_type): f.excerpt for f in findings}
    assert excerpts[(2, "SSN")] == "***-**-6789"
    assert excerpts[(1, "NAME")] == "***** *********"
    assert not any(v in f.excerpt for f in findings for v in ("Aoife", "00482913", "234-5678"))
    # Dates are accepted by default (shifted output keeps them in full).
    assert "DATE" not in {f.phi_type for f in scan_text_paths([tmp_path])}


def test_scrubbed_output_has_no_findings(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.txt").write_text("Patient ID: 12345\n" + RAW, encoding="utf-8")
    (src / "b.txt").write_text(RAW, encoding="utf-8")
    key = DeidKey(b"0123456789abcdef0123456789abcdef")
    shifted, by_year = tmp_path / "shifted", tmp_path / "year"
    scrub_paths([src], shifted, key, dates="shift")
    scrub_paths([src], by_year, key, dates="year")
    assert scan_text_paths([shifted]) == []
    assert scan_text_paths([by_year], allow_dates=False) == []
    assert scan_text_paths([shifted / "a.txt"], allow_dates=False)  # shifted dates are dates


def test_an_unreadable_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00")
    [finding] = scan_text_paths([tmp_path])
    assert finding.phi_type == "UNREADABLE" and finding.line == 0


def test_mask_keeps_only_the_tail_of_long_numbers() -> None:
    assert mask("(555) 234-5678", "PHONE") == "(***) ***-5678"
    assert mask("00482913", "MRN") == "********"
    assert mask("j.doe@example.org", "EMAIL") == "*.***@*******.***"
