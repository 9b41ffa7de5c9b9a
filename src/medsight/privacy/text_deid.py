"""Scrub HIPAA Safe Harbor identifiers from clinical notes (strings, files and folder trees).

Replacements: every name becomes ``[NAME]`` (no surrogate names: a placeholder cannot be mistaken
for a real person and keeps scrubbing idempotent); a date is moved by the patient's keyed shift
(``Pseudonymizer.shift_date``) and written in the input's own format when the patient is known and
``dates="shift"``, otherwise reduced to its year ("03/14/2019" -> "2019"; a date without a year
becomes ``[DATE]``); an age over 89 becomes ``90+`` (Safe Harbor's "90 or older"); every other
type becomes ``[TYPE]`` (``[PHONE]``, ``[MRN]``, ...). With ``dates="year"`` scrubbing twice gives
the same text as scrubbing once; a shifted date is still a date, so shifting is not idempotent.

Files: ``.txt`` files and folder trees of them. A file whose first line is ``Patient ID: X``
names its patient: that line is written as ``Patient ID: <keyed pseudonym>`` and the file's dates
are shifted by X's shift; without it the dates are reduced to the year. Each output is written to
a temporary file in its output folder and renamed into place, so a failed file (unreadable, not
UTF-8) leaves no output; inputs are only read. One JSON Lines record per file goes to
``deid-log.jsonl`` in ``out_dir`` (paths, status, reason and counts per type; never a value).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medsight.privacy.keys import DeidKey
from medsight.privacy.pseudonym import Pseudonymizer
from medsight.privacy.text_phi import detect_phi, parse_date

log = logging.getLogger(__name__)

LOG_NAME = "deid-log.jsonl"
DATE_MODES = ("shift", "year")
_PATIENT_LINE = re.compile(r"\A\ufeff?[ \t]*Patient ID:[ \t]*(\S[^\r\n]*?)[ \t]*(\r?\n|\Z)")


@dataclass
class TextFileOutcome:
    """What happened to one input file."""

    source: str
    output: str | None
    status: str  # "ok" | "failed"
    reason: str | None
    counts: dict[str, int] = field(default_factory=dict)  # PHI type -> spans replaced


def _replacement(
    value: str,
    phi_type: str,
    pseudonymizer: Pseudonymizer,
    patient_id: str | None,
    dates: str,
) -> str:
    if phi_type == "AGE":
        return "90+"
    if phi_type != "DATE":
        return f"[{phi_type}]"
    match = parse_date(value)
    if match is None:
        return "[DATE]"
    if dates == "shift" and patient_id:
        return match.render(pseudonymizer.shift_date(match.date, patient_id))
    return str(match.date.year) if match.has_year else "[DATE]"


def scrub_text_counts(
    text: str,
    pseudonymizer: Pseudonymizer,
    *,
    patient_id: str | None = None,
    dates: str = "shift",
) -> tuple[str, dict[str, int]]:
    """``scrub_text`` and the number of spans replaced per PHI type."""
    if dates not in DATE_MODES:
        raise ValueError(f"dates must be one of {DATE_MODES}, not {dates!r}")
    counts: Counter[str] = Counter()
    pieces: list[str] = []
    cursor = 0
    for span in detect_phi(text):
        pieces.append(text[cursor : span.start])
        value = text[span.start : span.end]
        pieces.append(_replacement(value, span.phi_type, pseudonymizer, patient_id, dates))
        counts[span.phi_type] += 1
        cursor = span.end
    pieces.append(text[cursor:])
    return "".join(pieces), dict(sorted(counts.items()))


def scrub_text(
    text: str,
    pseudonymizer: Pseudonymizer,
    *,
    patient_id: str | None = None,
    dates: str = "shift",
) -> str:
    """``text`` with every detected identifier replaced (see the module docstring)."""
    return scrub_text_counts(text, pseudonymizer, patient_id=patient_id, dates=dates)[0]


def _jobs(inputs: list[Path], out_dir: Path) -> list[tuple[Path, Path]]:
    """(source, output) pairs: a file goes to ``out_dir/name``; a folder's ``.txt`` files keep
    their relative paths (under the folder's name when several inputs are given)."""
    out_root = out_dir.resolve()
    jobs: list[tuple[Path, Path]] = []
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            base = out_dir if len(inputs) == 1 else out_dir / item.name
            for path in sorted(item.rglob("*.txt")):
                if path.resolve().is_relative_to(out_root):
                    continue  # an output folder inside the input tree is not input
                jobs.append((path, base / path.relative_to(item)))
        else:
            jobs.append((item, out_dir / item.name))
    return jobs


def _write_atomic(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _scrub_file(
    source: Path, target: Path, pseudonymizer: Pseudonymizer, dates: str
) -> TextFileOutcome:
    def failed(reason: str) -> TextFileOutcome:
        log.warning("text de-identification failed for %s: %s", source, reason)
        return TextFileOutcome(str(source), None, "failed", reason, {})

    try:
        if target.resolve() == source.resolve():
            return failed("the output would overwrite the input")
        raw = source.read_bytes()
    except OSError as exc:
        return failed(f"cannot read the file ({exc.strerror or exc.__class__.__name__})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return failed(f"not UTF-8 text (invalid byte at offset {exc.start})")
    patient_id = None
    header = ""
    match = _PATIENT_LINE.match(text)
    if match:
        patient_id = match.group(1)
        header = f"Patient ID: {pseudonymizer.patient_pseudonym(patient_id)}{match.group(2)}"
        text = text[match.end() :]
    scrubbed, counts = scrub_text_counts(text, pseudonymizer, patient_id=patient_id, dates=dates)
    try:
        _write_atomic(target, header + scrubbed)
    except OSError as exc:
        return failed(f"cannot write the output ({exc.strerror or exc.__class__.__name__})")
    return TextFileOutcome(str(source), str(target), "ok", None, counts)


def scrub_paths(
    inputs: list[Path],
    out_dir: Path,
    key: DeidKey,
    *,
    dates: str = "shift",
    progress: Callable[[int, int], None] | None = None,
) -> list[TextFileOutcome]:
    """Scrub ``.txt`` files and folder trees into ``out_dir`` (mirrored); one outcome per file,
    also appended to ``out_dir/deid-log.jsonl``."""
    if dates not in DATE_MODES:
        raise ValueError(f"dates must be one of {DATE_MODES}, not {dates!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pseudonymizer = Pseudonymizer(key)
    jobs = _jobs([Path(p) for p in inputs], out_dir)
    outcomes: list[TextFileOutcome] = []
    seen: set[Path] = set()
    with (out_dir / LOG_NAME).open("a", encoding="utf-8") as log_file:
        for done, (source, target) in enumerate(jobs, start=1):
            if target in seen:
                outcome = TextFileOutcome(
                    str(source), None, "failed", "another input has the same output path", {}
                )
            else:
                seen.add(target)
                outcome = _scrub_file(source, target, pseudonymizer, dates)
            outcomes.append(outcome)
            log_file.write(json.dumps(asdict(outcome)) + "\n")
            log_file.flush()
            if progress is not None:
                progress(done, len(jobs))
    return outcomes
