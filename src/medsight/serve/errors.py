"""HTTP answers for medsight's errors: each error family maps to one status, never a 500.

=====================================  ======  ==========================================
error                                  status  meaning
=====================================  ======  ==========================================
:class:`AuthenticationError`           401     no, unknown, expired or revoked credentials
:class:`PermissionDenied`              403     the role (or ownership) forbids it
:class:`NotFoundError`                 404     no such record, task or version
:class:`ConflictError`                 409     clashes with the current state
:class:`UnsupportedMediaError`         415     not a PNG/JPEG/DICOM image, wrong body type
:class:`BundleError`                   503     the model cannot be loaded (server side)
:class:`MissingDependencyError`        503     an optional package is not installed
``DataError``, ``SchemaError``, other  422     the input is unusable; the message says why
=====================================  ======  ==========================================

Bodies are ``{"detail": "<message>"}`` like FastAPI's own errors.
"""

from __future__ import annotations

from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from medsight.errors import BundleError, DataError, MedsightError, MissingDependencyError
from medsight.store.errors import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PermissionDenied,
)

BEARER_CHALLENGE: Final = {"WWW-Authenticate": "Bearer"}


class UnsupportedMediaError(DataError):
    """The request body or upload is of a type this endpoint does not take (HTTP 415)."""


class NoProductionModelError(NotFoundError):
    """The task exists, or not, but has no production model to serve (HTTP 404)."""


_STATUS: Final[tuple[tuple[type[MedsightError], int], ...]] = (
    (AuthenticationError, 401),
    (PermissionDenied, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (UnsupportedMediaError, 415),
    (BundleError, 503),
    (MissingDependencyError, 503),
)


def status_of(error: MedsightError) -> int:
    """The HTTP status for ``error`` (422 for input errors not listed above)."""
    return next((code for kind, code in _STATUS if isinstance(error, kind)), 422)


def error_response(error: MedsightError) -> JSONResponse:
    """``{"detail": message}`` with the status of ``error`` (and a Bearer challenge on 401)."""
    status = status_of(error)
    headers = BEARER_CHALLENGE if status == 401 else None
    return JSONResponse({"detail": str(error)}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every :class:`MedsightError` with its status instead of a 500."""

    async def handle(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, MedsightError)
        return error_response(exc)

    app.add_exception_handler(MedsightError, handle)
