"""Detectors of HIPAA Safe Harbor identifiers in clinical notes: typed character spans.

Rules (regular expressions with their context) and dictionaries (``data/text_*.txt``), no model:
what is flagged can be read and explained. Structured identifiers (e-mail, URL, IP, SSN, phone)
are found by their shape; record, account, device and licence numbers by their label ("MRN:",
"Acct #", "serial number", "DEA #"); dates in numeric and month-name forms (validated as real
dates); ages only above 89 and only next to "year old", "y/o", "age", ...; addresses as a house
number + street words + a known street suffix, or "City, ST" before a ZIP; names after titles
(Dr., Mr., Ms.), labels (Patient:, Signed by, cc:), before credentials (", MD"), after relations
("his daughter, ..."), as dictionary given name + surname, and every later mention of a name token
already found in the note. Words that are common English or clinical words (``text_vocabulary``)
are not names in the weak contexts (they still are after a title or label).

Overlaps are resolved deterministically: higher-priority type first (see ``PRIORITY``), then the
longer span, then the earlier start; a candidate overlapping an accepted span is dropped.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PHI_TYPES = (
    "NAME",
    "DATE",
    "AGE",
    "PHONE",
    "FAX",
    "EMAIL",
    "SSN",
    "MRN",
    "ACCOUNT",
    "ADDRESS",
    "ZIP",
    "URL",
    "IP",
    "DEVICE",
    "LICENSE",
)
# Higher wins an overlap. Labelled numbers beat the shape rules (an MRN that looks like a phone).
PRIORITY = {
    "EMAIL": 100,
    "URL": 95,
    "IP": 90,
    "SSN": 85,
    "MRN": 80,
    "ACCOUNT": 80,
    "DEVICE": 80,
    "LICENSE": 80,
    "FAX": 75,
    "PHONE": 70,
    "DATE": 60,
    "ZIP": 55,
    "ADDRESS": 50,
    "AGE": 45,
    "NAME": 40,
}
_DATA = Path(__file__).parent / "data"


@dataclass(frozen=True, order=True)
class PhiSpan:
    """``text[start:end]`` is an identifier of ``phi_type`` (one of ``PHI_TYPES``)."""

    start: int
    end: int
    phi_type: str


# ---------------------------------------------------------------------------- dictionaries


def _lines(name: str) -> list[str]:
    text = (_DATA / name).read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


@cache
def first_names() -> frozenset[str]:
    return frozenset(_lines("text_first_names.txt"))


@cache
def surnames() -> frozenset[str]:
    return frozenset(_lines("text_surnames.txt"))


@cache
def vocabulary() -> frozenset[str]:
    """Lower-case common English and clinical words (never names in weak contexts)."""
    return frozenset(w.lower() for w in _lines("text_vocabulary.txt"))


@cache
def _states() -> tuple[list[str], list[str]]:
    names: list[str] = []
    abbrs: list[str] = []
    target = names
    for line in _lines("text_us_states.txt"):
        if line == "[names]":
            target = names
        elif line == "[abbreviations]":
            target = abbrs
        else:
            target.append(line)
    return names, abbrs


@cache
def _street_suffix_pattern() -> str:
    suffixes = sorted(_lines("text_street_suffixes.txt"), key=len, reverse=True)
    return "(?:" + "|".join(re.escape(s) for s in suffixes) + r")\.?"


@cache
def _state_pattern() -> str:
    names, abbrs = _states()
    alternatives = sorted(names, key=len, reverse=True) + abbrs
    return "(?:" + "|".join(re.escape(s) for s in alternatives) + ")"


# ---------------------------------------------------------------------------- small rules

_Candidate = tuple[int, int, str]
_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for m in names
}
_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|JANUARY|FEBRUARY|MARCH|APRIL|MAY|JUNE|JULY|AUGUST|SEPTEMBER|OCTOBER|NOVEMBER|DECEMBER"
    r"|(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?)"
)
_ORD = r"(?:st|nd|rd|th)?"
# A number that is a dose, a measure or a count is not a day: "May 5 mg", "March 3 times".
_NOT_UNIT = r"(?!\s*(?:mg|mcg|g|kg|ml|mL|cc|units?|%|times|days?|weeks?|hours?|cm|mm)\b)"

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_URL = re.compile(
    r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"'()\[\]]+"
    r"|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov|info|biz|io|us|health)\b"
    r"(?:/[^\s<>\"'()\[\]]*)?"
)
_IPV4 = re.compile(
    r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)(?![\d.]*\d)"
)
_IPV6 = re.compile(r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])")
_SSN = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")
_SSN_LABELLED = re.compile(
    r"(?i:\b(?:SSN|SS#|S\.S\.N\.|social security(?: number| no\.?| #)?))\s*[:#]?\s*(?:is\s+)?"
    r"(\d{3}[- ]?\d{2}[- ]?\d{4})(?!\d)"
)
_PHONE = re.compile(
    r"(?<![\w/.+-])(?:(?:\+?1|001)[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}"
    r"(?:\s?(?:x|ext\.?|extension)\s?\d{1,5})?(?![\w/-]|\.\d)"
)
_PHONE_LABELLED = re.compile(
    r"(?:(?i:\b(?:phone|tel|telephone|cell|mobile|pager|office|fax(?:ed)?|contact|call(?:ed)?"
    r"|reached)\b)"
    r"|\b[PF]:)"
    r"[^\n\d]{0,15}?(?<!\d)(\d{10})(?!\d)"
)
_FAX_CONTEXT = re.compile(r"(?i:\bfax(?:ed|ing)?\b|\bF:)[^\n\d]{0,20}$")
_AGE = re.compile(
    r"(?<![\d.,/])(9\d|1[0-4]\d)(?!\+)(?=\s*-?\s*(?:years?|yrs?|y)[\s-]*(?:old|of age)\b"
    r"|\s*-?\s*(?:y/o|y\.o\.|yo|yr-old|year-old)\b)"
    r"|(?i:\b(?:age|aged|age of|Age:)\s*:?\s*)(9\d|1[0-4]\d)(?![\d+.])"
)


def _labelled(
    labels: str, value: str = r"(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{2,24}[A-Z0-9]"
) -> re.Pattern[str]:
    """``LABEL [#|No.|Number] [:|is] VALUE``; the span is the value only."""
    return re.compile(
        rf"(?i:\b(?:{labels}))(?:\s*(?i:#|no\b\.?|number|num\b\.?))?\s*(?:[:#=-]|(?i:is|of)\b)?\s*"
        rf"#?\s*({value})(?![\w-])"
    )


_LABELLED = [
    (
        "MRN",
        _labelled(
            r"MRN|MR\s?#|MR\s+No|med(?:ical)?\s+rec(?:ord)?s?(?:\s+(?:number|no\.?|#))?"
            r"|record\s+(?:number|no\.?|#)|chart\s+(?:number|no\.?|#)|patient\s+ID|pt\.?\s+ID"
            r"|hospital\s+(?:number|no\.?|#)|unit\s+(?:number|no\.?)"
        ),
    ),
    (
        "ACCOUNT",
        _labelled(
            r"account(?:\s+(?:number|no\.?|#))?|acct\.?(?:\s+(?:number|no\.?|#))?"
            r"|billing\s+(?:acct\.?|account)(?:\s+(?:number|no\.?|#))?|encounter\s+(?:number|no\.?|#)"
            r"|visit\s+(?:number|no\.?|#)|FIN",
            r"(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{2,34}[A-Z0-9]",
        ),
    ),
    (
        "DEVICE",
        _labelled(
            r"serial(?:\s+(?:number|no\.?|#))?|S/N|SN|device\s+(?:ID|identifier|number|no\.?|#)"
            r"|UDI|lot\s+(?:number|no\.?|#)|IMEI|model/serial"
        ),
    ),
    (
        "LICENSE",
        _labelled(
            r"(?:medical\s+|state\s+|nursing\s+)?licen[cs]e(?:\s+(?:number|no\.?|#))?"
            r"|lic\.?(?:\s+(?:number|no\.?|#))?|driver'?s\s+licen[cs]e(?:\s+(?:number|no\.?|#))?"
            r"|DL|DEA(?:\s+(?:number|no\.?|#))?|NPI|certificate\s+(?:number|no\.?|#)|cert\.?\s*#"
        ),
    ),
]
# A keyed patient pseudonym (``Pseudonymizer.patient_pseudonym``) is not an identifier.
PSEUDONYM = re.compile(r"P-[A-Z2-7]{16}")
_MAC = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}(?![\w:])")
_DEA = re.compile(r"\b([A-Z][A-Z9])(\d{7})\b")
_IMPLAUSIBLE_VALUE = re.compile(r"^\d{1,3}$")


def _dea_valid(digits: str) -> bool:
    d = [int(c) for c in digits]
    return (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10 == d[6]


def _structured(text: str) -> Iterator[_Candidate]:
    for m in _EMAIL.finditer(text):
        yield m.start(), m.end(), "EMAIL"
    for m in _URL.finditer(text):
        end = m.end()
        while end > m.start() and text[end - 1] in ".,;:!?":
            end -= 1
        yield m.start(), end, "URL"
    for m in _IPV4.finditer(text):
        yield m.start(), m.end(), "IP"
    for m in _IPV6.finditer(text):
        if m.group().count(":") >= 2 and any(c.isalnum() for c in m.group()):
            try:
                ipaddress.IPv6Address(m.group())
            except ValueError:
                continue
            yield m.start(), m.end(), "IP"
    for m in _SSN.finditer(text):
        yield m.start(), m.end(), "SSN"
    for m in _SSN_LABELLED.finditer(text):
        yield m.start(1), m.end(1), "SSN"
    for phi_type, pattern in _LABELLED:
        for m in pattern.finditer(text):
            if not PSEUDONYM.fullmatch(m.group(1)):
                yield m.start(1), m.end(1), phi_type
    for m in _MAC.finditer(text):
        yield m.start(), m.end(), "DEVICE"
    for m in _DEA.finditer(text):
        if _dea_valid(m.group(2)):
            yield m.start(), m.end(), "LICENSE"
    for pattern in (_PHONE, _PHONE_LABELLED):
        for m in pattern.finditer(text):
            start, end = m.span(m.lastindex or 0)
            line_before = text[max(0, start - 40) : start]
            yield start, end, "FAX" if _FAX_CONTEXT.search(line_before) else "PHONE"
    for m in _AGE.finditer(text):
        group = 1 if m.group(1) else 2
        yield m.start(group), m.end(group), "AGE"


# ---------------------------------------------------------------------------- dates


@dataclass(frozen=True)
class DateMatch:
    """A date found in text and how to write another date the same way."""

    date: dt.date
    has_year: bool
    has_day: bool
    render: Callable[[dt.date], str]


def _pad(parts: list[str]) -> bool:
    """Zero-pad numeric day/month when the input did ("03"); not when it did not ("3")."""
    if any(len(p) == 2 and p.startswith("0") for p in parts):
        return True
    return not any(len(p) == 1 for p in parts)


def _year_of(raw: str) -> int:
    if len(raw) == 4:
        return int(raw)
    value = int(raw)
    return 2000 + value if value <= (dt.date.today().year % 100) + 1 else 1900 + value


def _month_name(raw: str, month: int) -> str:
    """The name of ``month`` in the style of ``raw`` (full/abbreviated, case, trailing dot)."""
    full = dt.date(2000, month, 1).strftime("%B")
    word = raw.rstrip(".")
    name = full if len(word) > 4 or word.lower() == full.lower() else full[: len(word)]
    if word.lower() == "sept":
        name = full[:4] if month == 9 else full[:3]
    if word.isupper() and len(word) > 1:
        name = name.upper()
    return name + ("." if raw.endswith(".") and len(name) < len(full) else "")


def _ymd(year: int, month: int, day: int) -> dt.date | None:
    if not 1900 <= year <= 2100:
        return None
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


_NUMERIC_MDY = re.compile(r"(?<![\w/.-])(\d{1,2})([/-])(\d{1,2})\2(\d{4}|\d{2})(?![\w/]|-\d|\.\d)")
_NUMERIC_YMD = re.compile(r"(?<![\w/.-])(\d{4})([-/])(\d{1,2})\2(\d{1,2})(?![\w/]|-\d|\.\d)")
_NUMERIC_MY = re.compile(r"(?<![\w/.-])(\d{1,2})/((?:19|20)\d\d)(?![\w/]|\.\d)")
_NAMED_MDY = re.compile(rf"\b({_MONTH})\s+(\d{{1,2}}){_ORD}(?:,\s*|\s+)(\d{{4}})\b(?!\.\d)")
_NAMED_DMY = re.compile(rf"\b(\d{{1,2}}){_ORD}\s+(?:of\s+)?({_MONTH}),?\s+(\d{{4}})\b")
_DASHED_DMY = re.compile(rf"\b(\d{{1,2}})-({_MONTH})-(\d{{4}}|\d{{2}})\b")
_NAMED_MY = re.compile(rf"\b({_MONTH}),?\s+(?:of\s+)?((?:19|20)\d\d)\b")
_NAMED_MD = re.compile(rf"\b({_MONTH})\s+(\d{{1,2}})({_ORD})\b(?![,:]?\s*\d|\.\d){_NOT_UNIT}")


def _date_matches(text: str) -> Iterator[tuple[int, int, DateMatch]]:
    for m in _NUMERIC_MDY.finditer(text):
        mo, sep, da, yr = m.group(1), m.group(2), m.group(3), m.group(4)
        date = _ymd(_year_of(yr), int(mo), int(da))
        if date is None:
            continue
        pad, two = _pad([mo, da]), len(yr) == 2

        def render(d: dt.date, pad: bool = pad, two: bool = two, sep: str = sep) -> str:
            f = "{:02d}" if pad else "{}"
            y = f"{d.year % 100:02d}" if two else str(d.year)
            return f"{f.format(d.month)}{sep}{f.format(d.day)}{sep}{y}"

        yield m.start(), m.end(), DateMatch(date, True, True, render)
    for m in _NUMERIC_YMD.finditer(text):
        date = _ymd(int(m.group(1)), int(m.group(3)), int(m.group(4)))
        if date is None:
            continue
        sep, pad = m.group(2), _pad([m.group(3), m.group(4)])

        def render_ymd(d: dt.date, sep: str = sep, pad: bool = pad) -> str:
            f = "{:02d}" if pad else "{}"
            return f"{d.year}{sep}{f.format(d.month)}{sep}{f.format(d.day)}"

        yield m.start(), m.end(), DateMatch(date, True, True, render_ymd)
    for m in _NUMERIC_MY.finditer(text):
        date = _ymd(int(m.group(2)), int(m.group(1)), 1)
        if date is None:
            continue
        pad = len(m.group(1)) == 2

        def render_my(d: dt.date, pad: bool = pad) -> str:
            return f"{d.month:02d}/{d.year}" if pad else f"{d.month}/{d.year}"

        yield m.start(), m.end(), DateMatch(date, True, False, render_my)
    for m in _NAMED_MDY.finditer(text):
        raw_month, day_raw, year = m.group(1), m.group(2), int(m.group(3))
        date = _ymd(year, _MONTHS[raw_month.rstrip(".").lower()], int(day_raw))
        if date is None:
            continue
        shape = text[m.start() : m.end()]
        between = re.search(r"\d(?:st|nd|rd|th)?(,?\s*)\d{4}$", shape)
        sep = between.group(1) if between else ", "
        suffix = re.search(r"\d(st|nd|rd|th)", shape)

        def render_named(
            d: dt.date, raw: str = raw_month, sep: str = sep, ordinal: bool = bool(suffix)
        ) -> str:
            day = f"{d.day}{_ordinal(d.day) if ordinal else ''}"
            return f"{_month_name(raw, d.month)} {day}{sep}{d.year}"

        yield m.start(), m.end(), DateMatch(date, True, True, render_named)
    for m in _NAMED_DMY.finditer(text):
        raw_month = m.group(2)
        date = _ymd(int(m.group(3)), _MONTHS[raw_month.rstrip(".").lower()], int(m.group(1)))
        if date is None:
            continue
        comma = "," if re.search(rf"{re.escape(raw_month)},", m.group()) else ""

        def render_dmy(d: dt.date, raw: str = raw_month, comma: str = comma) -> str:
            return f"{d.day} {_month_name(raw, d.month)}{comma} {d.year}"

        yield m.start(), m.end(), DateMatch(date, True, True, render_dmy)
    for m in _DASHED_DMY.finditer(text):
        raw_month, yr = m.group(2), m.group(3)
        date = _ymd(_year_of(yr), _MONTHS[raw_month.rstrip(".").lower()], int(m.group(1)))
        if date is None:
            continue
        pad, two = len(m.group(1)) == 2, len(yr) == 2

        def render_dash(d: dt.date, raw: str = raw_month, pad: bool = pad, two: bool = two) -> str:
            day = f"{d.day:02d}" if pad else str(d.day)
            year = f"{d.year % 100:02d}" if two else str(d.year)
            return f"{day}-{_month_name(raw, d.month)}-{year}"

        yield m.start(), m.end(), DateMatch(date, True, True, render_dash)
    for m in _NAMED_MY.finditer(text):
        raw_month = m.group(1)
        date = _ymd(int(m.group(2)), _MONTHS[raw_month.rstrip(".").lower()], 1)
        if date is None:
            continue
        middle = m.group()[len(raw_month) : m.group().rindex(m.group(2))]

        def render_my_named(d: dt.date, raw: str = raw_month, middle: str = middle) -> str:
            return f"{_month_name(raw, d.month)}{middle}{d.year}"

        yield m.start(), m.end(), DateMatch(date, True, False, render_my_named)
    for m in _NAMED_MD.finditer(text):
        raw_month = m.group(1)
        if raw_month in ("May", "MAY", "Mar", "Mar.") and not _month_context(text, m.start()):
            continue
        date = _ymd(2000, _MONTHS[raw_month.rstrip(".").lower()], int(m.group(2)))
        if date is None:
            continue
        ordinal = bool(m.group(3))

        def render_md(d: dt.date, raw: str = raw_month, ordinal: bool = ordinal) -> str:
            return f"{_month_name(raw, d.month)} {d.day}{_ordinal(d.day) if ordinal else ''}"

        yield m.start(), m.end(), DateMatch(date, False, True, render_md)


def _month_context(text: str, start: int) -> bool:
    """ "May 5" is a date after "on", "since", "of", "in", a label or a line start."""
    before = text[max(0, start - 12) : start]
    return bool(
        re.search(r"(?i:\b(?:on|since|from|until|of|in|by|before|after)\s+|:\s*|^\s*)$", before)
    )


def _ordinal(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def parse_date(text: str) -> DateMatch | None:
    """The date written as the whole of ``text`` (as the detector reads it), else None."""
    for start, end, match in _date_matches(text):
        if start == 0 and end == len(text):
            return match
    return None


# ---------------------------------------------------------------------------- addresses


@cache
def _address_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    suffix = _street_suffix_pattern()
    state = _state_pattern()
    word = r"(?:[A-Z][a-z]+|[A-Z]{2,}|\d+(?:st|nd|rd|th))"
    direction = r"(?:(?:N|S|E|W|NE|NW|SE|SW|North|South|East|West)\.?[ \t]+)"
    unit = (
        r"(?:,?[ \t]+(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|Room|Rm\.?|Bldg\.?|Building|Floor"
        r"|Fl\.?|#)[ \t]*#?[ \t]*[A-Za-z0-9-]{1,6}\b)"
    )
    street = re.compile(
        rf"(?<![\w.,/-])\d{{1,6}}[A-Z]?[ \t]+{direction}?{word}(?:[ \t]+{word}){{0,3}}"
        rf"[ \t]+{suffix}"
        rf"(?:[ \t]+(?:N|S|E|W|NE|NW|SE|SW)\b\.?)?{unit}{{0,2}}(?![\w-])"
        rf"|\b(?:P\.?\s?O\.?\s+Box|Post\s+Office\s+Box)\s+\d{{1,6}}\b"
    )
    city = r"[A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,3}"
    city_state = re.compile(rf"\b({city}),\s+({state})\b\.?(?=,?\s+\d{{5}}(?:-\d{{4}})?\b)")
    zip_code = re.compile(
        rf"(?:\b{state}\.?,?\s+|(?i:\bzip(?:\s*code)?\s*:?\s*))(\d{{5}}(?:-\d{{4}})?)(?![\d-])"
    )
    return street, city_state, zip_code


_CITY_STATE_AFTER_STREET = r"\s*(?:,|\n)\s*"


def _addresses(text: str) -> Iterator[_Candidate]:
    street, city_state, zip_code = _address_patterns()
    for m in street.finditer(text):
        yield m.start(), m.end(), "ADDRESS"
    for m in city_state.finditer(text):
        yield m.start(), m.end(2) + (1 if text[m.end(2) : m.end(2) + 1] == "." else 0), "ADDRESS"
    for m in zip_code.finditer(text):
        yield m.start(1), m.end(1), "ZIP"
    # "City, StateName" with no ZIP after a residence phrase ("lives in Dover, Delaware").
    names, abbrs = _states()
    pattern = re.compile(
        r"(?i:\b(?:lives?|living|resides?|residing|moved|from|born)\s+(?:in|at|from|to)?\s*)"
        rf"([A-Z][a-z]+(?:\s+[A-Z][a-z]+){{0,2}},\s+(?:{'|'.join(names + abbrs)}))\b"
    )
    for m in pattern.finditer(text):
        yield m.start(1), m.end(1), "ADDRESS"


# ---------------------------------------------------------------------------- names

_TOKEN = r"(?:[A-Z](?:[a-z]+|['’][A-Z][a-z]+)(?:[A-Z][a-z]+)?(?:-[A-Z][a-z]+)?)"
_CAPS = r"(?:(?:[A-Z]['’])?[A-Z]{2,}(?:-[A-Z]{2,})?)"
_INITIAL = r"(?:[A-Z]\.)"
_NAME_SEQ = rf"{_TOKEN}(?:\s+(?:{_INITIAL}|{_TOKEN})){{0,3}}"
_TITLE = re.compile(
    rf"\b(?:Dr|Mr|Mrs|Ms|Miss|Mx|Prof|Doctor)\.?\s+((?:{_INITIAL}\s*)?(?:{_NAME_SEQ}|{_CAPS}))"
)
_NAME_LABELS = (
    r"patient(?:'s)?(?:\s+name)?|name|pt|attending(?:\s+physician)?|physician|provider|surgeon"
    r"|assistant|co-?surgeon|anesthesiologist|anesthetist|referring(?:\s+(?:physician|provider|doctor))?"
    r"|pcp|primary\s+care(?:\s+(?:physician|provider))?|dictated\s+by|signed\s+by|signed"
    r"|electronically\s+signed\s+by|transcribed\s+by|reviewed\s+by|cc|c\.c\.|emergency\s+contact"
    r"|contact|guardian|next\s+of\s+kin|nok|spouse|informant|interpreter|ordering(?:\s+(?:physician|provider))?"
    r"|consultant|resident|fellow|nurse|witness|requested\s+by|copy\s+to|author"
)
_LABEL = re.compile(
    rf"(?im:(?:^|(?<=\s))(?:{_NAME_LABELS})\s*:[ \t]*)(?:(?:Dr|Mr|Mrs|Ms|Miss)\.?\s+)?"
    rf"((?:{_CAPS}|{_TOKEN}),\s*(?:{_CAPS}|{_TOKEN})(?:\s+{_INITIAL}|\s+[A-Z]\b)?"
    rf"|(?:{_CAPS}|{_TOKEN})(?:[ ](?:{_INITIAL}|{_CAPS}|{_TOKEN}|[A-Z]\b)){{0,3}})"
)
_BY = re.compile(
    r"(?i:\b(?:dictated|signed|transcribed|reviewed|seen|evaluated|examined|referred|performed"
    r"|interpreted|authenticated|approved|attested|read|discussed\s+with|consulted|"
    r"case\s+discussed\s+with)\s+(?:by\s+)?(?:(?:Dr|Mr|Mrs|Ms)\.?\s+)?)"
    rf"({_NAME_SEQ})"
)
_CREDENTIAL = re.compile(
    rf"\b({_NAME_SEQ}),\s*(?:M\.?D\.?|D\.?O\.?|R\.?N\.?|N\.?P\.?|PA-C|P\.?A\.?|Ph\.?D\.?|DPM|DDS"
    r"|FACS|FACP|CRNA|LPN|MSW|LCSW|FNP|ARNP|DNP|PharmD)(?![\w])"
)
_RELATION = re.compile(
    r"(?i:\b(?:wife|husband|son|daughter|mother|father|sister|brother|spouse|partner|friend"
    r"|caregiver|niece|nephew|granddaughter|grandson|aunt|uncle|guardian|fianc[ée]e?)\b)"
    rf",?\s+(?:(?i:named|is)\s+)?({_NAME_SEQ})"
)
_INTRO = re.compile(
    rf"(?:^|(?<=[.!?]\s)|(?<=[.!?]\s\s)|(?<=,))\s*({_TOKEN}(?:\s+{_TOKEN})?)\s+(?:is|was)\s+an?\s+"
    r"(?:\d{1,3}|90\+)(?:\s*-?\s*(?:year|yr|y/o|yo|month|week|day))"
)
_PAIR = re.compile(rf"\b({_TOKEN})\s+(?:({_INITIAL})\s+)?({_TOKEN})\b")
_WORD = re.compile(rf"\b{_TOKEN}\b")


# Capitalised words that never start a name, even after a title or label.
_NOT_NAME = frozenset(
    {
        *("dr", "mr", "mrs", "ms", "miss", "mx", "prof", "doctor", "patient", "pt", "md", "rn"),
        *("the", "a", "an", "and", "or", "of", "to", "in", "on", "at", "for", "with", "by"),
        *("from", "he", "she", "his", "her", "him", "they", "their", "we", "i", "you", "it"),
        *("this", "that", "do", "np", "unknown", "none", "not"),
    }
)


def _is_common(token: str) -> bool:
    return token.lower() in vocabulary() or token.lower().rstrip(".") in _NOT_NAME


def _trim_name(
    text: str, start: int, end: int, *, leading: bool, trailing: bool = True
) -> tuple[int, int] | None:
    """Drop common words at the end (``trailing``) and the start (``leading``) of a candidate
    name; None when nothing that can be a name is left."""
    tokens = [(m.start() + start, m.end() + start) for m in re.finditer(r"\S+", text[start:end])]

    def common(tok: tuple[int, int]) -> bool:
        word = text[tok[0] : tok[1]].rstrip(",.")
        return len(word) > 1 and _is_common(word) and word not in first_names() | surnames()

    while trailing and tokens and common(tokens[-1]):
        tokens.pop()
    if leading:
        while tokens and common(tokens[0]):
            tokens.pop(0)
    if not tokens:
        return None
    s, e = tokens[0][0], tokens[-1][1]
    if text[e - 1] == "," and e - 1 > s:
        e -= 1
    return s, e


def _names(text: str) -> Iterator[_Candidate]:
    strong: list[tuple[int, int]] = []
    for pattern in (_TITLE, _LABEL):
        for m in pattern.finditer(text):
            # After a title or a label the first word is a name even when it is a common word
            # ("Dr. Green"); later words are kept only when they are not common words.
            first = re.match(r"\S+", text[m.start(1) : m.end(1)])
            if first is None or first.group().rstrip(",.").lower() in _NOT_NAME:
                continue
            end = m.end(1)
            words = list(re.finditer(r"\S+", text[m.start(1) : end]))
            while len(words) > 1 and words[-1].group().rstrip(",.").lower() in _NOT_NAME:
                words.pop()
            end = m.start(1) + words[-1].end()
            if text[end - 1] == ",":
                end -= 1
            if not re.search(r"[A-Za-z]{2}", text[m.start(1) : end]):
                continue  # "Dr. X.": a placeholder initial, not a name
            strong.append((m.start(1), end))
    weak: list[tuple[int, int]] = []
    for pattern in (_BY, _CREDENTIAL, _RELATION, _INTRO):
        for m in pattern.finditer(text):
            trailing = pattern in (_BY, _INTRO)  # a credential or a relation ends the name
            span = _trim_name(text, m.start(1), m.end(1), leading=True, trailing=trailing)
            if span is not None:
                weak.append(span)
    firsts, lasts = first_names(), surnames()
    for m in _PAIR.finditer(text):
        a, b = m.group(1), m.group(3)
        known = (a in firsts and not _is_common(b)) or (b in lasts and not _is_common(a))
        if known and not (_is_common(a) and _is_common(b)):
            weak.append((m.start(), m.end()))
    found = strong + weak
    for span in found:
        yield span[0], span[1], "NAME"
    # Every later mention of a name token found above ("Mr. Okafor ... Okafor tolerated").
    tokens = set()
    for s, e in found:
        for tok in re.findall(_TOKEN + "|" + _CAPS, text[s:e]):
            if len(tok) > 2 and not _is_common(tok):
                tokens.add(tok.lower())
    if tokens:
        for m in re.finditer(rf"\b(?:{_TOKEN}|{_CAPS})\b", text):
            if m.group().lower() in tokens:
                yield m.start(), m.end(), "NAME"


# ---------------------------------------------------------------------------- entry point


def _resolve(candidates: list[_Candidate]) -> list[PhiSpan]:
    ordered = sorted(
        {c for c in candidates if c[1] > c[0]},
        key=lambda c: (-PRIORITY[c[2]], -(c[1] - c[0]), c[0], c[2]),
    )
    taken: list[tuple[int, int]] = []
    accepted: list[PhiSpan] = []
    for start, end, phi_type in ordered:
        if any(start < e and s < end for s, e in taken):
            continue
        taken.append((start, end))
        accepted.append(PhiSpan(start, end, phi_type))
    return sorted(accepted)


def detect_phi(text: str) -> list[PhiSpan]:
    """Every identifier found in ``text``: non-overlapping spans sorted by start."""
    candidates: list[_Candidate] = list(_structured(text))
    candidates.extend((s, e, "DATE") for s, e, _ in _date_matches(text))
    candidates.extend(_addresses(text))
    candidates.extend(_names(text))
    return _resolve(candidates)
