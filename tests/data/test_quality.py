from __future__ import annotations

import numpy as np
import pandas as pd

from medsight.data.quality import patient_overlap, quality_report
from medsight.data.schema import ColumnRole, ColumnSpec, infer_schema


def _checks(report) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for finding in report.findings:
        found.setdefault(finding.check, []).extend(finding.columns)
    return found


def test_quality_report_finds_planted_problems(risk_table: pd.DataFrame) -> None:
    frame = risk_table.copy()
    frame["site"] = "A"  # constant
    frame["age_copy"] = frame["age"]  # duplicate column
    frame["leak"] = (frame["disease"] == "yes").astype(float) + np.random.default_rng(0).normal(
        0, 0.01, len(frame)
    )
    frame.loc[5:40, "cholesterol"] = None
    frame.loc[0:99, "biomarker"] = None  # >50% missing
    frame = pd.concat([frame, frame.iloc[[3, 4]]], ignore_index=True)  # duplicate rows
    schema = infer_schema(frame, "disease", patient_id="patient_id")
    schema.columns["age"] = ColumnSpec(role=ColumnRole.NUMERIC, min=30, max=80)

    report = quality_report(frame, schema)
    checks = _checks(report)
    assert "site" in report.constant_columns
    assert ["age", "age_copy"] in report.duplicate_columns
    assert report.duplicate_rows == 2
    assert report.missing["cholesterol"]["count"] == 36
    assert "biomarker" in checks["missing"]
    assert report.out_of_range["age"] == int(((frame["age"] < 30) | (frame["age"] > 80)).sum())
    assert report.out_of_range["age"] > 0
    assert "leak" in checks["leakage"]
    assert "age" not in checks["leakage"]
    assert sum(report.class_balance.values()) == len(frame)
    assert report.missing["systolic_bp"]["sentinel"] == int((frame["systolic_bp"] == 0).sum())


def test_patient_overlap(risk_table: pd.DataFrame) -> None:
    train, test = risk_table.iloc[:100], risk_table.iloc[95:]
    assert patient_overlap(train["patient_id"], test["patient_id"]) == [
        f"P{i:04d}" for i in range(95, 100)
    ]
    schema = infer_schema(risk_table, "disease", patient_id="patient_id")
    report = quality_report(train, schema, test_frame=test)
    assert [f.check for f in report.errors] == ["patient_overlap"]


def test_clean_table_reports_nothing_serious(risk_table: pd.DataFrame) -> None:
    schema = infer_schema(risk_table, "disease", patient_id="patient_id")
    report = quality_report(risk_table, schema)
    assert report.errors == []
    assert report.duplicate_rows == 0
