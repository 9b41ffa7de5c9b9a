"""Answers the service may reuse for a few seconds: checked API tokens, production versions.

Every request used to check its token and look up the task's production version in the database
(three sessions per prediction); under load that was a third of the service's time. Here a
checked token (keyed by its hash, never the token itself) and a production lookup are kept for
``ServeSettings.cache_seconds`` (default 2 s; 0 turns reuse off). Revoking or signing out through
this service, and promoting or rolling back through it, forget the entries at once; a change made
elsewhere (the CLI, another process) takes effect within ``cache_seconds``. A token's expiry is
always honoured exactly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

from medsight.store.auth import hash_token
from medsight.store.models import User, utcnow

T = TypeVar("T")
MAX_ENTRIES = 10_000


class Recent(Generic[T]):
    """A small thread-safe map whose entries are valid for ``seconds`` after they were checked."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> T | None:
        if self.seconds <= 0:
            return None
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or self._clock() - entry[0] > self.seconds:
            return None
        return entry[1]

    def put(self, key: str, value: T) -> None:
        if self.seconds <= 0:
            return
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()  # a flood of distinct keys: start again, never grow
            self._entries[key] = (self._clock(), value)

    def forget(self, key: str | None = None) -> None:
        """Forget one entry, or every entry (``key`` None)."""
        with self._lock:
            if key is None:
                self._entries.clear()
            else:
                self._entries.pop(key, None)


class CheckedTokens:
    """Token hash -> (its user, as read when checked; the token's expiry)."""

    def __init__(self, seconds: float) -> None:
        self._recent: Recent[tuple[User, datetime | None]] = Recent(seconds)

    def user(self, token: str) -> User | None:
        entry = self._recent.get(hash_token(token))
        if entry is None:
            return None
        user, expires_at = entry
        if expires_at is not None and expires_at <= utcnow():
            return None
        return user

    def remember(self, token: str, user: User, expires_at: datetime | None) -> None:
        self._recent.put(hash_token(token), (user, expires_at))

    def forget(self, token: str | None = None) -> None:
        """Forget one token (signed out, revoked), or all (a user or token changed)."""
        self._recent.forget(None if token is None else hash_token(token))
