"""A 2D wavelet scattering transform as fixed convolutions: features that need no training.

The scattering transform (Mallat 2012; Bruna and Mallat 2013) cascades Morlet wavelet
convolutions, a modulus and a Gaussian low-pass: order 0 is the low-passed image, order 1 the
low-passed modulus of each wavelet response, order 2 the same one scale further. The result is
stable to small shifts and deformations, which is what a classifier trained on a few hundred
images cannot learn from the data. The filter bank is kymatio's (scale ``0.8 * 2**j``, centre
frequency ``3/4 * pi / 2**j``, slant ``4 / L``, the Morlet's mean cancelled).

Written by hand because kymatio, the library for it, computes in the Fourier domain, which the
bundle's ONNX export cannot carry, and its ``kymatio.torch`` entry point no longer imports with
SciPy >= 1.15 (``scipy.special.sph_harm`` was removed). Here every step is a strided ``Conv2d``
on reflect-padded input, so the transform exports to ONNX like any network.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LOG_FLOOR = 1e-3  # log(S + floor): compresses the coefficients' range for a linear or RBF model


def gabor_kernel(sigma: float, theta: float, xi: float, slant: float, half: int) -> np.ndarray:
    """A complex Gabor filter on a ``(2 * half + 1)`` square grid: a Gaussian envelope of
    width ``sigma`` (``sigma / slant`` across the oscillation) times ``exp(i xi (u . e_theta))``."""
    u, v = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    cos, sin = math.cos(theta), math.sin(theta)
    along = u * cos + v * sin  # the oscillation's direction
    across = -u * sin + v * cos
    envelope = np.exp(-(along**2 + (slant * across) ** 2) / (2.0 * sigma**2))
    return envelope * np.exp(1j * xi * along) / (2.0 * math.pi * sigma**2 / slant)


def morlet_kernel(sigma: float, theta: float, xi: float, slant: float, half: int) -> np.ndarray:
    """A Gabor filter minus its envelope scaled so that the sum is exactly zero (a wavelet)."""
    gabor = gabor_kernel(sigma, theta, xi, slant, half)
    envelope = gabor_kernel(sigma, theta, 0.0, slant, half)
    return gabor - envelope * (gabor.sum() / envelope.sum())


def kernel_half_width(sigma: float, slant: float, side: int) -> int:
    """Three envelope widths along the wider axis, at most ``side - 1`` (reflect padding's
    limit)."""
    return max(1, min(math.ceil(3.0 * sigma / slant), side - 1))


class Scattering2d(nn.Module):
    """``(N, C, H, W)`` images -> ``(N, C * K * ceil(H / 2**J) * ceil(W / 2**J))`` log
    scattering coefficients of orders 0-2, ``K = 1 + J L + L**2 J (J - 1) / 2`` per channel.

    ``scale`` is J (coefficients average over ``2**J`` pixels), ``orientations`` is L. The filters
    depend on the input size (kernels never exceed the image), so ``size`` is fixed when built.
    """

    def __init__(self, size: tuple[int, int], scale: int = 3, orientations: int = 8) -> None:
        super().__init__()
        self.size = (int(size[0]), int(size[1]))
        self.scale = int(scale)
        self.orientations = int(orientations)
        side = min(self.size)
        slant = 4.0 / self.orientations
        # wavelet (j, level): scale j applied to a map already subsampled 2**level times; order 1
        # applies every scale to the image (level 0), order 2 the coarser scales to level j1 maps
        for level in range(self.scale):
            level_side = math.ceil(side / 2**level)
            for j in range(level if level == 0 else level + 1, self.scale):
                sigma = 0.8 * 2 ** (j - level)
                half = kernel_half_width(sigma, slant, level_side)
                kernels = [
                    morlet_kernel(
                        sigma,
                        (int(self.orientations - self.orientations / 2 - 1) - t)
                        * math.pi
                        / self.orientations,
                        0.75 * math.pi / 2 ** (j - level),
                        slant,
                        half,
                    )
                    for t in range(self.orientations)
                ]
                stacked = np.stack([k.real for k in kernels] + [k.imag for k in kernels])
                self.register_buffer(
                    f"psi_{j}_{level}",
                    torch.from_numpy(stacked[:, None].astype(np.float32)),
                    persistent=False,
                )
            sigma = 0.8 * 2 ** (self.scale - 1 - level)
            low = gabor_kernel(sigma, 0.0, 0.0, 1.0, kernel_half_width(sigma, 1.0, level_side))
            low = (low.real / low.real.sum())[None, None].astype(np.float32)
            self.register_buffer(f"phi_{level}", torch.from_numpy(low), persistent=False)

    def spec(self) -> dict[str, Any]:
        """The arguments that rebuild this transform: ``{"size": [h, w], "scale": J,
        "orientations": L}`` (:func:`scattering_from_spec`)."""
        return {"size": list(self.size), "scale": self.scale, "orientations": self.orientations}

    @property
    def channels_per_input(self) -> int:
        """Coefficient maps per input channel: orders 0, 1 and 2."""
        j, n = self.scale, self.orientations
        return 1 + j * n + n * n * j * (j - 1) // 2

    def n_features(self, channels: int) -> int:
        """The length of one image's feature vector."""
        step = 2**self.scale
        height, width = (math.ceil(s / step) for s in self.size)
        return channels * self.channels_per_input * height * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels = x.shape[:2]
        x = x.reshape(batch * channels, 1, *x.shape[2:])
        order_1, order_2 = [], []  # kymatio's order: all of order 1, then order 2 by (j1, j2)
        for j1 in range(self.scale):
            first = self._wavelet_modulus(x, j1, 0)  # (B, L, H / 2**j1, W / 2**j1)
            order_1.append(self._low_pass(first, j1))
            coarser = [
                self._low_pass(self._wavelet_modulus(first, j2, j1), j2)
                for j2 in range(j1 + 1, self.scale)
            ]
            if coarser:  # (B, L1 * L2, h, w) per j2 -> ordered by theta1, then j2, then theta2
                n, (h, w) = self.orientations, coarser[0].shape[2:]
                grouped = torch.stack([c.reshape(-1, n, n, h, w) for c in coarser], dim=2)
                order_2.append(grouped.reshape(grouped.shape[0], -1, h, w))
        features = torch.cat([self._low_pass(x, 0), *order_1, *order_2], dim=1)
        return torch.log(features.clamp_min(0.0) + LOG_FLOOR).reshape(batch, -1)

    def _wavelet_modulus(self, maps: torch.Tensor, j: int, level: int) -> torch.Tensor:
        """|maps * psi_j| for each map and orientation, subsampled to level ``j``."""
        kernels: torch.Tensor = getattr(self, f"psi_{j}_{level}")
        n_maps, n = maps.shape[1], self.orientations
        response = _conv_each_map(maps, kernels, stride=2 ** (j - level))
        response = response.reshape(maps.shape[0], n_maps, 2, n, *response.shape[2:])
        modulus = torch.sqrt(response[:, :, 0] ** 2 + response[:, :, 1] ** 2)
        return modulus.reshape(maps.shape[0], n_maps * n, *response.shape[4:])

    def _low_pass(self, maps: torch.Tensor, level: int) -> torch.Tensor:
        """Gaussian average of each map, subsampled from level ``level`` to level J."""
        kernel: torch.Tensor = getattr(self, f"phi_{level}")
        return _conv_each_map(maps, kernel, stride=2 ** (self.scale - level))


def scattering_from_spec(spec: dict[str, Any] | None) -> Scattering2d | None:
    """The transform :meth:`Scattering2d.spec` describes (``None`` for none)."""
    if not spec:
        return None
    height, width = spec["size"]
    return Scattering2d((int(height), int(width)), int(spec["scale"]), int(spec["orientations"]))


def _conv_each_map(maps: torch.Tensor, kernels: torch.Tensor, stride: int) -> torch.Tensor:
    """Every map of ``(B, M, H, W)`` convolved with every kernel of ``(K, 1, k, k)`` over
    reflect padding: ``(B, M * K, ceil(H / stride), ceil(W / stride))``, map-major.

    The maps are folded into the batch for one ordinary convolution; a grouped convolution
    (``groups=M``) gives the same numbers but ran several times slower on the CPU."""
    batch, n_maps, height, width = maps.shape
    half = kernels.shape[-1] // 2
    folded = F.pad(maps.reshape(-1, 1, height, width), (half, half, half, half), mode="reflect")
    response = F.conv2d(folded, kernels, stride=stride)
    return response.reshape(batch, n_maps * kernels.shape[0], *response.shape[2:])
