"""`medsight deid`: keygen, dicom (with verify at the end), verify; the key is never printed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from medsight.cli.deid import deid_app

runner = CliRunner()


@pytest.fixture
def keyfile(tmp_path: Path) -> Path:
    path = tmp_path / "deid.key"
    result = runner.invoke(deid_app, ["keygen", str(path)])
    assert result.exit_code == 0, result.output
    secret = path.read_text().strip()
    assert secret not in result.output and "fingerprint" in result.output
    return path


def test_dicom_then_verify(keyfile: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "US1_J2KR.dcm"):
        shutil.copy(get_testdata_file(name), inputs / name)
    out = tmp_path / "out"
    result = runner.invoke(
        deid_app,
        ["dicom", str(inputs), str(out), "--key-file", str(keyfile), "--options", "modified-dates"],
    )
    assert result.exit_code == 0, result.output
    assert "2 de-identified, 1 quarantined, 0 failed" in result.output
    assert "verify: no identifying attribute found" in result.output
    assert keyfile.read_text().strip() not in result.output
    assert keyfile.read_text().strip() not in (out / "deid-log.jsonl").read_text()
    assert runner.invoke(deid_app, ["verify", str(out)]).exit_code == 0
    # an identified file in the tree is found and fails verify
    shutil.copy(get_testdata_file("CT_small.dcm"), out / "leak.dcm")
    result = runner.invoke(deid_app, ["verify", str(out)])
    assert result.exit_code == 1 and "finding(s)" in result.output


def test_user_errors_are_one_line_exit_2(
    keyfile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDSIGHT_DEID_KEY", raising=False)
    monkeypatch.delenv("MEDSIGHT_DEID_KEY_FILE", raising=False)
    source = get_testdata_file("CT_small.dcm")
    result = runner.invoke(deid_app, ["dicom", source, str(tmp_path / "o")])
    assert result.exit_code == 2 and "no de-identification key" in result.output
    result = runner.invoke(
        deid_app,
        ["dicom", source, str(tmp_path / "o"), "--key-file", str(keyfile), "--options", "bogus"],
    )
    assert result.exit_code == 2 and "unknown de-identification option" in result.output
    result = runner.invoke(deid_app, ["dicom", str(tmp_path / "o")])
    assert result.exit_code == 2 and "IN... OUT" in result.output
    result = runner.invoke(deid_app, ["keygen", str(keyfile)])
    assert result.exit_code == 2 and "never overwritten" in result.output
