"""The clinical-note PHI detectors: each type in several formats, and clinical text left alone."""

from __future__ import annotations

import itertools

import pytest

from medsight.privacy.text_phi import PHI_TYPES, PhiSpan, detect_phi, parse_date


def found(text: str) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.phi_type) for s in detect_phi(text)]


@pytest.mark.parametrize(
    ("text", "value", "phi_type"),
    [
        # names: titles, labels, credentials, relations, "Last, First", capitals
        ("Mr. Okonkwo was seen today.", "Okonkwo", "NAME"),
        ("Seen with Dr. Aoife Brannigan in clinic.", "Aoife Brannigan", "NAME"),
        ("Patient: Brannigan, Aoife\nDOB: 01/02/1950", "Brannigan, Aoife", "NAME"),
        ("PATIENT NAME: FRANKIE O'LEARY\n", "FRANKIE O'LEARY", "NAME"),
        ("Electronically signed by: Tamati Convey, MD", "Tamati Convey", "NAME"),
        ("Her daughter, Rachita Doshi, can be reached.", "Rachita Doshi", "NAME"),
        ("cc: Lynn O'Dowd\n", "Lynn O'Dowd", "NAME"),
        # dates
        ("Admitted on 03/14/2019 for pain.", "03/14/2019", "DATE"),
        ("Seen 3/4/19 and again later.", "3/4/19", "DATE"),
        ("CT on 2019-03-14 was normal.", "2019-03-14", "DATE"),
        ("Surgery on March 14, 2019 went well.", "March 14, 2019", "DATE"),
        ("DOB: 14-Mar-1931\n", "14-Mar-1931", "DATE"),
        ("Last seen in September 2009 by us.", "September 2009", "DATE"),
        ("Visit on Jan. 5, 2020 noted.", "Jan. 5, 2020", "DATE"),
        ("Born 2 March 1940 in a village.", "2 March 1940", "DATE"),
        # ages over 89
        ("She is a 93-year-old woman.", "93", "AGE"),
        ("He is 101 years old.", "101", "AGE"),
        ("A 95 y/o man.", "95", "AGE"),
        ("Age: 90\n", "90", "AGE"),
        # phones and faxes
        ("Call (555) 234-5678 today.", "(555) 234-5678", "PHONE"),
        ("Phone: 555.234.5678\n", "555.234.5678", "PHONE"),
        ("Reach her at +1 555 234 5678.", "+1 555 234 5678", "PHONE"),
        ("Tel 1-555-234-5678 ext. 22\n", "1-555-234-5678 ext. 22", "PHONE"),
        ("Fax: 555-234-5679\n", "555-234-5679", "FAX"),
        ("Records were faxed to (555) 234-5679.", "(555) 234-5679", "FAX"),
        # e-mail, SSN, URL, IP
        ("Email: j.doe@example.org\n", "j.doe@example.org", "EMAIL"),
        ("SSN 123-45-6789 on file.", "123-45-6789", "SSN"),
        ("SSN: 123456789\n", "123456789", "SSN"),
        (
            "See https://portal.example.com/p/123 for results.",
            "https://portal.example.com/p/123",
            "URL",
        ),
        ("Material from www.example.net was given.", "www.example.net", "URL"),
        ("Uploaded from 192.168.10.25 overnight.", "192.168.10.25", "IP"),
        ("Host 2001:db8::8a2e:370:7334 logged.", "2001:db8::8a2e:370:7334", "IP"),
        # record, account, device and licence numbers
        ("MRN: 00482913\n", "00482913", "MRN"),
        ("Medical record number MRN-4829301 was used.", "MRN-4829301", "MRN"),
        ("Account #: ACCT-99831234\n", "ACCT-99831234", "ACCOUNT"),
        ("Charges posted to account number 9988776655.", "9988776655", "ACCOUNT"),
        ("The pacemaker (serial number ABC123456) was checked.", "ABC123456", "DEVICE"),
        ("Device S/N: 7F3K9-22819\n", "7F3K9-22819", "DEVICE"),
        ("DEA #: AB1234563\n", "AB1234563", "LICENSE"),
        ("NPI: 1234567893\n", "1234567893", "LICENSE"),
        ("Driver's license: D1234567\n", "D1234567", "LICENSE"),
        # addresses and ZIP codes
        (
            "She lives at 123 Main Street, Apt 4B, Springfield, IL 62704.",
            "123 Main Street, Apt 4B",
            "ADDRESS",
        ),
        ("She lives at 123 Main Street, Springfield, IL 62704.", "Springfield, IL", "ADDRESS"),
        ("She lives at 123 Main Street, Springfield, IL 62704.", "62704", "ZIP"),
        ("Address: 45 N. Oak Ave\nDover, Delaware 19901-1234\n", "19901-1234", "ZIP"),
        ("Mail to P.O. Box 1234 please.", "P.O. Box 1234", "ADDRESS"),
        ("He lives in Dover, Delaware with his wife.", "Dover, Delaware", "ADDRESS"),
    ],
)
def test_each_type_is_found_in_several_formats(text: str, value: str, phi_type: str) -> None:
    assert (value, phi_type) in found(text)


def test_every_type_has_a_detector_case() -> None:
    assert set(PHI_TYPES) == {
        "NAME", "DATE", "AGE", "PHONE", "FAX", "EMAIL", "SSN", "MRN", "ACCOUNT",
        "ADDRESS", "ZIP", "URL", "IP", "DEVICE", "LICENSE",
    }  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "Lisinopril 10 mg p.o. daily, metoprolol 25 mg b.i.d., Lasix 40 mg IV.",
        "Vital signs: BP 120/80, HR 72, RR 16, T 98.6, O2 sat 98% on room air.",
        "WBC 12.4, hemoglobin 13.2, platelets 250,000. Sodium 138, potassium 4.1, BUN 18.",
        "ABG 7.35/45/80 on 2 L nasal cannula. INR 1.1. Glucose 105 mg/dL.",
        "ICD-10 I10, E11.9, J44.1; CPT 99213. ICD-9 code 250.00.",
        "Strength 5/5 in all extremities. 2/6 systolic murmur. Pain 7/10.",
        "The patient is a 71-year-old male with Parkinson Disease and Crohn disease.",
        "She is 89 years old. He is an 89-year-old man. She weighs 92 pounds.",
        "Given Tylenol 650 mg and Zofran 4 mg. Started on Coumadin 5 mg. Reflexes 2+.",
        "Left Anterior Descending artery. Foley catheter. Bovie electrocautery. Mayo scissors.",
        "Follow up in 2 weeks. May 5 mg be given? Take 1 tablet every 6 hours.",
        "Apgar scores 8 and 9 at 1 and 5 minutes. G2 P1. EBL 200 mL. 3-0 Vicryl.",
        "C5-C6 disc herniation, L4-L5. Grade 2 of 4. 2.5 x 3.1 cm mass. Gleason 3+4=7.",
        "Patient was seen by Physical Therapy. Seen by Cardiology and Neurology.",
        "HISTORY OF PRESENT ILLNESS:, The patient presents with chest pain since 2007.",
        "Ms. [NAME] is a 90+-year-old. Call [PHONE]. MRN: [MRN]. Age: 90+.",
    ],
)
def test_clinical_text_is_not_flagged(text: str) -> None:
    assert found(text) == []


def test_overlaps_are_resolved_deterministically() -> None:
    text = "Contact jane.doe@example.com or www.example.com, MRN: 5551234567."
    spans = detect_phi(text)
    assert spans == sorted(spans)
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))
    assert found(text) == [
        ("jane.doe@example.com", "EMAIL"),
        ("www.example.com", "URL"),
        ("5551234567", "MRN"),  # the label beats the phone shape
    ]
    assert detect_phi(text) == spans
    assert isinstance(spans[0], PhiSpan)


def test_a_name_found_once_is_found_everywhere_in_the_note() -> None:
    text = "Patient: Aoife Brannigan\n\nAoife tolerated the procedure. Brannigan went home."
    assert [v for v, t in found(text) if t == "NAME"] == ["Aoife Brannigan", "Aoife", "Brannigan"]


def test_parse_date_keeps_the_format() -> None:
    import datetime as dt

    for text, shifted in [
        ("03/14/2019", "03/04/2019"),
        ("3/14/19", "3/4/19"),
        ("2019-03-14", "2019-03-04"),
        ("March 14, 2019", "March 4, 2019"),
        ("Mar. 14, 2019", "Mar. 4, 2019"),
        ("14-Mar-2019", "04-Mar-2019"),
        ("March 2019", "March 2019"),
    ]:
        match = parse_date(text)
        assert match is not None, text
        assert match.render(match.date) == text
        assert match.render(match.date - dt.timedelta(days=10 if match.has_day else 0)) == shifted
    assert parse_date("120/80") is None
    assert parse_date("13/45/2019") is None
