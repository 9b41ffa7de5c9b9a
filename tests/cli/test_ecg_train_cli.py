"""``medsight train`` for ECG rhythm folders: --task ecg, an ecg-rhythm config, flags, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner, Result

from medsight.cli.main import app
from medsight.config import load_config
from medsight.errors import ConfigError, DataError

runner = CliRunner()
FS = 250
RATES = {"N": 70, "A": 125, "O": 48, "~": 80}


@pytest.fixture(scope="module")
def ecg_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 single-lead WFDB records of 10 s (4 per class, noisy ones noisy) and REFERENCE.csv."""
    import neurokit2 as nk
    import wfdb

    folder = tmp_path_factory.mktemp("cinc")
    rows = []
    for k, (label, rate) in enumerate(RATES.items()):
        for i in range(4):
            x = nk.ecg_simulate(
                duration=10, sampling_rate=FS, heart_rate=rate + 2 * i, random_state=i
            )
            noise = 0.8 if label == "~" else 0.02
            x = x + noise * np.random.default_rng(k * 10 + i).normal(size=x.size)
            name = f"R{k}{i}"
            wfdb.wrsamp(
                name,
                fs=FS,
                units=["mV"],
                sig_name=["I"],
                p_signal=x[:, None],
                fmt=["16"],
                write_dir=str(folder),
            )
            rows.append(f"{name},{label}")
    (folder / "REFERENCE.csv").write_text("\n".join(rows) + "\n")  # no header row
    return folder


def write_config(folder: Path, model: dict[str, object]) -> Path:
    """An ecg-rhythm config for a seconds-long run (flags then override some of it)."""
    raw = {
        "task": "ecg-rhythm",
        "data": {"crop_seconds": 6, "hop_seconds": 3, "val_fraction": 0.25, "test_fraction": 0.25},
        "model": model,
        "engine": {"epochs": 7},
        "evaluation": {"n_bootstrap": 100},
    }
    path = folder / "ecg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture
def ecg_config(tmp_path: Path) -> Path:
    return write_config(tmp_path, {"name": "ecg_resnet1d", "params": {"width": 4}})


def _train(*args: str) -> Result:
    return runner.invoke(app, ["train", *args])


def test_train_ecg_from_config_with_flag_overrides(
    ecg_dir: Path, ecg_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    result = _train(
        "--config", str(ecg_config), "--data", str(ecg_dir), "--epochs", "2", "--seed", "3",
        "--name", "cinc", "--output", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run,) = out.iterdir()
    assert run.name.startswith("cinc-")
    assert "Challenge score (mean F1 of N, A, O)" in result.output and "F1 ~" in result.output
    assert "Report:" in result.output and "report.html" in result.output
    saved = load_config(run / "config.yaml")
    assert saved.task == "ecg-rhythm" and saved.seed == 3 and saved.engine.epochs == 2
    assert saved.data.path == str(ecg_dir) and saved.data.crop_seconds == 6
    assert saved.model.params == {"width": 4} and saved.evaluation.n_bootstrap == 100
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 2
    assert (run / "bundle" / "model.onnx").is_file() and list((run / "explanations").iterdir())
    html = (run / "report.html").read_text()
    assert "Explanations" in html and "cinc" in html
    metrics = json.loads((run / "metrics.json").read_text())
    value = metrics["challenge_score"]["value"]
    assert 0.0 <= metrics["challenge_score"]["lo"] <= value <= metrics["challenge_score"]["hi"]
    shown = runner.invoke(app, ["evaluate", str(run)])  # the run folder works with `evaluate`
    assert shown.exit_code == 0, shown.output
    assert f"{value:.3f}" in shown.output and "challenge_score" in shown.output


def test_task_ecg_with_a_model_flag(ecg_dir: Path, tmp_path: Path) -> None:
    """--task ecg with an ecg-rhythm config; --model replaces the config's model by LightGBM."""
    config = write_config(tmp_path, {"name": "ecg_cnn_bilstm"})
    out = tmp_path / "runs"
    result = _train(
        "--task", "ecg", "--config", str(config), "--data", str(ecg_dir),
        "--model", "ecg_hrv_lightgbm", "--name", "lgb", "--output", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (run,) = out.iterdir()
    assert run.name.startswith("lgb-")
    assert load_config(run / "config.yaml").model.name == "ecg_hrv_lightgbm"
    assert (run / "bundle" / "model.txt").is_file()
    assert (run / "explanations" / "feature_importance.png").is_file()


def test_bad_input_is_a_clear_error_and_leaves_no_run_folder(
    ecg_dir: Path, ecg_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _train("--task", "ecg", "--data", str(empty), "--output", str(out))
    assert isinstance(result.exception, DataError)
    assert "REFERENCE.csv" in str(result.exception)
    result = _train("--config", str(ecg_config), "--output", str(out))
    assert isinstance(result.exception, ConfigError) and "--data" in str(result.exception)
    result = _train(
        "--task", "ecg", "--data", str(ecg_dir), "--model", "small_cnn", "--output", str(out)
    )
    assert isinstance(result.exception, ConfigError) and "ECG models" in str(result.exception)
    result = _train("--task", "ekg", "--data", str(ecg_dir), "--output", str(out))
    assert isinstance(result.exception, ConfigError) and "'ecg'" in str(result.exception)
    result = _train("--task", "ecg", "--data", str(ecg_dir), "--resume", "--output", str(out))
    assert isinstance(result.exception, ConfigError)
    assert not out.exists() or not any(out.iterdir())


def test_a_folder_with_reference_csv_is_taken_as_ecg(
    ecg_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --task and --config, a REFERENCE.csv folder goes to the ECG task (not images)."""
    import medsight.cli.runner as cli_runner

    seen: dict[str, str] = {}

    def fake_run(console: object, config: object) -> None:
        seen["task"] = config.task  # type: ignore[attr-defined]
        raise ConfigError("stop here")

    monkeypatch.setattr(cli_runner, "run_ecg_with_progress", fake_run)
    result = _train("--data", str(ecg_dir), "--output", str(tmp_path / "runs"))
    assert isinstance(result.exception, ConfigError) and seen == {"task": "ecg-rhythm"}
