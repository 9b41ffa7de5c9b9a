"""Group commit: the writes of concurrent requests share one transaction.

Each prediction is stored (with its audit line) before its answer goes out, so every answer costs
a transaction: a lock, ``BEGIN``, the inserts and a ``COMMIT``. Under load, requests that arrive
while a transaction is running wait for it anyway; one writer thread takes all of them into the
next transaction, which costs little more than one. Nothing is answered before its commit, so
durability is that of one transaction per request.

When a shared transaction fails, its works are run again one per transaction, so one bad write
fails only its own request.

Hand-written: SQLAlchemy and the drivers commit per session; no maintained library batches the
transactions of independent callers.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[Session], Any]
Transaction = Callable[[], contextlib.AbstractContextManager[Session]]
MAX_BATCH: Final = 64
_STOP: Final = object()


@dataclass
class _Pending:
    work: Work
    future: Future[Any]


class GroupCommit:
    """A writer thread that runs submitted works in shared transactions from ``transaction``.

    ``submit(work)`` returns a :class:`~concurrent.futures.Future` of ``work(session)``'s result,
    set once the transaction that ran it has committed (or the work's exception). The thread
    starts on the first submit (in the process that serves, not in a parent that forked it)."""

    def __init__(self, transaction: Transaction, *, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._transaction = transaction
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self.transactions = 0  # committed or failed shared transactions (for tests and stats)

    def submit(self, work: Callable[[Session], T]) -> Future[T]:
        """Run ``work`` in the next shared transaction."""
        if self._closed:
            raise RuntimeError("the group committer is closed")
        future: Future[T] = Future()
        self._ensure_thread()
        self._queue.put(_Pending(work, future))
        return future

    def close(self, timeout: float = 10.0) -> None:
        """Finish the submitted works, then stop the thread."""
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="medsight-group-commit", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
            if batch:
                self._write(batch)

    def _next_batch(self) -> tuple[list[_Pending], bool]:
        """The first waiting work (blocking), then whatever else is waiting, up to the limit."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        while len(batch) < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True  # type: ignore[return-value]
            batch.append(item)
        return batch, False  # type: ignore[return-value]

    def _write(self, batch: list[_Pending]) -> None:
        live = [p for p in batch if p.future.set_running_or_notify_cancel()]
        if len(live) <= 1:
            for pending in live:
                self._write_alone(pending)
            return
        self.transactions += 1
        try:
            with self._transaction() as session:
                results = [p.work(session) for p in live]
        except Exception:
            log.warning(
                "a shared transaction of %d writes failed; writing them one by one", len(live)
            )
            for pending in live:
                self._write_alone(pending)
            return
        for pending, result in zip(live, results, strict=True):
            pending.future.set_result(result)

    def _write_alone(self, pending: _Pending) -> None:
        self.transactions += 1
        write_alone(self._transaction, pending.work, pending.future)


def write_alone(transaction: Transaction, work: Callable[[Session], T], future: Future[T]) -> None:
    """Run ``work`` in a transaction of its own; its result (after the commit) or its exception
    goes into ``future``."""
    try:
        with transaction() as session:
            result = work(session)
    except Exception as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)
