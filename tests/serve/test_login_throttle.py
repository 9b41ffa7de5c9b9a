"""Failed sign-ins lock a username out from one address for a while (API and web page)."""

from __future__ import annotations

import re

from serve_helpers import PASSWORD
from sqlalchemy import select

from medsight.serve.sessions import CSRF_FIELD, SESSION_COOKIE
from medsight.serve.throttle import REFUSED_REASON, LoginThrottle
from medsight.store.models import AuditEvent


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lockout_after_max_failures_then_released() -> None:
    clock = Clock()
    throttle = LoginThrottle(3, window_seconds=60, lockout_seconds=300, clock=clock)
    for _ in range(2):
        throttle.failed("Alice", "10.0.0.1")
    assert throttle.retry_after("alice", "10.0.0.1") == 0  # two failures: still allowed
    throttle.failed("alice ", "10.0.0.1")  # same account: case and spaces folded
    assert throttle.retry_after("ALICE", "10.0.0.1") == 300
    assert throttle.retry_after("alice", "10.0.0.2") == 0  # another address is not locked
    assert throttle.retry_after("bob", "10.0.0.1") == 0
    clock.now += 299
    assert throttle.retry_after("alice", "10.0.0.1") == 1
    clock.now += 1
    assert throttle.retry_after("alice", "10.0.0.1") == 0


def test_failures_outside_the_window_and_success_reset() -> None:
    clock = Clock()
    throttle = LoginThrottle(3, window_seconds=60, lockout_seconds=300, clock=clock)
    throttle.failed("alice", "a")
    throttle.failed("alice", "a")
    clock.now += 61  # the first two have left the window
    throttle.failed("alice", "a")
    assert throttle.retry_after("alice", "a") == 0
    throttle.failed("alice", "a")
    throttle.succeeded("alice", "a")  # a good password clears the count
    throttle.failed("alice", "a")
    throttle.failed("alice", "a")
    assert throttle.retry_after("alice", "a") == 0
    throttle.failed("alice", "a")
    assert throttle.retry_after("alice", "a") == 300


def test_memory_is_bounded_and_zero_lockout_disables() -> None:
    throttle = LoginThrottle(1, lockout_seconds=60, max_keys=3)
    for name in ("a", "b", "c", "d"):
        throttle.failed(name, "x")
    assert throttle.retry_after("a", "x") == 0  # the oldest pair was forgotten
    assert throttle.retry_after("d", "x") > 0
    off = LoginThrottle(1, lockout_seconds=0)
    off.failed("a", "x")
    assert off.retry_after("a", "x") == 0


def _events(service, action: str) -> list[AuditEvent]:
    with service.database.transaction() as session:
        query = select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        return list(session.scalars(query))


def test_api_refuses_with_429_even_the_right_password_and_audits_it(make_service) -> None:
    service = make_service(login_max_failures=3, login_lockout_seconds=600)
    login = "/v1/auth/token"
    for _ in range(3):
        wrong = service.client.post(login, json={"username": "alice", "password": "wrong!!"})
        assert wrong.status_code == 401
    refused = service.client.post(login, json={"username": "alice", "password": PASSWORD})
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) == 600
    assert "too many failed sign-ins" in refused.json()["detail"]
    other = service.client.post(login, json={"username": "admin", "password": PASSWORD})
    assert other.status_code == 200  # only the guessed account is locked
    reasons = [(e.actor, e.detail["reason"]) for e in _events(service, "login_failed")]
    assert reasons == [("alice", "wrong password")] * 3 + [("alice", REFUSED_REASON)]
    assert [e.actor for e in _events(service, "login")] == ["admin"]


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _sign_in(client, username: str, password: str):
    page = client.get("/login")
    form = {"username": username, "password": password, CSRF_FIELD: _CSRF.search(page.text)[1]}
    return client.post("/login", data=form, follow_redirects=False)


def test_web_page_says_when_to_try_again(make_service) -> None:
    service = make_service(login_max_failures=2, login_lockout_seconds=120)
    assert _sign_in(service.client, "alice", "nope nope").status_code == 401
    assert _sign_in(service.client, "alice", "nope nope").status_code == 401
    refused = _sign_in(service.client, "alice", PASSWORD)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "120"
    assert "try again in about 2 minutes" in refused.text
    assert SESSION_COOKIE not in refused.cookies
