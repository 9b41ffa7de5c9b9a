"""Failed sign-ins slow a password guesser down: a lockout per username and source address.

After ``max_failures`` failed sign-ins for one username from one address within
``window_seconds``, further attempts for that pair are refused for ``lockout_seconds`` without
checking the password (so a guesser also stops costing an argon2 hash each try); a successful
sign-in clears the pair. Refused attempts are audited (``login_failed``, reason
``too many failed sign-ins``) and answered 429 with ``Retry-After``.

Counts live in the memory of one worker process: with ``--workers N`` a guesser gets at most N
times ``max_failures`` tries per window. Hand-written because the rate limiters for Starlette
(slowapi, limits) count requests per route, not failures per account, and a lockout that forgets
its keys after the window is a few lines.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from medsight.errors import MedsightError
from medsight.store import audit
from medsight.store.audit import AuditAction
from medsight.store.models import User
from medsight.store.users import authenticate

REFUSED_REASON = "too many failed sign-ins"


class LoginThrottled(MedsightError):
    """Sign-in refused without a password check; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, round(retry_after))
        minutes = max(1, round(self.retry_after / 60))
        super().__init__(
            f"too many failed sign-ins for this account from this address: try again in about "
            f"{minutes} minute{'s' if minutes > 1 else ''}."
        )


@dataclass
class _Failures:
    times: deque[float]
    locked_until: float = 0.0


class LoginThrottle:
    """Failure counts per (username, source); thread-safe; at most ``max_keys`` pairs kept."""

    def __init__(
        self,
        max_failures: int = 5,
        window_seconds: float = 900.0,
        lockout_seconds: float = 900.0,
        *,
        max_keys: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.lockout_seconds = lockout_seconds
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._pairs: OrderedDict[tuple[str, str], _Failures] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.lockout_seconds > 0

    @staticmethod
    def _key(username: str, source: str) -> tuple[str, str]:
        return username.strip().casefold(), source

    def retry_after(self, username: str, source: str) -> float:
        """Seconds until this pair may try again (0: it may try now)."""
        if not self.enabled:
            return 0.0
        with self._lock:
            entry = self._pairs.get(self._key(username, source))
            return 0.0 if entry is None else max(0.0, entry.locked_until - self._clock())

    def failed(self, username: str, source: str) -> None:
        """Count a failed sign-in; the pair is locked out at ``max_failures`` in the window."""
        if not self.enabled:
            return
        now = self._clock()
        key = self._key(username, source)
        with self._lock:
            entry = self._pairs.pop(key, None) or _Failures(deque())
            self._pairs[key] = entry  # most recent last, so the oldest pair is forgotten first
            while entry.times and now - entry.times[0] > self.window_seconds:
                entry.times.popleft()
            entry.times.append(now)
            if len(entry.times) >= self.max_failures:
                entry.locked_until = now + self.lockout_seconds
                entry.times.clear()
            while len(self._pairs) > self.max_keys:
                self._pairs.popitem(last=False)

    def succeeded(self, username: str, source: str) -> None:
        with self._lock:
            self._pairs.pop(self._key(username, source), None)


@dataclass(frozen=True)
class LoginAttempt:
    """The user signed in (``None`` when refused) and, when throttled, seconds to wait."""

    user: User | None
    retry_after: float = 0.0

    def raise_if_throttled(self) -> None:
        """Call after the transaction committed, so the refusal stays in the audit log."""
        if self.retry_after > 0:
            raise LoginThrottled(self.retry_after)


def attempt_login(
    throttle: LoginThrottle, session: Session, username: str, password: str, *, source: str
) -> LoginAttempt:
    """:func:`~medsight.store.users.authenticate` behind the throttle (audited either way)."""
    wait = throttle.retry_after(username, source)
    if wait > 0:
        audit.record(
            session,
            AuditAction.LOGIN_FAILED,
            actor=None,
            actor_name=username[:150],
            source=source,
            detail={"reason": REFUSED_REASON, "retry_after_s": round(wait)},
        )
        return LoginAttempt(None, wait)
    user = authenticate(session, username, password, source=source)
    if user is None:
        throttle.failed(username, source)
    else:
        throttle.succeeded(username, source)
    return LoginAttempt(user)
