"""Writers in several processes on one SQLite file: IMMEDIATE transactions wait for each other."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from sqlalchemy import text

from medsight.store.database import Database, upgrade_database


def _second_writer(database: Database, done: list[str], immediate: bool) -> None:
    with database.transaction(immediate=immediate) as session:
        session.execute(text("SELECT 1"))
    done.append("second")


def _race(tmp_path: Path, immediate: bool) -> list[str]:
    url = f"sqlite:///{tmp_path / 'medsight.db'}"
    upgrade_database(url)
    first, second = Database(url), Database(url)  # two engines: as two worker processes
    events: list[str] = []
    try:
        with first.transaction(immediate=True) as session:
            session.execute(text("SELECT 1"))
            thread = threading.Thread(target=_second_writer, args=(second, events, immediate))
            thread.start()
            time.sleep(0.4)
            events.append("first commits")
        thread.join(timeout=15)
    finally:
        first.dispose()
        second.dispose()
    return events


def test_an_immediate_writer_waits_for_the_other_processes_writer(tmp_path: Path) -> None:
    assert _race(tmp_path, immediate=True) == ["first commits", "second"]


def test_a_plain_reader_does_not_wait(tmp_path: Path) -> None:
    assert _race(tmp_path, immediate=False) == ["second", "first commits"]


def test_service_writers_in_two_processes_take_turns_through_the_lock_file(
    tmp_path: Path,
) -> None:
    from medsight.serve.state import _file_lock

    lock = tmp_path / "medsight.db.write-lock"
    events: list[str] = []

    def other_worker() -> None:
        with _file_lock(lock):  # a second open file: as another process would hold it
            events.append("second writes")

    with _file_lock(lock):
        thread = threading.Thread(target=other_worker)
        thread.start()
        time.sleep(0.3)
        events.append("first done")
    thread.join(timeout=10)
    assert events == ["first done", "second writes"]
