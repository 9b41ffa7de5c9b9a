"""The image task end to end through the CLI: train on phantoms, predict PNG files, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from medsight.bundle.image import ImageBundle
from medsight.cli.main import app
from medsight.errors import BundleError, DataError

runner = CliRunner()


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    result = runner.invoke(
        app, ["train", "--data", "phantom", "--epochs", "2", "--output", str(out), "--name", "ph"]
    )
    assert result.exit_code == 0, result.output
    (run,) = [p for p in out.iterdir() if p.name.startswith("ph-")]
    return run


def test_run_folder_holds_bundle_report_and_metrics(image_run: Path) -> None:
    for name in ("report.html", "metrics.json", "test_predictions.csv", "history.csv"):
        assert (image_run / name).is_file(), name
    metrics = json.loads((image_run / "metrics.json").read_text())
    assert 0.0 <= metrics["auroc"]["lo"] <= metrics["auroc"]["value"] <= metrics["auroc"]["hi"]
    assert list((image_run / "gradcam").glob("*.png"))
    html = (image_run / "report.html").read_text()
    assert "Grad-CAM examples" in html and "AUROC" in html
    bundle = ImageBundle.load(image_run / "bundle")
    assert bundle.metadata["onnx_max_abs_difference"] <= 1e-4
    assert bundle.tta == ["flip_horizontal"]


def test_bundle_onnx_predictions_match_torch(image_run: Path) -> None:
    import torch

    bundle = ImageBundle.load(image_run / "bundle")
    images = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    onnx = bundle._classifier().predict_proba(images)
    with torch.inference_mode():
        eager = torch.softmax(bundle.torch_model()(torch.from_numpy(images)), dim=1).numpy()
    np.testing.assert_allclose(onnx, eager, atol=1e-4)


def test_predict_png_files_with_gradcam(image_run: Path, tmp_path: Path) -> None:
    pixels = (np.random.default_rng(1).random((40, 40)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "case.png")
    out = tmp_path / "pred.json"
    result = runner.invoke(
        app,
        [
            "predict",
            str(image_run),
            str(tmp_path / "case.png"),
            "--gradcam-dir",
            str(tmp_path / "cams"),
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    (prediction,) = json.loads(out.read_text())
    assert prediction["prediction"] in ("normal", "lesion")
    assert abs(sum(prediction["probabilities"].values()) - 1.0) < 1e-4
    assert Path(prediction["gradcam"]).is_file()


def test_tampered_onnx_is_refused(image_run: Path, tmp_path: Path) -> None:
    import shutil

    copy = shutil.copytree(image_run / "bundle", tmp_path / "bundle")
    with (copy / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(BundleError, match="checksum"):
        ImageBundle.load(copy)


def test_bad_image_folder_fails_cleanly_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (data / "b").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(data / "a" / "x.png")
    (data / "b" / "y.png").write_text("not an image")
    out = tmp_path / "runs"
    result = runner.invoke(app, ["train", "--data", str(data), "--output", str(out)])
    assert result.exit_code != 0
    assert isinstance(result.exception, DataError)
    assert "y.png" in str(result.exception)
    assert not out.exists() or not [p for p in out.iterdir() if not p.name.startswith(".")]
