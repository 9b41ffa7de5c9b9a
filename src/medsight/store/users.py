"""Accounts and credentials: creating users, logging in, API tokens, the local CLI account.

Every function works inside the caller's session and transaction, and writes its audit line there.
:func:`authenticate` and :func:`user_for_token` return ``None`` for bad credentials instead of
raising, so the caller can commit the ``login_failed`` audit line before answering 401.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from medsight.store import audit
from medsight.store.audit import AuditAction
from medsight.store.auth import (
    hash_password,
    hash_token,
    new_token,
    password_needs_rehash,
    token_hint,
    verify_password,
)
from medsight.store.errors import AuthenticationError, ConflictError, NotFoundError, StoreError
from medsight.store.models import ApiToken, User, utcnow
from medsight.store.permissions import Action, Role, require

USERNAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,149}")
CLI_USER_PREFIX: Final = "cli:"


def _check_username(username: str) -> None:
    if not USERNAME_PATTERN.fullmatch(username):
        raise StoreError(
            f"username {username!r} is not allowed: use 1-150 letters, digits, '_', '.', '@' "
            "or '-', starting with a letter or digit."
        )


def get_user(session: Session, username: str) -> User | None:
    """The user called ``username``, or ``None``."""
    return session.scalar(select(User).where(User.username == username))


def create_user(
    session: Session,
    username: str,
    role: Role | str,
    *,
    password: str | None = None,
    actor: User | None,
    source: str,
) -> User:
    """A new user (``actor`` must be an admin; ``None`` only for bootstrapping the first admin).

    Without a password the user cannot log in with one (API tokens still work).
    """
    if actor is not None:
        require(actor, Action.USER_MANAGE)
    elif session.scalar(select(User.id).limit(1)) is not None:
        raise StoreError("creating a user needs an administrator once any user exists.")
    _check_username(username)
    try:
        role = Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise StoreError(f"unknown role {role!r}; choose one of {allowed}.") from None
    if get_user(session, username) is not None:
        raise ConflictError(f"user {username!r} already exists.")
    user = User(
        username=username,
        role=role,
        password_hash=hash_password(password) if password is not None else None,
        is_active=True,
    )
    session.add(user)
    session.flush()
    audit.record(
        session,
        AuditAction.USER_CREATE,
        actor=actor,
        actor_name=username if actor is None else None,
        source=source,
        target_type="user",
        target_id=user.id,
        detail={"role": str(role)},
    )
    return user


def local_cli_user(session: Session, os_user: str | None = None) -> User:
    """The administrator account the CLI acts as: ``cli:<OS user name>``, created on first use.

    The ``cli:`` prefix cannot occur in names made by :func:`create_user`, so no web account can
    take it; the account has no password, so nobody can log in to the web service with it.
    """
    name = CLI_USER_PREFIX + re.sub(r"[^A-Za-z0-9_.@-]", "_", os_user or _os_user())[:140]
    user = get_user(session, name)
    if user is not None:
        return user
    user = User(username=name, role=Role.ADMIN, password_hash=None, is_active=True)
    session.add(user)
    session.flush()
    audit.record(
        session,
        AuditAction.USER_CREATE,
        actor=user,
        source=audit.CLI_SOURCE,
        target_type="user",
        target_id=user.id,
        detail={"role": str(Role.ADMIN), "local": True},
    )
    return user


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def authenticate(session: Session, username: str, password: str, *, source: str) -> User | None:
    """The active user with this password, or ``None``; audits ``login`` or ``login_failed``.

    A hash made with weaker parameters is replaced on a successful login.
    """
    user = get_user(session, username)
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        reason = "unknown user" if user is None else ("inactive" if ok else "wrong password")
        audit.record(
            session,
            AuditAction.LOGIN_FAILED,
            actor=user,
            actor_name=username[:150],
            source=source,
            detail={"reason": reason},
        )
        return None
    if user.password_hash and password_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    audit.record(
        session, AuditAction.LOGIN, actor=user, source=source, detail={"method": "password"}
    )
    return user


def set_password(session: Session, user: User, password: str, *, actor: User, source: str) -> None:
    """Set ``user``'s password (their own, or anyone's for an admin)."""
    if actor.id != user.id:
        require(actor, Action.USER_MANAGE)
    user.password_hash = hash_password(password)
    audit.record(
        session,
        AuditAction.USER_UPDATE,
        actor=actor,
        source=source,
        target_type="user",
        target_id=user.id,
        detail={"changed": "password"},
    )


def set_active(session: Session, user: User, active: bool, *, actor: User, source: str) -> None:
    """Deactivate (or reactivate) a user; users are never deleted, the audit log refers to them."""
    require(actor, Action.USER_MANAGE)
    user.is_active = active
    audit.record(
        session,
        AuditAction.USER_UPDATE,
        actor=actor,
        source=source,
        target_type="user",
        target_id=user.id,
        detail={"changed": "is_active", "is_active": active},
    )


def create_api_token(
    session: Session,
    user: User,
    name: str,
    *,
    actor: User,
    source: str,
    expires_in: timedelta | None = None,
) -> tuple[ApiToken, str]:
    """A new API token for ``user``: the row (holding only the hash) and the plain token.

    Show the plain token to the person once; it cannot be recovered later.
    """
    require(actor, Action.TOKEN_CREATE_OWN if actor.id == user.id else Action.TOKEN_MANAGE)
    if not name.strip() or len(name) > 100:
        raise StoreError("token name must be 1-100 characters, e.g. 'pacs-bridge'.")
    if expires_in is not None and expires_in <= timedelta(0):
        raise StoreError(f"token lifetime must be positive, got {expires_in}.")
    plain = new_token()
    token = ApiToken(
        user_id=user.id,
        name=name.strip(),
        token_hash=hash_token(plain),
        hint=token_hint(plain),
        expires_at=utcnow() + expires_in if expires_in is not None else None,
    )
    session.add(token)
    session.flush()
    audit.record(
        session,
        AuditAction.TOKEN_CREATE,
        actor=actor,
        source=source,
        target_type="api_token",
        target_id=token.id,
        detail={"user_id": user.id, "expires": token.expires_at is not None},
    )
    return token, plain


def active_token(session: Session, plain: str, *, now: datetime | None = None) -> ApiToken | None:
    """This token if it is unrevoked, unexpired and its user active (else ``None``); notes its
    last use."""
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(plain)))
    now = now or utcnow()
    if token is None or token.revoked_at is not None:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if not token.user.is_active:
        return None
    token.last_used_at = now
    return token


def user_for_token(session: Session, plain: str, *, now: datetime | None = None) -> User | None:
    """The active user owning this unrevoked, unexpired token, or ``None``; notes its last use."""
    token = active_token(session, plain, now=now)
    return token.user if token is not None else None


def require_token_user(session: Session, plain: str) -> User:
    """Like :func:`user_for_token`, but an unknown, revoked or expired token raises
    :class:`AuthenticationError` (the API answers 401)."""
    user = user_for_token(session, plain)
    if user is None:
        raise AuthenticationError("invalid, expired or revoked API token.")
    return user


def revoke_api_token(session: Session, token_id: int, *, actor: User, source: str) -> ApiToken:
    """Revoke a token (its owner, or an admin); the row stays for the record."""
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFoundError(f"API token {token_id} does not exist.")
    require(actor, Action.TOKEN_CREATE_OWN if actor.id == token.user_id else Action.TOKEN_MANAGE)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(
            session,
            AuditAction.TOKEN_REVOKE,
            actor=actor,
            source=source,
            target_type="api_token",
            target_id=token.id,
        )
    return token


def list_api_tokens(session: Session, user: User, *, actor: User) -> Sequence[ApiToken]:
    """``user``'s tokens (hashes only; for listing by name, hint, dates)."""
    require(actor, Action.TOKEN_CREATE_OWN if actor.id == user.id else Action.TOKEN_MANAGE)
    return session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)).all()


__all__ = [
    "CLI_USER_PREFIX",
    "authenticate",
    "create_api_token",
    "create_user",
    "get_user",
    "list_api_tokens",
    "local_cli_user",
    "require_token_user",
    "revoke_api_token",
    "set_active",
    "set_password",
    "user_for_token",
]
