"""The ECG rhythm task end to end on a synthetic folder: read, split, train, bundle, predict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medsight.bundle.ecg import UNREADABLE, EcgBundle
from medsight.config import EcgDataConfig, EcgModelConfig, EcgTrainConfig
from medsight.errors import BundleError
from medsight.io.ecg import EcgRecord
from medsight.tasks.ecg_data import load_rhythm_folder, split_rhythm_set
from medsight.tasks.ecg_report import save_rhythm_bundle
from medsight.tasks.ecg_rhythm import train_rhythm_model

FS = 300
ROOT = Path(__file__).resolve().parents[2]


def _synthetic_ecg(seconds: float, heart_rate: float, seed: int, noise: float) -> np.ndarray:
    import neurokit2 as nk

    signal = nk.ecg_simulate(
        duration=seconds, sampling_rate=FS, heart_rate=heart_rate, random_state=seed
    )
    rng = np.random.default_rng(seed)
    return (signal + noise * rng.normal(size=signal.size)).astype(np.float64)


@pytest.fixture(scope="module")
def rhythm_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 single-lead WFDB records (.dat) and a REFERENCE.csv, 8 per class."""
    import wfdb

    folder = tmp_path_factory.mktemp("ecg")
    rows = ["record,label"]
    kinds = {"N": (70, 0.01), "A": (130, 0.05), "O": (45, 0.02), "~": (80, 0.8)}
    for k, (label, (rate, noise)) in enumerate(kinds.items()):
        for i in range(8):
            name = f"S{k}{i:02d}"
            seconds = 10 + 2 * (i % 3)
            signal = _synthetic_ecg(seconds, rate + i, seed=10 * k + i, noise=noise)
            wfdb.wrsamp(
                name,
                fs=FS,
                units=["mV"],
                sig_name=["I"],
                p_signal=signal[:, None],
                fmt=["16"],
                write_dir=str(folder),
            )
            rows.append(f"{name},{label}")
    (folder / "REFERENCE.csv").write_text("\n".join(rows) + "\n")
    return folder


def _config(folder: Path, model: str) -> EcgTrainConfig:
    config = EcgTrainConfig(
        data=EcgDataConfig(
            path=str(folder), crop_seconds=8, hop_seconds=4, val_fraction=0.25, test_fraction=0.25
        ),
        model=EcgModelConfig(
            name=model, params={"width": 8} if model != "ecg_hrv_lightgbm" else {}
        ),
    )
    config.engine.epochs = 3
    return config


@pytest.mark.parametrize("model", ["ecg_resnet1d", "ecg_cnn_bilstm"])
def test_network_trains_bundles_and_predicts(
    rhythm_folder: Path, tmp_path: Path, model: str
) -> None:
    config = _config(rhythm_folder, model)
    data = load_rhythm_folder(rhythm_folder, fs=config.data.fs)
    assert len(data) == 32 and data.fs == 150 and data.signals[0].shape[0] == 1
    assert data.class_counts() == {"N": 8, "A": 8, "O": 8, "~": 8}
    splits = split_rhythm_set(data, test_fraction=0.25, val_fraction=0.25)
    assert [len(p) for _, p in splits.items()] == [16, 8, 8]
    assert set(splits.test.names).isdisjoint(splits.train.names)

    trained = train_rhythm_model(config, splits, progress=False)
    assert trained.test_probabilities.shape == (8, 4)
    assert np.allclose(trained.test_probabilities.sum(axis=1), 1.0)
    assert len(trained.fits[0].history) >= 1

    bundle = save_rhythm_bundle(config, splits, trained, tmp_path / "bundle")
    loaded = EcgBundle.load(tmp_path / "bundle")
    onnx = loaded.predict_signals(splits.test.signals)
    assert np.abs(onnx - trained.test_probabilities).max() < 1e-4
    assert bundle.metadata["metrics"]["challenge_score"]["value"] >= 0.0

    record = EcgRecord(_synthetic_ecg(12, 70, seed=99, noise=0.01)[:, None], FS, ["I"])
    prediction = loaded.predict_record(record)
    assert prediction.label in data.class_names
    assert abs(sum(prediction.probabilities.values()) - 1) < 1e-6

    flat = loaded.predict_record(EcgRecord(np.zeros((FS * 12, 1)), FS, ["I"]))
    assert flat.label == UNREADABLE and any("flat" in r for r in flat.warnings)
    short = loaded.predict_record(EcgRecord(record.signal[: FS * 2], FS, ["I"]))
    assert short.label == UNREADABLE and any("too short" in r for r in short.warnings)


@pytest.fixture(scope="module")
def saved_bundle(rhythm_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = _config(rhythm_folder, "ecg_resnet1d")
    config.engine.epochs = 1
    splits = split_rhythm_set(
        load_rhythm_folder(rhythm_folder, fs=150), test_fraction=0.25, val_fraction=0.25
    )
    path = tmp_path_factory.mktemp("bundles") / "b"
    save_rhythm_bundle(config, splits, train_rhythm_model(config, splits, progress=False), path)
    return path


def test_tampered_bundle_is_refused(saved_bundle: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(saved_bundle, tmp_path / "copy"))
    with (copy / "model.onnx").open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(BundleError, match="checksum"):
        EcgBundle.load(copy)
    (copy / "weights.pt").unlink()
    with pytest.raises(BundleError, match=r"missing weights\.pt"):
        EcgBundle.load(copy)


def test_benchmark_scores_a_saved_bundle(rhythm_folder: Path, saved_bundle: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "ecg.py"),
            "--model",
            str(saved_bundle),
            "--data",
            str(rhythm_folder),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["records"] == 32 and 0.0 <= result["challenge_score"] <= 1.0
    assert set(result["f1_per_class"]) == {"N", "A", "O", "~"}


def test_ecg_predict_cli_explains_and_flags_unreadable(
    rhythm_folder: Path, saved_bundle: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from medsight.cli.main import app

    flat = tmp_path / "flat.csv"
    flat.write_text("I\n" + "0.0\n" * (FS * 12))
    runner = CliRunner()
    args = ["ecg", "predict", str(saved_bundle), str(rhythm_folder / "S000.hea"), str(flat)]
    result = runner.invoke(app, [*args, "--fs", "300", "--explain-dir", str(tmp_path / "png")])
    assert result.exit_code == 0, result.output
    assert "unreadable" in result.output and "flat" in result.output
    assert [p.name for p in (tmp_path / "png").iterdir()] == ["S000.png"]
    missing_rate = runner.invoke(app, ["ecg", "predict", str(saved_bundle), str(flat)])
    assert missing_rate.exit_code == 2 and "sampling rate" in missing_rate.output
