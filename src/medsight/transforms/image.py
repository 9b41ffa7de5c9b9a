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
from medsight.transforms.batch_augment import BatchAugment

BatchFunction = Callable[[torch.Tensor], torch.Tensor]
TTA_AXES = {"flip_horizontal": -1, "flip_vertical": -2}


def build_train_transform(config: AugmentConfig, image_size: int):
    """The training augmentation for images in [0, 1]: a :class:`BatchAugment` when
    ``config.batched``, else MONAI random transforms for one ``(C, H, W)`` tensor at a time;
    ``None`` when all are off."""
    if not _any_augmentation(config):
        return None
    if config.batched:
        return BatchAugment(config)
    from monai.transforms import (
        Compose,
        RandAdjustContrast,
        RandAffine,
        RandCoarseDropout,
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
    if config.erase_probability:
        side = max(1, round(config.erase_size * image_size))
        steps.append(
            RandCoarseDropout(holes=1, spatial_size=(side, side), prob=config.erase_probability)
        )
    return Compose(steps)


def _any_augmentation(config: AugmentConfig) -> bool:
    return bool(
        config.flip_horizontal
        or config.flip_vertical
        or config.rotate_degrees
        or config.zoom
        or config.translate
        or config.gamma > 1.0
        or config.noise_std
        or config.erase_probability
    )


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

    ``transform`` is MONAI's per-image pipeline or a :class:`BatchAugment`, which the DataLoader
    calls once per batch (through ``__getitems__``). ``set_epoch`` (called by the training
    engine) reseeds either from (seed, epoch, rank), so a resumed run draws exactly the
    augmentations an uninterrupted one would have. In DataLoader workers ``seed_worker`` adds the
    worker id, so workers do not repeat each other.
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
        self._generator = torch.Generator()
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
        key = f"{self.seed}:{self.epoch}:{self.rank}" + (f":{worker}" if worker else "")
        seed = zlib.crc32(key.encode())
        if isinstance(self.transform, BatchAugment):
            self._generator.manual_seed(seed)
        elif self.transform is not None:
            self.transform.set_random_state(seed=seed)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.transform, BatchAugment):
            return self.__getitems__([index])[0]
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image.clone())  # some MONAI transforms work in place
            image = image.as_tensor() if hasattr(image, "as_tensor") else torch.as_tensor(image)
        return image, self.labels[index]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The images at ``indices`` (a DataLoader batch), augmented together when the
        transform is a :class:`BatchAugment`."""
        if not isinstance(self.transform, BatchAugment):
            return [self[index] for index in indices]
        selected = torch.as_tensor(indices, dtype=torch.long)
        images = self.transform(self.images[selected], self._generator)
        return list(zip(images.unbind(0), self.labels[selected].unbind(0), strict=True))


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
