"""Keys and keyed pseudonyms: length rule, secrecy in repr, determinism, encrypted map."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from medsight.errors import ConfigError
from medsight.privacy.keys import KEY_ENV_VAR, KEY_FILE_ENV_VAR, DeidKey
from medsight.privacy.pseudonym import Pseudonymizer, load_reid_map, save_reid_map

SECRET = b"0123456789abcdef0123456789abcdef-secret"


def test_key_too_short_and_never_in_repr(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least 32"):
        DeidKey(b"short")
    key = DeidKey(SECRET)
    assert SECRET.decode() not in repr(key) and SECRET.decode() not in str(key)
    assert key.fingerprint() in repr(key)
    path = tmp_path / "key"
    key.write(path)
    assert (path.stat().st_mode & 0o777) == 0o600
    with pytest.raises(ConfigError, match="never overwritten"):
        key.write(path)
    assert DeidKey.from_file(path).fingerprint() == key.fingerprint()


def test_key_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_FILE_ENV_VAR, raising=False)
    monkeypatch.delenv(KEY_ENV_VAR, raising=False)
    with pytest.raises(ConfigError, match="no de-identification key"):
        DeidKey.resolve()
    monkeypatch.setenv(KEY_ENV_VAR, SECRET.decode())
    assert DeidKey.resolve().fingerprint() == DeidKey(SECRET).fingerprint()
    other = DeidKey.generate()
    other.write(tmp_path / "k")
    monkeypatch.setenv(KEY_FILE_ENV_VAR, str(tmp_path / "k"))
    assert DeidKey.resolve().fingerprint() == other.fingerprint()


def test_pseudonyms_uids_and_shifts_are_keyed() -> None:
    one, same, other = (
        Pseudonymizer(DeidKey(SECRET)),
        Pseudonymizer(DeidKey(SECRET)),
        Pseudonymizer(DeidKey(b"x" * 32)),
    )
    assert one.patient_pseudonym("123") == same.patient_pseudonym(" 123 ")
    assert one.patient_pseudonym("123") != other.patient_pseudonym("123")
    assert re.fullmatch(r"P-[A-Z2-7]{16}", one.patient_pseudonym("123"))
    uid = one.uid("1.2.840.113619.2.1.1")
    assert uid == same.uid("1.2.840.113619.2.1.1\x00") and uid != other.uid("1.2.840.113619.2.1.1")
    assert uid.startswith("2.25.") and len(uid) <= 64
    shift = one.date_shift_days("123")
    assert -1095 <= shift <= -1
    assert one.shift_date(dt.date(2020, 3, 1), "123") - one.shift_date(
        dt.date(2020, 1, 1), "123"
    ) == dt.timedelta(days=60)


def test_reid_map_round_trip_merge_and_wrong_key(tmp_path: Path) -> None:
    key = DeidKey(SECRET)
    path = tmp_path / "map"
    recorder = Pseudonymizer(key, record=True)
    pseudonym = recorder.patient_pseudonym("MRN-1")
    save_reid_map(recorder.reid_map, path, key)
    assert b"MRN-1" not in path.read_bytes()
    save_reid_map({"P-OTHER": "MRN-2"}, path, key)
    assert load_reid_map(path, key) == {pseudonym: "MRN-1", "P-OTHER": "MRN-2"}
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        load_reid_map(path, DeidKey(b"y" * 32))
