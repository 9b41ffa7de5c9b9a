"""The tree member: its tensor arithmetic against LightGBM, classes, sizes and export."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from medsight.errors import DataError
from medsight.models.ensemble import ProbabilityAverage
from medsight.models.pixel_svm import member_features
from medsight.models.tree_member import (
    ScatteringTrees,
    TreeEnsemble,
    _round_down_to_float32,
    fit_scattering_trees,
    tree_member,
)


def _blobs(n: int, classes: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images whose class is which quarter holds a bright square, 20% of labels flipped."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.normal(0.3, 0.1, (n, 1, size, size)).astype(np.float32)
    half = size // 2
    for image, label in zip(images, labels, strict=True):
        top, left = (half * k + 2 for k in divmod(int(label), 2))
        image[0, top : top + half - 4, left : left + half - 4] += 0.5
    noisy = (labels + (rng.random(n) < 0.2) * rng.integers(1, classes, n)) % classes
    return np.clip(images, 0, 1), noisy


def _flip(batch: torch.Tensor) -> torch.Tensor:
    return torch.flip(batch, dims=(3,))


@pytest.mark.parametrize("classes", [2, 3])
def test_probabilities_are_lightgbms_on_the_same_coefficients(classes: int) -> None:
    """An independent LGBMClassifier fitted on the same coefficients (image and mirror) with
    the same settings predicts what the torch module predicts, to float precision."""
    from lightgbm import LGBMClassifier

    images, labels = _blobs(120, classes, seed=1)
    member = fit_scattering_trees(
        images, labels, classes, views=[_flip], scattering=(2, 4), trees=40, seed=3
    )
    with torch.no_grad():
        both = torch.cat([torch.from_numpy(images), _flip(torch.from_numpy(images))])
        train_features = member_features(both, 1, member.scattering).numpy()
        new, _ = _blobs(50, classes, seed=2)
        new_features = member_features(torch.from_numpy(new), 1, member.scattering).numpy()
        ours = member(torch.from_numpy(new)).softmax(dim=1).numpy()
    reference = LGBMClassifier(
        n_estimators=40,
        learning_rate=0.03,
        num_leaves=15,
        subsample=0.8,
        subsample_freq=1,
        colsample_bytree=0.3,
        random_state=3,
        n_jobs=1,
        verbose=-1,
    ).fit(train_features, np.tile(labels, 2))
    expected = reference.predict_proba(new_features)
    assert ours.shape == (50, classes)
    assert np.abs(ours - expected).max() < 1e-5
    assert expected.std() > 0.01  # the trees do separate the images
    assert member.spec()["n_outputs"] == (1 if classes == 2 else classes)


def test_thresholds_round_down_so_float32_comparisons_match_double_ones() -> None:
    below, above = np.float32(0.1), np.nextafter(np.float32(0.1), np.float32(1))
    midpoint = (float(below) + float(above)) / 2  # a LightGBM threshold between two values
    rounded = _round_down_to_float32(midpoint)
    assert rounded == below and float(rounded) <= midpoint
    assert (below <= rounded) == (float(below) <= midpoint)
    assert (above <= rounded) == (float(above) <= midpoint)
    assert _round_down_to_float32(0.5) == np.float32(0.5)


def test_trees_of_different_sizes_share_the_padded_tensors() -> None:
    from lightgbm import LGBMClassifier

    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 3)).astype(np.float32)
    labels = (features[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(int)
    model = LGBMClassifier(
        n_estimators=30, num_leaves=6, min_child_samples=5, min_split_gain=2.0, verbose=-1
    ).fit(features, labels)
    sizes = {info["num_leaves"] for info in model.booster_.dump_model()["tree_info"]}
    trees = TreeEnsemble.from_lightgbm(model.booster_)
    with torch.no_grad():
        raw = trees(torch.from_numpy(features))[:, 0].numpy()
    assert len(sizes) >= 3  # e.g. 2 to 6 leaves
    assert np.abs(raw - model.predict(features, raw_score=True)).max() < 1e-5


class _DumpedBooster:
    """Stands in for a LightGBM Booster: only ``dump_model`` is read."""

    def __init__(self, dump: dict) -> None:
        self.dump = dump

    def dump_model(self) -> dict:
        return self.dump


def test_a_tree_that_is_one_leaf_adds_its_value_to_every_input() -> None:
    split = {
        "split_feature": 1,
        "threshold": 0.5,
        "decision_type": "<=",
        "left_child": {"leaf_value": -1.0},
        "right_child": {"leaf_value": 2.0},
    }
    dump = {
        "num_tree_per_iteration": 1,
        "tree_info": [{"tree_structure": {"leaf_value": 0.25}}, {"tree_structure": split}],
    }
    trees = TreeEnsemble.from_lightgbm(_DumpedBooster(dump))
    inputs = torch.tensor([[9.0, 0.5], [9.0, 0.6]])
    assert trees(inputs)[:, 0].tolist() == [-0.75, 2.25]
    dump["tree_info"][1]["tree_structure"] = {**split, "decision_type": "=="}
    with pytest.raises(DataError, match="numeric '<=' splits"):
        TreeEnsemble.from_lightgbm(_DumpedBooster(dump))


def test_rebuilt_from_its_spec_and_state_gives_the_same_outputs() -> None:
    images, labels = _blobs(60, 2)
    member = fit_scattering_trees(images, labels, 2, scattering=(2, 4), trees=20)
    rebuilt = ScatteringTrees(**member.spec())
    rebuilt.load_state_dict(member.state_dict())
    with torch.no_grad():
        x = torch.from_numpy(images)
        assert torch.equal(rebuilt.eval()(x), member(x))
    assert rebuilt.describe().startswith("LightGBM on scattering coefficients (J 2, L 4, 20 trees")
    ensemble = ProbabilityAverage([rebuilt, member])
    assert tree_member(ensemble) is rebuilt and tree_member(torch.nn.Identity()) is None


def test_a_class_with_one_image_is_a_clear_error() -> None:
    images, labels = _blobs(20, 2)
    labels[:] = 0
    labels[0] = 1
    with pytest.raises(DataError, match="at least 2 training images of every class"):
        fit_scattering_trees(images, labels, 2, trees=5)


def test_an_ensemble_with_the_trees_exports_to_onnx_within_1e_4(
    tmp_path: Path, tiny_cnn: Callable[[int], torch.nn.Module]
) -> None:
    from medsight.deploy.onnx import OnnxClassifier, export_onnx
    from medsight.explain.gradcam import gradcam

    images, labels = _blobs(60, 2, size=28, seed=4)
    network = tiny_cnn(0)
    trees = fit_scattering_trees(images, labels, 2, views=[_flip], trees=50)
    ensemble = ProbabilityAverage([network, trees], weights=[0.75, 0.25]).eval()
    path = export_onnx(ensemble, tmp_path / "model.onnx", input_shape=(1, 28, 28))
    onnx = OnnxClassifier(path, threads=1).predict_proba(images)
    with torch.no_grad():
        eager = ensemble(torch.from_numpy(images)).softmax(dim=1).numpy()
    assert np.abs(onnx - eager).max() <= 1e-4
    maps = gradcam(ensemble, images[:3])  # the trees' part is an occlusion map
    assert maps.shape == (3, 28, 28) and np.isfinite(maps).all()


def test_the_svm_and_the_trees_share_one_scattering_pass_in_an_ensemble(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_cnn: Callable[[int], torch.nn.Module]
) -> None:
    """An ensemble computes the scattering once for both members (eager and in its ONNX graph)
    and gives what each member gives alone; a different scattering is not shared."""
    import onnx

    from medsight.deploy.onnx import OnnxClassifier, export_onnx
    from medsight.models.pixel_svm import fit_pixel_svm
    from medsight.models.scattering import Scattering2d

    images, labels = _blobs(60, 2, size=28, seed=5)
    network = tiny_cnn(0)
    svm = fit_pixel_svm(images, labels, 2, views=[_flip], scattering=(3, 8), components=8)
    trees = fit_scattering_trees(images, labels, 2, views=[_flip], trees=20)
    coarse = fit_scattering_trees(images, labels, 2, scattering=(2, 8), trees=20)
    ensemble = ProbabilityAverage([network, svm, trees], weights=[0.5, 0.25, 0.25]).eval()
    batch = torch.from_numpy(images[:8])
    with torch.no_grad():
        alone = sum(
            share * member(batch).softmax(dim=1)
            for member, share in zip(ensemble.members, ensemble.shares, strict=True)
        )
    calls = []
    original = Scattering2d.forward
    monkeypatch.setattr(
        Scattering2d, "forward", lambda self, x: calls.append(self) or original(self, x)
    )
    with torch.no_grad():
        together = ensemble(batch).exp()
        assert len(calls) == 1
        torch.testing.assert_close(together, alone, atol=1e-6, rtol=0)
        ProbabilityAverage([svm, trees, coarse])(batch)
    assert len(calls) == 3  # J 3 once for the SVM and the trees, J 2 for the coarse trees
    monkeypatch.undo()

    def logs(model: torch.nn.Module) -> int:
        path = export_onnx(model.eval(), tmp_path / f"{id(model)}.onnx", input_shape=(1, 28, 28))
        runtime = OnnxClassifier(path, threads=1).predict_proba(images)
        with torch.no_grad():
            eager = model(torch.from_numpy(images)).softmax(dim=1).numpy()
        assert np.abs(runtime - eager).max() <= 1e-4
        return sum(node.op_type == "Log" for node in onnx.load(str(path)).graph.node)

    # one Log per scattering pass in the graph, and one for the ensemble's output
    assert logs(ProbabilityAverage([svm, trees])) == 2
    assert logs(ProbabilityAverage([svm, coarse])) == 3


def test_members_without_a_feature_map_get_one_occlusion_map_of_their_mixed_probability() -> None:
    from medsight.explain.gradcam import gradcam
    from medsight.explain.occlusion import occlusion_map
    from medsight.models.pixel_svm import fit_pixel_svm

    images, labels = _blobs(60, 2, size=28, seed=6)
    svm = fit_pixel_svm(images, labels, 2, scattering=(3, 8), components=8)
    trees = fit_scattering_trees(images, labels, 2, trees=20)
    ensemble = ProbabilityAverage([svm, trees], weights=[0.6, 0.4]).eval()
    batch = torch.from_numpy(images[:4])
    mixed = occlusion_map(ensemble, batch, [1] * 4)
    expected = np.clip(mixed, 0, None) / np.clip(mixed, 0, None).max(axis=(1, 2), keepdims=True)
    maps = gradcam(ensemble, batch, target_class=1)
    np.testing.assert_allclose(maps, expected, atol=1e-6)
    separate = 0.6 * gradcam(svm, batch, target_class=1) + 0.4 * gradcam(
        trees, batch, target_class=1
    )
    assert not np.allclose(maps, separate / separate.max(axis=(1, 2), keepdims=True), atol=1e-3)
