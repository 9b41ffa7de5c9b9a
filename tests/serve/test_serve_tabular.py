"""Tabular prediction through the API: answer, storage, audit, schema errors, SHAP, batches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from medsight.data.synthetic import make_risk_table
from medsight.store.models import AuditEvent, Prediction

TASK = "heart-risk"


def _rows(n: int = 3) -> list[dict[str, object]]:
    frame = make_risk_table(n, seed=42).drop(columns=["disease", "patient_id"])
    return json.loads(frame.to_json(orient="records"))


@pytest.fixture
def service(make_service, tabular_bundle: Path):
    return make_service({TASK: tabular_bundle}, store_raw_inputs=True)


@pytest.mark.parametrize("group_commit", [True, False], ids=["group-commit", "one-each"])
def test_predict_row_is_answered_stored_and_audited(
    make_service, tabular_bundle: Path, group_commit: bool
) -> None:
    service = make_service({TASK: tabular_bundle}, store_raw_inputs=True, group_commit=group_commit)
    row = _rows(1)[0]
    reply = service.client.post(
        f"/v1/predict/{TASK}", json={"row": row}, headers=service.auth("alice")
    )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["label"] in ("yes", "no") and body["positive_class"] == "yes"
    assert 0.0 <= body["probability"] <= 1.0
    assert body["label"] == ("yes" if body["probability"] >= body["threshold"] else "no")
    assert body["probabilities"]["yes"] == pytest.approx(body["probability"], abs=1e-6)
    assert body["model"] == {
        "task": TASK,
        "version": 1,
        "name": "risk",
        "kind": "tabular-classification",
    }
    assert body["explanation"] is None and body["warnings"] == []
    with service.database.transaction() as session:
        stored = session.get(Prediction, body["prediction_id"])
        assert stored is not None
        assert (stored.task, stored.label, stored.model_version.version) == (TASK, body["label"], 1)
        assert json.loads(stored.raw_input) == row  # the JSON of the row, for retraining
        assert stored.output["classes"] == ["no", "yes"] and "age" not in json.dumps(stored.output)
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "prediction")).one()
        assert (event.actor, event.target_id) == ("alice", str(body["prediction_id"]))
        assert event.source == "testclient"


def test_schema_violation_is_422_naming_the_column(service) -> None:
    row = _rows(1)[0]
    missing = {k: v for k, v in row.items() if k != "cholesterol"}
    reply = service.client.post(
        f"/v1/predict/{TASK}", json={"row": missing}, headers=service.auth("alice")
    )
    assert reply.status_code == 422 and "cholesterol" in reply.json()["detail"]
    bad = {**row, "smoker": "sometimes"}
    reply = service.client.post(
        f"/v1/predict/{TASK}", json={"row": bad}, headers=service.auth("alice")
    )
    assert reply.status_code == 422 and "'smoker'" in reply.json()["detail"]
    text = {**row, "age": "old"}
    reply = service.client.post(
        f"/v1/predict/{TASK}", json={"row": text}, headers=service.auth("alice")
    )
    assert reply.status_code == 422 and "'age'" in reply.json()["detail"]
    reply = service.client.post(
        f"/v1/predict/{TASK}", json={"rows": [row]}, headers=service.auth("alice")
    )
    assert reply.status_code == 422  # wrong body shape, pydantic's detail
    reply = service.client.post(
        f"/v1/predict/{TASK}",
        content=b"age=3",
        headers={**service.auth("alice"), "content-type": "text/plain"},
    )
    assert reply.status_code == 415
    with service.database.transaction() as session:
        assert session.scalars(select(Prediction)).all() == []


def test_empty_cells_are_imputed_with_a_warning(service) -> None:
    row = {**_rows(1)[0], "cholesterol": None, "note": "x"}
    reply = service.client.post(
        f"/v1/predict/{TASK}", json={"row": row}, headers=service.auth("alice")
    )
    assert reply.status_code == 200, reply.text
    warnings = reply.json()["warnings"]
    assert any("cholesterol" in w for w in warnings) and any("note" in w for w in warnings)


def test_explain_returns_top_shap_features(service) -> None:
    row = _rows(1)[0]
    reply = service.client.post(
        f"/v1/predict/{TASK}?explain=true", json={"row": row}, headers=service.auth("alice")
    )
    assert reply.status_code == 200, reply.text
    explanation = reply.json()["explanation"]
    assert explanation["kind"] == "shap"
    features = explanation["top_features"]
    assert 1 <= len(features) <= service.settings.top_features
    assert {f["feature"] for f in features} <= set(row)
    shap_values = [abs(f["shap"]) for f in features]
    assert shap_values == sorted(shap_values, reverse=True)
    assert 0.0 <= explanation["base_probability"] <= 1.0


def test_batch_predicts_each_row_and_limits_the_count(
    service, make_service, tabular_bundle
) -> None:
    rows = _rows(3)
    reply = service.client.post(
        f"/v1/predict/{TASK}/batch", json={"rows": rows}, headers=service.auth("sci")
    )
    assert reply.status_code == 200, reply.text
    answers = reply.json()["predictions"]
    assert len(answers) == 3 and len({a["prediction_id"] for a in answers}) == 3
    single = service.client.post(
        f"/v1/predict/{TASK}", json={"row": rows[1]}, headers=service.auth("sci")
    )
    assert single.json()["probability"] == answers[1]["probability"]
    bad = [rows[0], {**rows[1], "age": "x"}]
    reply = service.client.post(
        f"/v1/predict/{TASK}/batch", json={"rows": bad}, headers=service.auth("sci")
    )
    assert reply.status_code == 422 and "row 2" in reply.json()["detail"]
    small = make_service({TASK: tabular_bundle}, max_batch_rows=2)
    reply = small.client.post(
        f"/v1/predict/{TASK}/batch", json={"rows": rows}, headers=small.auth("sci")
    )
    assert reply.status_code == 422 and "at most 2" in reply.json()["detail"]


def test_admin_may_not_predict_and_unknown_task_is_404(service) -> None:
    row = _rows(1)[0]
    reply = service.client.post(
        f"/v1/predict/{TASK}", json={"row": row}, headers=service.auth("admin")
    )
    assert reply.status_code == 403
    reply = service.client.post(
        "/v1/predict/no-such-task", json={"row": row}, headers=service.auth("alice")
    )
    assert reply.status_code == 404 and "no model in production" in reply.json()["detail"]
    reply = service.client.post(
        "/v1/predict/Bad Name", json={"row": row}, headers=service.auth("alice")
    )
    assert reply.status_code == 422
