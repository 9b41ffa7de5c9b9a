"""Three exclusive classes from a class-folder tree: one-vs-rest evaluation end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medsight.bundle.image import ImageBundle
from medsight.config import ImageDataConfig, ImageTrainConfig
from medsight.evaluate.metrics import multiclass_metrics
from medsight.tasks.image import run_image

CLASSES = ["cyst", "lesion", "normal"]


def _write_class_folders(root: Path, per_class: int = 60) -> Path:
    """28x28 noise PNGs; each class puts a bright 6x6 square at its own height."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            image = rng.normal(80, 20, (28, 28))
            image[2 + 9 * k : 8 + 9 * k, 11:17] += 90
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def three_class_run(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("multiclass")
    data = _write_class_folders(folder / "data")
    config = ImageTrainConfig(
        data=ImageDataConfig(path=str(data)), output_dir=folder / "runs", name="three"
    )
    config.model.ensemble = 1
    config.model.params = {"width": 8}
    config.engine.epochs = 6
    config.evaluation.n_bootstrap = 200
    config.evaluation.gradcam_cases = 2
    return run_image(config, progress=False)


def test_one_vs_rest_metrics_report_and_bundle(three_class_run) -> None:
    result = three_class_run
    trained, test = result.trained, result.splits.test
    assert trained.threshold is None and trained.positive_index is None
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    expected = multiclass_metrics(test.labels, trained.test_probabilities, CLASSES)
    for key in ("accuracy", "macro_auroc", "macro_f1", "lesion/sensitivity", "cyst/auroc"):
        assert metrics[key]["value"] == pytest.approx(expected[key])
    assert metrics["macro_auroc"]["value"] > 0.9  # the classes differ visibly

    table = pd.read_csv(result.run_dir / "test_predictions.csv")
    predicted = trained.test_probabilities.argmax(axis=1)
    assert table["prediction"].tolist() == [CLASSES[k] for k in predicted]
    html = (result.run_dir / "report.html").read_text()
    assert "Per class (one-vs-rest)" in html and "ROC curve per class (one-vs-rest)" in html
    assert html.count("<img") >= 4  # training curves, ROC per class, confusion, Grad-CAM

    bundle = ImageBundle.load(result.bundle_path)
    assert bundle.class_names == CLASSES and bundle.threshold is None
    assert bundle.decide(trained.test_probabilities).tolist() == predicted.tolist()
