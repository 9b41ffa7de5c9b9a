"""The secret key behind every pseudonym, UID and date shift.

One key gives one patient the same pseudonym, UIDs and date shift across batches and runs; a
different key gives unlinkable output. The key is read from a file or an environment variable and is
never printed: `repr` and `str` redact it, and no output or log of medsight contains it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from medsight.errors import ConfigError

KEY_ENV_VAR = "MEDSIGHT_DEID_KEY"
KEY_FILE_ENV_VAR = "MEDSIGHT_DEID_KEY_FILE"
MIN_KEY_BYTES = 32


class DeidKey:
    """A secret of at least 32 bytes used only through HMAC-SHA256 with a domain label."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise ConfigError(
                f"the de-identification key has {len(secret)} bytes; it needs at least "
                f"{MIN_KEY_BYTES}. Create one with `medsight deid keygen KEYFILE`."
            )
        self._secret = secret

    @classmethod
    def generate(cls) -> DeidKey:
        """A fresh random key (64 hex characters of 256-bit entropy)."""
        return cls(secrets.token_hex(32).encode("ascii"))

    @classmethod
    def from_file(cls, path: str | Path) -> DeidKey:
        """Read a key file; surrounding whitespace (a trailing newline) is not part of the key."""
        path = Path(path)
        try:
            secret = path.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the de-identification key file {path}: {exc}") from exc
        return cls(secret)

    @classmethod
    def resolve(cls, key_file: str | Path | None = None) -> DeidKey:
        """The key from `key_file`, else $MEDSIGHT_DEID_KEY_FILE, else $MEDSIGHT_DEID_KEY."""
        if key_file is not None:
            return cls.from_file(key_file)
        if os.environ.get(KEY_FILE_ENV_VAR):
            return cls.from_file(os.environ[KEY_FILE_ENV_VAR])
        if os.environ.get(KEY_ENV_VAR):
            return cls(os.environ[KEY_ENV_VAR].strip().encode("utf-8"))
        raise ConfigError(
            "no de-identification key: pass --key-file KEYFILE or set "
            f"{KEY_FILE_ENV_VAR} or {KEY_ENV_VAR} (create one with `medsight deid keygen KEYFILE`)"
        )

    def write(self, path: str | Path) -> None:
        """Write the key to a new file readable by its owner only; never overwrites."""
        path = Path(path)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError as exc:
            raise ConfigError(f"{path} exists; a key file is never overwritten") from exc
        with os.fdopen(fd, "wb") as handle:
            handle.write(self._secret + b"\n")

    def digest(self, domain: str, value: str) -> bytes:
        """HMAC-SHA256 of `value` under this key, separated by `domain` (e.g. "uid", "patient")."""
        message = domain.encode("utf-8") + b"\x00" + value.encode("utf-8")
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def fingerprint(self) -> str:
        """A short public identifier of the key (to tell keys apart in logs); reveals nothing."""
        return self.digest("key-fingerprint", "")[:6].hex()

    def __repr__(self) -> str:
        return f"DeidKey(fingerprint={self.fingerprint()})"

    __str__ = __repr__
