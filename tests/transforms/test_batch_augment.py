"""Batched augmentation: MONAI's geometry, each image its own draws, ranges as configured."""

from __future__ import annotations

import math

import pytest
import torch
from monai.transforms import Affine

from medsight.config import AugmentConfig
from medsight.transforms.batch_augment import BatchAugment, affine_matrices

OFF = dict(flip_horizontal=False, rotate_degrees=0.0, zoom=0.0, translate=0.0, gamma=1.0)


def _images(n: int = 64, size: int = 28) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(1))


def _monai(image: torch.Tensor, **params: object) -> torch.Tensor:
    out = Affine(padding_mode="zeros", image_only=True, **params)(image)
    return out.as_tensor() if hasattr(out, "as_tensor") else torch.as_tensor(out)


@pytest.mark.parametrize(
    ("angle", "scale"), [(0.2, (1.0, 1.0)), (0.0, (0.9, 1.1)), (-0.25, (1.08, 0.93))]
)
def test_rotation_and_zoom_match_monai_affine(angle: float, scale: tuple[float, float]) -> None:
    from monai.networks.layers import AffineTransform

    image = _images(1)
    theta = affine_matrices(
        torch.tensor([angle]), torch.tensor([scale]), torch.zeros(1, 2), (28, 28)
    )
    ours = AffineTransform(normalized=False, align_corners=False)(image, theta)
    reference = _monai(image[0], rotate_params=angle, scale_params=scale)
    assert torch.allclose(ours[0], reference, atol=1e-4)


def test_shift_moves_the_content_like_monai_affine() -> None:
    from monai.networks.layers import AffineTransform

    image = _images(1)
    theta = affine_matrices(torch.zeros(1), torch.ones(1, 2), torch.tensor([[2.0, -3.0]]), (28, 28))
    ours = AffineTransform(normalized=False, align_corners=False)(image, theta)
    reference = _monai(image[0], translate_params=(2.0, -3.0))
    # output (r, c) takes the input at (r + 2, c - 3); zeros come in from the edges
    assert torch.allclose(ours[0, :, :-2, 3:], image[0, :, 2:, :-3], atol=1e-5)
    assert float(ours[0, :, -2:].abs().max()) < 1e-5
    assert float(ours[0, :, :, :3].abs().max()) < 1e-5
    assert torch.allclose(ours[0], reference, atol=1e-4)


def test_everything_off_but_the_chance_of_it_returns_the_images() -> None:
    config = AugmentConfig(
        flip_horizontal=True, rotate_degrees=15.0, affine_probability=0.0, gamma=1.0
    )
    random = _images(8)
    images = (random + random.flip(-1)) / 2  # textured, mirror-symmetric: flips change nothing
    out = BatchAugment(config)(images, torch.Generator().manual_seed(0))
    # the identity resampling is exact up to float rounding (about 2e-6 on [0, 1] images)
    assert torch.allclose(out, images, atol=1e-5)


def test_flips_are_drawn_per_image_about_half_the_time() -> None:
    images = torch.arange(4.0).view(1, 1, 1, 4).repeat(400, 1, 1, 1)
    out = BatchAugment(AugmentConfig(**{**OFF, "flip_horizontal": True}))(
        images, torch.Generator().manual_seed(0)
    )
    flipped = (out[:, 0, 0] == torch.tensor([3.0, 2.0, 1.0, 0.0])).all(dim=1)
    kept = (out[:, 0, 0] == images[0, 0, 0]).all(dim=1)
    assert bool((flipped | kept).all())
    assert 160 < int(flipped.sum()) < 240


def test_rotations_stay_within_the_configured_range() -> None:
    # a bright bar along the rows through the centre: its angle after augmentation is the draw
    size = 41
    image = torch.zeros(1, 1, size, size)
    image[0, 0, size // 2, 4:-4] = 1.0
    config = AugmentConfig(**{**OFF, "rotate_degrees": 20.0})
    out = BatchAugment(config)(image.repeat(200, 1, 1, 1), torch.Generator().manual_seed(3))
    folded = [((_bar_angle(picture) + 90.0) % 180.0) - 90.0 for picture in out[:, 0]]
    assert max(abs(a) for a in folded) <= 20.5
    assert max(abs(a) for a in folded) > 15.0  # the range is used, not a tiny part of it
    assert min(abs(a) for a in folded) < 2.0


def _bar_angle(picture: torch.Tensor) -> float:
    """The direction (degrees) of the main axis of the picture's intensity, from its moments."""
    rows, cols = torch.meshgrid(
        torch.arange(float(picture.shape[0])), torch.arange(float(picture.shape[1])), indexing="ij"
    )
    w = picture / picture.sum()
    r, c = rows - (w * rows).sum(), cols - (w * cols).sum()
    moments = torch.tensor(
        [[(w * c * c).sum(), (w * c * r).sum()], [(w * c * r).sum(), (w * r * r).sum()]]
    )
    _, vectors = torch.linalg.eigh(moments)
    main = vectors[:, 1]  # the eigenvector of the largest eigenvalue
    return math.degrees(math.atan2(float(main[1]), float(main[0])))


def test_gamma_keeps_each_images_range_and_differs_per_image() -> None:
    images = _images(16)
    out = BatchAugment(AugmentConfig(**{**OFF, "gamma": 1.5}))(
        images, torch.Generator().manual_seed(0)
    )
    flat_in, flat_out = images.flatten(1), out.flatten(1)
    assert torch.allclose(flat_out.min(1).values, flat_in.min(1).values, atol=1e-5)
    assert torch.allclose(flat_out.max(1).values, flat_in.max(1).values, atol=1e-5)
    mean_change = (flat_out - flat_in).mean(1)
    assert bool((mean_change > 0).any()) and bool((mean_change < 0).any())  # gamma < 1 and > 1


def test_noise_is_added_to_about_half_the_images() -> None:
    images = torch.full((200, 1, 8, 8), 0.5)
    out = BatchAugment(AugmentConfig(**{**OFF, "noise_std": 0.1}))(
        images, torch.Generator().manual_seed(0)
    )
    noisy = (out - images).flatten(1).abs().amax(1) > 0
    assert 70 < int(noisy.sum()) < 130
    assert float((out - images).std()) < 0.1


def test_the_same_generator_state_gives_the_same_batch() -> None:
    augment = BatchAugment(AugmentConfig(noise_std=0.05))
    images = _images(8)
    first = augment(images, torch.Generator().manual_seed(7))
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(7)))
    assert not torch.equal(first, augment(images, torch.Generator().manual_seed(8)))


@pytest.mark.parametrize("batched", [True, False], ids=["batched", "monai"])
def test_erasing_fills_one_square_in_the_chosen_fraction_with_in_range_noise(
    batched: bool,
) -> None:
    """Random erasing changes one 7x7 square (a quarter of 28 px) of about 60% of the images,
    fills it with noise inside each image's own range, and leaves every other pixel alone."""
    from medsight.transforms.image import build_train_transform

    config = AugmentConfig(**OFF, erase_probability=0.6, erase_size=0.25, batched=batched)
    images = 0.2 + 0.5 * _images(200)  # values in [0.2, 0.7]
    augment = build_train_transform(config, 28)
    if batched:
        out = augment(images, torch.Generator().manual_seed(0))
    else:
        augment.set_random_state(0)
        out = torch.stack([torch.as_tensor(augment(image.clone())) for image in images])
    changed = out != images
    erased = changed.flatten(1).any(1)
    assert 95 < int(erased.sum()) < 145
    for image, mask, result in zip(images[erased], changed[erased], out[erased], strict=True):
        rows = torch.nonzero(mask[0].any(1)).flatten()
        cols = torch.nonzero(mask[0].any(0)).flatten()
        assert len(rows) == 7 and len(cols) == 7  # one square, nothing outside it
        assert int(rows[-1] - rows[0]) == 6 and int(cols[-1] - cols[0]) == 6
        square = result[0, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        assert float(square.min()) >= float(image.min()) - 1e-6
        assert float(square.max()) <= float(image.max()) + 1e-6
        assert float(square.std()) > 0.05  # noise, not a constant fill


def test_in_place_monai_erasing_leaves_the_stored_images_alone() -> None:
    """MONAI's RandCoarseDropout fills holes in place; the dataset hands it a copy."""
    from medsight.transforms.image import ImageTensorDataset, build_train_transform

    config = AugmentConfig(**OFF, erase_probability=1.0, batched=False)
    original = _images(4)
    transform = build_train_transform(config, 28)
    data = ImageTensorDataset(original.numpy().copy(), [0, 1, 0, 1], transform)
    out = torch.stack([data[i][0] for i in range(4)])
    assert not torch.equal(out, original)  # erased
    assert torch.equal(data.images, original)
