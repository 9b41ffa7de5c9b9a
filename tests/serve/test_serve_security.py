"""Who may do what: tokens, roles, ownership, feedback, login, probes and the OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from serve_helpers import PASSWORD
from sqlalchemy import select

from medsight.data.synthetic import make_risk_table
from medsight.store.models import AuditEvent, Feedback, ModelVersion, Stage

TASK = "risk"


@pytest.fixture
def service(make_service, tabular_bundle: Path):
    return make_service({TASK: tabular_bundle})


def _predict(service, user: str) -> int:
    frame = make_risk_table(1, seed=5).drop(columns=["disease", "patient_id"])
    row = json.loads(frame.to_json(orient="records"))[0]
    reply = service.client.post(
        f"/v1/predict/{TASK}", json={"row": row}, headers=service.auth(user)
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["prediction_id"]


def _events(service, action: str) -> list[AuditEvent]:
    with service.database.transaction() as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(session.scalars(query))


def test_no_token_or_bad_token_is_401(service) -> None:
    for method, path in (
        ("post", f"/v1/predict/{TASK}"),
        ("post", f"/v1/predict/{TASK}/batch"),
        ("get", "/v1/predictions"),
        ("get", "/v1/predictions/1"),
        ("get", "/v1/models"),
        ("post", f"/v1/models/{TASK}/rollback"),
    ):
        for headers in (
            {},
            {"Authorization": "Bearer msk_not-a-token"},
            {"Authorization": "Basic x"},
        ):
            reply = service.client.request(method, path, headers=headers, json={"row": {}})
            assert reply.status_code == 401, (method, path, headers, reply.text)
            assert reply.headers["www-authenticate"] == "Bearer"


def test_clinician_may_not_promote_or_roll_back(service) -> None:
    reply = service.client.post(
        f"/v1/models/{TASK}/promote", json={"version": 1}, headers=service.auth("alice")
    )
    assert reply.status_code == 403
    reply = service.client.post(f"/v1/models/{TASK}/rollback", headers=service.auth("alice"))
    assert reply.status_code == 403
    models = service.client.get("/v1/models", headers=service.auth("alice"))
    assert models.status_code == 200
    assert [(m["task"], m["version"], m["stage"]) for m in models.json()["models"]] == [
        (TASK, 1, "production")
    ]
    reply = service.client.post(
        f"/v1/models/{TASK}/promote", json={"version": 1}, headers=service.auth("sci")
    )
    assert reply.status_code == 409  # already in production
    reply = service.client.post(
        f"/v1/models/{TASK}/promote", json={"version": 7}, headers=service.auth("sci")
    )
    assert reply.status_code == 404
    with service.database.transaction() as session:
        assert session.scalars(select(ModelVersion.stage)).all() == [Stage.PRODUCTION]


def test_clinician_cannot_read_another_clinicians_case(service) -> None:
    mine = _predict(service, "alice")
    theirs = _predict(service, "bob")
    assert (
        service.client.get(f"/v1/predictions/{mine}", headers=service.auth("alice")).status_code
        == 200
    )
    reply = service.client.get(f"/v1/predictions/{theirs}", headers=service.auth("alice"))
    assert reply.status_code == 403
    listed = service.client.get("/v1/predictions", headers=service.auth("alice")).json()
    assert [p["id"] for p in listed["predictions"]] == [mine]
    everyone = service.client.get("/v1/predictions", headers=service.auth("sci")).json()
    assert {p["id"] for p in everyone["predictions"]} == {mine, theirs}
    assert service.client.get("/v1/predictions/999", headers=service.auth("sci")).status_code == 404
    views = _events(service, "view")
    single = [(e.actor, e.target_id) for e in views if e.target_id]  # lists have no target id
    assert single == [("alice", str(mine))]  # the refused and missing ones wrote nothing
    assert [e.actor for e in views if not e.target_id] == ["alice", "sci"]


def test_feedback_is_stored_once_and_audited(service) -> None:
    case = _predict(service, "alice")
    reply = service.client.post(
        f"/v1/predictions/{case}/feedback",
        json={"verdict": "corrected", "label": "other", "comment": "biopsy"},
        headers=service.auth("alice"),
    )
    assert reply.status_code == 422 and "not one of the model's classes" in reply.json()["detail"]
    record = service.client.get(f"/v1/predictions/{case}", headers=service.auth("alice")).json()
    other = "no" if record["label"] == "yes" else "yes"
    reply = service.client.post(
        f"/v1/predictions/{case}/feedback",
        json={"verdict": "corrected", "label": other, "comment": "biopsy"},
        headers=service.auth("alice"),
    )
    assert reply.status_code == 201, reply.text
    assert (reply.json()["verdict"], reply.json()["label"]) == ("corrected", other)
    reply = service.client.post(
        f"/v1/predictions/{case}/feedback",
        json={"verdict": "confirmed"},
        headers=service.auth("bob"),
    )
    assert reply.status_code == 403
    with service.database.transaction() as session:
        rows = session.scalars(select(Feedback)).all()
        assert [(f.prediction_id, f.label, f.comment) for f in rows] == [(case, other, "biopsy")]
    events = _events(service, "feedback")
    assert [(e.actor, e.target_id, e.detail["verdict"]) for e in events] == [
        ("alice", str(case), "corrected")
    ]
    record = service.client.get(f"/v1/predictions/{case}", headers=service.auth("alice")).json()
    assert [f["label"] for f in record["feedback"]] == [other]


def test_login_issues_a_token_and_failures_are_audited(service) -> None:
    reply = service.client.post(
        "/v1/auth/token", json={"username": "alice", "password": "wrong password!"}
    )
    assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer"
    reply = service.client.post("/v1/auth/token", json={"username": "alice", "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    token = reply.json()["token"]
    assert reply.json()["role"] == "clinician" and token.startswith("msk_")
    listed = service.client.get("/v1/predictions", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200
    assert [(e.actor, e.detail["reason"]) for e in _events(service, "login_failed")] == [
        ("alice", "wrong password")
    ]
    assert [e.actor for e in _events(service, "login")] == ["alice"]
    assert all(e.source == "testclient" for e in _events(service, "login"))


def test_health_ready_and_openapi(service, make_service) -> None:
    assert service.client.get("/v1/health").json()["status"] == "ok"
    ready = service.client.get("/v1/ready")
    assert ready.status_code == 200 and ready.json()["production"] == {TASK: 1}
    empty = make_service()
    assert empty.client.get("/v1/ready").json() == {
        "status": "ready",
        "database": "ok",
        "production": {},
    }
    empty.database.engine.dispose()
    spec = service.client.get("/openapi.json").json()
    assert {"/v1/predict/{task}", "/v1/predict/{task}/batch", "/v1/models/{task}/promote"} <= set(
        spec["paths"]
    )
    body = spec["paths"]["/v1/predict/{task}"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(body)
    assert "ApiToken" in spec["components"]["securitySchemes"]
