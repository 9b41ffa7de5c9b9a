"""Deep ensembles of image networks: averaged probabilities, training, bundle and Grad-CAM."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from medsight.bundle.image import ImageBundle
from medsight.config import ImageDataConfig, ImageTrainConfig
from medsight.explain.gradcam import gradcam
from medsight.models.ensemble import ProbabilityAverage, member_seed
from medsight.tasks.image import build_network, ensemble_members, run_image

NORMALISATION = {"mean": [0.5], "std": [0.25]}
SPEC = {"name": "small_cnn", "params": {"width": 4}, "in_channels": 1, "num_classes": 3}


def test_ensemble_outputs_the_mean_of_member_probabilities() -> None:
    torch.manual_seed(0)
    model = build_network({**SPEC, "ensemble": 3}, NORMALISATION).eval()
    assert isinstance(model, ProbabilityAverage) and len(ensemble_members(model)) == 3
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        expected = torch.stack([m(x).softmax(-1) for m in model.members]).mean(0)
        got = model(x).softmax(-1)  # log-probabilities act as logits
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(model.members[0](x), model.members[1](x))  # members differ
    assert not isinstance(build_network(SPEC, NORMALISATION), ProbabilityAverage)
    assert [member_seed(7, k) for k in range(3)] == [7, 1007, 2007]


def test_ensemble_gradcam_is_the_mean_of_member_maps() -> None:
    torch.manual_seed(1)
    model = build_network({**SPEC, "ensemble": 2}, NORMALISATION).eval()
    x = torch.rand(4, 1, 28, 28)
    maps = gradcam(model, x, target_class=1)
    members = [gradcam(member, x, target_class=1) for member in model.members]
    mean = np.mean(members, axis=0)
    peak = mean.reshape(4, -1).max(axis=1).reshape(4, 1, 1)
    assert maps.shape == (4, 28, 28)
    assert np.allclose(maps, np.where(peak > 0, mean / np.maximum(peak, 1e-12), 0), atol=1e-5)


def test_ensemble_run_trains_each_member_and_bundles_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = ImageTrainConfig(data=ImageDataConfig(path="phantom"), output_dir=tmp_path, name="ens")
    config.model.ensemble = 2
    config.model.params = {"width": 8}
    config.engine.epochs = 2
    with caplog.at_level(logging.INFO, logger="medsight.tasks.image"):
        result = run_image(config, progress=False)
    assert len(result.trained.fits) == 2
    done = [r.getMessage() for r in caplog.records if "ensemble member" in r.getMessage()]
    assert [m.split(":")[0] for m in done] == ["ensemble member 1/2", "ensemble member 2/2"]
    history = pd.read_csv(result.run_dir / "history.csv")
    assert history.groupby("member")["epoch"].max().tolist() == [2, 2]
    bundle = ImageBundle.load(result.bundle_path)
    assert bundle.metadata["model"]["ensemble"] == 2
    assert len(bundle.metadata["training"]["best_epoch"]) == 2
    onnx = bundle.predict_proba(result.splits.test.images)
    assert np.abs(onnx - result.trained.test_probabilities).max() < 1e-4
    assert isinstance(bundle.torch_model(), ProbabilityAverage)
    assert not (tmp_path / ".checkpoints" / "ens").exists()


def test_svm_member_run_bundles_reports_and_reloads(tmp_path: Path) -> None:
    from medsight.models.pixel_svm import PixelSVM, svm_member

    config = ImageTrainConfig(data=ImageDataConfig(path="phantom"), output_dir=tmp_path, name="svm")
    config.model.ensemble = 1
    config.model.params = {"width": 8}
    config.model.svm_member.enabled = True
    config.engine.epochs = 2
    result = run_image(config, progress=False)
    svm = svm_member(result.trained.model)
    assert isinstance(svm, PixelSVM) and isinstance(result.trained.model, ProbabilityAverage)
    bundle = ImageBundle.load(result.bundle_path)
    assert bundle.metadata["model"]["svm_member"] == svm.spec()
    onnx = bundle.predict_proba(result.splits.test.images)
    assert np.abs(onnx - result.trained.test_probabilities).max() < 1e-4
    rebuilt = bundle.torch_model()
    assert isinstance(svm_member(rebuilt), PixelSVM)
    images = torch.from_numpy(result.splits.test.images)
    with torch.no_grad():
        eager = rebuilt(images).softmax(-1).numpy()
        trained = result.trained.model.eval()(images).softmax(-1).numpy()
        network_only = rebuilt.members[0](images).softmax(-1).numpy()
    assert np.abs(eager - trained).max() < 1e-6
    assert np.abs(network_only - eager).max() > 1e-3  # the SVM member counts
    assert "pixel SVM" in bundle.model_card
    assert "the pixel SVM member has no feature map" in result.report_path.read_text()
    assert list((result.run_dir / "gradcam").glob("*.png"))


def test_multi_label_ensemble_averages_each_findings_sigmoid() -> None:
    torch.manual_seed(2)
    model = build_network({**SPEC, "ensemble": 3, "multi_label": True}, NORMALISATION).eval()
    assert isinstance(model, ProbabilityAverage) and model.multi_label
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        expected = torch.stack([m(x).sigmoid() for m in model.members]).mean(0)
        got = model(x).sigmoid()  # log-odds of the mean probability
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(got.sum(dim=1), torch.ones(5), atol=1e-3)
