"""The PS3.15 Annex E Basic Application Level Confidentiality Profile as data.

`ps315_basic_profile.csv` holds Table E.1-1 (one row per attribute: the Basic Profile action and
each Option's action). This module loads it once and turns it, for one set of `DeidOptions`, into
a dict from tag to one simple action, so de-identification is one dict lookup per element.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, fields
from functools import cache
from importlib import resources

from medsight.errors import ConfigError

PROFILE_FILE = "ps315_basic_profile.csv"
PROFILE_EDITION = "PS3.15 Table E.1-1, 2020b-era edition (innolitics/dicom-standard 0d01bf11)"
PROFILE_ROWS = 460  # rows of Table E.1-1 in that edition

BASIC_ACTIONS = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})
OPTION_ACTIONS = frozenset({"K", "C", "X"})

# Compound actions need the IOD's attribute type (1, 2 or 3), which depends on the SOP class and
# the module the attribute sits in. We do not carry the IOD tables, so every compound action takes
# its conformance-safe branch: the one that keeps a Type 1 (or 2) attribute valid. No identifying
# value survives either way (D and Z both replace it); the cost is a dummy where X was allowed.
# X/Z/U* on a sequence keeps its items and replaces the instance UIDs inside them ("U" below: the
# de-identifier recurses into the sequence, where each UID has its own row).
COMPOUND = {"Z/D": "D", "X/Z": "Z", "X/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}

# Option columns of the table, the DeidOptions field that enables each, and its DCM code
# (PS3.16 CID 7050 "De-identification Method").
OPTION_COLUMNS = {
    "retain_safe_private": ("retain_safe_private", "113111", "Retain Safe Private Option"),
    "retain_uids": ("retain_uids", "113110", "Retain UIDs Option"),
    "retain_device_identity": ("retain_device_identity", "113109", "Retain Device Identity Option"),
    "retain_institution_identity": (
        "retain_institution_identity",
        "113112",
        "Retain Institution Identity Option",
    ),
    "retain_patient_characteristics": (
        "retain_patient_characteristics",
        "113108",
        "Retain Patient Characteristics Option",
    ),
    "retain_long_full_dates": (
        "retain_longitudinal_full_dates",
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    "retain_long_modified_dates": (
        "retain_longitudinal_modified_dates",
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    "clean_descriptors": ("clean_descriptors", "113105", "Clean Descriptors Option"),
    "clean_structured_content": (
        "clean_structured_content",
        "113104",
        "Clean Structured Content Option",
    ),
    "clean_graphics": ("clean_graphics", "113103", "Clean Graphics Option"),
}
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
CLEAN_PIXELS_CODE = ("113101", "Clean Pixel Data Option")

# When several enabled Options name an action for one attribute, the most protective wins.
_STRENGTH = {"X": 0, "Z": 1, "D": 2, "U": 3, "C": 4, "K": 5}

PRIVATE = "private"  # key of the "(gggg,eeee) where gggg is odd" row


@dataclass(frozen=True)
class ProfileRow:
    tag: str  # "(gggg,eeee)" as in the standard, with xx wildcards
    name: str
    in_standard_iod: bool
    basic: str
    options: dict[str, str]  # table option column -> K / C / X


@dataclass(frozen=True)
class DeidOptions:
    """Which PS3.15 Options apply on top of the Basic Profile (all off: the Basic Profile alone)."""

    retain_longitudinal_modified_dates: bool = False
    retain_longitudinal_full_dates: bool = False
    retain_patient_characteristics: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    retain_uids: bool = False
    retain_safe_private: bool = False
    clean_descriptors: bool = False
    clean_structured_content: bool = False
    clean_graphics: bool = False
    clean_pixels: bool = False
    # Private elements kept under retain_safe_private: (private creator, group, element low byte),
    # e.g. ("SIEMENS MR HEADER", 0x0019, 0x0B). Everything else private is removed.
    safe_private_tags: frozenset[tuple[str, int, int]] = frozenset()

    def __post_init__(self) -> None:
        if self.retain_longitudinal_full_dates and self.retain_longitudinal_modified_dates:
            raise ConfigError(
                "choose one of the Retain Longitudinal Temporal Information options: full dates "
                "or modified dates, not both"
            )
        if self.clean_pixels:
            raise ConfigError(
                "pixel cleaning (Clean Pixel Data Option) is not implemented; files that may "
                "carry burned-in text are quarantined instead"
            )
        if self.clean_graphics:
            raise ConfigError(
                "the Clean Graphics Option is not implemented; without it curves and overlay "
                "text are removed (the Basic Profile)"
            )

    @property
    def shift_dates(self) -> bool:
        return self.retain_longitudinal_modified_dates

    def enabled(self) -> list[str]:
        """Names of the enabled options, in field order."""
        return [
            f.name
            for f in fields(self)
            if f.type in ("bool", bool) and getattr(self, f.name) is True
        ]

    def method_codes(self) -> list[tuple[str, str]]:
        """(code value, meaning) of the Basic Profile and each enabled Option (scheme DCM)."""
        codes = [BASIC_PROFILE_CODE]
        for field_name, code, meaning in OPTION_COLUMNS.values():
            if getattr(self, field_name):
                codes.append((code, meaning))
        return codes

    @classmethod
    def from_names(cls, names: list[str], **extra: object) -> DeidOptions:
        """Options from CLI-style names such as ``modified-dates`` or ``clean_descriptors``."""
        aliases = {
            "modified-dates": "retain_longitudinal_modified_dates",
            "full-dates": "retain_longitudinal_full_dates",
            "patient-characteristics": "retain_patient_characteristics",
            "device-identity": "retain_device_identity",
            "institution-identity": "retain_institution_identity",
            "uids": "retain_uids",
            "safe-private": "retain_safe_private",
            "clean-descriptors": "clean_descriptors",
            "clean-structured-content": "clean_structured_content",
            "clean-graphics": "clean_graphics",
            "clean-pixels": "clean_pixels",
        }
        known = {f.name for f in fields(cls)} - {"safe_private_tags"}
        values: dict[str, object] = {}
        for raw in names:
            name = raw.strip().lower()
            if not name:
                continue
            field_name = aliases.get(name, name.replace("-", "_"))
            if field_name not in known:
                raise ConfigError(
                    f"unknown de-identification option {raw!r}; known: {', '.join(sorted(aliases))}"
                )
            values[field_name] = True
        values.update(extra)
        return cls(**values)  # type: ignore[arg-type]


def _parse_tag(text: str) -> str:
    return text.strip().strip("()").replace(" ", "").lower()


@cache
def load_profile() -> tuple[ProfileRow, ...]:
    """The rows of Table E.1-1 (read once)."""
    raw = resources.files("medsight.privacy").joinpath("data", PROFILE_FILE).read_text("utf-8")
    lines = [line for line in raw.splitlines() if line and not line.startswith("#")]
    rows = []
    for record in csv.DictReader(io.StringIO("\n".join(lines))):
        options = {col: record[col] for col in OPTION_COLUMNS if record[col]}
        rows.append(
            ProfileRow(
                tag=record["tag"],
                name=record["name"],
                in_standard_iod=record["std_comp_iod"] == "Y",
                basic=record["basic_profile"],
                options=options,
            )
        )
    return tuple(rows)


@dataclass(frozen=True)
class ActionTable:
    """The effective action of every attribute under one `DeidOptions`.

    Actions: X remove, Z empty, D dummy, U new UID (sequences: recurse), K keep (sequences:
    recurse), C clean (text: scrubbed; sequences: recurse), S shift dates by the patient's offset.
    """

    exact: dict[int, str]
    curves: str  # (50xx,xxxx)
    overlay: dict[int, str]  # (60xx,eeee) by element
    private: str  # odd groups

    def action(self, tag: int) -> str | None:
        """The action for `tag` (None: not in the table, keep)."""
        found = self.exact.get(tag)
        if found is not None:
            return found
        group = tag >> 16
        if group & 1:
            return self.private
        if 0x5000 <= group <= 0x501E:
            return self.curves
        if 0x6000 <= group <= 0x601E:
            return self.overlay.get(tag & 0xFFFF)
        return None


def effective_action(row: ProfileRow, options: DeidOptions) -> str:
    """One row's action under `options`: an enabled Option overrides the Basic Profile (E.1)."""
    chosen = [
        action
        for column, action in row.options.items()
        if getattr(options, OPTION_COLUMNS[column][0])
    ]
    if chosen:
        action = min(chosen, key=_STRENGTH.__getitem__)
        if action == "C" and column_is_dates(row, options):
            return "S"
        return action
    return COMPOUND.get(row.basic, row.basic)


def column_is_dates(row: ProfileRow, options: DeidOptions) -> bool:
    """True when the C comes from the modified-dates Option (C = shift, not text cleaning)."""
    return (
        options.retain_longitudinal_modified_dates and "retain_long_modified_dates" in row.options
    )


@cache
def action_table(options: DeidOptions) -> ActionTable:
    """The tag -> action dict for `options` (cached per options value)."""
    exact: dict[int, str] = {}
    curves = "X"
    overlay: dict[int, str] = {}
    private = "X"
    for row in load_profile():
        action = effective_action(row, options)
        key = _parse_tag(row.tag)
        if key == "gggg,eeee":
            private = action
            continue
        group, element = key.split(",")
        if group == "50xx":
            curves = action
        elif group == "60xx":
            overlay[int(element, 16)] = action
        else:
            exact[int(group + element, 16)] = action
    return ActionTable(exact=exact, curves=curves, overlay=overlay, private=private)
