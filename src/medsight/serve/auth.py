"""Who is calling: ``Authorization: Bearer <token>`` checked against the hashed API tokens.

The :func:`caller` dependency checks the token in a read-only session before the body is read or
validated, so a missing or unknown token is always a 401. Handlers resolve it again with
:func:`user_of` inside the request's write transaction, where
:func:`medsight.store.users.require_token_user` notes the token's last use. ``source`` for the
audit log is the client's address as the server sees it (behind a reverse proxy, run uvicorn
with ``--proxy-headers``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from medsight.store.errors import AuthenticationError
from medsight.store.models import User
from medsight.store.users import require_token_user

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


def caller(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(bearer)
) -> Caller:
    """The bearer token's user; 401 with ``WWW-Authenticate: Bearer`` when the token is missing
    or unknown. Runs before the body is validated, so a bad token is a 401, never a 422."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError("missing API token: send 'Authorization: Bearer <token>'.")
    state = request.app.state.medsight
    with state.read() as session:
        user = require_token_user(session, credentials.credentials)
    return Caller(credentials.credentials, client_source(request), user)


def user_of(session: Session, who: Caller) -> User:
    """The token's user again, in the request's transaction (401 if revoked meanwhile); the
    token's last use is noted there."""
    return require_token_user(session, who.token)
