"""Check a de-identified DICOM tree: report any identifying attribute the profile does not allow.

The options a file was de-identified with are read from its De-identification Method Code
Sequence, so each attribute is checked against the action it should have had: X still present, Z
not empty, a U that is not a `2.25.` UID, a person name that is neither empty, the dummy nor a
pseudonym, a private element not on the safe list, Patient Identity Removed not YES, and text in
free-text elements that looks like PHI (phone, e-mail, SSN, record numbers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from medsight.privacy.dicom_deid import (
    DUMMY_TEXT,
    LOG_NAME,
    PATIENT_ID,
    PATIENT_NAME,
    QUARANTINE_DIR,
    quiet_pydicom,
)
from medsight.privacy.dicom_profile import OPTION_COLUMNS, ActionTable, DeidOptions, action_table
from medsight.privacy.pseudonym import UID_ROOT

PSEUDONYM = re.compile(r"^[A-Z]+-[A-Z2-7]{16}$")
_FREE_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
# A small detector set of our own (the clinical-text detectors are tuned for notes, not for short
# DICOM strings); each pattern is specific enough not to fire on codes, versions or UIDs. URLs are
# left out: device and software fields carry vendor URLs that identify no one.
_PHI_PATTERNS = {
    "SSN": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
    "PHONE": re.compile(r"(?:\(\d{3}\)\s?|\b\d{3}[-.\s])\d{3}[-.\s]\d{4}\b"),
    "EMAIL": re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b"),
    "MRN": re.compile(r"\b(?:MRN|medical record)\s*(?:no\.?|number|#)?\s*[:#]?\s*\d{4,}", re.I),
}
_CODE_TO_OPTION = {code: field for field, code, _ in OPTION_COLUMNS.values()}
_UNCHECKABLE_OPTIONS = {"clean_graphics"}  # not produced by medsight; checked as the basic profile


@dataclass
class Finding:
    """One identifying attribute or text left in a file."""

    path: str
    tag: str  # "(gggg,eeee)"
    keyword: str
    problem: str


def options_from_codes(ds: Dataset) -> DeidOptions:
    """The Options recorded in the De-identification Method Code Sequence of `ds`."""
    flags = {}
    for item in ds.get("DeidentificationMethodCodeSequence", None) or ():
        field = _CODE_TO_OPTION.get(str(item.get("CodeValue", "")))
        if field and field not in _UNCHECKABLE_OPTIONS:
            flags[field] = True
    if flags.get("retain_longitudinal_full_dates") and flags.get(
        "retain_longitudinal_modified_dates"
    ):
        flags.pop("retain_longitudinal_modified_dates")
    return DeidOptions(**flags)


def scan_dataset(
    ds: Dataset,
    path: str = "<dataset>",
    *,
    safe_private_tags: frozenset[tuple[str, int, int]] = frozenset(),
) -> list[Finding]:
    """Findings for one de-identified data set (empty when it is clean)."""
    findings: list[Finding] = []
    options = options_from_codes(ds)
    if str(ds.get("PatientIdentityRemoved", "")).strip().upper() != "YES":
        findings.append(_finding(path, 0x00120062, "Patient Identity Removed is not YES"))
    if "DeidentificationMethodCodeSequence" not in ds:
        findings.append(_finding(path, 0x00120064, "no De-identification Method Code Sequence"))
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        stored = meta.get("MediaStorageSOPInstanceUID")
        if stored and "SOPInstanceUID" in ds and stored != ds.SOPInstanceUID:
            findings.append(_finding(path, 0x00020003, "differs from the SOP Instance UID"))
        if "SourceApplicationEntityTitle" in meta:
            findings.append(_finding(path, 0x00020016, "present; File Meta is not replaced"))
    safe = safe_private_tags if options.retain_safe_private else frozenset()
    _check(ds, path, action_table(options), safe, findings)
    return findings


def _check(
    ds: Dataset,
    path: str,
    table: ActionTable,
    safe: frozenset[tuple[str, int, int]],
    findings: list[Finding],
) -> None:
    for elem in ds:
        tag = int(elem.tag)
        vr = elem.VR
        action = table.action(tag)
        if tag >> 16 & 1:
            if not _safe_private(ds, tag, safe):
                findings.append(_finding(path, tag, "private element not on the safe list"))
            continue
        if action == "X":
            findings.append(_finding(path, tag, "present; the profile removes it"))
            continue
        if vr == "SQ":
            if action == "Z" and elem.value:
                findings.append(_finding(path, tag, "sequence not emptied (Z)"))
            for item in elem.value or ():
                _check(item, path, table, safe, findings)
            continue
        value = elem.value
        if tag in (PATIENT_ID, PATIENT_NAME):
            if value and not PSEUDONYM.match(str(value)):
                findings.append(_finding(path, tag, "not a pseudonym"))
            continue
        if action == "Z" and value not in (None, "", b""):
            if not (vr in ("PN", "LO", "SH") and str(value) in (DUMMY_TEXT, "")):
                findings.append(_finding(path, tag, "not empty (Z)"))
        elif action == "U" and vr == "UI" and value:
            values = [value] if isinstance(value, str) else list(value)
            if any(not str(v).startswith(UID_ROOT) for v in values):
                findings.append(_finding(path, tag, f"UID not replaced (not under {UID_ROOT})"))
        if vr == "PN" and value and str(value) != DUMMY_TEXT and not PSEUDONYM.match(str(value)):
            findings.append(_finding(path, tag, "person name not removed"))
        elif vr in _FREE_TEXT_VRS and value:
            texts = [value] if isinstance(value, str) else [str(v) for v in value]
            for phi_type in _phi_types(texts):
                findings.append(_finding(path, tag, f"text looks like PHI ({phi_type})"))


def _phi_types(texts: list[str]) -> list[str]:
    return [name for name, pattern in _PHI_PATTERNS.items() if any(map(pattern.search, texts))]


def _safe_private(ds: Dataset, tag: int, safe: frozenset[tuple[str, int, int]]) -> bool:
    if not safe:
        return False
    group, element = tag >> 16, tag & 0xFFFF
    if 0x0010 <= element <= 0x00FF:
        creator = str(ds[tag].value).strip()
        return any(c == creator and g == group for c, g, _ in safe)
    creator_elem = ds.get((group, element >> 8))
    if creator_elem is None:
        return False
    return (str(creator_elem.value).strip(), group, element & 0xFF) in safe


def _finding(path: str, tag: int, problem: str) -> Finding:
    keyword = keyword_for_tag(tag) or ("Private" if tag >> 16 & 1 else "")
    if not keyword:
        try:
            dictionary_VR(tag)
        except KeyError:
            keyword = "Unknown"
    text = str(Tag(tag))
    return Finding(path=path, tag=text, keyword=keyword, problem=problem)


def scan_dicom_file(
    path: Path, *, safe_private_tags: frozenset[tuple[str, int, int]] = frozenset()
) -> list[Finding] | None:
    """Findings for one file; None when it is not a DICOM file."""
    with quiet_pydicom():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            return None
        except Exception as exc:
            return [Finding(str(path), "", "", f"unreadable ({type(exc).__name__})")]
        return scan_dataset(ds, str(path), safe_private_tags=safe_private_tags)


def scan_dicom_tree(
    root: Path, *, safe_private_tags: frozenset[tuple[str, int, int]] = frozenset()
) -> list[Finding]:
    """Findings for every DICOM file under `root` (the quarantine folder and the log skipped)."""
    root = Path(root)
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    findings: list[Finding] = []
    for path in paths:
        relative = path.relative_to(root).parts if path != root else ()
        if relative and (relative[0] == QUARANTINE_DIR or path.name == LOG_NAME):
            continue
        found = scan_dicom_file(path, safe_private_tags=safe_private_tags)
        if found:
            findings.extend(found)
    return findings
