"""Image augmentation (MONAI random transforms), test-time augmentation, and the torch dataset.

Deterministic preprocessing (decoding, resizing to ``image_size``, scaling to [0, 1]) happens once
when the data are read, so the arrays held in memory are the cache; only the random augmentation
runs per sample and epoch. Intensity standardisation is part of the model (:class:`Standardize`),
so a bundle takes images in [0, 1] and its ONNX file carries the same arithmetic.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from medsight.config import AugmentConfig

BatchFunction = Callable[[torch.Tensor], torch.Tensor]
TTA_AXES = {"flip_horizontal": -1, "flip_vertical": -2}


def build_train_transform(config: AugmentConfig, image_size: int):
    """MONAI random transforms for ``(C, H, W)`` tensors in [0, 1]; ``None`` when all are off."""
    from monai.transforms import (
        Compose,
        RandAdjustContrast,
        RandAffine,
        RandFlip,
        RandGaussianNoise,
    )

    steps = []
    if config.flip_horizontal:
        steps.append(RandFlip(prob=0.5, spatial_axis=1))
    if config.flip_vertical:
        steps.append(RandFlip(prob=0.5, spatial_axis=0))
    if config.rotate_degrees or config.zoom or config.translate:
        shift = config.translate * image_size  # MONAI's translate_range is in pixels
        steps.append(
            RandAffine(
                prob=config.affine_probability,
                rotate_range=math.radians(config.rotate_degrees),
                scale_range=(config.zoom, config.zoom),
                translate_range=(shift, shift),
                padding_mode="zeros",
            )
        )
    if config.gamma > 1.0:
        steps.append(RandAdjustContrast(prob=1.0, gamma=(1.0 / config.gamma, config.gamma)))
    if config.noise_std:
        steps.append(RandGaussianNoise(prob=0.5, std=config.noise_std))
    return Compose(steps) if steps else None


def tta_names(config: AugmentConfig) -> list[str]:
    """Test-time augmentations matching the training flips (the identity is always included)."""
    return [name for name in TTA_AXES if getattr(config, name)]


def tta_functions(names: list[str]) -> list[BatchFunction]:
    """Batch functions for the named test-time augmentations (flips of ``(N, C, H, W)``)."""
    return [_flipper(TTA_AXES[name]) for name in names]


def _flipper(axis: int) -> BatchFunction:
    return lambda batch: torch.flip(batch, dims=(axis,))


class ImageTensorDataset(Dataset):
    """In-memory images ``(N, C, H, W)`` with labels; random augmentation reseeded every epoch.

    ``set_epoch`` (called by the training engine) reseeds the transforms from (seed, epoch, rank),
    so a resumed run draws exactly the augmentations an uninterrupted one would have. In
    DataLoader workers ``seed_worker`` adds the worker id, so workers do not repeat each other.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        transform=None,
        *,
        seed: int = 0,
        rank: int = 0,
    ) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        self.transform = transform
        self.seed = seed
        self.rank = rank
        self.epoch = 0
        self.set_epoch(0)

    def __len__(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the augmentation for ``epoch`` (in the main process, or DataLoader worker 0)."""
        self.epoch = epoch
        self._reseed(worker=0)

    def seed_worker(self, worker_id: int) -> None:
        """Reseed this worker's copy of the dataset (the engine's ``worker_init_fn`` calls it)."""
        self._reseed(worker=worker_id)

    def _reseed(self, worker: int) -> None:
        if self.transform is not None:
            key = f"{self.seed}:{self.epoch}:{self.rank}" + (f":{worker}" if worker else "")
            self.transform.set_random_state(seed=zlib.crc32(key.encode()))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
            image = image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(image)
        return image, self.labels[index]


class Standardize(nn.Module):
    """``(x - mean) / std`` per channel, then the wrapped network; stored with the weights."""

    def __init__(self, network: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network((x - self.mean) / self.std)


def channel_statistics(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of ``(N, C, H, W)`` training images."""
    mean = images.mean(axis=(0, 2, 3))
    std = np.maximum(images.std(axis=(0, 2, 3)), 1e-3)
    return [float(v) for v in mean], [float(v) for v in std]
