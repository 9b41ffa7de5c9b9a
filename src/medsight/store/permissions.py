"""Roles and what each may do, written as data: :data:`PERMISSIONS` maps an action to its roles.

==========================  =========  ==============  =====
action                      clinician  data_scientist  admin
==========================  =========  ==============  =====
predict                     yes        yes
prediction:read_own         yes        yes
prediction:read_all                    yes             yes
feedback:write              yes
feedback:read_own           yes
feedback:read_all                      yes             yes
model:read                  yes        yes             yes
model:register                         yes             yes
model:promote                          yes             yes
model:rollback                         yes             yes
model:retrain                          yes             yes
token:create_own            yes        yes             yes
token:manage                                           yes
user:manage                                            yes
audit:read                                             yes
==========================  =========  ==============  =====

"Own" records are those whose ``user_id`` is the user's: a clinician sees their own predictions
and feedback only (:func:`require_owner`). Feedback is written by clinicians on their own
predictions; labels for retraining come from the people who saw the patient.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final, Protocol

from medsight.store.errors import PermissionDenied


class Role(StrEnum):
    """What a user is: the only input to permission checks."""

    CLINICIAN = "clinician"
    DATA_SCIENTIST = "data_scientist"
    ADMIN = "admin"


class Action(StrEnum):
    """Everything a user can ask the service to do."""

    PREDICT = "predict"
    PREDICTION_READ_OWN = "prediction:read_own"
    PREDICTION_READ_ALL = "prediction:read_all"
    FEEDBACK_WRITE = "feedback:write"
    FEEDBACK_READ_OWN = "feedback:read_own"
    FEEDBACK_READ_ALL = "feedback:read_all"
    MODEL_READ = "model:read"
    MODEL_REGISTER = "model:register"
    MODEL_PROMOTE = "model:promote"
    MODEL_ROLLBACK = "model:rollback"
    MODEL_RETRAIN = "model:retrain"
    TOKEN_CREATE_OWN = "token:create_own"
    TOKEN_MANAGE = "token:manage"
    USER_MANAGE = "user:manage"
    AUDIT_READ = "audit:read"


_C, _D, _A = Role.CLINICIAN, Role.DATA_SCIENTIST, Role.ADMIN

PERMISSIONS: Final[Mapping[Action, frozenset[Role]]] = MappingProxyType(
    {
        Action.PREDICT: frozenset({_C, _D}),
        Action.PREDICTION_READ_OWN: frozenset({_C, _D}),
        Action.PREDICTION_READ_ALL: frozenset({_D, _A}),
        Action.FEEDBACK_WRITE: frozenset({_C}),
        Action.FEEDBACK_READ_OWN: frozenset({_C}),
        Action.FEEDBACK_READ_ALL: frozenset({_D, _A}),
        Action.MODEL_READ: frozenset({_C, _D, _A}),
        Action.MODEL_REGISTER: frozenset({_D, _A}),
        Action.MODEL_PROMOTE: frozenset({_D, _A}),
        Action.MODEL_ROLLBACK: frozenset({_D, _A}),
        Action.MODEL_RETRAIN: frozenset({_D, _A}),
        Action.TOKEN_CREATE_OWN: frozenset({_C, _D, _A}),
        Action.TOKEN_MANAGE: frozenset({_A}),
        Action.USER_MANAGE: frozenset({_A}),
        Action.AUDIT_READ: frozenset({_A}),
    }
)
"""Action -> roles allowed to do it. Every :class:`Action` has an entry (a test checks it)."""


class Principal(Protocol):
    """What a permission check needs to know about a user (``medsight.store.models.User``)."""

    id: int
    username: str
    role: Role
    is_active: bool


def can(user: Principal, action: Action) -> bool:
    """Whether ``user`` (active, with its role) may do ``action``."""
    return bool(user.is_active) and Role(user.role) in PERMISSIONS[Action(action)]


def require(user: Principal, action: Action) -> None:
    """Raise :class:`PermissionDenied` unless ``user`` may do ``action``."""
    if not user.is_active:
        raise PermissionDenied(f"user {user.username!r} is deactivated; ask an administrator.")
    if not can(user, action):
        allowed = ", ".join(sorted(PERMISSIONS[Action(action)]))
        raise PermissionDenied(
            f"user {user.username!r} (role {Role(user.role)}) may not do {Action(action)}; "
            f"allowed roles: {allowed}."
        )


def require_owner(
    user: Principal, owner_id: int, *, own: Action, any_owner: Action, what: str
) -> None:
    """Allow ``any_owner`` roles on every record and ``own`` roles on records they own.

    ``what`` names the record in the message, for example ``"prediction 12"``.
    """
    if can(user, any_owner):
        return
    require(user, own)
    if owner_id != user.id:
        raise PermissionDenied(f"{what} belongs to another user; {user.username!r} may not see it.")
