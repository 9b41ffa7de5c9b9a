"""An annotated corpus for measuring clinical-note PHI scrubbing: mtsamples notes with injected
identifiers of every HIPAA Safe Harbor type the scrubber handles, each span recorded.

How a note is made. A transcription from ``mtsamples.csv.gz`` (column ``transcription``, already
de-identified by its publishers) gets: a header block of labelled fields ("Patient: ...", "MRN:
...", "DOB: ...", address, phone, ...), one sentence per identifier placed in the body, inserted at
sentence boundaries ("Mr. Okafor was seen in clinic on March 14, 2019.", "Her daughter, ..., can be
reached at ..."), and a signature / contact footer ("Electronically signed by ..., MD", fax, NPI,
...). Every one of the 15 types (NAME, DATE, AGE, PHONE, FAX, EMAIL, SSN, MRN, ACCOUNT, ADDRESS,
ZIP, URL, IP, DEVICE, LICENSE) is injected into every note, each in a randomly chosen place and
format (dates as 03/14/2019, 3/14/19, 2019-03-14, March 14, 2019, 14-Mar-2019, March 2019, ...;
phones as (555) 123-4567, 555.123.4567, +1 555 123 4567, ...). Values come from Faker, seeded. Each
injected span records (start, end, type, text), and ``text[start:end] == span text``. A full address
is two ADDRESS spans (street with unit; "City, ST") plus a ZIP span. Labels ("MRN:", "Fax:", "Dr.")
are context, not PHI, and are outside the spans.

Honesty rules. (a) Injected person names are drawn from Faker's en_US, en_GB, en_IE, en_NZ and
en_IN name lists MINUS every name in the detector's dictionaries (``data/text_first_names.txt``,
``data/text_surnames.txt``, the hash-selected half of Faker en_US), so no injected name is found
by dictionary lookup: name recall measures the context rules (titles, labels, credentials,
relations, repetition of a name found elsewhere in the note). (b) The notes are split by a stable
hash of ``note_id``: the ``dev`` part (odd hash) was used to develop the rules (seed
``DEV_SEED``); ``heldout`` (even hash) is what ``evaluate_text_scrubbing`` uses by default, with
seed ``HELDOUT_SEED``; no held-out note was read while writing the rules.

What this corpus cannot measure: identifiers written in ways the generator never produces
(spelled-out ages "ninety-two", names without any title, label, credential or relation that are
mentioned only once, nicknames, foreign address formats, unlabelled record numbers, handwriting-
like typos); identifiers that were already in mtsamples (the notes are de-identified, but some
real-looking dates, cities and names remain; they are not annotated, so detecting them counts as
a false positive); and the realism of the contexts, which are the generator author's templates.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import random
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medsight.errors import DataError, MissingDependencyError

DEV_SEED = 1
HELDOUT_SEED = 0
PARTS = ("dev", "heldout", "all")
NAME_LOCALES = ("en_US", "en_GB", "en_IE", "en_NZ", "en_IN")
_DATA = Path(__file__).parent / "data"
_NAME_RE = re.compile(r"^[A-Z][a-z]+(?:['-][A-Z][a-z]+)?$|^Mc[A-Z][a-z]+$|^O'[A-Z][a-z]+$")


@dataclass(frozen=True)
class CorpusSpan:
    start: int
    end: int
    phi_type: str
    text: str


@dataclass
class CorpusNote:
    note_id: str
    text: str
    spans: list[CorpusSpan] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {"note_id": self.note_id, "text": self.text, "spans": [asdict(s) for s in self.spans]}
        )

    @classmethod
    def from_json(cls, line: str) -> CorpusNote:
        obj = json.loads(line)
        return cls(obj["note_id"], obj["text"], [CorpusSpan(**s) for s in obj["spans"]])


def note_part(note_id: object) -> str:
    """``dev`` or ``heldout``: a stable hash of the note id (never depends on the seed)."""
    digest = hashlib.sha256(str(note_id).encode("utf-8")).digest()
    return "dev" if digest[0] % 2 else "heldout"


def load_notes(mtsamples_csv: Path, part: str = "heldout") -> list[tuple[str, str]]:
    """(note_id, transcription) of the notes in ``part`` with at least 200 characters."""
    import pandas as pd

    if part not in PARTS:
        raise DataError(f"unknown corpus part {part!r}; use one of {', '.join(PARTS)}")
    try:
        frame = pd.read_csv(mtsamples_csv, usecols=["note_id", "transcription"])
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read mtsamples from {mtsamples_csv}: {exc}") from exc
    notes = []
    for note_id, text in zip(frame["note_id"], frame["transcription"], strict=True):
        if not isinstance(text, str) or len(text.strip()) < 200:
            continue
        if part == "all" or note_part(note_id) == part:
            notes.append((str(note_id), text.strip()))
    return notes


def _read_list(name: str) -> set[str]:
    lines = (_DATA / name).read_text(encoding="utf-8").splitlines()
    return {ln.strip() for ln in lines if ln.strip() and not ln.startswith(("#", "["))}


def injection_names() -> tuple[list[str], list[str]]:
    """First names and surnames to inject: Faker's English-locale lists without any name in the
    detector's dictionaries (sorted, so a seed gives the same draws everywhere)."""
    detector = _read_list("text_first_names.txt") | _read_list("text_surnames.txt")
    detector_lower = {n.lower() for n in detector}
    firsts: set[str] = set()
    lasts: set[str] = set()
    for locale in NAME_LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        for attr in ("first_names", "first_names_male", "first_names_female"):
            firsts.update(getattr(provider, attr, ()))
        lasts.update(provider.last_names)

    def keep(names: Iterable[str]) -> list[str]:
        return sorted(n for n in names if _NAME_RE.match(n) and n.lower() not in detector_lower)

    return keep(firsts), keep(lasts)


class _Builder:
    """Appends text and records the PHI spans among it."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.spans: list[CorpusSpan] = []

    def add(self, text: str) -> _Builder:
        self.parts.append(text)
        self.length += len(text)
        return self

    def phi(self, text: str, phi_type: str) -> _Builder:
        self.spans.append(CorpusSpan(self.length, self.length + len(text), phi_type, text))
        return self.add(text)

    def extend(self, other: _Builder) -> _Builder:
        for span in other.spans:
            self.spans.append(
                CorpusSpan(
                    span.start + self.length, span.end + self.length, span.phi_type, span.text
                )
            )
        return self.add("".join(other.parts))

    @property
    def text(self) -> str:
        return "".join(self.parts)


_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


class _Values:
    """Seeded identifier values in varied formats (Faker for the raw material)."""

    def __init__(self, seed: int, firsts: list[str], lasts: list[str]) -> None:
        try:
            from faker import Faker
        except ImportError as exc:  # pragma: no cover - Faker is a dev dependency
            raise MissingDependencyError("the PHI corpus needs Faker: pip install faker") from exc
        self.rng = random.Random(seed)
        self.fake = Faker("en_US")
        self.fake.seed_instance(seed)
        self.firsts, self.lasts = firsts, lasts

    def digits(self, n: int) -> str:
        return "".join(str(self.rng.randrange(10)) for _ in range(n))

    def person(self) -> tuple[str, str, str | None]:
        middle = self.rng.choice(self.firsts)[0] if self.rng.random() < 0.3 else None
        return self.rng.choice(self.firsts), self.rng.choice(self.lasts), middle

    def full_name(
        self, person: tuple[str, str, str | None] | None = None, *, prose: bool = False
    ) -> str:
        """ "First Last", "First M. Last" or (in headers and signatures only) "Last, First"."""
        first, last, middle = person or self.person()
        style = self.rng.random()
        if style < 0.15 and not prose:
            return f"{last}, {first}"
        if middle and style < 0.6:
            return f"{first} {middle}. {last}"
        return f"{first} {last}"

    def date(self, *, allow_no_year: bool = True) -> str:
        d = self.fake.date_between(start_date="-30y", end_date="today")
        forms = [
            f"{d.month:02d}/{d.day:02d}/{d.year}",
            f"{d.month}/{d.day}/{d.year}",
            f"{d.month}/{d.day}/{d.year % 100:02d}",
            f"{d.month:02d}-{d.day:02d}-{d.year}",
            d.isoformat(),
            f"{_MONTHS[d.month - 1]} {d.day}, {d.year}",
            f"{_MONTHS[d.month - 1][:3]} {d.day}, {d.year}",
            f"{_MONTHS[d.month - 1][:3]}. {d.day}, {d.year}",
            f"{d.day} {_MONTHS[d.month - 1]} {d.year}",
            f"{d.day:02d}-{_MONTHS[d.month - 1][:3]}-{d.year}",
            f"{_MONTHS[d.month - 1]} {d.year}",
            f"{d.month:02d}/{d.year}",
        ]
        if allow_no_year:
            forms.append(f"{_MONTHS[d.month - 1]} {d.day}")
        return self.rng.choice(forms)

    def age(self) -> int:
        return self.rng.randint(90, 104)

    def phone(self) -> str:
        a = str(self.rng.randint(201, 989))
        b, c = str(self.rng.randint(200, 999)), self.digits(4)
        forms = [
            f"({a}) {b}-{c}",
            f"({a}){b}-{c}",
            f"{a}-{b}-{c}",
            f"{a}.{b}.{c}",
            f"{a} {b} {c}",
            f"+1 {a} {b} {c}",
            f"1-{a}-{b}-{c}",
            f"+1-{a}-{b}-{c}",
            f"{a}-{b}-{c} ext. {self.rng.randint(10, 9999)}",
        ]
        if self.rng.random() < 0.2:
            return self.fake.phone_number()
        return self.rng.choice(forms)

    def email(self) -> str:
        return self.rng.choice(
            [self.fake.email(), self.fake.free_email(), self.fake.company_email()]
        )

    def ssn(self) -> str:
        ssn = self.fake.ssn()
        return self.rng.choice([ssn, ssn, ssn.replace("-", " "), ssn.replace("-", "")])

    def mrn(self) -> str:
        return self.rng.choice(
            [
                self.digits(8),
                self.digits(7),
                "00" + self.digits(6),
                f"MRN-{self.digits(7)}",
                f"{self.fake.random_uppercase_letter()}{self.digits(7)}",
                f"{self.digits(2)}-{self.digits(3)}-{self.digits(3)}",
            ]
        )

    def account(self) -> str:
        return self.rng.choice(
            [
                self.digits(10),
                f"ACCT-{self.digits(8)}",
                f"{self.digits(4)}-{self.digits(4)}-{self.digits(2)}",
                f"{self.fake.random_uppercase_letter()}{self.digits(9)}",
                self.fake.bban(),
            ]
        )

    def street(self) -> str:
        street = self.fake.street_address()
        if self.rng.random() < 0.3 and not re.search(r"(?:Apt|Suite)\.? \d+$", street):
            street += self.rng.choice([", ", " "]) + self.fake.secondary_address()
        return street

    def city_state(self) -> str:
        state = self.fake.state_abbr() if self.rng.random() < 0.8 else self.fake.state()
        return f"{self.fake.city()}, {state}"

    def zip(self) -> str:
        return self.fake.zipcode_plus4() if self.rng.random() < 0.2 else self.fake.zipcode()

    def url(self) -> str:
        return self.rng.choice(
            [
                self.fake.url(),
                self.fake.uri(),
                f"www.{self.fake.domain_name()}",
                f"https://portal.{self.fake.domain_name()}/patients/{self.digits(6)}",
            ]
        )

    def ip(self) -> str:
        return self.rng.choice(
            [self.fake.ipv4(), self.fake.ipv4_private(), self.fake.ipv4_public(), self.fake.ipv6()]
        )

    def device(self) -> str:
        up = self.fake.random_uppercase_letter
        return self.rng.choice(
            [
                f"{up()}{up()}{up()}{self.digits(6)}",
                f"{self.digits(3)}{up()}{self.digits(5)}",
                f"SN{self.digits(8)}",
                f"{up()}{self.digits(2)}-{self.digits(5)}",
                self.fake.bothify("??#?-####-###").upper(),
            ]
        )

    def dea(self) -> str:
        letters = self.fake.random_uppercase_letter() + self.fake.random_uppercase_letter()
        d = [self.rng.randrange(10) for _ in range(6)]
        check = (d[0] + d[2] + d[4] + 2 * (d[1] + d[3] + d[5])) % 10
        return letters + "".join(map(str, d)) + str(check)

    def npi(self) -> str:
        body = [1 if self.rng.random() < 0.5 else 2] + [self.rng.randrange(10) for _ in range(8)]
        total = 24  # the 80840 prefix's contribution to the Luhn sum
        for i, digit in enumerate(reversed(body)):
            doubled = digit * 2 if i % 2 == 0 else digit
            total += doubled - 9 if doubled > 9 else doubled
        return "".join(map(str, body)) + str((10 - total % 10) % 10)

    def license(self) -> tuple[str, str]:
        kind = self.rng.choice(["state", "dl", "dea", "npi", "cert"])
        if kind == "dea":
            return "DEA #: ", self.dea()
        if kind == "npi":
            return "NPI: ", self.npi()
        if kind == "dl":
            label = self.rng.choice(["Driver's license: ", "Driver's License #", "DL# "])
            return label, f"{self.fake.random_uppercase_letter()}{self.digits(7)}"
        if kind == "cert":
            return "Certificate No. ", f"{self.digits(2)}-{self.digits(6)}"
        label = self.rng.choice(["License #: ", "Medical License No. ", "Lic. #"])
        return label, f"{self.fake.state_abbr()}{self.digits(6)}"


def _header(v: _Values, person: tuple[str, str, str | None], types: set[str]) -> _Builder:
    rng = v.rng
    name = v.full_name(person)
    if rng.random() < 0.15:
        name = name.upper()

    def field_(label: str, value: str, phi_type: str) -> _Builder:
        return _Builder().add(label).phi(value, phi_type)

    name_label = rng.choice(["Patient: ", "Patient Name: ", "PATIENT: ", "Name: ", "Pt: "])
    dob_label = rng.choice(["DOB: ", "Date of Birth: ", "D.O.B.: "])
    lines = [field_(dob_label, v.date(allow_no_year=False), "DATE")]
    if "MRN" in types:
        label = rng.choice(["MRN: ", "MR#: ", "Medical Record Number: ", "Med Rec #", "MRN "])
        lines.append(field_(label, v.mrn(), "MRN"))
    if "ACCOUNT" in types:
        label = rng.choice(["Account #: ", "Acct: ", "Account Number: ", "Billing Acct No. "])
        lines.append(field_(label, v.account(), "ACCOUNT"))
    if "SSN" in types:
        label = rng.choice(["SSN: ", "Social Security Number: ", "SS#: "])
        lines.append(field_(label, v.ssn(), "SSN"))
    if "AGE" in types:
        lines.append(field_(rng.choice(["Age: ", "AGE: "]), str(v.age()), "AGE"))
    if "ADDRESS" in types:
        address = field_(rng.choice(["Address: ", "Home address: "]), v.street(), "ADDRESS")
        address.add(rng.choice([", ", "\n    "])).phi(v.city_state(), "ADDRESS")
        if "ZIP" in types:
            address.add(" ").phi(v.zip(), "ZIP")
        lines.append(address)
    if "PHONE" in types:
        label = rng.choice(["Phone: ", "Tel: ", "Home phone: ", "Cell: ", "Telephone: "])
        lines.append(field_(label, v.phone(), "PHONE"))
    if "DATE" in types:
        label = rng.choice(["Date of Service: ", "Admission Date: ", "DATE OF VISIT: ", "Date: "])
        lines.append(field_(label, v.date(), "DATE"))
    rng.shuffle(lines)
    out = _Builder()
    for i, line in enumerate([field_(name_label, name, "NAME"), *lines]):
        out.extend(line)
        out.add("\n" if i % 2 or rng.random() < 0.5 else "    ")
    return out.add("\n")


def _body_sentence(
    v: _Values, person: tuple[str, str, str | None], phi_type: str, title: str
) -> _Builder:
    rng = v.rng
    b = _Builder()
    first, last, _ = person
    if phi_type == "NAME":
        form = rng.randrange(5)
        if form == 0:
            b.add(f"{title} ").phi(last, "NAME").add(" was seen in clinic today for follow-up.")
        elif form == 1:
            b.add("Findings were discussed with the patient's ")
            b.add(rng.choice(["daughter", "son", "wife", "husband", "sister", "brother"]) + ", ")
            b.phi(v.full_name(prose=True), "NAME").add(", who agrees with the plan.")
        elif form == 2:
            b.add("The patient was referred by Dr. ").phi(v.full_name(prose=True), "NAME").add(".")
        elif form == 3:
            b.phi(first, "NAME").add(" tolerated the procedure well.")
        else:
            b.add("Case discussed with ").add(rng.choice(["Dr. ", "Dr "])).phi(
                rng.choice(v.lasts), "NAME"
            ).add(" from cardiology.")
    elif phi_type == "DATE":
        form = rng.randrange(3)
        if form == 0:
            b.add(f"{title} ").phi(last, "NAME").add(" was last seen on ").phi(v.date(), "DATE")
            b.add(".")
        elif form == 1:
            b.add("A CT scan of the chest performed on ").phi(v.date(), "DATE")
            b.add(" showed no acute findings.")
        else:
            b.add("She was admitted on ").phi(v.date(), "DATE").add(" and discharged on ")
            b.phi(v.date(), "DATE").add(".")
    elif phi_type == "AGE":
        age = str(v.age())
        form = rng.randrange(4)
        if form == 0:
            b.add("The patient is a ").phi(age, "AGE").add(rng.choice(["-year-old", " year old"]))
            b.add(" with a history of hypertension.")
        elif form == 1:
            b.add(f"{title} ").phi(last, "NAME").add(" is a ").phi(age, "AGE")
            b.add(" y/o who lives independently.")
        elif form == 2:
            b.add("At age ").phi(age, "AGE").add(" she remains active.")
        else:
            b.add("He is ").phi(age, "AGE").add(" years old and uses a walker.")
    elif phi_type in ("PHONE", "FAX"):
        if phi_type == "FAX":
            b.add("Records were faxed to ").phi(v.phone(), "FAX").add(" at the family's request.")
        else:
            b.add("Her ").add(rng.choice(["daughter", "son", "husband", "caregiver"]) + ", ")
            b.phi(v.full_name(prose=True), "NAME").add(", can be reached at ").phi(
                v.phone(), "PHONE"
            )
            b.add(".")
    elif phi_type == "EMAIL":
        b.add("The patient asked that results be sent to ").phi(v.email(), "EMAIL").add(".")
    elif phi_type == "SSN":
        b.add("Insurance verification used SSN ").phi(v.ssn(), "SSN").add(".")
    elif phi_type == "MRN":
        b.add("Prior records are filed under medical record number ").phi(v.mrn(), "MRN")
        b.add(".")
    elif phi_type == "ACCOUNT":
        b.add("Charges were posted to account number ").phi(v.account(), "ACCOUNT").add(".")
    elif phi_type == "ADDRESS":
        b.add(rng.choice(["She lives at ", "He resides at ", "The patient lives at "]))
        b.phi(v.street(), "ADDRESS").add(", ").phi(v.city_state(), "ADDRESS")
        b.add(" ").phi(v.zip(), "ZIP").add(rng.choice([" with her husband.", "."]))
    elif phi_type == "ZIP":
        b.add("He moved here from ").phi(v.city_state(), "ADDRESS").add(" ")
        b.phi(v.zip(), "ZIP").add(" last year.")
    elif phi_type == "URL":
        b.add("Patient education material from ").phi(v.url(), "URL").add(" was reviewed.")
    elif phi_type == "IP":
        b.add("Home monitoring data were uploaded from IP address ").phi(v.ip(), "IP").add(".")
    elif phi_type == "DEVICE":
        device = rng.choice(["pacemaker", "insulin pump", "ICD", "neurostimulator"])
        b.add(f"The {device} (serial number ").phi(v.device(), "DEVICE").add(") was interrogated.")
    elif phi_type == "LICENSE":
        label, value = v.license()
        b.add("Prescriber ").add(label).phi(value, "LICENSE").add(" was verified.")
    return b


def _footer(v: _Values, types: set[str]) -> _Builder:
    rng = v.rng
    b = _Builder().add("\n\n")
    b.add(rng.choice(["Electronically signed by: ", "Dictated by: ", "Signed: ", "Attending: "]))
    if rng.random() < 0.4:
        b.add("Dr. ").phi(v.full_name(prose=True), "NAME")
    else:
        b.phi(v.full_name(prose=True), "NAME").add(
            rng.choice([", MD", ", M.D.", ", DO", ", NP", ", PA-C"])
        )
    if "DATE" in types:
        b.add(" on ").phi(v.date(allow_no_year=False), "DATE")
    b.add("\n")
    if "FAX" in types:
        b.add(rng.choice(["Fax: ", "FAX: ", "Fax ", "F: "])).phi(v.phone(), "FAX").add("\n")
    if "PHONE" in types:
        b.add(rng.choice(["Office: ", "Phone: ", "Tel. ", "P: "])).phi(v.phone(), "PHONE")
        b.add("\n")
    if "EMAIL" in types:
        b.add(rng.choice(["Email: ", "E-mail: "])).phi(v.email(), "EMAIL").add("\n")
    if "URL" in types:
        b.add("Patient portal: ").phi(v.url(), "URL").add("\n")
    if "LICENSE" in types:
        label, value = v.license()
        b.add(label).phi(value, "LICENSE").add("\n")
    if "DEVICE" in types:
        b.add(rng.choice(["Device S/N: ", "Serial No.: ", "Monitor serial #"])).phi(
            v.device(), "DEVICE"
        ).add("\n")
    if "IP" in types:
        b.add("Workstation: ").phi(v.ip(), "IP").add("\n")
    if "NAME" in types:
        b.add("cc: ").phi(v.full_name(), "NAME").add("\n")
    return b


# A sentence boundary: not after a title or an initial ("Dr. X", "John A. Smith").
_SENTENCE_START = re.compile(
    r"(?<![A-Z]\.)(?<!\b[A-Z][a-z]\.)(?<!\bMrs\.)(?<!\bMiss\.)(?<=[a-z0-9)][.?!]) +(?=[A-Z])"
)


def _make_note(note_id: str, body: str, v: _Values) -> CorpusNote:
    rng = v.rng
    person = v.person()
    title = rng.choice(["Mr.", "Ms.", "Mrs.", "Mr", "Ms"])
    # Each type goes to the header, the body or the footer; NAME and DATE may go to all three.
    placement: dict[str, set[str]] = {"header": set(), "body": set(), "footer": set()}
    places = {
        "NAME": ("body", "footer"),
        "DATE": ("header", "body", "footer"),
        "AGE": ("header", "body"),
        "PHONE": ("header", "body", "footer"),
        "FAX": ("body", "footer"),
        "EMAIL": ("body", "footer"),
        "SSN": ("header", "body"),
        "MRN": ("header", "body"),
        "ACCOUNT": ("header", "body"),
        "ADDRESS": ("header", "body"),
        "ZIP": ("header", "body"),
        "URL": ("body", "footer"),
        "IP": ("body", "footer"),
        "DEVICE": ("body", "footer"),
        "LICENSE": ("body", "footer"),
    }
    for phi_type, where in places.items():
        chosen = {rng.choice(where)}
        if phi_type in ("NAME", "DATE") and rng.random() < 0.5:
            chosen.add(rng.choice(where))
        for place in chosen:
            placement[place].add(phi_type)
    if "ADDRESS" in placement["header"]:
        placement["header"].add("ZIP")  # the header address carries its ZIP
        placement["body"].discard("ZIP")

    out = _header(v, person, placement["header"])
    starts = [m.end() for m in _SENTENCE_START.finditer(body)]
    body_types = sorted(placement["body"] - ({"ZIP"} if "ADDRESS" in placement["body"] else set()))
    rng.shuffle(body_types)
    points = sorted(rng.sample(starts, min(len(starts), len(body_types)))) if starts else []
    cursor = 0
    sentences = [_body_sentence(v, person, t, title) for t in body_types]
    for point, sentence in zip(points, sentences, strict=False):
        out.add(body[cursor:point]).extend(sentence).add(" ")
        cursor = point
    out.add(body[cursor:])
    for sentence in sentences[len(points) :]:  # a body without sentence breaks: append
        out.add(" ").extend(sentence)
    out.extend(_footer(v, placement["footer"]))
    return CorpusNote(note_id, out.text, out.spans)


def generate_corpus(
    mtsamples_csv: Path, *, n_notes: int = 500, seed: int = HELDOUT_SEED, part: str = "heldout"
) -> list[CorpusNote]:
    """``n_notes`` notes of ``part`` (chosen with ``seed``), each with identifiers injected."""
    notes = load_notes(Path(mtsamples_csv), part)
    if not notes:
        raise DataError(f"no usable notes in {mtsamples_csv}")
    rng = random.Random(seed)
    chosen = rng.sample(notes, min(n_notes, len(notes)))
    firsts, lasts = injection_names()
    values = _Values(seed, firsts, lasts)
    return [_make_note(note_id, text, values) for note_id, text in chosen]


def write_corpus(notes: list[CorpusNote], path: Path) -> None:
    """JSON Lines, one note a line (gzipped when the name ends in .gz)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as handle:
        for note in notes:
            handle.write(note.to_json() + "\n")


def read_corpus(path: Path) -> list[CorpusNote]:
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [CorpusNote.from_json(line) for line in handle if line.strip()]
