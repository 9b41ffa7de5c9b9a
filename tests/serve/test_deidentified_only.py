"""A service configured to accept only de-identified uploads (``require_deidentified``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import typer
from pydicom.data import get_testdata_file
from serve_helpers import png_bytes
from typer.testing import CliRunner

from medsight.cli import serve as serve_cli
from medsight.errors import ConfigError, DataError
from medsight.privacy.dicom_deid import deidentify_paths
from medsight.privacy.keys import DeidKey
from medsight.serve import ServeSettings
from medsight.serve.inputs import Upload, decode_image, ecg_from_files
from shared_helpers import write_wfdb

KEY = DeidKey(b"serve-gate-test-key-" + b"k" * 32)
REFUSED = "upload.dcm: not de-identified: Patient Identity Removed (0012,0062) is missing"


@pytest.fixture(scope="module")
def dicoms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """CT and ECG test files as uploaded bytes, identified and after ``medsight deid dicom``."""
    out = tmp_path_factory.mktemp("deid")
    files: dict[str, bytes] = {}
    for name, source in (("ct", "CT_small.dcm"), ("ecg", "waveform_ecg.dcm")):
        path = Path(get_testdata_file(source))
        (outcome,) = deidentify_paths([path], out / name, KEY)
        assert outcome.status == "ok", outcome.reason
        files[name] = path.read_bytes()
        files[f"{name}-deid"] = Path(outcome.output).read_bytes()
    return files


def test_settings_defaults_environment_and_bounds() -> None:
    default = ServeSettings.from_env({})
    assert default.require_deidentified is False and default.cache_seconds == 2.0
    env = {"MEDSIGHT_REQUIRE_DEIDENTIFIED": "true", "MEDSIGHT_CACHE_SECONDS": "0"}
    settings = ServeSettings.from_env(env)
    assert settings.require_deidentified is True and settings.cache_seconds == 0.0
    assert ServeSettings.from_env(env, require_deidentified=None).require_deidentified is True
    for bad in ({"MEDSIGHT_CACHE_SECONDS": "301"}, {"MEDSIGHT_REQUIRE_DEIDENTIFIED": "maybe"}):
        with pytest.raises(ConfigError, match="service settings are invalid"):
            ServeSettings.from_env(bad)


def test_decode_image_refuses_identified_dicom_only_when_asked(dicoms) -> None:
    with pytest.raises(DataError) as caught:
        decode_image(dicoms["ct"], max_pixels=10**6, require_deidentified=True)
    message = str(caught.value)
    assert message.startswith(REFUSED) and "medsight-upload-" not in message
    image, kind = decode_image(dicoms["ct"], max_pixels=10**6)  # default unchanged
    same, _ = decode_image(dicoms["ct-deid"], max_pixels=10**6, require_deidentified=True)
    assert kind == "application/dicom" and np.array_equal(image, same)
    png, kind = decode_image(png_bytes(), max_pixels=10**6, require_deidentified=True)
    assert kind == "image/png" and png.shape == (1, 28, 28)  # no header to check


def _wfdb_pair(folder: Path, comments: list[str]) -> list[Upload]:
    write_wfdb(folder, "rec", np.sin(np.linspace(0, 60, 3000)), fs=300, comments=comments)
    return [Upload(n, (folder / n).read_bytes()) for n in ("rec.hea", "rec.dat")]


def test_ecg_uploads_refused_until_deidentified(dicoms, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"^upload\.dcm: not de-identified"):
        ecg_from_files([Upload("upload.dcm", dicoms["ecg"])], None, require_deidentified=True)
    record = ecg_from_files([Upload("x.dcm", dicoms["ecg-deid"])], None, require_deidentified=True)
    assert record.signal.shape[1] == 12
    assert ecg_from_files([Upload("x.dcm", dicoms["ecg"])], None).signal.shape[1] == 12
    pair = _wfdb_pair(tmp_path, ["Patient: Chidi Okafor"])
    with pytest.raises(DataError, match=r"^rec\.hea: header comments: 1 of 1.*NAME") as caught:
        ecg_from_files(pair, None, require_deidentified=True)
    assert "Okafor" not in str(caught.value) and str(tmp_path) not in str(caught.value)
    assert ecg_from_files(pair, None).n_samples == 3000


def _predict(service, task: str, name: str, data: bytes):
    files = {"file": (name, data, "application/dicom")}
    return service.client.post(f"/v1/predict/{task}", files=files, headers=service.auth("alice"))


def test_refused_uploads_are_422_with_the_reason(
    dicoms, make_service, image_bundle: Path, ecg_bundle: Path
) -> None:
    service = make_service({"scan": image_bundle, "rhythm": ecg_bundle}, require_deidentified=True)
    reply = _predict(service, "scan", "ct.dcm", dicoms["ct"])
    assert reply.status_code == 422 and reply.json()["detail"].startswith(REFUSED)
    assert "medsight deid dicom IN OUT" in reply.json()["detail"]
    reply = _predict(service, "scan", "ct.dcm", dicoms["ct-deid"])
    assert reply.status_code == 200, reply.text
    reply = _predict(service, "rhythm", "ecg.dcm", dicoms["ecg"])
    assert reply.status_code == 422 and "not de-identified" in reply.json()["detail"]
    reply = _predict(service, "rhythm", "ecg.dcm", dicoms["ecg-deid"])
    assert reply.status_code == 200, reply.text


def test_the_setting_reaches_the_routes(dicoms, make_service, image_bundle: Path) -> None:
    service = make_service({"scan": image_bundle}, require_deidentified=True)
    reply = _predict(service, "scan", "ct.dcm", dicoms["ct"])
    assert reply.status_code == 422 and reply.json()["detail"].startswith(REFUSED)
    assert _predict(service, "scan", "ct.dcm", dicoms["ct-deid"]).status_code == 200
    relaxed = make_service({"scan": image_bundle})
    assert _predict(relaxed, "scan", "ct.dcm", dicoms["ct"]).status_code == 200


def test_serve_flag_sets_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: started.append(app))
    monkeypatch.delenv("MEDSIGHT_DATABASE_URL", raising=False)
    monkeypatch.delenv("MEDSIGHT_REQUIRE_DEIDENTIFIED", raising=False)
    monkeypatch.setenv("MEDSIGHT_ADMIN_PASSWORD", "a long enough passphrase")
    cli = typer.Typer()
    cli.command("serve")(serve_cli.serve_command)
    cli.command("other")(lambda: None)
    base = ["serve", "--data-dir", str(tmp_path / "data")]
    for args, expected in ((base, False), ([*base, "--require-deidentified"], True)):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert started[-1].state.medsight.settings.require_deidentified is expected
