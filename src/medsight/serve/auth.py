"""Who is calling: ``Authorization: Bearer <token>`` checked against the hashed API tokens.

The :func:`caller` dependency checks the token before the body is read or validated, so a missing
or unknown token is always a 401; a token checked in the last ``cache_seconds`` is taken from
:class:`~medsight.serve.recent.CheckedTokens`, otherwise it is checked, and its last use noted, in
a short write transaction. Handlers that change state resolve it again with :func:`user_of` inside
their own transaction; predictions use the checked user as it is. ``source`` for the
audit log is the client's address as the server sees it (behind a reverse proxy, run uvicorn
with ``--proxy-headers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from medsight.store.errors import AuthenticationError
from medsight.store.models import User
from medsight.store.users import active_token, require_token_user

if TYPE_CHECKING:
    from medsight.serve.state import ServiceState

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="An API token from POST /v1/auth/token (or made by an administrator).",
)


@dataclass(frozen=True)
class Caller:
    """The presented token, its user (as read when the request arrived) and the client address."""

    token: str
    source: str
    user: User


def client_source(request: Request) -> str:
    """The client's address for the audit log (``unknown`` when the server cannot tell)."""
    return request.client.host if request.client else "unknown"


async def caller(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)
) -> Caller:
    """The bearer token's user; 401 with ``WWW-Authenticate: Bearer`` when the token is missing
    or unknown. Runs before the body is validated, so a bad token is a 401, never a 422.
    A recently checked token is answered on the event loop; others are checked in a thread."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError("missing API token: send 'Authorization: Bearer <token>'.")
    state = request.app.state.medsight
    plain = credentials.credentials
    user = state.tokens.user(plain)
    if user is None:  # not checked in the last cache_seconds: check it and note its use
        user = await run_in_threadpool(_check_token, state, plain)
    return Caller(plain, client_source(request), user)


def _check_token(state: ServiceState, plain: str) -> User:
    with state.write() as session:
        token = active_token(session, plain)
        if token is None:
            raise AuthenticationError("invalid, expired or revoked API token.")
        state.tokens.remember(plain, token.user, token.expires_at)
        return token.user


def user_of(session: Session, who: Caller) -> User:
    """The token's user again, in the request's transaction (401 if revoked meanwhile); the
    token's last use is noted there."""
    return require_token_user(session, who.token)
