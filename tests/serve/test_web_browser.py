"""The clinician web page in headless Chromium: sign in, enter a case, read it, correct it.

Runs the real app under uvicorn on a free loopback port (SQLite in a temporary folder) and drives
Debian's ``/usr/bin/chromium`` with Playwright (no browser download). The result page is saved
to ``tests/artifacts/web_result.png`` for a person to look at.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_helpers import PASSWORD
from sqlalchemy import select

from medsight.data.synthetic import make_risk_table
from medsight.store.models import AuditEvent, Feedback, Prediction, User

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
TASK = "heart-risk"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    pytest.skip(
        f"{CHROMIUM} is missing: install Debian's chromium (.ci/chromium.sh)",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(make_service, tabular_bundle: Path) -> Iterator[tuple[str, object]]:
    """The app with users and a promoted tabular model, served by uvicorn in a thread."""
    import uvicorn

    service = make_service({TASK: tabular_bundle})
    port = _free_port()
    config = uvicorn.Config(
        service.client.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", service
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def page() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            yield tab
        finally:
            browser.close()


def test_clinician_enters_a_case_and_corrects_it(server, page) -> None:
    base, service = server
    expect = sync_api.expect
    row = make_risk_table(1, seed=7).drop(columns=["disease", "patient_id"]).iloc[0]

    page.goto(base + "/")
    expect(page).to_have_url(base + "/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(base + "/cases/new")

    page.get_by_label("Task", exact=True).select_option(TASK)
    page.get_by_role("button", name="Open form").click()
    for column in ("age", "systolic_bp", "cholesterol", "biomarker"):
        page.get_by_label(column.replace("_", " "), exact=True).fill(str(row[column]))
    for column in ("sex", "chest_pain", "smoker"):
        page.get_by_label(column.replace("_", " "), exact=True).select_option(str(row[column]))
    expect(page.get_by_label("Explain the answer (takes a little longer)")).to_be_checked()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web_case_form.png"), full_page=True)
    page.get_by_role("button", name="Get prediction").click()

    expect(page).to_have_url(re.compile(re.escape(base) + r"/cases/\d+$"))
    prediction_id = int(page.url.rsplit("/", 1)[1])
    with service.database.transaction() as session:
        stored = session.get(Prediction, prediction_id)
        assert stored is not None
        label, probability = stored.label, stored.probability
    expect(page.locator(".answer-label")).to_have_text(label)
    expect(page.locator(".probability .big")).to_have_text(f"{probability * 100:.1f}%")
    shap_rows = page.locator("table.shap tbody tr")
    expect(shap_rows).to_have_count(5)
    expect(page.get_by_role("heading", name="Why")).to_be_visible()

    correct = "no" if label == "yes" else "yes"
    comment = f"Angiography was {'positive' if correct == 'yes' else 'negative'}."
    page.get_by_label("Comment (optional; no patient names)").fill(comment)
    page.get_by_label("correct to").select_option(correct)
    page.get_by_role("button", name="Save correction").click()
    expect(page.locator(".verdict")).to_contain_text(f"Corrected to “{correct}”")
    expect(page.locator(".verdict")).to_contain_text(comment)

    shot = ARTIFACTS / "web_result.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    with service.database.transaction() as session:
        alice = session.scalars(select(User).where(User.username == "alice")).one()
        feedback = session.scalars(select(Feedback)).one()
        assert (feedback.prediction_id, feedback.user_id) == (prediction_id, alice.id)
        assert (str(feedback.verdict), feedback.label) == ("corrected", correct)
        assert feedback.comment == comment
        events = session.scalars(select(AuditEvent).where(AuditEvent.actor_id == alice.id)).all()
        actions = {(e.action, e.target_id) for e in events}
        assert ("login", "") in actions
        for action in ("prediction", "view", "feedback"):
            assert (action, str(prediction_id)) in actions, action
        web = [e for e in events if e.action in ("login", "prediction", "view", "feedback")]
        assert {e.source for e in web} == {"127.0.0.1"}
