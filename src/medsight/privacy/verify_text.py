"""Scan de-identified notes for identifiers left behind, with the scrubber's own detectors.

Placeholders (``[NAME]``, ``[MRN]``, ...), ``90+``, years and keyed pseudonyms (``P-...``) are not
findings. Dates are: by default (``allow_dates=True``) a full date is accepted, because
``dates="shift"`` output keeps shifted dates in full and no scan can tell a shifted date from an
original; pass ``allow_dates=False`` for output made with ``dates="year"``, where any date finer
than a year is a leak. Excerpts are masked (letters and digits -> ``*``, the last four kept for
long numbers: ``***-**-1234``), so a report of findings does not itself disclose the identifier.
A file that cannot be read as UTF-8 text is reported as ``UNREADABLE``: it was not verified.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

from medsight.privacy.text_phi import detect_phi


@dataclass
class TextFinding:
    path: str
    line: int  # 1-based; 0 for a file that could not be read
    phi_type: str
    excerpt: str  # masked


def mask(value: str, phi_type: str) -> str:
    """Letters and digits replaced by ``*``; the last four kept when the value is a long number."""
    alnum = sum(c.isalnum() for c in value)
    keep = 4 if phi_type not in ("NAME", "EMAIL", "URL", "ADDRESS") and alnum >= 9 else 0
    out = []
    seen = 0
    for char in value:
        if char.isalnum():
            seen += 1
            out.append(char if seen > alnum - keep else "*")
        else:
            out.append(char)
    return "".join(out)


def _files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        files.extend(sorted(path.rglob("*.txt")) if path.is_dir() else [path])
    return files


def scan_text(text: str, *, allow_dates: bool = True) -> list[tuple[int, str, str]]:
    """(line, type, masked excerpt) of each identifier found in ``text``."""
    line_starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    found = []
    for span in detect_phi(text):
        if allow_dates and span.phi_type == "DATE":
            continue
        line = bisect.bisect_right(line_starts, span.start)
        found.append((line, span.phi_type, mask(text[span.start : span.end], span.phi_type)))
    return found


def scan_text_paths(paths: list[Path], *, allow_dates: bool = True) -> list[TextFinding]:
    """Findings in the given files and the ``.txt`` files of the given folders (see the module
    docstring for what counts)."""
    findings: list[TextFinding] = []
    for path in _files(paths):
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else "cannot read"
            findings.append(TextFinding(str(path), 0, "UNREADABLE", reason))
            continue
        for line, phi_type, excerpt in scan_text(text, allow_dates=allow_dates):
            findings.append(TextFinding(str(path), line, phi_type, excerpt))
    return findings
