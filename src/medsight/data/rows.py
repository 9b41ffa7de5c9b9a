"""Schema checks for one row given as a dict: the service's fast path.

:func:`medsight.data.schema.validate_frame` checks a whole table with pandas; for a single row
(one request to the service) building and scanning a DataFrame column by column costs more than
the model. :class:`RowValidator` compiles the schema once and checks one dict with plain Python,
with the same rules and the same error messages as ``validate_frame`` on
``pd.DataFrame.from_records([row])`` (tests compare the two on many rows, every violation
included). The checks are hand-written because no library applies this schema's rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from medsight.data.schema import ColumnRole, TableSchema, canonical_category
from medsight.errors import SchemaError

_MAX_LISTED = 20


@dataclass(frozen=True)
class _Column:
    name: str
    numeric: bool
    sentinels: tuple[float | str, ...]
    sentinel_texts: frozenset[str]
    low: float
    high: float
    spec_min: float | None
    spec_max: float | None
    categories: frozenset[str] | None
    listed: str


class RowValidator:
    """The schema's feature checks compiled for one row at a time."""

    def __init__(self, schema: TableSchema) -> None:
        self.schema = schema
        self.columns: list[_Column] = []
        for name in schema.feature_columns:
            spec = schema.columns[name]
            self.columns.append(
                _Column(
                    name=name,
                    numeric=spec.role == ColumnRole.NUMERIC,
                    sentinels=tuple(spec.missing_values),
                    sentinel_texts=frozenset(str(s) for s in spec.missing_values),
                    low=spec.min if spec.min is not None else -math.inf,
                    high=spec.max if spec.max is not None else math.inf,
                    spec_min=spec.min,
                    spec_max=spec.max,
                    categories=frozenset(spec.categories) if spec.categories is not None else None,
                    listed=", ".join(spec.categories or []),
                )
            )

    def validate(self, row: dict[str, Any], *, where: str = "row") -> list[str]:
        """The feature columns of ``row`` that are empty (to be imputed); a :class:`SchemaError`
        naming row 1 and the column for anything else, exactly as ``validate_frame`` words it."""
        missing = [c.name for c in self.columns if c.name not in row]
        if missing:
            names = list(row)
            available = ", ".join(map(str, names[:_MAX_LISTED]))
            raise SchemaError(
                f"column(s) {', '.join(map(repr, missing))} not found in {where}; "
                f"available: {available}{' ...' if len(names) > _MAX_LISTED else ''}."
            )
        empty = []
        for column in self.columns:
            value = _without_sentinel(row[column.name], column)
            if _is_empty(value):
                empty.append(column.name)
            elif column.numeric:
                _check_number(value, column, where)
            elif column.categories is not None:
                category = canonical_category(value)
                if category not in column.categories:
                    raise SchemaError(
                        f"{where}: row 1, column '{column.name}': category {category!r} was not "
                        f"seen in training; allowed: {column.listed}."
                    )
        return empty


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _without_sentinel(value: Any, column: _Column) -> Any:
    """``replace_missing_values`` for one cell: a missing code becomes ``None``; text in a column
    with missing codes becomes a number when it parses as one (as pandas converts it)."""
    if not column.sentinels or _is_empty(value):
        return value
    if str(value) in column.sentinel_texts or any(value == s for s in column.sentinels):
        return None
    if isinstance(value, str):
        parsed = _parse_number(value)
        if parsed is not None and not math.isnan(parsed):
            return parsed
    return value


def _parse_number(text: str) -> float | int | None:
    """The number pandas reads from ``text`` (``pd.to_numeric``, so the rules are pandas'), or
    ``None``."""
    parsed = pd.to_numeric([text], errors="coerce")[0]
    if isinstance(parsed, np.integer):
        return int(parsed)
    return float(parsed)


def _check_number(value: Any, column: _Column, where: str) -> None:
    if isinstance(value, bool | int | float):
        number = float(value)
    else:
        parsed = _parse_number(str(value)) if isinstance(value, str) else None
        if parsed is None or math.isnan(parsed):
            raise SchemaError(f"{where}: row 1, column '{column.name}': {value!r} is not a number.")
        number = float(parsed)
    if math.isinf(number):
        raise SchemaError(f"{where}: row 1, column '{column.name}': infinite value.")
    if number < column.low or number > column.high:
        raise SchemaError(
            f"{where}: row 1, column '{column.name}': {number:g} is outside the "
            f"plausible range [{column.spec_min}, {column.spec_max}] set in the schema."
        )
