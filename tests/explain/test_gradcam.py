"""Grad-CAM: it points at the evidence, leaves the model as found, and draws readable PNGs."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from medsight.errors import ConfigError, DataError
from medsight.explain.gradcam import (
    default_target_layer,
    gradcam,
    gradcam_figure,
    gradcam_figure_base64,
    overlay,
    save_gradcam_png,
)
from medsight.models.imaging import resnet18_28, scattering_cnn, small_cnn
from medsight.transforms.image import Standardize
from shared_helpers import small_densenet

SIZE = 28


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _resnet() -> nn.Module:
    return resnet18_28(in_channels=1, num_classes=2)


MODELS = {
    "small_cnn": (lambda: small_cnn(width=8), SIZE),
    "resnet18_28": (_resnet, SIZE),
    "densenet": (small_densenet, 64),
    "scattering_cnn": (lambda: scattering_cnn(width=8), SIZE),
}


def _hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(m._backward_pre_hooks)
        for m in model.modules()
    )


def _blob_images(n: int, positive: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise; positives get a bright 5x5 blob somewhere in the top-left quadrant."""
    images = rng.uniform(0.0, 0.3, size=(n, 1, SIZE, SIZE)).astype(np.float32)
    for i in np.flatnonzero(positive):
        r, c = rng.integers(1, SIZE // 2 - 5, size=2)
        images[i, 0, r : r + 5, c : c + 5] = 1.0
    return images


def _tiny_cnn() -> nn.Module:
    """Two Conv2d/BatchNorm/ReLU blocks with a max-pool between; a 14x14 final feature map."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 2),
    )


@pytest.fixture(scope="module")
def blob_model() -> tuple[nn.Module, np.ndarray]:
    """A tiny CNN trained for a second to detect the top-left blob; held-out positive images."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=256)
    x = torch.from_numpy(_blob_images(len(labels), labels, rng))
    y = torch.from_numpy(labels)
    model = _tiny_cnn()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(3):
        for start in range(0, len(x), 32):
            optimiser.zero_grad()
            loss = nn.functional.cross_entropy(model(x[start : start + 32]), y[start : start + 32])
            loss.backward()
            optimiser.step()
    model.eval()
    test = _blob_images(24, np.ones(24, dtype=int), np.random.default_rng(1))
    negatives = _blob_images(24, np.zeros(24, dtype=int), np.random.default_rng(2))
    with torch.no_grad():
        hits = (model(torch.from_numpy(test)).argmax(1) == 1).float().mean().item()
        rejections = (model(torch.from_numpy(negatives)).argmax(1) == 0).float().mean().item()
    assert min(hits, rejections) > 0.9, "the blob detector did not train; the check is moot"
    return model, test


def test_heatmap_mass_concentrates_in_the_blob_quadrant(
    blob_model: tuple[nn.Module, np.ndarray],
) -> None:
    model, test = blob_model
    heatmaps = gradcam(model, torch.from_numpy(test), target_class=1)
    half = SIZE // 2
    quadrants = np.stack(
        [
            heatmaps[:, :half, :half].sum(axis=(1, 2)),
            heatmaps[:, :half, half:].sum(axis=(1, 2)),
            heatmaps[:, half:, :half].sum(axis=(1, 2)),
            heatmaps[:, half:, half:].sum(axis=(1, 2)),
        ],
        axis=1,
    )
    share = quadrants / quadrants.sum(axis=1, keepdims=True)
    assert share[:, 0].mean() > 0.5  # a uniform map would give 0.25
    assert (share[:, 0] > share[:, 1:].max(axis=1)).mean() >= 0.9
    # the hottest pixel lies within the blob's quadrant in most images
    peaks = np.array([np.unravel_index(h.argmax(), h.shape) for h in heatmaps])
    assert ((peaks[:, 0] < half) & (peaks[:, 1] < half)).mean() >= 0.8


@pytest.mark.parametrize("kind", list(MODELS))
def test_shapes_range_and_model_left_as_found(kind: str) -> None:
    torch.manual_seed(0)
    factory, size = MODELS[kind]
    model = factory()
    model.train()
    first_bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    first_bn.eval()  # mixed flags must come back exactly
    flags = [m.training for m in model.modules()]
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    grads = [p.requires_grad for p in model.parameters()]
    hooks = _hook_count(model)
    running_mean = first_bn.running_mean.clone()

    heatmaps = gradcam(model, torch.rand(3, 1, size, size))

    assert heatmaps.shape == (3, size, size)
    assert heatmaps.dtype == np.float32
    assert heatmaps.min() >= 0.0 and heatmaps.max() <= 1.0
    # each map is scaled to peak 1, or all 0 where random weights give no positive evidence
    peaks = heatmaps.reshape(3, -1).max(axis=1)
    assert (np.isclose(peaks, 1.0) | (peaks == 0.0)).all()
    assert [m.training for m in model.modules()] == flags
    assert [p.requires_grad for p in model.parameters()] == grads
    assert all(p.grad is None for p in model.parameters())
    assert _hook_count(model) == hooks == 0
    assert torch.equal(first_bn.running_mean, running_mean)  # eval mode: no BN update


def test_eval_mode_batchnorm_and_predicted_class_default() -> None:
    torch.manual_seed(0)
    model = small_cnn(width=8).eval()
    images = torch.rand(4, 1, SIZE, SIZE)
    with torch.no_grad():
        predicted = model(images).argmax(1).tolist()
    default = gradcam(model, images)
    explicit = gradcam(model, images, target_class=predicted)
    np.testing.assert_allclose(default, explicit, atol=1e-6)
    assert model.training is False


def test_one_image_numpy_and_inside_inference_mode() -> None:
    torch.manual_seed(0)
    model = _resnet().eval()
    image = np.random.default_rng(0).random((1, SIZE, SIZE), dtype=np.float32)
    with torch.inference_mode():
        heatmap = gradcam(model, image, target_class=0)
    assert heatmap.shape == (1, SIZE, SIZE)
    assert heatmap.max() == pytest.approx(1.0)


def test_target_classes_differ_and_are_validated() -> None:
    torch.manual_seed(0)
    model = small_cnn(width=8).eval()
    images = torch.rand(2, 1, SIZE, SIZE)
    zero = gradcam(model, images, target_class=0)
    one = gradcam(model, images, target_class=[1, 1])
    assert not np.allclose(zero, one)
    with pytest.raises(DataError, match="out of range"):
        gradcam(model, images, target_class=2)
    with pytest.raises(DataError, match="one class per image"):
        gradcam(model, images, target_class=[0, 1, 1])
    with pytest.raises(DataError, match="N, C, H, W"):
        gradcam(model, torch.rand(SIZE, SIZE))


def test_default_target_layer_rule_and_override() -> None:
    assert default_target_layer(small_cnn(width=8)) == "4"
    assert default_target_layer(_resnet()) == "layer4"
    assert default_target_layer(small_densenet()) == "class_layers.relu"
    wrapped = Standardize(_resnet(), [0.5], [0.25])
    assert default_target_layer(wrapped) == "network.layer4"
    assert default_target_layer(_tiny_cnn()) == "6"  # the ReLU after the last conv
    fixed = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 2))
    with pytest.raises(ConfigError, match="pass layer= or an example"):
        default_target_layer(fixed)  # the 64x64 probe does not fit a 28x28-only model
    assert default_target_layer(fixed, torch.zeros(1, 1, SIZE, SIZE)) == "1"
    assert _hook_count(fixed) == 0
    with pytest.raises(ConfigError, match="no Conv2d"):
        default_target_layer(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)))

    model = _resnet().eval()
    images = torch.rand(2, 1, SIZE, SIZE)
    coarse = gradcam(model, images, target_class=1)
    finer = gradcam(model, images, target_class=1, layer="layer2")
    assert finer.shape == coarse.shape and not np.allclose(finer, coarse)
    with pytest.raises(ConfigError, match="not a sub-module"):
        gradcam(model, images, layer="layer9")
    with pytest.raises(ConfigError, match="feature map"):
        gradcam(model, images, layer="fc")
    assert _hook_count(model) == 0  # also after a failure


def test_overlay_colours_and_shapes() -> None:
    gray = np.zeros((6, 5))
    hot = overlay(gray, np.ones((6, 5)))
    cold = overlay(gray, np.zeros((6, 5)))
    assert hot.shape == (6, 5, 3) and hot.dtype == np.uint8
    assert hot[0, 0, 0] > hot[0, 0, 2]  # jet: 1 is red
    assert cold[0, 0, 2] > cold[0, 0, 0]  # jet: 0 is blue
    np.testing.assert_array_equal(overlay(np.ones((6, 5, 3)), np.ones((6, 5)), alpha=0.0), 255)
    assert overlay(np.full((6, 5, 1), 0.5), np.ones((6, 5))).shape == (6, 5, 3)
    with pytest.raises(DataError, match="does not match"):
        overlay(gray, np.ones((5, 5)))
    with pytest.raises(DataError, match=r"\(H, W, 3\)"):
        overlay(np.zeros((1, 6, 5)), np.ones((6, 5)))


def test_png_written_atomically_with_expected_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image, heatmap = rng.random((SIZE, SIZE)), rng.random((SIZE, SIZE)).astype(np.float32)
    path = save_gradcam_png(
        image, heatmap, tmp_path / "cams" / "case.png", title="malignant p=0.91"
    )
    assert path == tmp_path / "cams" / "case.png"
    with Image.open(path) as png:
        assert png.format == "PNG"
        # two 224-px panels, three 12-px gaps; panel + label 22 + gap 12 + title 34
        assert png.size == (2 * SIZE * 8 + 36, SIZE * 8 + 22 + 12 + 34)
        pixels = np.asarray(png.convert("RGB"))
    assert pixels.std() > 10  # not blank
    assert [p.name for p in path.parent.iterdir()] == ["case.png"]  # no temp file left

    untitled = save_gradcam_png(image, heatmap, tmp_path / "plain.png", scale=2)
    with Image.open(untitled) as png:
        assert png.size == (2 * SIZE * 2 + 36, SIZE * 2 + 22 + 12)
    big = save_gradcam_png(np.zeros((256, 256, 3)), np.zeros((256, 256)), tmp_path / "big.png")
    with Image.open(big) as png:
        assert png.size[0] == 2 * 768 + 36  # scale capped at 3 for a 256-px image


def test_base64_figure_is_a_png() -> None:
    encoded = gradcam_figure_base64(np.zeros((8, 8)), np.ones((8, 8)), title="benign p=0.70")
    data = base64.b64decode(encoded)
    assert data.startswith(b"\x89PNG")
    with Image.open(io.BytesIO(data)) as png:
        assert png.size == (2 * 64 + 36, 64 + 22 + 12 + 34)


def test_long_titles_wrap_and_every_text_stays_inside_the_figure() -> None:
    """A report title (prediction, map class, probability, reference) is longer than a 28-px
    image's figure is wide: it wraps, the figure grows by a line, and no text is clipped."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    title = "predicted malignant (map: malignant, p=0.81); reference normal, benign"
    image, heatmap = np.zeros((28, 28)), np.ones((28, 28))
    short = gradcam_figure(image, heatmap, title="malignant p=0.81")
    for method in ("Grad-CAM", "Grad-CAM + occlusion"):
        figure = gradcam_figure(image, heatmap, title=title, method=method)
        width, height = (figure.get_size_inches() * figure.dpi).round()
        assert height > (short.get_size_inches() * short.dpi)[1]  # a second title line
        renderer = FigureCanvasAgg(figure).get_renderer()
        texts = [*figure.texts, *(t for axis in figure.axes for t in axis.texts)]
        assert any(method in t.get_text() for t in texts)
        for text in texts:
            box = text.get_window_extent(renderer)
            assert box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height, text
