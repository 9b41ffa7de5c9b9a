"""Credential primitives: argon2 password hashes and API tokens stored as SHA-256 digests.

Passwords are hashed with argon2id (argon2-cffi's RFC 9106 low-memory profile); the database never
holds a password. API tokens are 256 random bits shown once at creation (``msk_...``); only their
SHA-256 is stored. A fast hash is enough for tokens because they are random, not chosen by people:
guessing one is 2**256 work whatever the hash costs, and a digest can be looked up by index on every
request (an argon2 hash could not).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from medsight.store.errors import StoreError

MIN_PASSWORD_LENGTH: Final = 12
TOKEN_PREFIX: Final = "msk_"
TOKEN_BYTES: Final = 32

_hasher: Final = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """A hash to verify against when there is none, so unknown accounts cost the same time."""
    return _hasher.hash("medsight-timing-equaliser")


def check_password_policy(password: str) -> None:
    """Refuse passwords too short to resist guessing (a :class:`StoreError` saying the rule)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise StoreError(
            f"password too short ({len(password)} characters); use at least "
            f"{MIN_PASSWORD_LENGTH}, a passphrase of several words works well."
        )


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (salted; two calls give different strings)."""
    check_password_policy(password)
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored_hash``; ``False`` for no hash or a malformed one.

    With no hash it still spends one verification, so a missing account takes as long as a wrong
    password.
    """
    try:
        if stored_hash is None:
            _hasher.verify(_dummy_hash(), password + "\0")
            return False
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored_hash: str) -> bool:
    """Whether a stored hash used weaker parameters than today's (rehash at the next login)."""
    return _hasher.check_needs_rehash(stored_hash)


def new_token() -> str:
    """A fresh API token: ``msk_`` and 43 URL-safe characters (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token: what the database stores and looks up."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, stored_digest: str) -> bool:
    """Constant-time comparison of a presented token with a stored digest."""
    return hmac.compare_digest(hash_token(token), stored_digest)


def token_hint(token: str) -> str:
    """The first characters of a token, kept to help people tell their tokens apart."""
    return token[: len(TOKEN_PREFIX) + 4]
