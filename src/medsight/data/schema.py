"""Column schema for tables: inferred from data, editable in the config, enforced at prediction."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from enum import StrEnum

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from medsight.errors import SchemaError

_ID_NAME = re.compile(r"(^|[_\s-])(id|uuid|mrn|identifier)$", re.IGNORECASE)
MAX_CODED_CATEGORIES = 5
MAX_TEXT_CATEGORIES = 30


class ColumnRole(StrEnum):
    """What a column is for."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    IDENTIFIER = "identifier"
    TARGET = "target"
    PATIENT_ID = "patient_id"
    IGNORE = "ignore"


class ColumnSpec(BaseModel):
    """One column: its role, values that mean "missing", a plausible range, known categories."""

    model_config = ConfigDict(extra="forbid")

    role: ColumnRole
    missing_values: list[float | str] = Field(default_factory=list)
    min: float | None = None
    max: float | None = None
    categories: list[str] | None = None


class SubgroupSpec(BaseModel):
    """A column to report metrics by; numeric columns are cut into bands at ``bins`` edges."""

    model_config = ConfigDict(extra="forbid")

    column: str
    bins: list[float] | None = None


class TableSchema(BaseModel):
    """The contract between a table and a model: roles, ranges, categories, classes, subgroups."""

    model_config = ConfigDict(extra="forbid")

    target: str
    columns: dict[str, ColumnSpec]
    classes: list[str] = Field(default_factory=list)
    positive_class: str | None = None
    patient_id: str | None = None
    subgroups: list[SubgroupSpec] = Field(default_factory=list)

    def columns_with_role(self, role: ColumnRole) -> list[str]:
        return [name for name, spec in self.columns.items() if spec.role == role]

    @property
    def numeric_columns(self) -> list[str]:
        return self.columns_with_role(ColumnRole.NUMERIC)

    @property
    def categorical_columns(self) -> list[str]:
        return self.columns_with_role(ColumnRole.CATEGORICAL)

    @property
    def feature_columns(self) -> list[str]:
        return [
            name
            for name, spec in self.columns.items()
            if spec.role in (ColumnRole.NUMERIC, ColumnRole.CATEGORICAL)
        ]


def canonical_category(value: object) -> str:
    """Category values as strings, with integral floats written as integers (``1.0`` -> ``"1"``)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def infer_schema(
    frame: pd.DataFrame,
    target: str,
    *,
    patient_id: str | None = None,
    exclude: Iterable[str] = (),
    categorical: Iterable[str] = (),
    numeric: Iterable[str] = (),
    missing_values: dict[str, list[float | str]] | None = None,
    subgroups: Sequence[SubgroupSpec] = (),
    positive_class: str | None = None,
) -> TableSchema:
    """Infer column roles from the data; explicit arguments override the guesses.

    Rules: text columns with a distinct value on almost every row are identifiers; other text
    columns are categorical; integer-coded columns with 3 to 5 distinct values are categorical
    (codes such as chest-pain type); everything else numeric is numeric. A zero in a positive
    measurement far below its other values is guessed to mean "missing".
    """
    exclude, categorical, numeric = set(exclude), set(categorical), set(numeric)
    missing_values = dict(missing_values or {})
    frame = replace_missing_values(frame, missing_values)
    named = {target, *exclude, *categorical, *numeric, *missing_values}
    named |= {s.column for s in subgroups} | ({patient_id} if patient_id else set())
    _require_columns(frame, sorted(named), where="the data")
    if categorical & numeric:
        raise SchemaError(
            f"columns listed as both categorical and numeric: {sorted(categorical & numeric)}"
        )

    columns: dict[str, ColumnSpec] = {}
    for name in frame.columns:
        series = frame[name]
        if name == target:
            role = ColumnRole.TARGET
        elif name == patient_id:
            role = ColumnRole.PATIENT_ID
        elif name in exclude:
            role = ColumnRole.IGNORE
        elif name in categorical:
            role = ColumnRole.CATEGORICAL
        elif name in numeric:
            role = ColumnRole.NUMERIC
        else:
            role = _guess_role(str(name), series)
        spec = ColumnSpec(role=role, missing_values=missing_values.get(name, []))
        if role == ColumnRole.NUMERIC and name not in missing_values:
            spec.missing_values = _guess_missing_sentinels(series)
        if role == ColumnRole.NUMERIC and not pd.api.types.is_numeric_dtype(series):
            bad_row = _first_non_numeric_row(series)
            raise SchemaError(
                f"column '{name}' is numeric but row {bad_row + 1} holds "
                f"{series.iloc[bad_row]!r}; fix the value, list it under missing_values, "
                "or declare the column categorical."
            )
        if role == ColumnRole.CATEGORICAL:
            spec.categories = sorted({canonical_category(v) for v in series.dropna()})
        columns[str(name)] = spec

    classes = sorted({canonical_category(v) for v in frame[target].dropna()})
    if len(classes) < 2:
        raise SchemaError(
            f"target '{target}' has a single class ({classes[0] if classes else 'none'}); "
            "a diagnostic model needs at least two."
        )
    if positive_class is not None and positive_class not in classes:
        raise SchemaError(
            f"positive class {positive_class!r} is not among target values {classes}."
        )
    if positive_class is None and len(classes) == 2:
        positive_class = classes[1]
    return TableSchema(
        target=target,
        columns=columns,
        classes=classes,
        positive_class=positive_class,
        patient_id=patient_id,
        subgroups=list(subgroups),
    )


def _guess_role(name: str, series: pd.Series) -> ColumnRole:
    values = series.dropna()
    n_unique = values.nunique()
    if pd.api.types.is_bool_dtype(series):
        return ColumnRole.NUMERIC
    if not pd.api.types.is_numeric_dtype(series):
        if len(values) >= 20 and n_unique >= 0.9 * len(values):
            return ColumnRole.IDENTIFIER
        if _share_numeric(values) >= 0.9:
            return ColumnRole.NUMERIC
        return ColumnRole.CATEGORICAL if n_unique <= MAX_TEXT_CATEGORIES else ColumnRole.IGNORE
    if _ID_NAME.search(name) and n_unique == len(values):
        return ColumnRole.IDENTIFIER
    integral = bool(np.all(np.mod(values.to_numpy(dtype=float), 1) == 0)) if len(values) else False
    if integral and 3 <= n_unique <= MAX_CODED_CATEGORIES:
        return ColumnRole.CATEGORICAL
    return ColumnRole.NUMERIC


def _share_numeric(values: pd.Series) -> float:
    if values.empty:
        return 0.0
    return float(pd.to_numeric(values, errors="coerce").notna().mean())


def _first_non_numeric_row(series: pd.Series) -> int:
    coerced = pd.to_numeric(series, errors="coerce")
    bad = coerced.isna() & series.notna()
    return int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0


def _guess_missing_sentinels(series: pd.Series) -> list[float | str]:
    """A zero in a positive-valued measurement whose other values sit far above it.

    For example a diastolic blood pressure of 0 among values of 40-120 is missing, not measured.
    """
    values = pd.to_numeric(series, errors="coerce").dropna()
    if values.empty or (values < 0).any():
        return []
    zeros = (values == 0).mean()
    nonzero = values[values != 0]
    if zeros == 0 or zeros > 0.5 or nonzero.nunique() < 10:
        return []
    if nonzero.min() > 0.2 * nonzero.median():
        return [0.0]
    return []


def replace_missing_values(
    frame: pd.DataFrame, missing_values: dict[str, list[float | str]]
) -> pd.DataFrame:
    """A copy of ``frame`` with each column's "missing" sentinels replaced by NaN."""
    frame = frame.copy()
    for name, sentinels in missing_values.items():
        if sentinels and name in frame.columns:
            column = frame[name]
            as_text = column.astype("string")
            is_sentinel = column.isin(sentinels) | as_text.isin([str(s) for s in sentinels])
            frame[name] = column.mask(is_sentinel.fillna(False).to_numpy())
            if not pd.api.types.is_numeric_dtype(frame[name]):
                converted = pd.to_numeric(frame[name], errors="coerce")
                if converted.notna().sum() == frame[name].notna().sum():
                    frame[name] = converted
    return frame


def _require_columns(frame: pd.DataFrame, names: Iterable[str], *, where: str) -> None:
    missing = [n for n in names if n not in frame.columns]
    if missing:
        available = ", ".join(map(str, frame.columns[:20]))
        raise SchemaError(
            f"column(s) {', '.join(map(repr, missing))} not found in {where}; "
            f"available: {available}{' ...' if frame.shape[1] > 20 else ''}."
        )


def validate_frame(
    frame: pd.DataFrame, schema: TableSchema, *, require_target: bool = False, where: str = "input"
) -> list[list[str]]:
    """Check every row against the schema before prediction.

    Returns, per row, the feature columns that are empty (the model will impute them). Raises
    :class:`SchemaError` naming the row (1-based data row, as a spreadsheet shows it below the
    header) and column for anything else: a missing column, text in a numeric column, an
    infinite value, a value outside the schema's range, or a category never seen in training.
    """
    required = schema.feature_columns + ([schema.target] if require_target else [])
    _require_columns(frame, required, where=where)
    frame = replace_missing_values(
        frame, {n: s.missing_values for n, s in schema.columns.items() if s.missing_values}
    )
    empty_per_row: list[list[str]] = [[] for _ in range(len(frame))]
    for name in schema.feature_columns:
        spec = schema.columns[name]
        series = frame[name]
        is_empty = series.isna().to_numpy()
        if spec.role == ColumnRole.NUMERIC:
            _check_numeric(series, name, spec, is_empty, where)
        else:
            _check_categorical(series, name, spec, is_empty, where)
        for row in np.flatnonzero(is_empty):
            empty_per_row[row].append(name)
    return empty_per_row


def _check_numeric(
    series: pd.Series, name: str, spec: ColumnSpec, is_empty: np.ndarray, where: str
) -> None:
    numbers = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    bad = np.isnan(numbers) & ~is_empty
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise SchemaError(
            f"{where}: row {row + 1}, column '{name}': {series.iloc[row]!r} is not a number."
        )
    infinite = np.isinf(numbers)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise SchemaError(f"{where}: row {row + 1}, column '{name}': infinite value.")
    low = spec.min if spec.min is not None else -np.inf
    high = spec.max if spec.max is not None else np.inf
    outside = (numbers < low) | (numbers > high)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise SchemaError(
            f"{where}: row {row + 1}, column '{name}': {numbers[row]:g} is outside the "
            f"plausible range [{spec.min}, {spec.max}] set in the schema."
        )


def _check_categorical(
    series: pd.Series, name: str, spec: ColumnSpec, is_empty: np.ndarray, where: str
) -> None:
    if spec.categories is None:
        return
    allowed = set(spec.categories)
    for row in np.flatnonzero(~is_empty):
        value = canonical_category(series.iloc[row])
        if value not in allowed:
            raise SchemaError(
                f"{where}: row {row + 1}, column '{name}': category {value!r} was not seen in "
                f"training; allowed: {', '.join(spec.categories)}."
            )
