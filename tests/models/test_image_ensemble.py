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
from medsight.models.ensemble import (
    ProbabilityAverage,
    member_seed,
    share_by_val_loss,
    val_loss_rise,
)
from medsight.tasks.image import build_network, ensemble_members, member_share, run_image
from medsight.train.engine import Trainer
from medsight.train.settings import engine_config
from medsight.transforms.image import ImageTensorDataset, tta_functions

NORMALISATION = {"mean": [0.5], "std": [0.25]}
SPEC = {"name": "small_cnn", "params": {"width": 4}, "in_channels": 1, "num_classes": 3}


def _one_network(tmp_path: Path, name: str, width: int) -> ImageTrainConfig:
    """A phantom-data run of one small network of ``width`` channels, written under tmp_path."""
    config = ImageTrainConfig(data=ImageDataConfig(path="phantom"), output_dir=tmp_path, name=name)
    config.model.ensemble = 1
    config.model.params = {"width": width}
    return config


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


def test_svm_and_tree_members_run_bundles_reports_and_reloads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from medsight.models.pixel_svm import PixelSVM, svm_member
    from medsight.models.tree_member import ScatteringTrees, tree_member

    config = _one_network(tmp_path, "svm", width=8)
    config.model.svm_member.enabled = True
    config.model.svm_member.weight_grid = [0.25, 0.5]  # the share is chosen on val
    config.model.tree_member.trees = 40  # on by default; a quarter of the average
    config.model.tree_member.leave_out_if_worse_on_val = False  # kept whatever val says
    config.engine.epochs = 2
    with caplog.at_level(logging.INFO, logger="medsight.tasks.image"):
        result = run_image(config, progress=False)
    svm, trees = svm_member(result.trained.model), tree_member(result.trained.model)
    assert isinstance(trees, ScatteringTrees)
    assert isinstance(svm, PixelSVM) and isinstance(result.trained.model, ProbabilityAverage)
    assert svm.scattering is not None  # the default features
    # the share is the grid value whose mixture has the lowest val log-loss
    splits, engine = result.splits, engine_config(config.engine, 0, n_train=1)
    views = tta_functions(result.trained.tta)
    network, machine = (
        Trainer(model, engine).predict_proba(torch.from_numpy(splits.val.images), tta=views)
        for model in (result.trained.model.members[0], svm)
    )
    share, losses = share_by_val_loss(splits.val.labels, network, machine, [0.25, 0.5])
    # the trees take a quarter; the network and the SVM keep their proportions in the rest
    shares = result.trained.model_spec["member_weights"]
    assert np.allclose(shares, [0.75 * (1 - share), 0.75 * share, 0.25], atol=1e-12)
    assert result.trained.model.shares == pytest.approx(shares)
    assert result.trained.svm_share == pytest.approx(0.75 * share)
    assert result.trained.tree_share == pytest.approx(0.25)
    assert any(f"{share:g}: {losses[share]:.3f}" in r.getMessage() for r in caplog.records)
    bundle = ImageBundle.load(result.bundle_path)
    assert bundle.metadata["model"]["svm_member"] == svm.spec()
    assert bundle.metadata["model"]["tree_member"] == trees.spec()
    assert bundle.metadata["model"]["member_weights"] == shares
    onnx = bundle.predict_proba(result.splits.test.images)
    assert np.abs(onnx - result.trained.test_probabilities).max() < 1e-4
    rebuilt = bundle.torch_model()
    assert isinstance(svm_member(rebuilt), PixelSVM)
    assert isinstance(tree_member(rebuilt), ScatteringTrees)
    images = torch.from_numpy(result.splits.test.images)
    with torch.no_grad():
        eager = rebuilt(images).softmax(-1).numpy()
        trained = result.trained.model.eval()(images).softmax(-1).numpy()
        network_only = rebuilt.members[0](images).softmax(-1).numpy()
        machine_only = rebuilt.members[1](images).softmax(-1).numpy()
        trees_only = rebuilt.members[2](images).softmax(-1).numpy()
    # 1e-5, not 0: the trained copy is channels-last, and oneDNN rounds convolutions
    # differently by memory format (the SVM's kernel amplifies 1e-6 in its coefficients)
    assert np.abs(eager - trained).max() < 1e-4
    assert min(np.abs(part - eager).max() for part in (network_only, machine_only)) > 1e-3
    mixture = np.tensordot(shares, [network_only, machine_only, trees_only], axes=1)
    assert np.abs(mixture - eager).max() < 1e-5
    assert "scattering SVM (J 3, L 8" in bundle.model_card
    assert "LightGBM on scattering coefficients (J 3, L 8, 40 trees" in bundle.model_card
    report = result.report_path.read_text()
    assert f"with a share of {0.75 * share:.2g}" in report
    svm_part = f"the SVM ({0.75 * share:.0%} of the averaged probability)"
    assert f"{svm_part} and the trees (25%), are mapped by occlusion" in report
    assert list((result.run_dir / "gradcam").glob("*.png"))


@pytest.mark.parametrize("member", ["svm_member", "tree_member"])
def test_member_with_no_share_on_val_is_left_out(tmp_path: Path, member: str) -> None:
    config = _one_network(tmp_path, "no", width=4)
    config.model.svm_member.enabled = member == "svm_member"
    config.model.tree_member.enabled = member == "tree_member"
    config.model.tree_member.trees = 20
    settings = getattr(config.model, member)
    settings.weight, settings.weight_grid = "val", [0.0]
    config.engine.epochs = 1
    result = run_image(config, progress=False)
    assert not isinstance(result.trained.model, ProbabilityAverage)
    assert member not in result.trained.model_spec
    assert "member_weights" not in ImageBundle.load(result.bundle_path).metadata["model"]


def test_tree_share_on_val_is_the_lowest_val_loss_mixture(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from medsight.models.tree_member import tree_member

    config = _one_network(tmp_path, "tv", width=4)
    config.model.svm_member.enabled = False
    config.model.tree_member.trees = 20
    config.model.tree_member.weight = "val"
    config.model.tree_member.weight_grid = [0.25, 0.5]
    config.engine.epochs = 1
    with caplog.at_level(logging.INFO, logger="medsight.tasks.image"):
        result = run_image(config, progress=False)
    model, splits = result.trained.model, result.splits
    engine, views = engine_config(config.engine, 0, n_train=1), tta_functions(result.trained.tta)
    network, trees = (
        Trainer(part, engine).predict_proba(torch.from_numpy(splits.val.images), tta=views)
        for part in (model.members[0], tree_member(model))
    )
    share, losses = share_by_val_loss(splits.val.labels, network, trees, [0.25, 0.5])
    assert result.trained.model_spec["member_weights"] == pytest.approx([1 - share, share])
    assert result.trained.tree_share == pytest.approx(share)
    assert losses[0.25] != losses[0.5]  # the choice was not a tie
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("tree member share by val log-loss") for m in messages)
    assert any(f"{share:g}: {losses[share]:.3f}" in m for m in messages)


def test_weighted_average_and_the_val_loss_share() -> None:
    torch.manual_seed(3)
    model = build_network({**SPEC, "ensemble": 2}, NORMALISATION).eval()
    weighted = ProbabilityAverage(list(model.members), weights=[0.2, 0.8]).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        first, second = (m(x).softmax(-1) for m in model.members)
        assert torch.allclose(weighted(x).softmax(-1), 0.2 * first + 0.8 * second, atol=1e-6)
    with pytest.raises(ValueError, match="summing to 1"):
        ProbabilityAverage(list(model.members), weights=[0.5, 0.6])
    labels = np.array([0, 1, 1])
    confident_wrong = np.array([[0.1, 0.9], [0.9, 0.1], [0.9, 0.1]])
    right = np.array([[0.8, 0.2], [0.3, 0.7], [0.3, 0.7]])
    share, losses = share_by_val_loss(labels, confident_wrong, right, [0.0, 0.25, 0.5])
    assert share == 0.5 and losses[0.0] > losses[0.25] > losses[0.5]
    assert share_by_val_loss(labels, right, confident_wrong, [0.5, 0.0, 0.25])[0] == 0.0
    assert share_by_val_loss(labels, right, right, [0.5, 0.25])[0] == 0.25  # ties: smaller


def test_val_loss_rise_is_the_paired_per_image_rise() -> None:
    labels = np.array([0, 1, 1, 0])
    current = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.9, 0.1]])
    member = np.array([[0.2, 0.8], [0.3, 0.7], [0.9, 0.1], [0.9, 0.1]])
    mixed = 0.5 * current + 0.5 * member
    rows = np.arange(4)
    rises = np.log(current[rows, labels]) - np.log(mixed[rows, labels])
    rise, error = val_loss_rise(labels, current, member, 0.5)
    assert rise == pytest.approx(rises.mean())
    assert error == pytest.approx(rises.std(ddof=1) / 2)
    assert val_loss_rise(labels, current, current, 0.25) == (0.0, 0.0)
    assert val_loss_rise(labels[:1], current[:1], member[:1], 0.5)[1] == np.inf


class _ReadsTheLabel(torch.nn.Module):
    """Logits from an image's mean (the tests' images are filled with their label): right for
    ``sign`` 1, confidently wrong for -1; ``noise`` adds a per-image term of either sign, read
    from the last pixel."""

    def __init__(self, sign: float, noise: float = 0.0) -> None:
        super().__init__()
        self.sign, self.noise = sign, noise

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean = images.mean(dim=(1, 2, 3)) - 0.5
        jitter = self.noise * torch.sin(40.0 * images[:, 0, -1, -1])
        logit = self.sign * 3.0 * mean + jitter
        return torch.stack([-logit, logit], dim=1)


@pytest.mark.parametrize(
    ("sign", "noise", "verb", "kept"),
    [
        (-1.0, 0.0, "raises", False),  # confidently wrong: far beyond chance
        (2.0, 2.4, "raises", True),  # a rise of about 1.2 standard errors: within chance
        (3.0, 0.0, "changes", True),  # surer and right: lowers the loss
    ],
)
def test_a_member_that_raises_the_val_loss_beyond_chance_is_left_out(
    sign: float, noise: float, verb: str, kept: bool, caplog: pytest.LogCaptureFixture
) -> None:
    labels = np.tile([0, 1], 20)
    images = np.broadcast_to(labels[:, None, None, None], (40, 1, 8, 8)).astype(np.float32)
    images[:, 0, -1, -1] = np.random.default_rng(0).uniform(0, 1, 40)
    val = ImageTensorDataset(images, labels)
    config = ImageTrainConfig(data=ImageDataConfig(path="phantom"))
    settings = config.model.tree_member
    settings.leave_out_if_worse_on_val = True
    current, member = _ReadsTheLabel(1.0), _ReadsTheLabel(sign, noise)
    with caplog.at_level(logging.INFO, logger="medsight.tasks.image"):
        share = member_share(config, settings, "tree", current, member, val, [])
    assert share == (0.25 if kept else 0.0)
    message = next(r.getMessage() for r in caplog.records if "val log-loss by" in r.getMessage())
    assert message.endswith(": left out") is not kept
    assert f"at 0.25 {verb} the val log-loss" in message
    settings.leave_out_if_worse_on_val = False  # the fixed share without the test
    assert member_share(config, settings, "tree", current, _ReadsTheLabel(-1.0), val, []) == 0.25


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


def test_auto_svm_member_is_skipped_with_a_warning_where_it_cannot_be_fitted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from medsight.errors import DataError
    from medsight.io.images import ImageSet
    from medsight.tasks.image import fit_svm_member
    from medsight.tasks.image_data import ImageSplits

    rng = np.random.default_rng(0)
    images = rng.random((12, 1, 16, 16)).astype(np.float32)
    labels = np.array([0] * 11 + [1])  # one image of class 1: no grouped folds possible
    part = ImageSet(images, labels, ["a", "b"])
    splits = ImageSplits(part, part, part, "tiny", official_splits=False)
    config = ImageTrainConfig(data=ImageDataConfig(path="tiny"))
    config.model.svm_member.enabled = "auto"
    with caplog.at_level(logging.WARNING, logger="medsight.tasks.image"):
        assert fit_svm_member(config, splits) is None
    assert any("no SVM member" in r.getMessage() for r in caplog.records)
    config.model.svm_member.enabled = True
    with pytest.raises(DataError, match="at least 2 training images of every class"):
        fit_svm_member(config, splits)
