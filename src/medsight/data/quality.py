"""Data-quality report for a table: what a careful analyst checks before training a model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from medsight.data.schema import ColumnRole, TableSchema, canonical_category, replace_missing_values

Severity = Literal["error", "warning", "info"]
LEAKAGE_AUROC = 0.98
EXTREME_IQR = 5.0


@dataclass(frozen=True)
class Finding:
    """One thing the report found, with how much it matters and what to do."""

    severity: Severity
    check: str
    message: str
    columns: list[str] = field(default_factory=list)


@dataclass
class QualityReport:
    """Everything ``medsight data check`` reports; ``findings`` is the short list to act on."""

    n_rows: int
    n_columns: int
    missing: dict[str, dict[str, float]]
    constant_columns: list[str]
    duplicate_columns: list[list[str]]
    duplicate_rows: int
    out_of_range: dict[str, int]
    extreme_values: dict[str, int]
    class_balance: dict[str, int]
    single_feature_auroc: dict[str, float]
    patient_overlap: list[str]
    findings: list[Finding]

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quality_report(
    frame: pd.DataFrame,
    schema: TableSchema | None = None,
    *,
    test_frame: pd.DataFrame | None = None,
) -> QualityReport:
    """Check ``frame`` (and, for patient overlap, ``test_frame``) and list what needs attention."""
    sentinels = {n: s.missing_values for n, s in (schema.columns.items() if schema else [])}
    clean = replace_missing_values(frame, {n: v for n, v in sentinels.items() if v})
    findings: list[Finding] = []

    def note(severity: Severity, check: str, message: str, *columns: str) -> None:
        findings.append(Finding(severity, check, message, list(columns)))

    missing = _missing(frame, clean)
    for name, stats in missing.items():
        if stats["fraction"] > 0.5:
            note("warning", "missing", f"'{name}' is {stats['fraction']:.0%} missing.", name)
        elif stats["sentinel"] > 0:
            count = int(stats["sentinel"])
            note("info", "missing", f"'{name}': {count} 'missing' codes, to be imputed.", name)

    constant = [str(c) for c in clean.columns if clean[c].nunique(dropna=True) <= 1]
    for name in constant:
        note("warning", "constant", f"'{name}' has a single value: no information.", name)

    duplicate_columns = _duplicate_columns(clean)
    for group in duplicate_columns:
        note("warning", "duplicate_columns", f"{', '.join(group)} hold identical values.", *group)

    ids = schema.columns_with_role(ColumnRole.IDENTIFIER) if schema else []
    duplicate_rows = int(clean.drop(columns=ids).duplicated().sum())
    if duplicate_rows:
        note(
            "warning",
            "duplicate_rows",
            f"{duplicate_rows} rows repeat an earlier row; repeats across folds inflate metrics.",
        )

    out_of_range = _out_of_range(clean, schema) if schema else {}
    for name, count in out_of_range.items():
        note("warning", "out_of_range", f"'{name}': {count} values outside its range.", name)
    extreme = _extreme_values(clean, schema)
    for name, count in extreme.items():
        message = f"'{name}': {count} values over {EXTREME_IQR:g} IQR beyond the quartiles."
        note("info", "extreme_values", message + " Check units and typos.", name)

    balance: dict[str, int] = {}
    leakage: dict[str, float] = {}
    if schema is not None:
        target = clean[schema.target].dropna().map(canonical_category)
        balance = {str(k): int(v) for k, v in target.value_counts().sort_index().items()}
        unlabelled = int(clean[schema.target].isna().sum())
        if unlabelled:
            note("warning", "target", f"{unlabelled} rows have no target value.", schema.target)
        if balance and min(balance.values()) / max(balance.values()) < 0.2:
            message = f"imbalanced classes {balance}: use class weights, read AUPRC."
            note("warning", "class_balance", message, schema.target)
        if len(balance) == 2:
            leakage = _single_feature_auroc(clean, schema)
            for name, auc in leakage.items():
                if auc >= LEAKAGE_AUROC:
                    message = (
                        f"'{name}' alone separates the classes (AUROC {auc:.3f}): is it known "
                        "before the diagnosis, and not derived from the outcome?"
                    )
                    note("warning", "leakage", message, name)

    overlap: list[str] = []
    if schema is not None and schema.patient_id and test_frame is not None:
        overlap = patient_overlap(frame[schema.patient_id], test_frame[schema.patient_id])
        if overlap:
            message = f"{len(overlap)} patients in both train and test (e.g. {overlap[0]})."
            note("error", "patient_overlap", message + " Split by patient.", schema.patient_id)

    return QualityReport(
        n_rows=len(frame),
        n_columns=frame.shape[1],
        missing=missing,
        constant_columns=constant,
        duplicate_columns=duplicate_columns,
        duplicate_rows=duplicate_rows,
        out_of_range=out_of_range,
        extreme_values=extreme,
        class_balance=balance,
        single_feature_auroc=leakage,
        patient_overlap=overlap,
        findings=findings,
    )


def patient_overlap(
    train_ids: pd.Series | np.ndarray, test_ids: pd.Series | np.ndarray
) -> list[str]:
    """Patient ids present in both sets (sorted, as strings)."""
    train = {canonical_category(v) for v in pd.Series(train_ids).dropna()}
    test = {canonical_category(v) for v in pd.Series(test_ids).dropna()}
    return sorted(train & test)


def _missing(raw: pd.DataFrame, clean: pd.DataFrame) -> dict[str, dict[str, float]]:
    result = {}
    for name in raw.columns:
        n_raw = int(raw[name].isna().sum())
        n_clean = int(clean[name].isna().sum())
        if n_clean:
            result[str(name)] = {
                "count": n_clean,
                "fraction": n_clean / len(raw),
                "sentinel": n_clean - n_raw,
            }
    return result


def _duplicate_columns(frame: pd.DataFrame) -> list[list[str]]:
    groups: dict[int, list[str]] = {}
    for name in frame.columns:
        key = int(pd.util.hash_pandas_object(frame[name], index=False).sum())
        groups.setdefault(key, []).append(str(name))
    return [
        names
        for names in groups.values()
        if len(names) > 1 and all(frame[names[0]].equals(frame[other]) for other in names[1:])
    ]


def _numeric_features(frame: pd.DataFrame, schema: TableSchema | None) -> list[str]:
    if schema is not None:
        return schema.numeric_columns
    return [str(c) for c in frame.select_dtypes("number").columns]


def _out_of_range(frame: pd.DataFrame, schema: TableSchema) -> dict[str, int]:
    counts = {}
    for name in schema.numeric_columns:
        spec = schema.columns[name]
        values = pd.to_numeric(frame[name], errors="coerce")
        low = spec.min if spec.min is not None else -np.inf
        high = spec.max if spec.max is not None else np.inf
        count = int(((values < low) | (values > high)).sum())
        if count:
            counts[name] = count
    return counts


def _extreme_values(frame: pd.DataFrame, schema: TableSchema | None) -> dict[str, int]:
    counts = {}
    for name in _numeric_features(frame, schema):
        values = pd.to_numeric(frame[name], errors="coerce").dropna()
        if values.nunique() < 10:
            continue
        q1, q3 = np.percentile(values, [25, 75])
        iqr = q3 - q1
        if iqr <= 0:
            continue
        count = int(((values < q1 - EXTREME_IQR * iqr) | (values > q3 + EXTREME_IQR * iqr)).sum())
        if count:
            counts[name] = count
    return counts


def _single_feature_auroc(frame: pd.DataFrame, schema: TableSchema) -> dict[str, float]:
    """AUROC of each feature on its own (direction-free: max(AUROC, 1 - AUROC)).

    Categorical features are scored by their per-category positive rate, only when they have few
    categories relative to rows, so that a near-unique code does not look predictive by chance.
    """
    labelled = frame[frame[schema.target].notna()]
    y = (labelled[schema.target].map(canonical_category) == schema.positive_class).to_numpy()
    scores = {}
    for name in schema.feature_columns:
        column = labelled[name]
        if schema.columns[name].role == ColumnRole.CATEGORICAL:
            if column.nunique() > len(column) / 5:
                continue
            values = column.map(canonical_category).map(
                pd.Series(y, index=column.index).groupby(column.map(canonical_category)).mean()
            )
        else:
            values = pd.to_numeric(column, errors="coerce")
        keep = values.notna().to_numpy()
        if keep.sum() < 10 or len(np.unique(y[keep])) < 2:
            continue
        auc = roc_auc_score(y[keep], values.to_numpy(dtype=float)[keep])
        scores[name] = round(float(max(auc, 1 - auc)), 4)
    return dict(sorted(scores.items(), key=lambda kv: -kv[1]))
