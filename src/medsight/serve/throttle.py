"""Failed sign-ins slow a password guesser down: a lockout per username and source address.

After ``max_failures`` failed sign-ins for one username from one address within
``window_seconds`` of the first of them, further attempts for that pair are refused for
``lockout_seconds`` without checking the password (so a guesser also stops costing an argon2
hash each try); a successful sign-in clears the pair. Refused attempts are audited
(``login_failed``, reason ``too many failed sign-ins``) and answered 429 with ``Retry-After``.

The counts live in the database (``login_throttle``), in the same transaction as the sign-in's
audit line, so every worker process of ``--workers N`` and a restarted service share them. The
window is fixed from a pair's first failure rather than sliding: one row per pair, updated under
a row lock. Hand-written because the rate limiters for Starlette (slowapi, limits) count
requests per route, not failures per account, and keep their counts in memory or Redis.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from medsight.errors import MedsightError
from medsight.store import audit
from medsight.store.audit import AuditAction
from medsight.store.models import LoginThrottleEntry, User
from medsight.store.users import authenticate

REFUSED_REASON = "too many failed sign-ins"
_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


class LoginThrottled(MedsightError):
    """Sign-in refused without a password check; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, round(retry_after))
        minutes = max(1, round(self.retry_after / 60))
        super().__init__(
            f"too many failed sign-ins for this account from this address: try again in about "
            f"{minutes} minute{'s' if minutes > 1 else ''}."
        )


class LoginThrottle:
    """Failure counts per (username, source) in the store; ``clock`` gives seconds since the epoch
    (the wall clock, which the workers share)."""

    def __init__(
        self,
        max_failures: int = 5,
        window_seconds: float = 900.0,
        lockout_seconds: float = 900.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_failures = max_failures
        self.window_seconds = window_seconds
        self.lockout_seconds = lockout_seconds
        self._clock = clock

    @property
    def enabled(self) -> bool:
        return self.lockout_seconds > 0

    @staticmethod
    def _key(username: str, source: str) -> tuple[str, str]:
        return username.strip().casefold()[:150], source[:255]

    def retry_after(self, session: Session, username: str, source: str) -> float:
        """Seconds until this pair may try again (0: it may try now)."""
        if not self.enabled:
            return 0.0
        entry = session.get(LoginThrottleEntry, self._key(username, source))
        return 0.0 if entry is None else max(0.0, entry.locked_until_s - self._clock())

    def failed(self, session: Session, username: str, source: str) -> None:
        """Count a failed sign-in; the pair is locked out at ``max_failures`` in the window.
        Rows that have expired (any pair's) are deleted on the way."""
        if not self.enabled:
            return
        now = self._clock()
        entry = self._locked_entry(session, *self._key(username, source), now)
        if now - entry.window_start_s > self.window_seconds:
            entry.failures, entry.window_start_s = 0, now
        entry.failures += 1
        if entry.failures >= self.max_failures:
            entry.locked_until_s, entry.failures = now + self.lockout_seconds, 0
        entry.expires_s = max(entry.window_start_s + self.window_seconds, entry.locked_until_s)
        session.flush()
        session.execute(delete(LoginThrottleEntry).where(LoginThrottleEntry.expires_s < now))

    def succeeded(self, session: Session, username: str, source: str) -> None:
        key, address = self._key(username, source)
        session.execute(
            delete(LoginThrottleEntry).where(
                LoginThrottleEntry.username_key == key, LoginThrottleEntry.source == address
            )
        )

    def _locked_entry(
        self, session: Session, key: str, source: str, now: float
    ) -> LoginThrottleEntry:
        """The pair's row, created when missing, locked for this transaction (``FOR UPDATE`` on
        PostgreSQL; SQLite's writers are serialised already): two workers counting the same pair
        at once both count."""
        insert = _INSERTS[session.get_bind().dialect.name](LoginThrottleEntry)
        session.execute(
            insert.values(
                username_key=key,
                source=source,
                failures=0,
                window_start_s=now,
                locked_until_s=0.0,
                expires_s=now + self.window_seconds,
            ).on_conflict_do_nothing()
        )
        query = select(LoginThrottleEntry).where(
            LoginThrottleEntry.username_key == key, LoginThrottleEntry.source == source
        )
        return session.scalars(
            query.with_for_update().execution_options(populate_existing=True)
        ).one()


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
    wait = throttle.retry_after(session, username, source)
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
        throttle.failed(session, username, source)
    else:
        throttle.succeeded(session, username, source)
    return LoginAttempt(user)
