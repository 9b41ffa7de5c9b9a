"""Keyed pseudonyms, UIDs and per-patient date shifts derived from one `DeidKey`.

Everything here is a pure function of (key, input): the same patient gets the same pseudonym, UID
map and date shift in every batch and run with one key, and unrelated values under another key.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medsight.errors import ConfigError, DataError
from medsight.privacy.keys import DeidKey

UID_ROOT = "2.25."  # PS3.5 B.2: a UID derived from a 128-bit integer needs no registered root
MAX_DATE_SHIFT_DAYS = 1095


class Pseudonymizer:
    """Maps identifiers to keyed pseudonyms; optionally records the map for re-identification."""

    def __init__(self, key: DeidKey, *, prefix: str = "P", record: bool = False) -> None:
        self.key = key
        self.prefix = prefix
        self._record = record
        self.reid_map: dict[str, str] = {}

    def patient_pseudonym(self, patient_id: str) -> str:
        """`P-` and 16 base32 characters (80 bits): one per patient and key."""
        digest = self.key.digest("patient", patient_id.strip())
        pseudonym = f"{self.prefix}-" + base64.b32encode(digest[:10]).decode("ascii")
        if self._record:
            self.reid_map[pseudonym] = patient_id
        return pseudonym

    def uid(self, uid: str) -> str:
        """A `2.25.` UID (at most 44 characters) from the keyed digest of the original UID."""
        digest = self.key.digest("uid", uid.strip().rstrip("\x00"))
        return UID_ROOT + str(int.from_bytes(digest[:16], "big"))

    def date_shift_days(self, patient_id: str) -> int:
        """A shift of 1 to 1095 days into the past, the same for every date of one patient."""
        digest = self.key.digest("date-shift", patient_id.strip())
        return -(1 + int.from_bytes(digest[:4], "big") % MAX_DATE_SHIFT_DAYS)

    def shift_date(self, date: dt.date, patient_id: str) -> dt.date:
        """`date` moved by the patient's shift (intervals within a patient are kept)."""
        return date + dt.timedelta(days=self.date_shift_days(patient_id))


def _map_cipher(key: DeidKey) -> Fernet:
    # The map key is derived (HKDF) from the de-identification key under its own label, so the
    # pseudonym digests and the map encryption never share key material directly.
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"medsight reid map v1"
    ).derive(key.digest("reid-map", ""))
    return Fernet(base64.urlsafe_b64encode(derived))


def save_reid_map(mapping: dict[str, str], path: str | Path, key: DeidKey) -> None:
    """Write the pseudonym -> original map encrypted (Fernet, AES-128-CBC + HMAC); merges with an
    existing map at `path` made with the same key."""
    path = Path(path)
    merged = load_reid_map(path, key) if path.exists() else {}
    merged.update(mapping)
    token = _map_cipher(key).encrypt(json.dumps(merged, sort_keys=True).encode("utf-8"))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(token)
    tmp.replace(path)


def load_reid_map(path: str | Path, key: DeidKey) -> dict[str, str]:
    """Decrypt a re-identification map; a wrong key or a tampered file is a clear error."""
    path = Path(path)
    try:
        token = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read the re-identification map {path}: {exc}") from exc
    try:
        return json.loads(_map_cipher(key).decrypt(token))
    except InvalidToken as exc:
        raise ConfigError(
            f"{path} cannot be decrypted with this key (another key, or the file was altered)"
        ) from exc
