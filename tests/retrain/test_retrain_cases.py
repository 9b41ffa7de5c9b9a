"""Feedback cases, stored inputs turned into table rows, and the held-out split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from medsight.data.schema import infer_schema
from medsight.data.synthetic import make_risk_table
from medsight.errors import DataError
from medsight.retrain.base import FeedbackCase
from medsight.retrain.cases import NO_RAW_INPUT, collect_cases
from medsight.retrain.holdout import holdout_split
from medsight.retrain.tabular import feedback_rows, parse_row, row_keys
from medsight.store.database import Database
from medsight.store.models import AuditEvent, User
from medsight.store.records import add_feedback, record_prediction

TASK = "tabular-classification"


def _predict(session, doc: User, *, task: str = TASK, raw: bytes | None = b'{"row": {}}') -> int:
    prediction = record_prediction(
        session,
        doc,
        task=task,
        input_bytes=raw or b"{}",
        label="no",
        store_raw=raw is not None,
        source="t",
    )
    return prediction.id


def test_latest_verdict_per_prediction_wins_and_missing_inputs_are_unusable(
    db: Database,
) -> None:
    with db.transaction() as session:
        doc = session.scalar(select(User).where(User.username == "doc"))
        sci = session.scalar(select(User).where(User.username == "sci"))
        twice = _predict(session, doc, raw=b'{"row": {"age": 50}}')
        add_feedback(session, doc, twice, verdict="confirmed", source="t")
        add_feedback(session, doc, twice, verdict="corrected", label="yes", source="t")
        hidden = _predict(session, doc, raw=None)
        add_feedback(session, doc, hidden, verdict="confirmed", source="t")
        other = _predict(session, doc, task="image-classification")
        add_feedback(session, doc, other, verdict="confirmed", source="t")
        _predict(session, doc)  # a prediction without any feedback is not a case

        cases = collect_cases(session, sci, TASK, source="t")

        assert [(c.prediction_id, c.verdict, c.label) for c in cases.usable] == [
            (twice, "corrected", "yes")
        ]
        assert cases.usable[0].raw_input == b'{"row": {"age": 50}}'
        assert [(u.prediction_id, u.reason) for u in cases.unusable] == [(hidden, NO_RAW_INPUT)]
        assert (cases.feedback_rows, cases.superseded, cases.predictions) == (3, 1, 2)
        # reading feedback went through the store: audited as a view by the data scientist
        views = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "view", AuditEvent.actor == "sci")
        ).all()
        assert views and views[-1].target_type == "feedback"


def test_more_feedback_than_one_page_is_all_collected(db: Database) -> None:
    with db.transaction() as session:
        doc = session.scalar(select(User).where(User.username == "doc"))
        sci = session.scalar(select(User).where(User.username == "sci"))
        for _ in range(205):
            add_feedback(session, doc, _predict(session, doc), verdict="confirmed", source="t")
        cases = collect_cases(session, sci, TASK, source="t")
    assert len(cases.usable) == 205 and len({c.prediction_id for c in cases.usable}) == 205


@pytest.mark.parametrize(
    "raw",
    [
        b'{"row": {"age": 61, "sex": "male"}}',
        b'{"age": 61, "sex": "male"}',
        b'{"rows": [{"age": 61, "sex": "male"}]}',
        b'[{"age": 61, "sex": "male"}]',
    ],
)
def test_stored_inputs_in_every_shape_give_the_row(raw: bytes) -> None:
    assert parse_row(raw) == {"age": 61, "sex": "male"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x89PNG...", "not JSON"),
        (b'{"rows": [{"age": 1}, {"age": 2}]}', "holds 2 rows"),
        (b'"text"', "not a table row"),
    ],
)
def test_stored_inputs_that_are_not_one_row_are_refused(raw: bytes, message: str) -> None:
    with pytest.raises(DataError, match=message):
        parse_row(raw)


def test_feedback_rows_keep_valid_cases_and_say_why_others_are_unusable() -> None:
    table = make_risk_table(120, seed=3)
    schema = infer_schema(table, "disease", patient_id="patient_id")
    rows = json.loads(
        table.drop(columns=["patient_id", "disease"]).head(4).to_json(orient="records")
    )
    rows[1]["chest_pain"] = 9  # a category the model never saw
    del rows[2]["age"]  # a missing column
    rows[3]["systolic_bp"] = None  # empty cells are allowed (imputed)

    def case(i: int, row: dict, label: str = "yes") -> FeedbackCase:
        raw = json.dumps({"row": row}).encode()
        return FeedbackCase(i, 100 + i, "corrected", label, raw)

    cases = [case(i, row) for i, row in enumerate(rows)] + [case(9, rows[0], label="maybe")]
    frame, used, unusable = feedback_rows(cases, schema)

    assert [c.prediction_id for c in used] == [0, 3]
    assert list(frame.columns) == schema.feature_columns and len(frame) == 2
    assert np.isnan(frame.loc[1, "systolic_bp"])
    reasons = {u.prediction_id: u.reason for u in unusable}
    assert "chest_pain" in reasons[1] and "not seen in training" in reasons[1]
    assert "age" in reasons[2]
    assert "'maybe' is not one of the classes" in reasons[9]


def test_row_keys_match_equal_rows_whatever_their_dtypes() -> None:
    table = pd.DataFrame({"a": [58.0, 61.5], "b": ["male", None], "c": [4, 2]})
    from_json = pd.DataFrame({"a": [58, 61.5], "b": ["male", np.nan], "c": [4.0, 3]})
    keys = row_keys(table, ["a", "b", "c"])
    assert list(row_keys(from_json, ["a", "b", "c"]).isin(set(keys))) == [True, False]


def test_holdout_split_is_stratified_fixed_and_keeps_patients_apart() -> None:
    y = np.array([1] * 40 + [0] * 60)
    train, held = holdout_split(y, None, fraction=0.3, seed=0)
    assert len(held) == 30 and y[held].sum() == 12 and not set(train) & set(held)
    again = holdout_split(y, None, fraction=0.3, seed=0)[1]
    assert np.array_equal(held, again)

    patients = np.repeat(np.arange(50), 2)  # two rows per patient
    train, held = holdout_split(y, patients, fraction=0.3, seed=0)
    assert not set(patients[train]) & set(patients[held])
    assert 0.2 <= len(held) / len(y) <= 0.45

    with pytest.raises(DataError, match="--holdout"):
        holdout_split(np.array([1, 1, 1, 0, 0, 0, 0, 0]), None, fraction=0.3, seed=0)
