"""The PS3.15 Table E.1-1 data file and the action resolution built on it."""

from __future__ import annotations

import re

import pytest

from medsight.errors import ConfigError
from medsight.privacy.dicom_profile import (
    BASIC_ACTIONS,
    OPTION_ACTIONS,
    PROFILE_ROWS,
    DeidOptions,
    action_table,
    load_profile,
)

TAG = re.compile(r"^\((?:[0-9A-F]{4}|[56]0xx|gggg),(?:[0-9A-F]{4}|xxxx|eeee)\)$")


def test_table_parses_with_known_actions_and_unique_tags() -> None:
    rows = load_profile()
    assert len(rows) == PROFILE_ROWS == 460
    assert all(TAG.match(row.tag) for row in rows), [r.tag for r in rows if not TAG.match(r.tag)]
    assert len({row.tag for row in rows}) == len(rows)
    assert {row.basic for row in rows} <= BASIC_ACTIONS
    assert all(set(row.options.values()) <= OPTION_ACTIONS for row in rows)
    by_tag = {row.tag: row for row in rows}
    assert by_tag["(0010,0010)"].basic == "Z"  # Patient's Name
    assert by_tag["(0008,0018)"].basic == "U"  # SOP Instance UID
    assert by_tag["(0008,1140)"].basic == "X/Z/U*"
    assert by_tag["(60xx,3000)"].options == {"clean_graphics": "C"}
    assert by_tag["(0008,0020)"].options == {
        "retain_long_full_dates": "K",
        "retain_long_modified_dates": "C",
    }


def test_basic_profile_actions_and_compound_rule() -> None:
    table = action_table(DeidOptions())
    assert table.action(0x00100010) == "Z"
    assert table.action(0x00081010) == "D"  # Station Name X/Z/D -> D
    assert table.action(0x00080022) == "Z"  # Acquisition Date X/Z -> Z
    assert table.action(0x00080021) == "D"  # Series Date X/D -> D
    assert table.action(0x00080023) == "D"  # Content Date Z/D -> D
    assert table.action(0x00081140) == "U"  # Referenced Image Sequence X/Z/U*
    assert table.action(0x00080060) is None  # Modality: not listed, kept
    assert table.action(0x00091001) == "X"  # private
    assert table.action(0x50023000) == "X"  # curve data (50xx,xxxx)
    assert table.action(0x60004000) == "X"  # overlay comments (60xx,4000)
    assert table.action(0x60000010) is None  # overlay rows: kept


def test_options_override_the_basic_profile() -> None:
    table = action_table(
        DeidOptions(
            retain_longitudinal_modified_dates=True,
            retain_patient_characteristics=True,
            retain_uids=True,
        )
    )
    assert table.action(0x00080020) == "S"  # Study Date shifted
    assert table.action(0x00101010) == "K"  # Patient's Age kept
    assert table.action(0x00080018) == "K"  # SOP Instance UID kept
    assert table.action(0x00081120) == "X"  # Referenced Patient Sequence: the option removes it
    assert table.action(0x00102110) == "C"  # Allergies: cleaned
    full = action_table(DeidOptions(retain_longitudinal_full_dates=True))
    assert full.action(0x00080020) == "K"


def test_options_validation_and_codes() -> None:
    with pytest.raises(ConfigError, match="not both"):
        DeidOptions(retain_longitudinal_full_dates=True, retain_longitudinal_modified_dates=True)
    with pytest.raises(ConfigError, match="not implemented"):
        DeidOptions(clean_pixels=True)
    with pytest.raises(ConfigError, match="unknown de-identification option"):
        DeidOptions.from_names(["bogus"])
    options = DeidOptions.from_names(["modified-dates", "clean-descriptors", ""])
    assert options.retain_longitudinal_modified_dates and options.clean_descriptors
    codes = [code for code, _ in options.method_codes()]
    assert codes == ["113100", "113107", "113105"]
    assert options.enabled() == ["retain_longitudinal_modified_dates", "clean_descriptors"]
