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
    audit = json.loads((image_run / "data_audit.json").read_text())
    assert set(audit["sizes"]) == {"train", "val", "test"} and audit["threshold"] == 0.97
    metrics = json.loads((image_run / "metrics.json").read_text())
    assert 0.0 <= metrics["auroc"]["lo"] <= metrics["auroc"]["value"] <= metrics["auroc"]["hi"]
    assert list((image_run / "gradcam").glob("*.png"))
    html = (image_run / "report.html").read_text()
    assert "Grad-CAM examples" in html and "AUROC" in html
    assert audit["summary"].replace(">=", "&gt;=") in html
    bundle = ImageBundle.load(image_run / "bundle")
    assert bundle.metadata["data"]["near_duplicates"]["summary"] == audit["summary"]
    assert bundle.metadata["data"]["split_near_duplicate_threshold"] == 0.97
    assert bundle.metadata["onnx_max_abs_difference"] <= 1e-4
    assert bundle.tta == ["flip_horizontal"]


def test_bundles_decide_at_their_stored_threshold() -> None:
    binary = ImageBundle({"class_names": ["benign", "malignant"], "positive_class": "malignant"})
    p = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    assert binary.threshold == 0.5  # bundles from before the threshold was stored: argmax
    assert binary.decide(p).tolist() == [0, 0, 1]
    binary.metadata["threshold"] = 0.3
    assert binary.decide(p).tolist() == [0, 1, 1]
    assert binary.prediction("x", p[1], []).label == "malignant"
    three = ImageBundle({"class_names": ["a", "b", "c"], "positive_class": None, "threshold": None})
    assert three.threshold is None and three.positive_index is None
    assert three.decide(np.array([[0.2, 0.3, 0.5]])).tolist() == [2]


def test_youden_threshold_is_chosen_on_val_and_used_for_every_decision(tmp_path: Path) -> None:
    """--threshold youden: the stored threshold maximises Youden's J on the val split, and the
    test predictions, the test metrics and the bundle all decide at it (here with the pixel SVM
    member in the ensemble)."""
    import pandas as pd

    from medsight.config import ImageDataConfig
    from medsight.evaluate import binary_metrics
    from medsight.tasks.image_data import load_image_splits

    args = ["train", "--data", "phantom", "--epochs", "2", "--ensemble", "1", "--svm-member"]
    args += ["--no-tree-member"]
    result = runner.invoke(
        app, [*args, "--threshold", "youden", "--output", str(tmp_path), "--name", "op"]
    )
    assert result.exit_code == 0, result.output
    (run,) = tmp_path.glob("op-*")
    bundle = ImageBundle.load(run / "bundle")
    assert bundle.metadata["model"]["svm_member"]  # --svm-member: the SVM decides too
    assert "tree_member" not in bundle.metadata["model"]  # --no-tree-member
    threshold, positive = bundle.threshold, bundle.positive_index
    assert bundle.metadata["threshold_method"] == "youden on val"
    assert threshold is not None and positive is not None and threshold != 0.5

    val = load_image_splits(ImageDataConfig(path="phantom"), seed=0).val
    y_val = (val.labels == positive).astype(int)
    p_val = bundle.predict_proba(val.images)[:, positive]

    def youden(cut: float) -> float:
        scores = binary_metrics(y_val, p_val, cut)
        return scores["sensitivity"] + scores["specificity"] - 1

    # the threshold is a val probability of the torch model; ONNX gives it to within 1e-4, so
    # the image on the cut may fall either side of it here
    nearby = max(youden(threshold + shift) for shift in (-1e-4, 0.0, 1e-4))
    assert nearby >= max(youden(cut) for cut in np.unique(p_val)) - 1e-9

    table = pd.read_csv(run / "test_predictions.csv")
    names = bundle.class_names
    p_test = table[f"p_{names[positive]}"].to_numpy()
    expected = np.where(p_test >= threshold, names[positive], names[1 - positive])
    assert (table["prediction"].astype(str).to_numpy() == expected).all()
    metrics = json.loads((run / "metrics.json").read_text())
    y_test = (table["label"].astype(str) == names[positive]).to_numpy().astype(int)
    at_cut = binary_metrics(y_test, p_test, threshold)
    assert metrics["sensitivity"]["value"] == pytest.approx(at_cut["sensitivity"], abs=1e-9)
    assert f"{threshold:.3f} (youden on val)" in (run / "report.html").read_text()
    assert f">= {threshold:.3f} (youden on val)" in bundle.model_card


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
