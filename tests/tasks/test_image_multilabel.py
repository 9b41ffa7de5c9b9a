"""Multi-label images (several findings per image, as MedMNIST's ChestMNIST): train, report,
bundle, predict, and the settings that are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from medsight.bundle.image import ImageBundle
from medsight.cli.main import app
from medsight.config import ImageDataConfig, ImageTrainConfig
from medsight.errors import ConfigError
from medsight.tasks.image import run_image
from shared_helpers import FINDINGS_SIZES, write_findings_npz

FINDINGS = ["0", "1", "2"]  # an .npz outside the MedMNIST catalogue: columns by number
SIZES = FINDINGS_SIZES


def _config(npz: Path, out: Path) -> ImageTrainConfig:
    config = ImageTrainConfig(data=ImageDataConfig(path=str(npz)), output_dir=out, name="ml")
    config.model.ensemble = 2
    config.model.params = {"width": 8}
    config.model.svm_member.enabled = "auto"  # on for one label per image only
    config.engine.epochs = 4
    config.evaluation.n_bootstrap = 200
    config.evaluation.gradcam_cases = 4
    return config


@pytest.fixture(scope="module")
def findings_run(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("multilabel")
    npz = write_findings_npz(folder / "findings.npz")
    return run_image(_config(npz, folder / "runs"), progress=False), npz


def test_each_finding_is_learnt_and_reported(findings_run) -> None:
    result, _ = findings_run
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["macro_auroc"]["value"] > 0.9
    assert {"accuracy", "exact_match", "0/auroc", "2/sensitivity"} <= set(metrics)
    assert result.trained.multi_label and result.trained.test_probabilities.shape == (120, 3)
    assert "svm_member" not in result.trained.model_spec  # "auto" leaves multi-label data alone
    html = (result.run_dir / "report.html").read_text()
    assert "Per finding" in html and "Exact match" in html and "several findings" in html
    summary = html.split("Per finding")[0]
    assert "AUROC (mean over findings)" in summary and "one-vs-rest" not in summary
    assert "ROC curve per finding, dots at each finding&#39;s threshold" in html
    table = pd.read_csv(result.run_dir / "test_predictions.csv", keep_default_na=False)
    labels = result.splits.test.labels
    expected = [
        "|".join(n for n, on in zip(FINDINGS, row, strict=True) if on) or "none" for row in labels
    ]
    assert table["label"].tolist() == expected
    called = (table[[f"p_{n}" for n in FINDINGS]].to_numpy() >= 0.5).astype(int)
    assert table["prediction"].tolist() == [
        "|".join(n for n, on in zip(FINDINGS, row, strict=True) if on) or "none" for row in called
    ]
    assert len(list((result.run_dir / "gradcam").glob("*.png"))) == 4


def test_bundle_gives_each_finding_its_own_probability(findings_run, tmp_path: Path) -> None:
    result, _ = findings_run
    bundle = ImageBundle.load(result.bundle_path)
    assert bundle.multi_label and bundle.threshold == 0.5 and bundle.positive_index is None
    onnx = bundle.predict_proba(result.splits.test.images)
    assert np.abs(onnx - result.trained.test_probabilities).max() < 1e-4
    assert not np.allclose(onnx.sum(axis=1), 1.0)  # findings, not exclusive classes
    assert "each finding is called present" in bundle.model_card
    assert "- Accuracy (mean over findings):" in bundle.model_card

    image = np.full((28, 28), 80, np.uint8)
    image[11:17, 11:17] = 200  # finding 1 only
    png = tmp_path / "case.png"
    Image.fromarray(image).save(png)
    out = tmp_path / "out.json"
    args = [str(png), "--gradcam-dir", str(tmp_path), "--output", str(out)]
    done = CliRunner().invoke(app, ["predict", str(result.bundle_path), *args])
    assert done.exit_code == 0, done.output
    (answer,) = json.loads(out.read_text())
    probabilities = answer["probabilities"]
    assert max(probabilities, key=probabilities.get) == "1"  # the finding shown ranks first
    called = [name for name in FINDINGS if probabilities[name] >= 0.5]
    assert answer["prediction"] == ("|".join(called) or "none") and "1" in called
    assert answer["probability"] == pytest.approx(probabilities["1"])
    assert (tmp_path / "case-gradcam.png").is_file()


def test_the_svm_member_is_refused_before_any_training(tmp_path: Path) -> None:
    config = _config(write_findings_npz(tmp_path / "f.npz"), tmp_path / "runs")
    config.model.svm_member.enabled = True
    with pytest.raises(ConfigError, match="SVM member is for one label"):
        run_image(config, progress=False)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_each_finding_gets_its_own_val_threshold_everywhere(tmp_path: Path) -> None:
    """``evaluation.threshold: sensitivity`` picks one cut per finding on val; the test
    metrics, the predictions table, the bundle, the model card and the service all use them."""
    from medsight.evaluate.metrics import multilabel_metrics_unchecked
    from medsight.serve.predictors import ImagePredictor

    config = _config(write_findings_npz(tmp_path / "f.npz", seed=1), tmp_path / "runs")
    config.evaluation.threshold = "sensitivity"
    config.evaluation.target_sensitivity = 0.9
    result = run_image(config, progress=False)
    trained = result.trained
    cuts = trained.threshold
    assert isinstance(cuts, list) and len(cuts) == 3 and len(set(cuts)) == 3
    assert trained.threshold_method == "sensitivity 0.9 per finding on val"

    probabilities = trained.test_probabilities
    labels = result.splits.test.labels
    expected = multilabel_metrics_unchecked(labels, probabilities, FINDINGS, np.array(cuts))
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["0/sensitivity"]["value"] == pytest.approx(expected["0/sensitivity"])
    assert metrics["accuracy"]["value"] == pytest.approx(expected["accuracy"])
    table = pd.read_csv(result.run_dir / "test_predictions.csv", keep_default_na=False)
    called = probabilities >= np.array(cuts)
    assert table["prediction"].tolist() == [
        "|".join(n for n, on in zip(FINDINGS, row, strict=True) if on) or "none" for row in called
    ]

    bundle = ImageBundle.load(result.bundle_path)
    assert bundle.threshold == pytest.approx(cuts)
    assert "its own threshold (sensitivity 0.9 per finding on val)" in bundle.model_card
    assert "Decision threshold" in (result.run_dir / "report.html").read_text()
    outcome = ImagePredictor(result.bundle_path).predict_image(
        result.splits.test.images[0], b"raw", "image/png", explain=False
    )
    assert outcome.threshold is None
    expected_cuts = dict(zip(FINDINGS, cuts, strict=True))
    assert outcome.finding_thresholds == pytest.approx(expected_cuts, abs=1e-6)
    present = [n for n in FINDINGS if outcome.probabilities[n] >= outcome.finding_thresholds[n]]
    assert outcome.label == ("|".join(present) or "none")


def test_service_answers_with_findings(findings_run) -> None:
    from medsight.serve.predictors import ImagePredictor

    result, _ = findings_run
    predictor = ImagePredictor(result.bundle_path)
    image = result.splits.test.images[0]
    outcome = predictor.predict_image(image, b"raw", "image/png", explain=True)
    probabilities = outcome.probabilities
    called = [name for name in FINDINGS if probabilities[name] >= 0.5]
    assert outcome.label == ("|".join(called) or "none")
    assert outcome.threshold == 0.5 and outcome.positive_class is None
    assert outcome.finding_thresholds == dict.fromkeys(FINDINGS, 0.5)
    assert outcome.probability == pytest.approx(max(probabilities.values()), abs=1e-6)
    assert outcome.explanation is not None and outcome.explanation["image_png_base64"]
    assert outcome.stored_output("image")["multi_label"] is True  # feedback names findings
