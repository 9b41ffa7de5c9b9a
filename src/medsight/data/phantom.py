"""Generated images for offline demos and tests: lesion-like blobs on a textured background.

Class ``lesion`` images carry one elliptical blob with a soft, irregular rim; class ``normal``
images are texture only. Blob contrast varies down to near the texture's own contrast, so the task
is learnable but not trivial. Nothing here is real patient data.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from medsight.io.images import ImageSet

PHANTOM_CLASSES = ["normal", "lesion"]


def make_phantom_images(
    n: int = 600, *, size: int = 28, lesion_fraction: float = 0.4, seed: int = 0
) -> ImageSet:
    """``n`` grey images ``(n, 1, size, size)`` in [0, 1]; labels 1 = lesion."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < lesion_fraction).astype(np.int64)
    images = np.stack([_phantom(rng, size, bool(label)) for label in labels])[:, None]
    sources = [f"phantom[{i}]" for i in range(n)]
    return ImageSet(images, labels, list(PHANTOM_CLASSES), sources)


def make_phantom_splits(n: int = 900, *, size: int = 28, seed: int = 0) -> dict[str, ImageSet]:
    """Train / val / test (70 / 10 / 20 %) phantom sets from independent draws."""
    counts = {"train": int(n * 0.7), "val": int(n * 0.1)}
    counts["test"] = n - counts["train"] - counts["val"]
    return {
        split: make_phantom_images(count, size=size, seed=seed * 10 + offset)
        for offset, (split, count) in enumerate(counts.items())
    }


def _phantom(rng: np.random.Generator, size: int, lesion: bool) -> np.ndarray:
    texture = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=size / 14)
    texture = (texture - texture.mean()) / (texture.std() + 1e-8)
    image = 0.45 + 0.08 * texture + 0.03 * rng.normal(size=(size, size))
    if lesion:
        image += _blob(rng, size) * rng.uniform(0.06, 0.3) * rng.choice([-1.0, 1.0], p=[0.7, 0.3])
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _blob(rng: np.random.Generator, size: int) -> np.ndarray:
    """A soft ellipse with a lobulated rim, peak 1, at a random place away from the border."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cy, cx = rng.uniform(0.3, 0.7, size=2) * size
    ry, rx = rng.uniform(0.08, 0.2, size=2) * size
    angle = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(angle) + dy * np.sin(angle)) / rx
    v = (-dx * np.sin(angle) + dy * np.cos(angle)) / ry
    theta = np.arctan2(v, u)
    rim = 1.0 + 0.25 * np.sin(rng.integers(3, 7) * theta + rng.uniform(0, 2 * np.pi))
    radius = np.sqrt(u**2 + v**2) / rim
    return 1.0 / (1.0 + np.exp((radius - 1.0) * 6.0))
