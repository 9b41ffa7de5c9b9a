"""Group commit: concurrent works share a transaction, a bad work fails alone, close drains."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from medsight.serve import ServeSettings, create_app
from medsight.serve.group_commit import GroupCommit
from medsight.store.database import Database
from medsight.store.models import AuditEvent, Prediction
from medsight.store.permissions import Role
from medsight.store.records import PredictionEntry, record_predictions
from medsight.store.settings import StoreSettings
from medsight.store.testing import BACKENDS, add_user, fresh_database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    with fresh_database("sqlite", tmp_path) as db:
        yield db


def _blocked_first(committer: GroupCommit) -> tuple[threading.Event, threading.Event]:
    """Submit a work that holds the writer until released; (started, release)."""
    started, release = threading.Event(), threading.Event()

    def hold(_session: Session) -> str:
        started.set()
        assert release.wait(10)
        return "held"

    committer.submit(hold)
    assert started.wait(10)
    return started, release


def test_works_waiting_for_the_writer_share_one_transaction(database: Database) -> None:
    with database.transaction() as session:
        user = add_user(session, "doc", Role.CLINICIAN)
    committer = GroupCommit(lambda: database.transaction(immediate=True))
    _, release = _blocked_first(committer)
    entries = [PredictionEntry(task="t", input_bytes=bytes([i]), label="x") for i in range(5)]
    futures = [
        committer.submit(lambda s, e=e: record_predictions(s, user, [e], source="h"))
        for e in entries
    ]
    release.set()
    ids = [future.result(timeout=10)[0] for future in futures]
    committer.close()
    assert committer.transactions == 2  # the held one, then the five that waited for it
    assert len(set(ids)) == 5
    with database.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 5
        audited = select(AuditEvent.target_id).where(AuditEvent.action == "prediction")
        assert sorted(session.scalars(audited)) == sorted(str(i) for i in ids)


def test_a_failing_work_fails_alone_and_leaves_nothing(database: Database) -> None:
    with database.transaction() as session:
        user = add_user(session, "doc", Role.CLINICIAN)
    committer = GroupCommit(lambda: database.transaction(immediate=True))
    _, release = _blocked_first(committer)

    def store(i: int) -> object:
        entry = PredictionEntry(task="t", input_bytes=bytes([i]), label="x")
        return committer.submit(lambda s: record_predictions(s, user, [entry], source="h"))

    def bad(session: Session) -> None:
        record_predictions(session, user, [PredictionEntry("t", b"bad", "x")], source="h")
        raise RuntimeError("broken work")

    good_before, failing, good_after = store(1), committer.submit(bad), store(2)
    release.set()
    with pytest.raises(RuntimeError, match="broken work"):
        failing.result(timeout=10)
    assert good_before.result(timeout=10) != good_after.result(timeout=10)
    committer.close()
    # shared attempt rolled back, then one transaction each: held + shared + 3 alone
    assert committer.transactions == 5
    with database.sessions() as session:
        sizes = session.scalars(select(Prediction.input_size)).all()
        assert sorted(sizes) == [1, 1]  # the two good ones, once each; nothing of the bad one
        assert (
            session.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "prediction")
            )
            == 2
        )


def test_close_finishes_submitted_works_then_refuses_new_ones() -> None:
    seen: list[int] = []

    @contextlib.contextmanager
    def transaction() -> Iterator[Session]:
        yield None  # type: ignore[misc]

    committer = GroupCommit(transaction, max_batch=2)
    futures = [committer.submit(lambda _s, i=i: seen.append(i) or i) for i in range(7)]
    committer.close()
    assert [f.result(timeout=1) for f in futures] == list(range(7))
    assert seen == list(range(7))  # in submission order
    assert committer.transactions >= 4  # at most two per transaction
    with pytest.raises(RuntimeError, match="closed"):
        committer.submit(lambda _s: None)


def test_max_batch_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommit(contextlib.nullcontext, max_batch=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("group_commit", [True, False])
def test_the_service_shares_transactions_on_sqlite_only(
    backend: str, group_commit: bool, tmp_path: Path
) -> None:
    """PostgreSQL overlaps concurrent commits itself (one writer thread was 0.4x there)."""
    with fresh_database(backend, tmp_path) as database:
        with database.transaction() as session:
            user = add_user(session, "doc", Role.CLINICIAN)
        settings = ServeSettings(store=StoreSettings(data_dir=tmp_path), group_commit=group_commit)
        state = create_app(settings, database).state.medsight
        entry = PredictionEntry(task="t", input_bytes=b"row", label="x")
        (stored,) = state.store(lambda s: record_predictions(s, user, [entry], source="h")).result(
            timeout=10
        )
        state.close()
        shared = state._group_commit.transactions
        assert shared == (1 if group_commit and backend == "sqlite" else 0)
        with database.sessions() as session:
            assert session.get(Prediction, stored) is not None
