"""Durability: feedback and predictions acknowledged with a 2xx survive a SIGKILL of the server,
exactly once.

The real server (``medsight serve``) runs as a subprocess on loopback; a burst of feedback comes
from several threads; the server is killed with SIGKILL mid-burst, restarted on the same data, and
every feedback that got a 2xx answer must be stored once, nothing twice. Feedback that got no
answer may or may not be stored. SQLite (the data directory's file, ``synchronous=NORMAL`` under
WAL) always runs; PostgreSQL when ``MEDSIGHT_TEST_POSTGRES_URL`` names a server.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from medsight.data.synthetic import make_risk_table
from medsight.registry import ModelRegistry
from medsight.serve.predictors import canonical_row
from medsight.store.database import Database
from medsight.store.models import AuditEvent, Feedback, Prediction
from medsight.store.permissions import Role
from medsight.store.settings import StoreSettings
from medsight.store.testing import BACKENDS, add_user, fresh_database
from medsight.store.users import create_api_token

TASK = "risk"
THREADS = 4
KILL_AFTER = 30  # acknowledged feedback before the kill
ENTRY = "from medsight.cli.main import main; main()"


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    with fresh_database(request.param, tmp_path / "data") as db:
        yield db


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``medsight serve`` in a subprocess on the data directory and database given."""

    def __init__(
        self, data_dir: Path, database_url: str, log: Path, *, group_commit: bool = False
    ) -> None:
        self.data_dir, self.database_url, self.log = data_dir, database_url, log
        self.group_commit = group_commit
        self.process: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self) -> None:
        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "MEDSIGHT_DATA_DIR": str(self.data_dir),
            "MEDSIGHT_DATABASE_URL": self.database_url,
            "MEDSIGHT_ADMIN_PASSWORD": "durability admin password",
            "MEDSIGHT_GROUP_COMMIT": "true" if self.group_commit else "false",
        }
        command = [sys.executable, "-c", ENTRY, "serve", "--port", str(port)]
        command += ["--log-level", "warning", "--no-access-log"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=out)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"server exited ({self.process.returncode}):\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.base}/v1/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        pytest.fail(f"server not ready in 60 s:\n{self.log.read_text()}")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _set_up(database: Database, data_dir: Path, bundle: Path) -> str:
    """Register and promote the bundle, make a clinician; the clinician's token."""
    registry = ModelRegistry.from_settings(StoreSettings(data_dir=data_dir))
    with database.transaction() as session:
        sci = add_user(session, "sci", Role.DATA_SCIENTIST)
        clinician = add_user(session, "carol", Role.CLINICIAN)
        row = registry.register(session, bundle, actor=sci, source="test", task=TASK)
        registry.promote(session, TASK, row.version, actor=sci, source="test")
        _, token = create_api_token(session, clinician, "t", actor=clinician, source="test")
    return token


# one request of a burst: (key stored with it, path, JSON body, expected status)
Request = tuple[str, str, bytes, int]


def _burst(
    server: Server, token: str, request: Callable[[int, int], Request]
) -> tuple[set[str], set[str]]:
    """``request(worker, i)`` from several threads until the server dies; (acknowledged, sent)
    keys."""
    acknowledged: set[str] = set()
    sent: set[str] = set()
    lock = threading.Lock()
    enough = threading.Event()
    dead = threading.Event()

    def client(worker: int) -> None:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=server.base, headers=headers, timeout=10) as http:
            for i in range(10_000):
                if dead.is_set():
                    return
                key, path, body, status = request(worker, i)
                with lock:
                    sent.add(key)
                try:
                    response = http.post(path, content=body)
                except httpx.HTTPError:
                    return  # the server is gone: this one may or may not be stored
                assert response.status_code == status, response.text
                with lock:
                    acknowledged.add(key)
                    if len(acknowledged) >= KILL_AFTER:
                        enough.set()

    threads = [threading.Thread(target=client, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    assert enough.wait(timeout=60), "the burst was too slow to reach the kill point"
    server.kill()  # mid-burst: every thread has requests in flight or about to be sent
    dead.set()
    for thread in threads:
        thread.join(timeout=30)
    return acknowledged, sent


def _assert_exactly_once(acknowledged: set[str], sent: set[str], stored: Counter[str]) -> None:
    missing = sorted(k for k in acknowledged if stored[k] != 1)
    assert not missing, f"acknowledged but not stored exactly once: {missing[:10]}"
    assert max(stored.values()) == 1, "something was stored twice"
    assert set(stored) <= sent, "stored something nobody sent"


def test_acknowledged_feedback_survives_sigkill_exactly_once(
    database: Database, tabular_bundle: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    token = _set_up(database, data_dir, tabular_bundle)
    url = database.url.render_as_string(hide_password=False)
    server = Server(data_dir, url, tmp_path / "server.log")
    try:
        server.start()
        headers = {"Authorization": f"Bearer {token}"}
        rows = make_risk_table(4, seed=5).drop(columns=["disease"]).to_dict("records")
        predictions = []
        for row in rows:
            answer = httpx.post(
                f"{server.base}/v1/predict/{TASK}", json={"row": row}, headers=headers, timeout=30
            )
            assert answer.status_code == 200, answer.text
            predictions.append(answer.json()["prediction_id"])

        def feedback(worker: int, i: int) -> Request:
            comment = f"burst-{worker}-{i}"
            prediction = predictions[(worker + i) % len(predictions)]
            body = json.dumps({"verdict": "confirmed", "comment": comment}).encode()
            return comment, f"/v1/predictions/{prediction}/feedback", body, 201

        acknowledged, sent = _burst(server, token, feedback)
        assert server.process is not None and server.process.returncode == -signal.SIGKILL
        assert len(acknowledged) >= KILL_AFTER

        server.start()  # same data, a fresh process
        with database.sessions() as session:
            counted = select(Feedback.comment, func.count()).group_by(Feedback.comment)
            stored = Counter(dict(session.execute(counted).all()))
            first_stored = set(
                session.scalars(
                    select(Feedback.comment).where(Feedback.prediction_id == predictions[0])
                )
            )
        _assert_exactly_once(acknowledged, sent, stored)
        # the restarted server answers with what was stored
        first = httpx.get(
            f"{server.base}/v1/predictions/{predictions[0]}", headers=headers, timeout=30
        )
        assert first.status_code == 200
        assert {f["comment"] for f in first.json()["feedback"]} == first_stored
    finally:
        server.stop()


@pytest.mark.parametrize("group_commit", [False, True], ids=["one-each", "group-commit"])
def test_acknowledged_predictions_survive_sigkill_exactly_once_with_their_audit_lines(
    database: Database, tabular_bundle: Path, tmp_path: Path, group_commit: bool
) -> None:
    """An answered prediction is stored, once, with its audit line, whatever the kill
    interrupted: one transaction each, or shared ones (group commit, SQLite only)."""
    data_dir = tmp_path / "data"
    token = _set_up(database, data_dir, tabular_bundle)
    url = database.url.render_as_string(hide_password=False)
    server = Server(data_dir, url, tmp_path / "server.log", group_commit=group_commit)
    rows = make_risk_table(50, seed=6).drop(columns=["disease"]).to_dict("records")

    def prediction(worker: int, i: int) -> Request:
        row = {**rows[(worker * 7 + i) % len(rows)], "patient_id": f"burst-{worker}-{i}"}
        key = hashlib.sha256(canonical_row(row)).hexdigest()  # the stored fingerprint
        return key, f"/v1/predict/{TASK}", json.dumps({"row": row}).encode(), 200

    try:
        server.start()
        acknowledged, sent = _burst(server, token, prediction)
        assert server.process is not None and server.process.returncode == -signal.SIGKILL
        assert len(acknowledged) >= KILL_AFTER
        with database.sessions() as session:
            counted = select(Prediction.input_sha256, func.count()).group_by(
                Prediction.input_sha256
            )
            stored = Counter(dict(session.execute(counted).all()))
            ids = set(session.scalars(select(Prediction.id)))
            audited = Counter(
                session.scalars(
                    select(AuditEvent.target_id).where(AuditEvent.action == "prediction")
                )
            )
        _assert_exactly_once(acknowledged, sent, stored)
        assert audited == Counter({str(i): 1 for i in ids}), "a prediction without one audit line"
    finally:
        server.stop()
