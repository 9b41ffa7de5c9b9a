"""Errors of the clinical store, in the :class:`~medsight.errors.MedsightError` family.

Each maps to one HTTP status in the service: :class:`AuthenticationError` 401,
:class:`PermissionDenied` 403, :class:`NotFoundError` 404, :class:`ConflictError` 409; any other
:class:`StoreError` is a 400-class input error. The CLI prints the message and exits 2.
"""

from __future__ import annotations

from medsight.errors import MedsightError


class StoreError(MedsightError):
    """A request to the store cannot be carried out as asked."""


class AuthenticationError(StoreError):
    """Who is asking is unknown: wrong password, unknown, revoked or expired token."""


class PermissionDenied(StoreError):
    """The user is known but their role does not allow the action (or the record is not theirs)."""


class NotFoundError(StoreError):
    """The record asked for does not exist (or the user may not know that it exists)."""


class ConflictError(StoreError):
    """The request clashes with the current state (a duplicate name, a stage that forbids it)."""
