"""Browser sign-in for the clinician web page: a session is an API token held in a cookie.

Signing in (username and password through :func:`medsight.store.users.authenticate` behind the
lockout of :mod:`medsight.serve.throttle`, audited)
creates an API token named ``web session`` that expires after :data:`SESSION_LIFETIME`; its plain
value goes into an HttpOnly, SameSite=Strict cookie (Secure over https) and only its hash is
stored. Signing out revokes the token. A session is checked exactly like an API token, so a
revoked or expired session, or a deactivated user, is refused at once.

CSRF: every form that changes state carries a token. Signed in, it is an HMAC of the session
token (nothing stored; a page without the HttpOnly cookie cannot compute it). The sign-in form,
which has no session yet, uses a random double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Final

from fastapi import Request, Response
from sqlalchemy import select

from medsight.serve.auth import Caller, client_source
from medsight.serve.state import ServiceState
from medsight.serve.throttle import attempt_login
from medsight.store.auth import hash_token
from medsight.store.errors import PermissionDenied
from medsight.store.models import ApiToken
from medsight.store.users import create_api_token, revoke_api_token, user_for_token

SESSION_COOKIE: Final = "medsight_session"
LOGIN_CSRF_COOKIE: Final = "medsight_login_csrf"
CSRF_FIELD: Final = "csrf_token"
SESSION_NAME: Final = "web session"
SESSION_LIFETIME: Final = timedelta(hours=12)
_CSRF_CONTEXT: Final = b"medsight web form"


class CsrfError(PermissionDenied):
    """A state-changing form arrived without the right CSRF token (HTTP 403)."""


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def session_token(request: Request) -> str | None:
    """The session cookie's token, if the browser sent one."""
    return request.cookies.get(SESSION_COOKIE) or None


def current_caller(request: Request) -> Caller | None:
    """The signed-in user (as an API :class:`Caller`), or ``None`` for no or a dead session."""
    token = session_token(request)
    if token is None:
        return None
    state: ServiceState = request.app.state.medsight
    with state.read() as session:
        user = user_for_token(session, token)
    return None if user is None else Caller(token, client_source(request), user)


def csrf_for(token: str) -> str:
    """The CSRF token of the forms of the session holding ``token``."""
    return hmac.new(token.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def check_csrf(expected: str | None, given: object) -> None:
    """Raise :class:`CsrfError` unless ``given`` equals ``expected`` (compared in constant time)."""
    if not expected or not isinstance(given, str) or not hmac.compare_digest(expected, given):
        raise CsrfError("the form's security token is missing or out of date; reload the page.")


def new_login_csrf() -> str:
    return secrets.token_urlsafe(32)


def sign_in(state: ServiceState, username: str, password: str, *, source: str) -> str | None:
    """A new session token for this username and password, or ``None`` (the attempt is audited
    either way: the failed login is committed before the caller answers). Raises
    :class:`~medsight.serve.throttle.LoginThrottled` after too many failures."""
    plain = None
    with state.write() as session:
        attempt = attempt_login(state.logins, session, username, password, source=source)
        if attempt.user is not None:
            _, plain = create_api_token(
                session,
                attempt.user,
                SESSION_NAME,
                actor=attempt.user,
                source=source,
                expires_in=SESSION_LIFETIME,
            )
    attempt.raise_if_throttled()
    return plain


def sign_out(state: ServiceState, token: str, *, source: str) -> bool:
    """Revoke the session's token (audited); ``False`` when it was unknown or already revoked."""
    with state.write() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        if row is None or row.revoked_at is not None:
            return False
        revoke_api_token(session, row.id, actor=row.user, source=source)
    state.tokens.forget(token)
    return True


def set_session_cookie(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def clear_session_cookie(response: Response, *, secure: bool) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=secure
    )


def set_login_csrf_cookie(response: Response, value: str, *, secure: bool) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        value,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=secure,
    )
