"""The wavelet scattering transform: filters, sizes, stability to shifts, and kymatio's values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from medsight.models.scattering import Scattering2d, gabor_kernel, morlet_kernel


def _texture(seed: int, size: int = 28, smooth: int = 3) -> torch.Tensor:
    """A smooth random texture in [0, 1], (1, 1, size, size)."""
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(rng.random((1, 1, size, size)).astype(np.float32))
    smoothed = torch.nn.functional.avg_pool2d(noise, smooth, stride=1, padding=smooth // 2)
    return (smoothed - smoothed.min()) / (smoothed.max() - smoothed.min())


def test_wavelets_have_zero_mean_and_the_low_pass_unit_gain() -> None:
    for j in range(3):
        kernel = morlet_kernel(0.8 * 2**j, math.pi / 8, 0.75 * math.pi / 2**j, 0.5, 12)
        assert abs(kernel.sum()) < 1e-12
        assert np.abs(kernel).max() > 1e-3  # not the zero filter
    scattering = Scattering2d((28, 28), 3, 8)
    for level in range(3):
        assert float(getattr(scattering, f"phi_{level}").sum()) == pytest.approx(1.0, abs=1e-5)
    gaussian = gabor_kernel(1.5, 0.0, 0.0, 1.0, 8)
    assert np.allclose(gaussian.imag, 0) and gaussian.real.sum() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("size", "scale", "orientations", "channels"), [((28, 28), 3, 8, 1), ((32, 20), 2, 4, 3)]
)
def test_feature_count_per_channel_and_grid(
    size: tuple[int, int], scale: int, orientations: int, channels: int
) -> None:
    scattering = Scattering2d(size, scale, orientations)
    per_input = 1 + scale * orientations + orientations**2 * scale * (scale - 1) // 2
    assert scattering.channels_per_input == per_input
    grid = math.ceil(size[0] / 2**scale) * math.ceil(size[1] / 2**scale)
    out = scattering(torch.rand(2, channels, *size))
    assert out.shape == (2, channels * per_input * grid) == (2, scattering.n_features(channels))
    assert torch.isfinite(out).all()


def test_channels_are_transformed_separately() -> None:
    scattering = Scattering2d((28, 28), 2, 4)
    a, b = _texture(0), _texture(1)
    both = scattering(torch.cat([a, b], dim=1))
    assert torch.allclose(both, torch.cat([scattering(a), scattering(b)], dim=1), atol=1e-6)


def test_a_one_pixel_shift_moves_the_coefficients_less_than_the_pixels() -> None:
    """Relative to the distance to another image, a one-pixel shift is a small step for the
    coefficients, though a large one in pixels (scattering's stability to translation)."""
    scattering = Scattering2d((28, 28), 3, 8)
    wide, other = _texture(2, 40, 5), _texture(3, 40, 5)
    image, shifted, other = wide[..., 6:34, 6:34], wide[..., 6:34, 7:35], other[..., 6:34, 6:34]

    def coefficients(x: torch.Tensor) -> torch.Tensor:
        return scattering(x).exp()  # the coefficients themselves, before the log

    def ratio(f: object) -> float:
        assert callable(f)
        return float((f(shifted) - f(image)).norm() / (f(other) - f(image)).norm())

    assert ratio(coefficients) < 0.6 * ratio(lambda x: x)
    assert ratio(lambda x: x) > 0.3  # in pixels the shift is a large part of the way


def test_coefficients_follow_kymatios_scattering() -> None:
    """Orders 0, 1 and 2 track kymatio's Fourier-domain transform (same filter bank); borders
    and the output grid differ (reflect padding here, kymatio's padded periodic convolution)."""
    frontend = pytest.importorskip("kymatio.scattering2d.frontend.torch_frontend")
    images = torch.cat([_texture(seed) for seed in range(24)])
    ours = Scattering2d((28, 28), 3, 8)(images).exp().reshape(24, 217, 16).mean(dim=2)
    theirs = frontend.ScatteringTorch2D(J=3, shape=(28, 28), L=8)(images[:, 0])
    theirs = theirs.reshape(24, 217, -1).mean(dim=2)
    for orders in (slice(0, 1), slice(1, 25), slice(25, 217)):
        a, b = ours[:, orders].flatten().numpy(), theirs[:, orders].flatten().numpy()
        assert np.corrcoef(a, b)[0, 1] > 0.95
