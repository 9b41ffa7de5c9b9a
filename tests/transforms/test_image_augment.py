"""Training augmentation, per image (MONAI) or per batch: reproducible per (seed, epoch),
independent across workers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from medsight.config import AugmentConfig
from medsight.train.engine import seed_worker
from medsight.transforms.batch_augment import BatchAugment
from medsight.transforms.image import (
    ImageTensorDataset,
    build_train_transform,
    tta_functions,
    tta_names,
)

BATCHED = pytest.mark.parametrize("batched", [False, True], ids=["per-image", "batched"])


def _dataset(seed: int = 0, batched: bool = False) -> ImageTensorDataset:
    image = np.random.default_rng(0).random((1, 1, 28, 28), dtype=np.float32)
    images = np.repeat(image, 8, axis=0)  # the same image 8 times: only augmentation differs
    transform = build_train_transform(AugmentConfig(batched=batched), 28)
    return ImageTensorDataset(images, np.zeros(8, dtype=np.int64), transform, seed=seed)


def _epoch(
    dataset: ImageTensorDataset, epoch: int, workers: int = 0, batch_size: int = 1
) -> torch.Tensor:
    dataset.set_epoch(epoch)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        worker_init_fn=seed_worker if workers else None,
    )
    return torch.cat([x for x, _ in loader])


@BATCHED
@pytest.mark.parametrize("batch_size", [1, 4])
def test_augmentation_is_reproducible_per_seed_and_epoch(batched: bool, batch_size: int) -> None:
    first = _epoch(_dataset(batched=batched), 3, batch_size=batch_size)
    assert torch.equal(first, _epoch(_dataset(batched=batched), 3, batch_size=batch_size))
    assert not torch.equal(first, _epoch(_dataset(batched=batched), 4, batch_size=batch_size))
    assert not torch.equal(first, _epoch(_dataset(1, batched), 3, batch_size=batch_size))
    assert all(not torch.equal(first[i], first[i + 1]) for i in range(7))  # a draw per image
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0 + 1e-5


@BATCHED
def test_loader_workers_draw_different_augmentations_reproducibly(batched: bool) -> None:
    first = _epoch(_dataset(batched=batched), 0, workers=2)
    # worker 0 takes items 0, 2, ...; worker 1 items 1, 3, ...: copies of one random state
    # would give item 0 == item 1, item 2 == item 3, ...
    assert all(not torch.equal(first[i], first[i + 1]) for i in range(0, 8, 2))
    assert torch.equal(first, _epoch(_dataset(batched=batched), 0, workers=2))


def test_the_batched_transform_is_chosen_by_the_config() -> None:
    assert isinstance(build_train_transform(AugmentConfig(), 28), BatchAugment)  # the default
    assert not isinstance(build_train_transform(AugmentConfig(batched=False), 28), BatchAugment)
    nothing = AugmentConfig(
        flip_horizontal=False, rotate_degrees=0, zoom=0, translate=0, gamma=1.0, batched=True
    )
    assert build_train_transform(nothing, 28) is None


def test_tta_flips_match_the_training_flips() -> None:
    names = tta_names(AugmentConfig(flip_horizontal=True, flip_vertical=True))
    assert names == ["flip_horizontal", "flip_vertical"]
    batch = torch.arange(6.0).view(1, 1, 2, 3)
    horizontal, vertical = tta_functions(names)
    assert torch.equal(horizontal(batch)[0, 0, 0], torch.tensor([2.0, 1.0, 0.0]))
    assert torch.equal(vertical(batch)[0, 0, :, 0], torch.tensor([3.0, 0.0]))
    assert tta_names(AugmentConfig(flip_horizontal=False)) == []
