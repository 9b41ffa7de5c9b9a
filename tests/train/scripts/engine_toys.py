"""Toy data and models for the training-engine tests (imported by tests and by the scripts here)."""

from __future__ import annotations

import os
import signal

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

# Where each class puts its bright 3x3 patch in an 8x8 image.
CORNERS = [(1, 1), (4, 4), (1, 4), (4, 1)]


def toy_arrays(n: int, seed: int, n_classes: int = 2, signal_strength: float = 1.5):
    """``(x, y)``: noise images (n, 1, 8, 8) where class c has a bright patch at CORNERS[c]."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % n_classes
    y = y[torch.randperm(n, generator=g)]
    x = torch.randn(n, 1, 8, 8, generator=g)
    for c in range(n_classes):
        r, k = CORNERS[c]
        x[y == c, :, r : r + 3, k : k + 3] += signal_strength
    return x, y


class ToyImages(Dataset):
    """In-memory toy images with random augmentation reseeded by ``set_epoch``.

    Each item's gain and noise come from a generator keyed by (seed, epoch, index), so the data
    an epoch draws do not depend on the process history. ``kill_at=(epoch, k)`` sends SIGKILL to
    the own process when the k-th item of that epoch is fetched (a crash in mid-epoch).
    ``nan_epoch`` makes every item NaN in that epoch.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        seed: int = 0,
        augment: bool = True,
        kill_at: tuple[int, int] | None = None,
        raise_at: tuple[int, int] | None = None,
        nan_epoch: int | None = None,
    ) -> None:
        self.x, self.labels = x, y
        self.seed, self.augment = seed, augment
        self.kill_at, self.raise_at, self.nan_epoch = kill_at, raise_at, nan_epoch
        self.epoch = 0
        self.fetched = 0
        self.fetched_labels: list[int] = []
        self.epochs_seen: list[int] = []

    def __len__(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.fetched = 0
        self.epochs_seen.append(epoch)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        self.fetched += 1
        self.fetched_labels.append(int(self.labels[index]))
        if self.kill_at == (self.epoch, self.fetched):
            os.kill(os.getpid(), signal.SIGKILL)
        if self.raise_at == (self.epoch, self.fetched):
            raise KeyboardInterrupt("simulated interruption")
        image = self.x[index]
        if self.augment and self.epoch > 0:
            key = int(np.random.SeedSequence([self.seed, self.epoch, index]).generate_state(1)[0])
            g = torch.Generator().manual_seed(key)
            gain = 1.0 + 0.1 * torch.randn((), generator=g)
            image = gain * image + 0.1 * torch.randn(image.shape, generator=g)
        if self.nan_epoch == self.epoch:
            image = torch.full_like(image, float("nan"))
        return image, int(self.labels[index])


class TinyCNN(nn.Module):
    """Conv, BatchNorm, ReLU, dropout, pooling, linear: small but with every stateful layer kind."""

    def __init__(self, n_classes: int = 2, width: int = 6) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Dropout(0.2),
        )
        self.head = nn.Linear(width * 16, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def tiny_cnn(n_classes: int = 2, seed: int = 0) -> TinyCNN:
    """A `TinyCNN` with weights drawn from ``seed``."""
    torch.manual_seed(seed)
    return TinyCNN(n_classes)
