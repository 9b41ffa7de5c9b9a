"""Scrubbing clinical notes: replacements, date shifts, ages, idempotence and file handling."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest

from medsight.privacy.keys import DeidKey
from medsight.privacy.pseudonym import Pseudonymizer
from medsight.privacy.text_deid import LOG_NAME, scrub_paths, scrub_text
from medsight.privacy.text_phi import parse_date

NOTE = (
    "Patient: Aoife Brannigan    MRN: 00482913\n"
    "DOB: 03/14/1931    Phone: (555) 234-5678\n"
    "Address: 123 Main Street, Springfield, IL 62704\n\n"
    "HISTORY: Ms. Brannigan is a 93-year-old woman seen on March 14, 2019 and again on "
    "2019-04-01. Her daughter, Niamh Brannigan, asked for results at niamh@example.org. "
    "A 71-year-old neighbour found her. Lisinopril 10 mg daily. BP 120/80.\n"
    "Electronically signed by: Tamati Convey, MD on 04/02/2019\nFax: 555-234-5679\n"
)


@pytest.fixture
def pseudonymizer() -> Pseudonymizer:
    return Pseudonymizer(DeidKey(b"0123456789abcdef0123456789abcdef"))


def test_every_identifier_is_replaced(pseudonymizer: Pseudonymizer) -> None:
    out = scrub_text(NOTE, pseudonymizer, dates="year")
    gone = ["Aoife", "Brannigan", "00482913", "234-5678", "Main Street", "62704", "Springfield"]
    gone += ["niamh@", "Tamati", "Convey", "555-234-5679", "93-year"]
    for value in gone:
        assert value not in out, value
    assert "Patient: [NAME]" in out and "MRN: [MRN]" in out and "Fax: [FAX]" in out
    assert "DOB: 1931" in out and "seen on 2019 and again on 2019." in out
    assert "is a 90+-year-old woman" in out
    assert "A 71-year-old neighbour" in out  # ages up to 89 are not PHI
    assert "Lisinopril 10 mg daily. BP 120/80." in out


def test_dates_without_a_patient_fall_back_to_the_year(pseudonymizer: Pseudonymizer) -> None:
    assert scrub_text(NOTE, pseudonymizer) == scrub_text(NOTE, pseudonymizer, dates="year")
    assert scrub_text("Seen on March 14 only.", pseudonymizer) == "Seen on [DATE] only."


def test_shifted_dates_keep_format_and_intervals(pseudonymizer: Pseudonymizer) -> None:
    text = "Seen on 03/14/2019, again on March 24, 2019 and on 2019-04-13."
    out = scrub_text(text, pseudonymizer, patient_id="PAT-1")
    parts = out.removeprefix("Seen on ").removesuffix(".").replace(" again on ", "")
    first, rest = parts.split(",", 1)
    second, third = rest.split(" and on ")
    dates = [parse_date(first), parse_date(second.strip()), parse_date(third)]
    assert all(d is not None for d in dates)
    d1, d2, d3 = (d.date for d in dates)  # type: ignore[union-attr]
    assert (d2 - d1).days == 10 and (d3 - d1).days == 30
    shift = pseudonymizer.date_shift_days("PAT-1")
    assert d1 == dt.date(2019, 3, 14) + dt.timedelta(days=shift)
    assert first == d1.strftime("%m/%d/%Y") and third == d3.isoformat()
    assert second.strip().startswith(d2.strftime("%B "))
    other = scrub_text(text, pseudonymizer, patient_id="PAT-2")
    assert other != out  # another patient, another shift


def test_scrubbing_is_idempotent(pseudonymizer: Pseudonymizer) -> None:
    once = scrub_text(NOTE, pseudonymizer, dates="year")
    assert scrub_text(once, pseudonymizer, dates="year") == once


@pytest.mark.parametrize(
    ("age", "kept"), [("45", True), ("89", True), ("90", False), ("104", False)]
)
def test_ages_over_89_become_90_plus(pseudonymizer: Pseudonymizer, age: str, kept: bool) -> None:
    out = scrub_text(f"She is a {age}-year-old woman.", pseudonymizer)
    assert out == (f"She is a {age}-year-old woman." if kept else "She is a 90+-year-old woman.")


def test_scrub_paths_mirrors_the_tree_and_never_touches_inputs(tmp_path: Path) -> None:
    key = DeidKey(b"0123456789abcdef0123456789abcdef")
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("Patient ID: 12345\n" + NOTE, encoding="utf-8")
    (src / "sub" / "b.txt").write_text(NOTE, encoding="utf-8")
    (src / "sub" / "bad.txt").write_bytes(b"Patient: \xff\xfe Brannigan\n")
    (src / "ignored.pdf").write_bytes(b"%PDF")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in src.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    calls: list[tuple[int, int]] = []
    outcomes = scrub_paths([src], out, key, progress=lambda d, t: calls.append((d, t)))

    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in src.rglob("*") if p.is_file()}
    assert after == before
    by_name = {Path(o.source).name: o for o in outcomes}
    assert set(by_name) == {"a.txt", "b.txt", "bad.txt"}
    assert calls == [(1, 3), (2, 3), (3, 3)]
    a = (out / "a.txt").read_text(encoding="utf-8")
    pseudonym = Pseudonymizer(key).patient_pseudonym("12345")
    assert a.startswith(f"Patient ID: {pseudonym}\n") and "12345" not in a
    shifted = dt.date(1931, 3, 14) + dt.timedelta(days=Pseudonymizer(key).date_shift_days("12345"))
    assert f"DOB: {shifted:%m/%d/%Y}" in a  # a known patient: dates shifted, format kept
    assert "DOB: 1931" in (out / "sub" / "b.txt").read_text(encoding="utf-8")
    assert by_name["a.txt"].status == "ok" and by_name["a.txt"].counts["NAME"] >= 4
    bad = by_name["bad.txt"]
    assert bad.status == "failed" and bad.output is None and "UTF-8" in (bad.reason or "")
    assert not (out / "sub" / "bad.txt").exists()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    records = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    assert [r["status"] for r in records] == [o.status for o in outcomes]
    assert "Brannigan" not in (out / LOG_NAME).read_text()


def test_a_failed_write_leaves_no_partial_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = DeidKey(b"0123456789abcdef0123456789abcdef")
    src = tmp_path / "note.txt"
    src.write_text(NOTE, encoding="utf-8")
    out = tmp_path / "out"

    def broken_replace(a: object, b: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    [outcome] = scrub_paths([src], out, key)
    assert outcome.status == "failed" and "No space" in (outcome.reason or "")
    assert [p.name for p in out.iterdir()] == [LOG_NAME]


def test_an_output_that_would_overwrite_its_input_is_refused(tmp_path: Path) -> None:
    key = DeidKey(b"0123456789abcdef0123456789abcdef")
    src = tmp_path / "note.txt"
    src.write_text(NOTE, encoding="utf-8")
    [outcome] = scrub_paths([src], tmp_path, key)
    assert outcome.status == "failed" and src.read_text(encoding="utf-8") == NOTE
