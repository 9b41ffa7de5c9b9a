"""De-identify DICOM files and folder trees with the PS3.15 Basic Profile and its Options.

One pass over the elements present in a data set (and recursively in its sequences), each looked
up in the profile's tag -> action dict (`dicom_profile.action_table`). Elements without an action
are left as read (raw bytes, never decoded), so pixel data is written back byte for byte.

Files and trees: `deidentify_paths` mirrors the input tree under OUT, writes each file under a
temporary name in its output folder and renames it only when complete, never modifies an input,
and never stops on one bad file: files that cannot be de-identified safely are quarantined with a
reason (`OUT/quarantine/<path>.reason.txt`, no copy of the identified original) and every file's
outcome is one line of `OUT/deid-log.jsonl`.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence

from medsight.privacy.dicom_profile import PROFILE_EDITION, ActionTable, DeidOptions, action_table
from medsight.privacy.keys import DeidKey
from medsight.privacy.pseudonym import Pseudonymizer, save_reid_map

LOG_NAME = "deid-log.jsonl"
QUARANTINE_DIR = "quarantine"
MAX_SEQUENCE_DEPTH = 16
DUMMY_TEXT = "ANONYMIZED"
IMPLEMENTATION_UID = "2.25." + str(uuid.uuid5(uuid.NAMESPACE_URL, "medsight/deid").int)
IMPLEMENTATION_VERSION = "MEDSIGHT_DEID1"

PATIENT_ID = 0x00100020
PATIENT_NAME = 0x00100010
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
DEFLATED_SYNTAX = "1.2.840.10008.1.2.1.99"

# Files that often carry identity burned into the pixels: quarantined unless pixels are cleaned.
BURNED_IN_MODALITIES = frozenset({"US", "IVUS", "XC", "ES", "GM", "SM", "DOC", "SC"})
BURNED_IN_SOP_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture (all its SOP classes)
    "1.2.840.10008.5.1.4.1.1.6.",  # Ultrasound Image
    "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image
    "1.2.840.10008.5.1.4.1.1.104.",  # Encapsulated documents (PDF, CDA, ...)
    "1.2.840.10008.5.1.4.1.1.77.1.",  # Visible light: endoscopy, photography, video
)

_DUMMY_BY_VR: dict[str, Any] = {
    "DA": "20000101",
    "DT": "20000101000000",
    "TM": "000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "UV": 0,
    "SV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "AT": 0,
    "OB": b"\x00\x00",
    "OW": b"\x00\x00",
    "OD": b"\x00" * 8,
    "OF": b"\x00" * 4,
    "OL": b"\x00" * 4,
    "OV": b"\x00" * 8,
    "UN": b"\x00\x00",
    "UI": None,  # UIDs are replaced (U), never dummied
}
_STRING_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})


class Quarantined(Exception):
    """A file that cannot be de-identified safely; the message is the reason (no identifiers)."""


@dataclass
class DicomOutcome:
    """One input file's fate (the log record)."""

    source: str
    output: str | None
    status: str  # "ok" | "quarantined" | "failed"
    reason: str | None = None


@dataclass
class _Context:
    table: ActionTable
    options: DeidOptions
    pseudonymizer: Pseudonymizer
    patient_id: str
    shift_days: int
    cleaner: Callable[[str], str] | None


# ------------------------------------------------------------------------------ data sets


def deidentify_dataset(
    ds: Dataset,
    pseudonymizer: Pseudonymizer,
    options: DeidOptions | None = None,
) -> Dataset:
    """De-identify `ds` in place (and return it); raises `Quarantined` when that is not safe."""
    options = options or DeidOptions()
    patient_id = str(ds.get("PatientID", "") or "").strip()
    if not patient_id:
        raise Quarantined("no Patient ID: the file cannot be linked to a pseudonym")
    context = _Context(
        table=action_table(options),
        options=options,
        pseudonymizer=pseudonymizer,
        patient_id=patient_id,
        shift_days=pseudonymizer.date_shift_days(patient_id) if options.shift_dates else 0,
        cleaner=_text_cleaner(options, pseudonymizer, patient_id),
    )
    _walk(ds, context, depth=0)
    _mark(ds, options)
    _replace_file_meta(ds, pseudonymizer)
    return ds


def burned_in_reason(ds: Dataset) -> str | None:
    """Why the pixels of `ds` may carry identity (None when nothing suggests it)."""
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        return "Burned In Annotation is YES"
    modality = str(ds.get("Modality", "")).strip().upper()
    if modality in BURNED_IN_MODALITIES:
        return f"modality {modality} is known for burned-in text"
    sop_class = str(ds.get("SOPClassUID", "")).strip()
    if sop_class.startswith(BURNED_IN_SOP_PREFIXES):
        name = getattr(ds.get("SOPClassUID"), "name", sop_class)
        return f"SOP class {name} is known for burned-in text"
    return None


def _walk(ds: Dataset, ctx: _Context, depth: int) -> None:
    if depth > MAX_SEQUENCE_DEPTH:
        raise Quarantined(f"sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels")
    table = ctx.table
    for tag in list(ds.keys()):
        if not tag & 0xFFFF and tag >> 16 != 0x0002:
            del ds[tag]  # group lengths (retired) would be wrong after any change
            continue
        action = table.action(tag)
        if action is None:
            _unlisted(ds, tag, ctx, depth)
        elif tag >> 16 & 1:
            _private(ds, tag, action, ctx)
        elif action == "X":
            del ds[tag]
        elif tag in (PATIENT_ID, PATIENT_NAME):
            _patient(ds, tag, ctx)
        elif action == "K":
            if _vr(ds, tag) == "SQ":
                _recurse(ds[tag], ctx, depth)
        else:
            _apply(ds, tag, action, ctx, depth)


def _vr(ds: Dataset, tag: int) -> str:
    raw = ds.get_item(tag)
    vr = raw.VR if raw is not None else None
    if vr and vr != "UN":  # pydicom reads a UN whose tag it knows with the dictionary VR
        return str(vr)
    try:
        return dictionary_VR(tag).split(" ")[0]
    except KeyError:
        return "UN"


def _recurse(elem: DataElement, ctx: _Context, depth: int) -> None:
    for item in elem.value or ():
        _walk(item, ctx, depth + 1)


def _unlisted(ds: Dataset, tag: int, ctx: _Context, depth: int) -> None:
    """An attribute Table E.1-1 does not list: kept, but sequences are walked, person names are
    dummied and, with modified dates, every DA/DT is shifted (PS3.15 E.1 note 4: handle dates by
    VR, not only the listed ones)."""
    vr = _vr(ds, tag)
    if vr == "SQ":
        _recurse(ds[tag], ctx, depth)
    elif vr == "PN":
        elem = ds[tag]
        if elem.value:
            elem.value = DUMMY_TEXT
    elif ctx.options.shift_dates and vr in ("DA", "DT"):
        _shift(ds[tag], vr, ctx)


def _private(ds: Dataset, tag: int, action: str, ctx: _Context) -> None:
    if action == "C" and _is_safe_private(ds, tag, ctx.options):
        return
    del ds[tag]


def _is_safe_private(ds: Dataset, tag: int, options: DeidOptions) -> bool:
    group, element = tag >> 16, tag & 0xFFFF
    if 0x0010 <= element <= 0x00FF:  # a private creator: kept when one of its elements is safe
        creator = str(ds[tag].value).strip()
        return any(c == creator and g == group for c, g, _ in options.safe_private_tags)
    if element < 0x1000:
        return False
    creator_elem = ds.get((group, element >> 8))
    if creator_elem is None:
        return False
    key = (str(creator_elem.value).strip(), group, element & 0xFF)
    return key in options.safe_private_tags


def _patient(ds: Dataset, tag: int, ctx: _Context) -> None:
    """Patient ID and Patient's Name become the keyed pseudonym (a D value; Z allows it)."""
    elem = ds[tag]
    if tag == PATIENT_ID:
        value = str(elem.value or "").strip()
        elem.value = ctx.pseudonymizer.patient_pseudonym(value) if value else ""
    else:
        elem.value = ctx.pseudonymizer.patient_pseudonym(ctx.patient_id)


def _apply(ds: Dataset, tag: int, action: str, ctx: _Context, depth: int) -> None:
    vr = _vr(ds, tag)
    elem = ds[tag]
    if vr == "SQ":
        if action == "Z":
            elem.value = Sequence()
        else:  # D, U, C, S on a sequence: keep the items, de-identify their content
            _recurse(elem, ctx, depth)
        return
    if action == "Z":
        elem.value = None
    elif action == "U" or vr == "UI":
        _replace_uids(elem, ctx.pseudonymizer)
    elif action == "D":
        elem.value = _dummy(vr)
    elif action == "S":
        _shift(elem, vr, ctx)
    elif action == "C":
        _clean(ds, tag, elem, vr, ctx)


def _dummy(vr: str) -> Any:
    if vr in _DUMMY_BY_VR:
        return _DUMMY_BY_VR[vr]
    return DUMMY_TEXT


def _replace_uids(elem: DataElement, pseudonymizer: Pseudonymizer) -> None:
    value = elem.value
    if not value:
        return
    if isinstance(value, str):
        elem.value = pseudonymizer.uid(value)
    else:
        elem.value = [pseudonymizer.uid(str(v)) for v in value]


def _clean(ds: Dataset, tag: int, elem: DataElement, vr: str, ctx: _Context) -> None:
    """C on text: scrubbed by the clinical-text scrubber; without it (or on other VRs) removed."""
    if ctx.cleaner is not None and vr in _STRING_VRS and vr != "PN":
        if isinstance(elem.value, str):
            elem.value = ctx.cleaner(elem.value)
            return
        if elem.value is not None and all(isinstance(v, str) for v in elem.value):
            elem.value = [ctx.cleaner(v) for v in elem.value]
            return
    del ds[tag]


def _text_cleaner(
    options: DeidOptions, pseudonymizer: Pseudonymizer, patient_id: str
) -> Callable[[str], str] | None:
    try:
        from medsight.privacy.text_deid import scrub_text
    except ImportError:  # the text scrubber is optional here: C then removes the value
        return None
    dates = "shift" if options.shift_dates else "year"

    def clean(text: str) -> str:
        return scrub_text(text, pseudonymizer, patient_id=patient_id, dates=dates)

    return clean


# ------------------------------------------------------------------------------ dates


def _shift(elem: DataElement, vr: str, ctx: _Context) -> None:
    """Move DA and DT values by the patient's offset; TM (time of day) is kept as it is."""
    if vr == "TM" or elem.value in (None, ""):
        return
    shift = ctx.shift_days
    values = [elem.value] if isinstance(elem.value, str) else list(elem.value)
    shifted = [_shift_text(str(v), vr, shift) for v in values]
    if any(s is None for s in shifted):
        elem.value = None  # an unparseable date is emptied, never kept
    elif isinstance(elem.value, str):
        elem.value = shifted[0]
    else:
        elem.value = shifted


def _shift_text(value: str, vr: str, days: int) -> str | None:
    text = value.strip().replace(".", "") if vr == "DA" else value.strip()
    digits = text[:8]
    precision = len(digits) if digits.isdigit() else 0
    if precision not in (4, 6, 8):
        return None
    try:
        year = int(digits[:4])
        month = int(digits[4:6]) if precision >= 6 else 1
        day = int(digits[6:8]) if precision == 8 else 1
        moved = dt.date(year, month, day) + dt.timedelta(days=days)
    except ValueError:
        return None
    out = f"{moved.year:04d}{moved.month:02d}{moved.day:02d}"[:precision]
    return out + text[8:] if vr == "DT" else out


# ------------------------------------------------------------------------------ markers


def _mark(ds: Dataset, options: DeidOptions) -> None:
    """Patient Identity Removed, the method text and code sequence, Longitudinal Temporal
    Information Modified (PS3.15 E.1.1 step 6)."""
    ds.PatientIdentityRemoved = "YES"
    codes = options.method_codes()
    ds.DeidentificationMethod = [f"medsight {m}"[:64] for _, m in codes]
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    if options.retain_longitudinal_modified_dates:
        ds.LongitudinalTemporalInformationModified = "MODIFIED"
    elif options.retain_longitudinal_full_dates:
        ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
    else:
        ds.LongitudinalTemporalInformationModified = "REMOVED"


def _replace_file_meta(ds: Dataset, pseudonymizer: Pseudonymizer) -> None:
    """A new File Meta Information naming medsight, and a zero preamble (PS3.15 E.1.1 step 7)."""
    old = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta = FileMetaDataset()
    sop_class = old.get("MediaStorageSOPClassUID") or ds.get("SOPClassUID")
    if sop_class:
        meta.MediaStorageSOPClassUID = sop_class
    if "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    elif old.get("MediaStorageSOPInstanceUID"):
        meta.MediaStorageSOPInstanceUID = pseudonymizer.uid(str(old.MediaStorageSOPInstanceUID))
    if old.get("TransferSyntaxUID"):
        meta.TransferSyntaxUID = old.TransferSyntaxUID
    meta.ImplementationClassUID = IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128


# ------------------------------------------------------------------------------ files


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """pydicom's warnings and log records quote element values (names, IDs): both are silenced
    while identified files are handled, so no identifier reaches a console or a log file."""
    logger = logging.getLogger("pydicom")
    disabled = logger.disabled
    logger.disabled = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.disabled = disabled


def read_dicom(path: Path) -> Dataset:
    """Read a DICOM Part 10 file; `Quarantined` names why it cannot be used."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path)
        except PermissionError as exc:
            raise Quarantined("unreadable: permission denied") from exc
        except InvalidDicomError as exc:
            raise Quarantined("not a DICOM file (no DICM preamble and File Meta)") from exc
        except OSError as exc:
            raise Quarantined(f"unreadable: {exc.strerror or type(exc).__name__}") from exc
        except Exception as exc:  # pydicom raises many types on corrupt input
            raise Quarantined(f"unreadable DICOM ({type(exc).__name__})") from exc
    for warning in caught:
        if "End of file" in str(warning.message):
            raise Quarantined("truncated: the file ends inside a sequence or value")
    reason = truncation_reason(ds, path.stat().st_size)
    if reason:
        raise Quarantined(reason)
    return ds


def truncation_reason(ds: Dataset, file_size: int) -> str | None:
    """Why `ds` looks cut short (pydicom stops silently at the end of a truncated file)."""
    short = _short_value(ds)
    if short is not None:
        return f"truncated: element {short} is shorter than its declared length"
    keys = list(ds.keys())
    meta = getattr(ds, "file_meta", None)
    deflated = meta is not None and meta.get("TransferSyntaxUID") == DEFLATED_SYNTAX
    if keys and not deflated:  # positions in a deflated file are not byte offsets
        last = ds.get_item(keys[-1])
        if isinstance(last, RawDataElement) and last.length != 0xFFFFFFFF:
            end = last.value_tell + last.length
            if end != file_size:
                return "truncated: the file ends inside an element header"
    if "Rows" in ds and "Columns" in ds and not any(tag in ds for tag in PIXEL_TAGS):
        return "truncated: image attributes present but no pixel data"
    expected = _native_pixel_bytes(ds)
    if expected is not None and len(ds.get_item(0x7FE00010).value or b"") < expected:
        return "truncated: pixel data shorter than Rows x Columns x frames"
    return None


def _short_value(ds: Dataset) -> str | None:
    for tag in ds.keys():  # noqa: SIM118 (iterating a Dataset decodes every element)
        raw = ds.get_item(tag)
        if isinstance(raw, RawDataElement):
            if raw.length != 0xFFFFFFFF and raw.value is not None and len(raw.value) < raw.length:
                return str(tag)
        elif raw is not None and raw.VR == "SQ":
            for item in raw.value or ():
                found = _short_value(item)
                if found:
                    return found
    return None


def _native_pixel_bytes(ds: Dataset) -> int | None:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is None or syntax.is_compressed or 0x7FE00010 not in ds:
        return None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        if str(ds.get("PhotometricInterpretation", "")).endswith("_422"):
            samples = 2  # two chroma samples shared by each pair of pixels
        bits = int(ds.BitsAllocated)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return None
    return (rows * cols * samples * frames * bits + 7) // 8


def deidentify_file(
    source: Path,
    destination: Path,
    pseudonymizer: Pseudonymizer,
    options: DeidOptions,
) -> None:
    """Read, check, de-identify and atomically write one file; raises `Quarantined`."""
    ds = read_dicom(source)
    if str(ds.get("SOPClassUID", "")) == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        raise Quarantined("DICOMDIR: its directory records carry patient identity")
    reason = burned_in_reason(ds)
    if reason and not options.clean_pixels:
        raise Quarantined(f"{reason}; pixel cleaning is not configured")
    deidentify_dataset(ds, pseudonymizer, options)
    _atomic_write(ds, destination)


def _atomic_write(ds: Dataset, destination: Path) -> None:
    buffer = io.BytesIO()  # encoded in memory first: one write call, and nothing on disk on error
    ds.save_as(buffer, enforce_file_format=True)
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".deid-", suffix=".tmp", dir=destination.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getbuffer())
        tmp.replace(destination)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------ trees


@dataclass
class _Item:
    source: Path
    relative: Path
    error: str | None = None  # set for folders that could not be listed


def _list_inputs(inputs: list[Path], out_dir: Path) -> list[_Item]:
    items: list[_Item] = []
    prefix = len(inputs) > 1
    out_resolved = out_dir.resolve()
    for root in inputs:
        base = Path(root.name) if prefix else Path()
        if root.is_dir():
            _scan(root, base, out_resolved, items)
        else:
            items.append(_Item(root, base / root.name if prefix else Path(root.name)))
    return items


def _scan(folder: Path, relative: Path, out_resolved: Path, items: list[_Item]) -> None:
    # Hand-written walk (not os.walk) so that an unreadable folder becomes one outcome with a
    # reason instead of being skipped silently.
    if folder.resolve() == out_resolved:
        return
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as exc:
        why = "permission denied" if isinstance(exc, PermissionError) else type(exc).__name__
        items.append(_Item(folder, relative, error=f"unreadable folder: {why}"))
        return
    for entry in entries:
        path = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            _scan(path, relative / entry.name, out_resolved, items)
        elif entry.is_file():
            items.append(_Item(path, relative / entry.name))


def deidentify_paths(
    inputs: Iterable[Path],
    out_dir: Path,
    key: DeidKey,
    options: DeidOptions | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    reid_map: Path | None = None,
) -> list[DicomOutcome]:
    """De-identify files and folder trees into `out_dir` (mirrored); one outcome per input file.

    A bad file is quarantined or failed with its reason, never fatal. With `reid_map`, the
    pseudonym -> Patient ID map is written there encrypted with the key (merged when it exists).
    """
    options = options or DeidOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pseudonymizer = Pseudonymizer(key, record=reid_map is not None)
    items = _list_inputs([Path(p) for p in inputs], out_dir)
    outcomes: list[DicomOutcome] = []
    log_path = out_dir / LOG_NAME
    with log_path.open("a", encoding="utf-8") as log:
        for done, item in enumerate(items, start=1):
            outcome = _process(item, out_dir, pseudonymizer, options)
            outcomes.append(outcome)
            record = asdict(outcome) | {
                "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "key": key.fingerprint(),
                "profile": PROFILE_EDITION,
                "options": options.enabled(),
            }
            log.write(json.dumps(record) + "\n")
            if progress is not None:
                progress(done, len(items))
    if reid_map is not None and pseudonymizer.reid_map:
        save_reid_map(pseudonymizer.reid_map, reid_map, key)
    return outcomes


def _process(
    item: _Item, out_dir: Path, pseudonymizer: Pseudonymizer, options: DeidOptions
) -> DicomOutcome:
    source = str(item.source)
    if item.error is not None:
        return _quarantine(item, out_dir, item.error)
    destination = out_dir / item.relative
    try:
        with quiet_pydicom():
            deidentify_file(item.source, destination, pseudonymizer, options)
    except Quarantined as exc:
        return _quarantine(item, out_dir, str(exc))
    except Exception as exc:  # one bad file never stops the batch; the reason names the error
        return DicomOutcome(source, None, "failed", f"error: {type(exc).__name__}")
    return DicomOutcome(source, str(destination), "ok")


def _quarantine(item: _Item, out_dir: Path, reason: str) -> DicomOutcome:
    """Only the reason is written: the identified original stays where it is (never copied)."""
    note = out_dir / QUARANTINE_DIR / item.relative.parent / f"{item.relative.name}.reason.txt"
    try:
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_text(f"{reason}\n", encoding="utf-8")
    except OSError:
        return DicomOutcome(str(item.source), None, "quarantined", reason)
    return DicomOutcome(str(item.source), str(note), "quarantined", reason)
