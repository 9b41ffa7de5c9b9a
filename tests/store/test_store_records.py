"""Predictions keep a fingerprint (raw input only when configured); feedback is validated."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from medsight.store.database import Database
from medsight.store.errors import StoreError
from medsight.store.models import Prediction, Verdict
from medsight.store.permissions import Role
from medsight.store.records import add_feedback, record_prediction
from medsight.store.testing import BACKENDS, add_user, fresh_database

OUTPUT = {"classes": ["benign", "malignant"], "probabilities": [0.8, 0.2]}


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with fresh_database(request.param, tmp_path) as database:
        yield database


def test_prediction_stores_fingerprint_not_input(db: Database) -> None:
    data = b"\x89PNG fake image bytes"
    with db.transaction() as session:
        doctor = add_user(session, "doc", Role.CLINICIAN)
        kept = record_prediction(
            session,
            doctor,
            task="image-classification",
            input_bytes=data,
            label="benign",
            probability=0.2,
            output=OUTPUT,
            input_type="image/png",
            source="h",
        )
        raw = record_prediction(
            session, doctor, task="t", input_bytes=data, label="benign", store_raw=True, source="h"
        )
    with db.transaction() as session:
        first, second = session.get(Prediction, kept.id), session.get(Prediction, raw.id)
        assert first.input_sha256 == hashlib.sha256(data).hexdigest()
        assert (first.raw_input, first.input_size, first.output) == (None, len(data), OUTPUT)
        assert second.raw_input == data
        assert first.created_at.tzinfo is not None


def test_feedback_confirm_and_correct(db: Database) -> None:
    with db.transaction() as session:
        doctor = add_user(session, "doc", Role.CLINICIAN)
        p = record_prediction(
            session, doctor, task="t", input_bytes=b"x", label="benign", output=OUTPUT, source="h"
        )
        confirmed = add_feedback(session, doctor, p.id, verdict="confirmed", source="h")
        assert (confirmed.verdict, confirmed.label) == (Verdict.CONFIRMED, "benign")
        corrected = add_feedback(
            session,
            doctor,
            p.id,
            verdict=Verdict.CORRECTED,
            label="malignant",
            comment=" margin irregular ",
            source="h",
        )
        assert (corrected.label, corrected.comment) == ("malignant", "margin irregular")
        assert [f.id for f in p.feedback] == [confirmed.id, corrected.id]

        bad = [
            ({"verdict": "maybe"}, "verdict"),
            ({"verdict": "confirmed", "label": "malignant"}, "send verdict 'corrected'"),
            ({"verdict": "corrected"}, "needs the correct label"),
            ({"verdict": "corrected", "label": "benign"}, "equals the prediction"),
            ({"verdict": "corrected", "label": "cyst"}, "not one of the model's classes"),
            ({"verdict": "confirmed", "comment": "x" * 3000}, "comment"),
        ]
        for kwargs, message in bad:
            with pytest.raises(StoreError, match=message):
                add_feedback(session, doctor, p.id, source="h", **kwargs)


FINDINGS = ["effusion", "mass", "nodule"]


@pytest.mark.parametrize(
    "output",
    [
        {
            "classes": FINDINGS,
            "multi_label": True,
            "finding_thresholds": dict.fromkeys(FINDINGS, 0.5),
        },
        # rows stored before the flag: per-finding thresholds mark them
        {"classes": FINDINGS, "finding_thresholds": dict.fromkeys(FINDINGS, 0.5)},
    ],
)
def test_multi_label_feedback_names_a_set_of_findings(db: Database, output: dict) -> None:
    with db.transaction() as session:
        doctor = add_user(session, "doc", Role.CLINICIAN)
        p = record_prediction(
            session, doctor, task="t", input_bytes=b"x", label="mass", output=output, source="h"
        )
        both = add_feedback(
            session, doctor, p.id, verdict="corrected", label=" Nodule | effusion ", source="h"
        )
        assert both.label == "effusion|nodule"  # the model's order and spelling
        nothing = add_feedback(session, doctor, p.id, verdict="corrected", label="NONE", source="h")
        assert nothing.label == "none"
        same = add_feedback(session, doctor, p.id, verdict="confirmed", label="MASS", source="h")
        assert (same.verdict, same.label) == (Verdict.CONFIRMED, "mass")

        bad = [
            ({"verdict": "corrected", "label": "mass"}, "equals the prediction"),
            ({"verdict": "corrected", "label": "Mass"}, "equals the prediction"),
            ({"verdict": "corrected", "label": "mass|cyst"}, "'cyst' is not one of the findings"),
            ({"verdict": "corrected", "label": "mass|MASS"}, "named twice"),
            ({"verdict": "corrected", "label": "none|mass"}, "'none' is not one of the findings"),
            ({"verdict": "confirmed", "label": "nodule"}, "send verdict 'corrected'"),
        ]
        for kwargs, message in bad:
            with pytest.raises(StoreError, match=message):
                add_feedback(session, doctor, p.id, source="h", **kwargs)
        assert [f.label for f in p.feedback] == ["effusion|nodule", "none", "mass"]
