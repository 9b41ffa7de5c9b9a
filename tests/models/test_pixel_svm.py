"""The pixel SVM member: its torch arithmetic against scikit-learn, classes, sizes and export."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from medsight.errors import DataError
from medsight.models.ensemble import ProbabilityAverage
from medsight.models.pixel_svm import PixelSVM, fit_pixel_svm, pooling_factor


def _flip(batch: torch.Tensor) -> torch.Tensor:
    return torch.flip(batch, dims=(3,))


def _blobs(n: int, classes: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images whose class is which quarter holds a bright square."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.normal(0.3, 0.1, (n, 1, size, size)).astype(np.float32)
    half = size // 2
    for image, label in zip(images, labels, strict=True):
        top, left = (half * k + 2 for k in divmod(int(label), 2))
        image[0, top : top + half - 4, left : left + half - 4] += 0.5
    return np.clip(images, 0, 1), labels


def _logits(model: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(images)).numpy()


def test_torch_decision_is_scikit_learns_pipeline_up_to_platt_scaling() -> None:
    """The module's log-odds are an increasing affine map (Platt) of the decision function of
    the same scikit-learn pipeline fitted independently on the same images and flips."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    images, labels = _blobs(120, 2, seed=1)
    labels = (labels + (np.random.default_rng(2).random(120) < 0.15)) % 2  # overlapping classes
    model = fit_pixel_svm(images, labels, 2, views=[_flip], components=10, c_grid=[3.0])
    pixels = np.concatenate([images, images[..., ::-1]]).reshape(240, -1).astype(np.float64)
    projected = make_pipeline(StandardScaler(), PCA(10, random_state=0)).fit_transform(pixels)
    gamma = 1.0 / (10 * projected.var())
    svc = make_pipeline(
        StandardScaler(),
        PCA(10, random_state=0),
        SVC(C=3.0, gamma=gamma, class_weight="balanced"),
    ).fit(pixels, np.tile(labels, 2))

    new, _ = _blobs(40, 2, seed=3)
    decision = svc.decision_function(new.reshape(40, -1).astype(np.float64))
    logits = _logits(model, new)
    assert np.all(logits[:, 0] == 0)
    slope, offset = np.polyfit(decision, logits[:, 1], 1)
    assert slope > 0
    assert np.abs(slope * decision + offset - logits[:, 1]).max() < 1e-4
    assert model.spec()["c"] == [3.0]


def test_multi_class_machines_one_per_class_and_softmax_probabilities() -> None:
    images, labels = _blobs(120, 3)
    model = fit_pixel_svm(images, labels, 3, components=8)
    assert len(model.machines) == 3 and len(model.spec()["support_counts"]) == 3
    new, truth = _blobs(30, 3, seed=5)
    probabilities = torch.softmax(torch.from_numpy(_logits(model, new)), dim=1).numpy()
    assert probabilities.shape == (30, 3)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-6)
    assert (probabilities.argmax(axis=1) == truth).mean() >= 0.9


def test_large_images_are_pooled_and_large_sets_sampled() -> None:
    assert [pooling_factor(s, s) for s in (28, 32, 33, 64, 224)] == [1, 1, 2, 2, 7]
    images, labels = _blobs(100, 2, size=64)
    model = fit_pixel_svm(images, labels, 2, components=5, max_train=30)
    spec = model.spec()
    assert spec["pooling"] == 2 and spec["n_inputs"] == 32 * 32
    assert spec["support_counts"][0] <= 30
    assert _logits(model, images[:3]).shape == (3, 2)


def test_rebuilt_from_its_spec_and_state_gives_the_same_outputs() -> None:
    images, labels = _blobs(60, 2)
    model = fit_pixel_svm(images, labels, 2, components=6, c_grid=[1.0, 10.0])
    rebuilt = PixelSVM(**model.spec())
    rebuilt.load_state_dict(model.state_dict())
    assert np.array_equal(_logits(rebuilt.eval(), images), _logits(model, images))
    assert "support vectors" in rebuilt.describe()


def test_a_class_with_one_image_is_a_clear_error() -> None:
    images, labels = _blobs(20, 2)
    labels[:] = 0
    labels[0] = 1
    with pytest.raises(DataError, match="at least 2 training images of every class"):
        fit_pixel_svm(images, labels, 2, components=4)


def test_an_ensemble_with_the_svm_exports_to_onnx_within_1e_4(
    tmp_path: Path, tiny_cnn: Callable[[int], torch.nn.Module]
) -> None:
    from medsight.deploy.onnx import OnnxClassifier, export_onnx
    from medsight.explain.gradcam import gradcam

    images, labels = _blobs(60, 2, size=28)
    network = tiny_cnn(0)
    ensemble = ProbabilityAverage([network, fit_pixel_svm(images, labels, 2)]).eval()
    path = export_onnx(ensemble, tmp_path / "model.onnx", input_shape=(1, 28, 28))
    onnx = OnnxClassifier(path, threads=1).predict_proba(images)
    with torch.no_grad():
        eager = ensemble(torch.from_numpy(images)).softmax(dim=1).numpy()
    assert np.abs(onnx - eager).max() <= 1e-4
    # the map covers both members: the network's Grad-CAM and the SVM's occlusion map
    both = gradcam(ensemble, images[:4], target_class=1)
    assert both.shape == (4, 28, 28) and not np.allclose(
        both, gradcam(network, images[:4], target_class=1), atol=1e-2
    )


def test_scattering_member_is_the_same_pipeline_on_scattering_coefficients() -> None:
    """With ``scattering`` the machine sees the log scattering coefficients: its log-odds are an
    affine map of a scikit-learn SVC fitted on those coefficients independently."""
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    from medsight.models.scattering import Scattering2d

    images, labels = _blobs(80, 2, size=16, seed=4)
    labels = (labels + (np.random.default_rng(5).random(80) < 0.15)) % 2
    model = fit_pixel_svm(images, labels, 2, components=12, c_grid=[1.0], scattering=(2, 4))
    spec = model.spec()
    assert spec["scattering"] == {"size": [16, 16], "scale": 2, "orientations": 4}
    assert spec["n_inputs"] == Scattering2d((16, 16), 2, 4).n_features(1) == (1 + 8 + 16) * 16
    with torch.no_grad():
        features = Scattering2d((16, 16), 2, 4)(torch.from_numpy(images)).double().numpy()
    projected = make_pipeline(StandardScaler(), PCA(12, random_state=0)).fit_transform(features)
    svc = make_pipeline(
        StandardScaler(),
        PCA(12, random_state=0),
        SVC(C=1.0, gamma=1.0 / (12 * projected.var()), class_weight="balanced"),
    ).fit(features, labels)
    new, _ = _blobs(30, 2, size=16, seed=6)
    with torch.no_grad():
        decision = svc.decision_function(
            Scattering2d((16, 16), 2, 4)(torch.from_numpy(new)).double().numpy()
        )
    logits = _logits(model, new)[:, 1]
    slope, offset = np.polyfit(decision, logits, 1)
    assert slope > 0 and np.abs(slope * decision + offset - logits).max() < 1e-3
    rebuilt = PixelSVM(**spec)
    rebuilt.load_state_dict(model.state_dict())
    assert np.array_equal(_logits(rebuilt.eval(), new), _logits(model, new))
    assert rebuilt.describe().startswith("scattering SVM (J 2, L 4, 12 PCA components")


def test_specs_saved_before_scattering_rebuild_a_pixel_machine() -> None:
    images, labels = _blobs(40, 2)
    model = fit_pixel_svm(images, labels, 2, components=4)
    old_spec = {k: v for k, v in model.spec().items() if k != "scattering"}  # session 11-14
    rebuilt = PixelSVM(**old_spec)
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.scattering is None and rebuilt.describe().startswith("pixel SVM")
    assert np.array_equal(_logits(rebuilt.eval(), images), _logits(model, images))


def test_a_weighted_ensemble_with_a_scattering_svm_exports_to_onnx(
    tmp_path: Path, tiny_cnn: Callable[[int], torch.nn.Module]
) -> None:
    from medsight.deploy.onnx import OnnxClassifier, export_onnx

    images, labels = _blobs(60, 2, size=28, seed=7)
    network = tiny_cnn(1)
    svm = fit_pixel_svm(images, labels, 2, components=10, scattering=(3, 8))
    ensemble = ProbabilityAverage([network, svm], weights=[0.6, 0.4]).eval()
    path = export_onnx(ensemble, tmp_path / "model.onnx", input_shape=(1, 28, 28))
    onnx = OnnxClassifier(path, threads=1).predict_proba(images)
    with torch.no_grad():
        eager = ensemble(torch.from_numpy(images)).softmax(dim=1).numpy()
        parts = [m(torch.from_numpy(images)).softmax(dim=1).numpy() for m in (network, svm)]
    assert np.abs(onnx - eager).max() <= 1e-4
    assert np.abs(0.6 * parts[0] + 0.4 * parts[1] - eager).max() < 1e-6


def _quadrant_means(maps: np.ndarray) -> np.ndarray:
    """``(N, 4)``: each map's mean over its quarters (top-left, top-right, bottom-left, -right)."""
    half = maps.shape[-1] // 2
    quarters = [maps[:, r : r + half, c : c + half] for r in (0, half) for c in (0, half)]
    return np.stack([q.mean(axis=(1, 2)) for q in quarters], axis=1)


@pytest.mark.parametrize("scattering", [None, (2, 8)], ids=["pixels", "scattering"])
def test_the_svm_map_marks_the_square_that_decides_the_class(
    scattering: tuple[int, int] | None,
) -> None:
    """Class 0 has its bright square top-left, class 1 top-right: each class's map on its own
    images is strongest in that quarter."""
    from medsight.explain.gradcam import gradcam

    images, labels = _blobs(80, 2, size=32, seed=8)
    svm = fit_pixel_svm(images, labels, 2, components=10, scattering=scattering).eval()
    new, truth = _blobs(20, 2, size=32, seed=9)
    maps = gradcam(svm, new, target_class=truth.tolist())
    assert maps.shape == (20, 32, 32) and np.isfinite(maps).all()
    strongest = _quadrant_means(maps).argmax(axis=1)
    assert (strongest == truth).mean() >= 0.9  # quarter 0 is top-left, 1 top-right


def test_an_ensemble_map_averages_the_members_maps_with_their_shares(
    tiny_cnn: Callable[[int], torch.nn.Module],
) -> None:
    from medsight.explain.gradcam import _normalise, gradcam, map_method

    images, labels = _blobs(60, 2, size=28, seed=11)
    network = tiny_cnn(2)
    svm = fit_pixel_svm(images, labels, 2, components=10, scattering=(3, 8)).eval()
    ensemble = ProbabilityAverage([network, svm], weights=[0.3, 0.7]).eval()
    with torch.no_grad():
        decided = ensemble(torch.from_numpy(images[:6])).argmax(dim=1).tolist()
    parts = [gradcam(m, images[:6], target_class=decided) for m in (network, svm)]
    expected = _normalise(0.3 * parts[0] + 0.7 * parts[1])
    assert np.allclose(gradcam(ensemble, images[:6]), expected, atol=1e-5)
    assert not np.allclose(expected, parts[0], atol=1e-2)  # the SVM's map counts
    # a member with a share of 0 takes no part in the decision and none in the map
    silent = ProbabilityAverage([network, svm], weights=[1.0, 0.0]).eval()
    assert np.allclose(gradcam(silent, images[:6], target_class=decided), parts[0], atol=1e-5)
    # the pictures name what they show
    assert map_method(ensemble) == "Grad-CAM + occlusion" and map_method(silent) == "Grad-CAM"
    assert map_method(svm) == "occlusion" and map_method(network) == "Grad-CAM"
