"""The clinician web page through TestClient (no browser): sign-in, CSRF, forms, cases, sign-out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serve_helpers import PASSWORD, ecg_signal, png_bytes, write_untrained_image_bundle
from sqlalchemy import select

from medsight.data.synthetic import make_risk_table
from medsight.serve.sessions import CSRF_FIELD, SESSION_COOKIE
from medsight.store.models import ApiToken, AuditEvent, Feedback, Prediction

TABULAR, IMAGE, ECG = "heart-risk", "breast-us", "rhythm"
_CSRF = re.compile(rf'name="{CSRF_FIELD}" value="([^"]+)"')


def _csrf(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def _client(service, user: str | None = None) -> TestClient:
    """A browser of its own on the service's app; signed in as ``user`` through a session
    cookie holding that user's API token (a web session is an API token)."""
    client = TestClient(service.client.app)
    if user is not None:
        client.cookies.set(SESSION_COOKIE, service.tokens[user])
    return client


def _sign_in(client: TestClient, username: str, password: str = PASSWORD):
    page = client.get("/login")
    assert page.status_code == 200
    form = {"username": username, "password": password, CSRF_FIELD: _csrf(page.text)}
    return client.post("/login", data=form, follow_redirects=False)


def _row_form(seed: int = 42) -> dict[str, str]:
    row = make_risk_table(1, seed=seed).drop(columns=["disease", "patient_id"]).iloc[0]
    return {f"col:{name}": str(value) for name, value in row.items()}


def _audit(service, action: str) -> list[AuditEvent]:
    with service.database.transaction() as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        rows = session.scalars(query).all()
        session.expunge_all()
        return list(rows)


@pytest.fixture
def service(make_service, tabular_bundle: Path):
    return make_service({TABULAR: tabular_bundle})


def test_sign_in_failure_and_success(service) -> None:
    client = _client(service)
    assert client.get("/", follow_redirects=False).headers["location"] == "/login"
    wrong = _sign_in(client, "alice", "not the password")
    assert wrong.status_code == 401
    assert "Wrong username or password." in wrong.text
    assert SESSION_COOKIE not in wrong.cookies
    assert [e.actor for e in _audit(service, "login_failed")] == ["alice"]

    right = _sign_in(client, "alice")
    assert right.status_code == 303 and right.headers["location"] == "/cases/new"
    cookie = next(h for h in right.headers.get_list("set-cookie") if SESSION_COOKIE in h)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    with service.database.transaction() as session:
        token = session.scalars(select(ApiToken).where(ApiToken.name == "web session")).one()
        assert token.expires_at is not None and token.revoked_at is None
    assert client.get("/", follow_redirects=False).headers["location"] == "/cases/new"
    page = client.get("/cases/new")
    assert page.status_code == 200 and "alice" in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_pages_need_a_session(service) -> None:
    client = _client(service)
    for path in ("/cases/new", "/cases", "/cases/1"):
        reply = client.get(path, follow_redirects=False)
        assert reply.status_code == 303 and reply.headers["location"] == "/login", path
    client.cookies.set(SESSION_COOKIE, "msk_not-a-real-token")
    assert client.get("/cases", follow_redirects=False).headers["location"] == "/login"


def test_forms_without_csrf_token_are_refused(service) -> None:
    login = _client(service)
    login.get("/login")
    refused = login.post("/login", data={"username": "alice", "password": PASSWORD})
    assert refused.status_code == 403 and SESSION_COOKIE not in refused.cookies

    alice = _client(service, "alice")
    form = {"task": TABULAR, **_row_form()}
    assert alice.post("/cases/new", data=form).status_code == 403
    forged = {**form, CSRF_FIELD: "0" * 64}
    assert alice.post("/cases/new", data=forged).status_code == 403
    with service.database.transaction() as session:
        assert session.scalars(select(Prediction)).all() == []

    token = _csrf(alice.get("/cases/new").text)
    made = alice.post("/cases/new", data={**form, CSRF_FIELD: token}, follow_redirects=False)
    assert made.status_code == 303
    case = made.headers["location"]
    feedback = {"verdict": "confirmed", "comment": "looks right"}
    assert alice.post(f"{case}/feedback", data=feedback).status_code == 403
    assert alice.post("/logout", data={}).status_code == 403
    with service.database.transaction() as session:
        assert session.scalars(select(Feedback)).all() == []


def test_tabular_case_result_feedback_and_history(service) -> None:
    alice = _client(service, "alice")
    page = alice.get("/cases/new")
    for column in ("age", "sex", "systolic_bp", "cholesterol", "chest_pain", "smoker"):
        assert f'name="col:{column}"' in page.text
    assert '<option value="female"' in page.text  # categorical columns are choices
    form = {"task": TABULAR, "explain": "on", CSRF_FIELD: _csrf(page.text), **_row_form()}
    made = alice.post("/cases/new", data=form, follow_redirects=False)
    assert made.status_code == 303, made.text
    prediction_id = int(made.headers["location"].rsplit("/", 1)[1])
    with service.database.transaction() as session:
        stored = session.get(Prediction, prediction_id)
        assert stored is not None
        label, probability = stored.label, stored.probability
        threshold = stored.output["threshold"]

    result = alice.get(f"/cases/{prediction_id}")
    assert result.status_code == 200
    assert f"{probability * 100:.1f}%" in result.text and f"{threshold * 100:.1f}%" in result.text
    assert 'class="shap"' in result.text and "Points" in result.text
    assert "risk, version 1" in result.text

    other = "no" if label == "yes" else "yes"
    answer = {
        CSRF_FIELD: _csrf(result.text),
        "verdict": "corrected",
        "label": other,
        "comment": "echo says otherwise",
    }
    done = alice.post(f"/cases/{prediction_id}/feedback", data=answer, follow_redirects=False)
    assert done.status_code == 303
    with service.database.transaction() as session:
        row = session.scalars(select(Feedback)).one()
        assert (str(row.verdict), row.label, row.comment) == (
            "corrected",
            other,
            "echo says otherwise",
        )
    assert re.search(rf"Corrected to\s+“{other}”", alice.get(f"/cases/{prediction_id}").text)

    history = alice.get("/cases")
    assert (
        f'href="/cases/{prediction_id}"' in history.text and f"corrected: {other}" in history.text
    )
    assert "Clinician" not in history.text  # a clinician's list has no owner column
    science = _client(service, "sci").get("/cases")
    assert "All cases" in science.text and "<td>alice</td>" in science.text


def test_schema_error_is_shown_on_the_form(service) -> None:
    alice = _client(service, "alice")
    token = _csrf(alice.get("/cases/new").text)
    form = {"task": TABULAR, CSRF_FIELD: token, **_row_form(), "col:age": "sixty"}
    reply = alice.post("/cases/new", data=form)
    assert reply.status_code == 422
    assert "Column &#39;age&#39;: &#39;sixty&#39; is not a number." in reply.text
    assert 'value="sixty"' in reply.text  # the entered values are kept


def test_feedback_error_is_shown(service) -> None:
    alice = _client(service, "alice")
    token = _csrf(alice.get("/cases/new").text)
    made = alice.post("/cases/new", data={"task": TABULAR, CSRF_FIELD: token, **_row_form()})
    bad = {CSRF_FIELD: token, "verdict": "corrected", "label": "maybe", "comment": ""}
    reply = alice.post(f"{made.url.path}/feedback", data=bad)
    assert reply.status_code == 422 and "not one of the model" in reply.text


def test_another_clinicians_case_is_not_found(service) -> None:
    alice = _client(service, "alice")
    token = _csrf(alice.get("/cases/new").text)
    made = alice.post("/cases/new", data={"task": TABULAR, CSRF_FIELD: token, **_row_form()})
    case = made.url.path
    bob = _client(service, "bob")
    page = bob.get(case)
    assert page.status_code == 404 and "Not found" in page.text
    assert "risk" not in page.text
    answer = {CSRF_FIELD: _csrf(bob.get("/cases").text), "verdict": "confirmed"}
    assert bob.post(f"{case}/feedback", data=answer).status_code == 404
    assert bob.get("/cases/999999").status_code == 404
    assert bob.get(f"/cases/{2**40}").status_code == 404
    assert case not in bob.get("/cases").text
    with service.database.transaction() as session:
        assert session.scalars(select(Feedback)).all() == []


def test_sign_out_revokes_the_session(service) -> None:
    client = _client(service)
    assert _sign_in(client, "alice").status_code == 303
    token = _csrf(client.get("/cases/new").text)
    plain = client.cookies.get(SESSION_COOKIE)
    assert plain
    out = client.post("/logout", data={CSRF_FIELD: token}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    with service.database.transaction() as session:
        session_token = session.scalars(select(ApiToken).where(ApiToken.name == "web session"))
        assert session_token.one().revoked_at is not None
    assert [e.actor for e in _audit(service, "token_revoke")] == ["alice"]
    assert client.cookies.get(SESSION_COOKIE) is None  # the browser forgets it
    client.cookies.set(SESSION_COOKIE, plain)  # and a kept copy no longer works
    assert client.get("/cases/new", follow_redirects=False).headers["location"] == "/login"


def test_image_and_ecg_forms_and_gradcam_page(
    make_service, image_bundle: Path, ecg_bundle: Path
) -> None:
    service = make_service({IMAGE: image_bundle, ECG: ecg_bundle})
    alice = _client(service, "alice")
    ecg_form = alice.get(f"/cases/new?task={ECG}").text
    assert 'name="fs"' in ecg_form and 'type="file" multiple' in ecg_form
    assert 'enctype="multipart/form-data"' in ecg_form and "150 Hz" in ecg_form
    image_form = alice.get(f"/cases/new?task={IMAGE}")
    assert 'accept="image/png,image/jpeg' in image_form.text and 'name="fs"' not in image_form.text
    assert alice.get("/cases/new?task=nothing-here").status_code == 404

    data = {CSRF_FIELD: _csrf(image_form.text), "task": IMAGE, "explain": "on"}
    files = {"file": ("scan.png", png_bytes(), "image/png")}
    made = alice.post("/cases/new", data=data, files=files, follow_redirects=False)
    assert made.status_code == 303, made.text
    page = alice.get(made.headers["location"])
    assert "Grad-CAM" in page.text and 'src="data:image/png;base64,iVBOR' in page.text
    assert "probability of <strong>malignant</strong>" in page.text

    csv = "\n".join(f"{v:.4f}" for v in ecg_signal(fs=300, seconds=12)).encode()
    data = {CSRF_FIELD: _csrf(image_form.text), "task": ECG, "fs": "300"}
    made = alice.post(
        "/cases/new",
        data=data,
        files={"file": ("ecg.csv", csv, "text/csv")},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    page = alice.get(made.headers["location"])
    assert "All classes" in page.text and "No explanation was requested" in page.text


@pytest.fixture(scope="module")
def findings_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untrained multi-label bundle whose three findings have their own thresholds."""
    return write_untrained_image_bundle(
        tmp_path_factory.mktemp("findings") / "bundle",
        ["effusion", "mass", "nodule"],
        multi_label=True,
        threshold=[0.05, 0.5, 0.95],
    )


def test_multi_label_case_shows_each_findings_threshold(
    make_service, findings_bundle: Path
) -> None:
    service = make_service({"chest": findings_bundle})
    files = {"file": ("scan.png", png_bytes(), "image/png")}
    answer = service.client.post("/v1/predict/chest", files=files, headers=service.auth("alice"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    cuts = {"effusion": 0.05, "mass": 0.5, "nodule": 0.95}
    assert body["finding_thresholds"] == cuts and body["threshold"] is None
    present = [name for name, cut in cuts.items() if body["probabilities"][name] >= cut]
    assert body["label"] == ("|".join(present) or "none")

    alice = _client(service, "alice")
    form = alice.get("/cases/new?task=chest")
    data = {CSRF_FIELD: _csrf(form.text), "task": "chest"}
    made = alice.post("/cases/new", data=data, files=files, follow_redirects=False)
    assert made.status_code == 303, made.text
    page = alice.get(made.headers["location"]).text
    assert "Each finding: present at or above its threshold" in page
    assert all(f">{cut * 100:.1f}%<" in page for cut in cuts.values())
    assert page.count(">present<") == len(present)
    assert "the model answers" not in page  # no single positive class to name

    # the correction form ticks what the model called present; the clinician's ticks are stored
    assert page.count('type="checkbox" name="finding"') == len(cuts)
    assert page.count(" checked>") == len(present)
    case = made.headers["location"]
    assert "effusion" in present and "nodule" not in present  # cuts at 0.05 and 0.95
    answer = {CSRF_FIELD: _csrf(page), "verdict": "corrected", "findings_form": "1"}
    done = alice.post(
        f"{case}/feedback",
        data={**answer, "finding": ["nodule", "effusion"]},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    none_left = alice.post(f"{case}/feedback", data=answer, follow_redirects=False)
    assert none_left.status_code == 303, none_left.text  # nothing ticked: no finding present
    with service.database.transaction() as session:
        labels = [row.label for row in session.scalars(select(Feedback).order_by(Feedback.id))]
    assert labels == ["effusion|nodule", "none"]  # in the model's order
