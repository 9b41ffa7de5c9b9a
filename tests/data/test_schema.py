from __future__ import annotations

import pandas as pd
import pytest

from medsight.data.schema import ColumnRole, ColumnSpec, infer_schema, validate_frame
from medsight.errors import SchemaError


def test_inferred_roles(risk_table: pd.DataFrame) -> None:
    schema = infer_schema(risk_table, "disease")
    roles = {name: spec.role for name, spec in schema.columns.items()}
    assert roles["patient_id"] == ColumnRole.IDENTIFIER
    assert roles["disease"] == ColumnRole.TARGET
    assert roles["sex"] == ColumnRole.CATEGORICAL
    assert roles["smoker"] == ColumnRole.CATEGORICAL
    assert roles["chest_pain"] == ColumnRole.CATEGORICAL  # integer codes 1-4
    assert roles["age"] == ColumnRole.NUMERIC
    assert schema.classes == ["no", "yes"]
    assert schema.positive_class == "yes"
    assert schema.columns["chest_pain"].categories == ["1", "2", "3", "4"]
    # a zero blood pressure among values around 135 is guessed to mean "not measured"
    assert schema.columns["systolic_bp"].missing_values == [0.0]
    assert schema.columns["cholesterol"].missing_values == []


def test_overrides_win(risk_table: pd.DataFrame) -> None:
    schema = infer_schema(
        risk_table,
        "disease",
        patient_id="patient_id",
        exclude=["cholesterol"],
        numeric=["chest_pain"],
    )
    assert schema.columns["patient_id"].role == ColumnRole.PATIENT_ID
    assert schema.columns["cholesterol"].role == ColumnRole.IGNORE
    assert schema.columns["chest_pain"].role == ColumnRole.NUMERIC
    assert "cholesterol" not in schema.feature_columns


def test_single_class_target_rejected(risk_table: pd.DataFrame) -> None:
    risk_table["disease"] = "yes"
    with pytest.raises(SchemaError, match="single class"):
        infer_schema(risk_table, "disease")


def test_missing_target_column_named(risk_table: pd.DataFrame) -> None:
    with pytest.raises(SchemaError, match="'outcome' not found"):
        infer_schema(risk_table, "outcome")


def test_text_in_numeric_column_named_with_row(risk_table: pd.DataFrame) -> None:
    frame = risk_table.astype({"age": object})
    frame.loc[7, "age"] = "sixty"
    with pytest.raises(SchemaError, match=r"'age' is numeric but row 8 holds 'sixty'"):
        infer_schema(frame, "disease")


@pytest.fixture
def schema(risk_table: pd.DataFrame):
    schema = infer_schema(risk_table, "disease", patient_id="patient_id")
    schema.columns["age"] = ColumnSpec(role=ColumnRole.NUMERIC, min=0, max=120)
    return schema


def test_validate_accepts_good_rows_and_reports_empty(risk_table: pd.DataFrame, schema) -> None:
    frame = risk_table.copy()
    frame.loc[2, "cholesterol"] = None
    empty = validate_frame(frame, schema)
    assert empty[2] == ["cholesterol"]
    # the 0 blood pressures are "missing" codes, reported as empty too
    zero_rows = frame.index[frame["systolic_bp"] == 0]
    assert all("systolic_bp" in empty[i] for i in zero_rows)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("age", "old", r"row 4, column 'age': 'old' is not a number"),
        ("age", 150, r"row 4, column 'age': 150 is outside"),
        ("age", float("inf"), r"row 4, column 'age': infinite"),
        ("smoker", "sometimes", r"row 4, column 'smoker': category 'sometimes' was not seen"),
    ],
)
def test_validate_rejects_bad_row(risk_table, schema, column, value, message) -> None:
    frame = risk_table.astype({column: object})
    frame.loc[3, column] = value
    with pytest.raises(SchemaError, match=message):
        validate_frame(frame, schema)


def test_validate_missing_column(risk_table, schema) -> None:
    with pytest.raises(SchemaError, match="'biomarker' not found in input"):
        validate_frame(risk_table.drop(columns="biomarker"), schema)
