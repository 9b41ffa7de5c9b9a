"""Checks that refuse identified data where medsight trains or serves (``require_deidentified``).

Pure functions: each returns nothing when the data looks de-identified and raises
:class:`~medsight.errors.DataError` otherwise, with a message that names the file, column or
field, says what is wrong and how to fix it, and never quotes an identifying value.

- DICOM (:func:`require_deidentified_dicom`): Patient Identity Removed (0012,0062) must be YES,
  Burned In Annotation must not be YES, and ``medsight deid verify``'s check of the data set
  (:func:`medsight.privacy.verify_dicom.scan_dataset`) must find nothing. That check walks the
  elements once (about 0.1-2 ms per file, less than reading it), so it is on by default: the
  marker alone is only a claim. Files de-identified by another tool may fail it (a different
  pseudonym format, a private element kept); ``medsight deid dicom IN OUT`` makes them pass.
- Text (:func:`require_deidentified_text`): the clinical-text detectors
  (:func:`medsight.privacy.text_phi.detect_phi`) on each value, optionally after a label
  (``"ssn: 123456789"``) so that the detectors' label rules apply to bare table cells.
- Tables (:func:`require_deidentified_table`): every text or whole-number column, each cell
  scanned after its column name as the label; at most ``max_values`` distinct values per column.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING

from medsight.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    from pydicom.dataset import Dataset

DICOM_FIX = (
    "de-identify it first with 'medsight deid dicom IN OUT' and use OUT "
    "(or turn require_deidentified off)"
)
TEXT_FIX = (
    "remove or de-identify these values first (notes: 'medsight deid text IN OUT'), "
    "or turn require_deidentified off"
)
MAX_VALUES_PER_COLUMN = 5_000
# What Safe Harbor allows instead, for the types where "remove it" is not the only answer.
_HINTS = {
    "AGE": "ages over 89 must be one group, e.g. 90",
    "DATE": "keep the year only, or shift dates with 'medsight deid'",
}
_SHOWN_FINDINGS = 3


def require_deidentified_dicom(ds: Dataset, where: str, *, verify: bool = True) -> None:
    """Raise :class:`DataError` unless the DICOM data set ``ds`` (from ``where``) is de-identified.

    ``verify=False`` checks the two header flags only (marker and burned-in annotation).
    """
    marker = _text(ds, "PatientIdentityRemoved")
    if marker.upper() != "YES":
        state = (
            "is missing" if not marker else "is 'NO'" if marker.upper() == "NO" else "is not YES"
        )
        raise DataError(
            f"{where}: not de-identified: Patient Identity Removed (0012,0062) {state}, and "
            f"only de-identified data is accepted; {DICOM_FIX}."
        )
    if _text(ds, "BurnedInAnnotation").upper() == "YES":
        raise DataError(
            f"{where}: Burned In Annotation (0028,0301) is YES: the pixels may show patient "
            "identity, and only de-identified data is accepted; remove the file (medsight does "
            "not clean pixels) or turn require_deidentified off."
        )
    if not verify:
        return
    from medsight.privacy.verify_dicom import scan_dataset

    try:
        findings = scan_dataset(ds, where)
    except Exception as exc:  # a malformed value pydicom cannot convert: not provably clean
        raise DataError(
            f"{where}: marked de-identified but its elements could not be checked "
            f"({type(exc).__name__}); {DICOM_FIX}."
        ) from exc
    if findings:
        shown = "; ".join(
            f"{f.tag} {f.keyword or 'element'}: {f.problem}" for f in findings[:_SHOWN_FINDINGS]
        )
        more = len(findings) - _SHOWN_FINDINGS
        raise DataError(
            f"{where}: marked de-identified but {len(findings)} identifying attribute(s) remain "
            f"({shown}{f'; and {more} more' if more > 0 else ''}); {DICOM_FIX}."
        )


def require_deidentified_text(
    values: Iterable[object],
    where: str,
    *,
    label: str | None = None,
    max_values: int | None = None,
) -> None:
    """Raise :class:`DataError` when any of ``values`` holds what the PHI detectors find.

    ``where`` names the field or column (``"notes.csv: column 'name'"``). With ``label``, each
    value is scanned as ``"<label>: <value>"`` so that labels such as ``ssn`` or ``phone`` make
    bare numbers recognisable; a finding inside the label itself does not count. Empty values are
    skipped; ``max_values`` bounds how many are scanned. The message gives the PHI types and how
    many values had them, never a value.
    """
    from medsight.privacy.text_phi import detect_phi

    prefix = f"{label}: " if label else ""
    types: Counter[str] = Counter()
    flagged = scanned = 0
    for value in values:
        if max_values is not None and scanned >= max_values:
            break
        text = "" if value is None else str(value)
        if not text.strip():
            continue
        scanned += 1
        found = {s.phi_type for s in detect_phi(prefix + text) if s.end > len(prefix)}
        if found:
            flagged += 1
            types.update(found)
    if flagged:
        kinds = ", ".join(f"{kind} ({n})" for kind, n in types.most_common())
        hints = "".join(f"; {_HINTS[kind]}" for kind in sorted(types) if kind in _HINTS)
        raise DataError(
            f"{where}: {flagged} of {scanned} value(s) checked look like patient identifiers "
            f"({kinds}; values not shown), and only de-identified data is accepted; "
            f"{TEXT_FIX}{hints}."
        )


def require_deidentified_table(
    frame: pd.DataFrame,
    where: str,
    *,
    bare_columns: Collection[str] = (),
    max_values: int = MAX_VALUES_PER_COLUMN,
) -> None:
    """Raise :class:`DataError` when a column of ``frame`` holds identifiers (the first found).

    Text columns and whole-number columns are scanned: their first ``max_values`` distinct
    non-empty values (in order of appearance), each after the column name as a label (``_``
    read as a space), so ``ssn: 123456789`` or ``age: 93`` is caught. Columns in
    ``bare_columns`` (e.g. the patient-id column, which holds pseudonyms or study codes) are
    scanned without the label. Numbers with a fraction are measurements and are not scanned.
    """
    for column in frame.columns:
        values = _scannable(frame[column], max_values)
        if not values:
            continue
        label = None if column in bare_columns else str(column).replace("_", " ").strip()
        require_deidentified_text(
            values, f"{where}: column {str(column)!r}", label=label or None, max_values=max_values
        )


def _scannable(series: pd.Series, limit: int) -> list[str]:
    """Distinct non-empty values of a text or whole-number column as text (at most ``limit``)."""
    import numpy as np
    import pandas as pd

    values = series.dropna()
    if pd.api.types.is_bool_dtype(values):
        return []
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        whole = numbers[np.isfinite(numbers) & (numbers == np.round(numbers))]
        return [str(int(v)) for v in pd.unique(whole)[:limit]]
    if pd.api.types.is_datetime64_any_dtype(values):
        return [str(v) for v in pd.unique(values)[:limit]]
    distinct = pd.unique(values.astype(str))
    return [v for v in distinct[: limit * 2] if v.strip()][:limit]


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # an unparseable value counts as absent
        return ""
    return str(value).strip() if value is not None else ""
