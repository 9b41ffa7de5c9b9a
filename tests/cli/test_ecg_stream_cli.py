"""``medsight ecg stream`` on small WFDB and CSV recordings, with and without a rhythm bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medsight.cli.main import app

runner = CliRunner()
FS = 250


def ecg_with_pause(seed: int = 0) -> np.ndarray:
    """20 s at 70 bpm with about 3.5 s without beats from about 9 s on (baseline plus noise)."""
    import neurokit2 as nk

    x = nk.ecg_simulate(duration=20, sampling_rate=FS, heart_rate=70, random_state=seed)
    rng = np.random.default_rng(seed)
    x = x + 0.01 * rng.normal(size=x.size)
    peaks = np.asarray(nk.ecg_peaks(x, sampling_rate=FS)[1]["ECG_R_Peaks"])
    k = int(np.searchsorted(peaks, 8 * FS))
    rr = int(np.median(np.diff(peaks)))
    lo, hi = peaks[k] + int(0.6 * rr), peaks[k + 4] + int(0.6 * rr)
    x[lo:hi] = x[lo] + 0.01 * rng.normal(size=hi - lo)
    return x


@pytest.fixture(scope="module")
def wfdb_record(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-lead WFDB record: lead "II" holds the ECG, lead "V1" a flat line."""
    import wfdb

    folder = tmp_path_factory.mktemp("wfdb")
    x = ecg_with_pause()
    signal = np.column_stack([x, np.zeros_like(x)])
    wfdb.wrsamp(
        "pause01",
        fs=FS,
        units=["mV", "mV"],
        sig_name=["II", "V1"],
        p_signal=signal,
        fmt=["16", "16"],
        write_dir=str(folder),
    )
    return folder / "pause01.hea"


def test_stream_prints_alerts_and_a_summary(wfdb_record: Path) -> None:
    result = runner.invoke(app, ["ecg", "stream", str(wfdb_record), "--lead", "II"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "lead II, 250 Hz, 20.0 s" in lines[0]
    pauses = [line for line in lines if " pause " in line]
    assert len(pauses) == 1 and "no beat for 2.5 s" in pauses[0]
    assert 10.0 < float(pauses[0].split()[0]) < 12.5  # the alert's signal time
    assert "beats in 20.0 s of signal; 1 alerts (pause 1)" in result.output
    assert "x real time" in result.output


def test_stream_other_lead_by_index_and_beats(wfdb_record: Path) -> None:
    flat = runner.invoke(app, ["ecg", "stream", str(wfdb_record), "--lead", "1"])
    assert flat.exit_code == 0, flat.output
    assert "lead V1" in flat.output and "signal lost: flat line" in flat.output
    assert "0 beats" in flat.output
    beats = runner.invoke(
        app, ["ecg", "stream", str(wfdb_record), "--beats", "--chunk-seconds", "0.2"]
    )
    assert beats.exit_code == 0, beats.output
    assert sum(" beat " in line for line in beats.output.splitlines()) >= 15


def test_csv_needs_a_sampling_rate(tmp_path: Path) -> None:
    path = tmp_path / "ecg.csv"
    x = ecg_with_pause(seed=1)
    path.write_text("ecg\n" + "\n".join(f"{v:.4f}" for v in x) + "\n")
    missing = runner.invoke(app, ["ecg", "stream", str(path)])
    assert missing.exit_code == 2
    assert "sampling rate" in missing.output and "--fs" in missing.output
    assert "Traceback" not in missing.output
    ok = runner.invoke(app, ["ecg", "stream", str(path), "--fs", str(FS), "--speed", "200"])
    assert ok.exit_code == 0, ok.output
    assert "pause" in ok.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lead", "V9"], "no lead 'V9'"),
        (["--chunk-seconds", "0"], "chunk_s"),
        (["--speed", "-1"], "speed"),
    ],
)
def test_bad_options_are_one_line_errors(wfdb_record: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["ecg", "stream", str(wfdb_record), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) <= 3  # one error line (wrapped at most)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "scan.dat"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    result = runner.invoke(app, ["ecg", "stream", str(path)])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output
    nothing = runner.invoke(app, ["ecg", "stream", str(tmp_path / "absent.hea")])
    assert nothing.exit_code == 2 and "not found" in nothing.output


def test_stream_with_a_bundle(wfdb_record: Path, tmp_path: Path) -> None:
    import torch

    from medsight.bundle.ecg import EcgBundle
    from medsight.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("ecg_resnet1d", in_channels=1, num_classes=4, width=4)
    metadata = {
        "name": "cli-untrained",
        "class_names": ["N", "A", "O", "~"],
        "fs": 150.0,
        "lead": "II",
        "leads": 1,
        "window_samples": 1500,
        "hop_samples": 750,
        "min_seconds": 5.0,
        "model": {"name": "ecg_resnet1d", "params": {"width": 4}},
    }
    EcgBundle.save_network(model, tmp_path / "bundle", metadata)
    result = runner.invoke(
        app, ["ecg", "stream", str(wfdb_record), "--bundle", str(tmp_path / "bundle")]
    )
    assert result.exit_code == 0, result.output
    assert "lead II" in result.output and "rhythm bundle cli-untrained" in result.output
    assert "4 rhythm updates; last at 20.0 s" in result.output
    damaged = tmp_path / "bundle" / "model.onnx"
    damaged.write_bytes(b"not onnx")
    broken = runner.invoke(
        app, ["ecg", "stream", str(wfdb_record), "--bundle", str(tmp_path / "bundle")]
    )
    assert broken.exit_code == 2 and "checksum" in broken.output
