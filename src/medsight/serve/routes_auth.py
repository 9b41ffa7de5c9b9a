"""``POST /v1/auth/token`` (password login for a new API token), health and readiness probes."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

import medsight
from medsight.serve.auth import client_source
from medsight.serve.errors import BEARER_CHALLENGE
from medsight.serve.schemas import Health, Readiness, TokenRequest, TokenResponse
from medsight.serve.state import ServiceState
from medsight.serve.throttle import LoginThrottled, attempt_login
from medsight.store.users import create_api_token

router = APIRouter(prefix="/v1")


@router.post(
    "/auth/token",
    response_model=TokenResponse,
    tags=["auth"],
    responses={
        401: {"description": "Wrong username or password."},
        429: {"description": "Too many failed sign-ins for this username from this address."},
    },
)
def login(request: Request, body: TokenRequest) -> TokenResponse | JSONResponse:
    """Exchange a username and password for a new API token (shown once; the login is audited)."""
    state: ServiceState = request.app.state.medsight
    source = client_source(request)
    expires = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    with state.write() as session:
        attempt = attempt_login(state.logins, session, body.username, body.password, source=source)
        user = attempt.user
        if user is not None:
            token, plain = create_api_token(
                session, user, body.token_name, actor=user, source=source, expires_in=expires
            )
            answer = TokenResponse(
                token=plain,
                username=user.username,
                role=str(user.role),
                expires_at=token.expires_at,
            )
    # answered after the commit, so the refused or failed login stays in the audit log
    if attempt.retry_after > 0:
        refused = LoginThrottled(attempt.retry_after)
        return JSONResponse(
            {"detail": str(refused)},
            status_code=429,
            headers={"Retry-After": str(refused.retry_after)},
        )
    if user is None:
        return JSONResponse(
            {"detail": "wrong username or password."}, status_code=401, headers=BEARER_CHALLENGE
        )
    return answer


@router.get("/health", response_model=Health, tags=["probes"])
async def health() -> Health:
    """Liveness: the process answers (no database, no authentication)."""
    return Health(version=medsight.__version__)


@router.get(
    "/ready",
    response_model=Readiness,
    tags=["probes"],
    responses={503: {"model": Readiness, "description": "The database does not answer."}},
)
def ready(request: Request) -> Readiness | JSONResponse:
    """Readiness: the database answers; which tasks have a production model."""
    state: ServiceState = request.app.state.medsight
    try:
        production = state.ping()
    except Exception as exc:  # any driver error means "not ready", never a 500
        body = Readiness(status="unavailable", database=type(exc).__name__, production={})
        return JSONResponse(body.model_dump(), status_code=503)
    return Readiness(status="ready", database="ok", production=production)
