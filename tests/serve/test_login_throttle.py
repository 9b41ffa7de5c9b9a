"""Failed sign-ins lock a username out from one address for a while (API and web page)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_helpers import PASSWORD
from sqlalchemy import select

from medsight.serve.sessions import CSRF_FIELD, SESSION_COOKIE
from medsight.serve.throttle import REFUSED_REASON, LoginThrottle
from medsight.store.database import Database
from medsight.store.models import AuditEvent, LoginThrottleEntry
from medsight.store.testing import BACKENDS, fresh_database


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with fresh_database(request.param, tmp_path) as database:
        yield database


def _fail(db: Database, throttle: LoginThrottle, username: str, source: str) -> None:
    with db.transaction(immediate=True) as session:
        throttle.failed(session, username, source)


def _wait(db: Database, throttle: LoginThrottle, username: str, source: str) -> float:
    with db.transaction() as session:
        return throttle.retry_after(session, username, source)


def test_lockout_after_max_failures_then_released(db: Database) -> None:
    clock = Clock()
    throttle = LoginThrottle(3, window_seconds=60, lockout_seconds=300, clock=clock)
    for _ in range(2):
        _fail(db, throttle, "Alice", "10.0.0.1")
    assert _wait(db, throttle, "alice", "10.0.0.1") == 0  # two failures: still allowed
    _fail(db, throttle, "alice ", "10.0.0.1")  # same account: case and spaces folded
    assert _wait(db, throttle, "ALICE", "10.0.0.1") == 300
    assert _wait(db, throttle, "alice", "10.0.0.2") == 0  # another address is not locked
    assert _wait(db, throttle, "bob", "10.0.0.1") == 0
    clock.now += 299
    assert _wait(db, throttle, "alice", "10.0.0.1") == 1
    clock.now += 1
    assert _wait(db, throttle, "alice", "10.0.0.1") == 0


def test_failures_outside_the_window_and_success_reset(db: Database) -> None:
    clock = Clock()
    throttle = LoginThrottle(3, window_seconds=60, lockout_seconds=300, clock=clock)
    _fail(db, throttle, "alice", "a")
    _fail(db, throttle, "alice", "a")
    clock.now += 61  # the window of the first two has passed
    _fail(db, throttle, "alice", "a")
    assert _wait(db, throttle, "alice", "a") == 0
    _fail(db, throttle, "alice", "a")
    with db.transaction(immediate=True) as session:
        throttle.succeeded(session, "alice", "a")  # a good password clears the count
    _fail(db, throttle, "alice", "a")
    _fail(db, throttle, "alice", "a")
    assert _wait(db, throttle, "alice", "a") == 0
    _fail(db, throttle, "alice", "a")
    assert _wait(db, throttle, "alice", "a") == 300


def test_workers_and_a_restarted_service_share_the_counts(db: Database) -> None:
    clock = Clock()
    first, second = (
        LoginThrottle(4, window_seconds=60, lockout_seconds=120, clock=clock) for _ in range(2)
    )
    for throttle in (first, second, first, second):  # two workers answer alternately
        assert _wait(db, throttle, "alice", "x") == 0
        _fail(db, throttle, "alice", "x")
    restarted = LoginThrottle(4, window_seconds=60, lockout_seconds=120, clock=clock)
    assert _wait(db, restarted, "alice", "x") == 120
    assert _wait(db, second, "alice", "x") == 120


def test_concurrent_failures_of_one_new_pair_all_count(db: Database) -> None:
    throttle = LoginThrottle(10, window_seconds=600, lockout_seconds=60)
    start = threading.Barrier(4)

    def guess() -> None:
        start.wait()
        _fail(db, throttle, "alice", "x")

    threads = [threading.Thread(target=guess) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.transaction() as session:
        entry = session.get(LoginThrottleEntry, ("alice", "x"))
        assert entry is not None and entry.failures == 4


def test_expired_pairs_are_deleted_and_zero_lockout_disables(db: Database) -> None:
    clock = Clock()
    throttle = LoginThrottle(2, window_seconds=60, lockout_seconds=100, clock=clock)
    _fail(db, throttle, "a", "x")  # window ends at +60
    _fail(db, throttle, "b", "x")
    _fail(db, throttle, "b", "x")  # locked until +100
    clock.now += 61
    _fail(db, throttle, "c", "x")  # deletes a's row, keeps b's (still locked)
    with db.transaction() as session:
        kept = set(session.scalars(select(LoginThrottleEntry.username_key)))
    assert kept == {"b", "c"}
    off = LoginThrottle(1, lockout_seconds=0)
    _fail(db, off, "d", "x")
    assert _wait(db, off, "d", "x") == 0


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
