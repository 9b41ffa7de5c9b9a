"""Near-duplicate images within and across the splits of an image data set.

Medical image collections often hold several frames of one scene (an ultrasound sweep, repeated
acquisitions of one patient). Where such frames sit on both sides of a split, the test score
partly measures recall of training images; where they carry different labels, no model can be
right on both. Neither shows in the metrics, so the run report says how many there are.

Two images are near-duplicates when the Pearson correlation of their pixels (on thumbnails of
at most ``THUMBNAIL`` px) is at least ``threshold``. On BreastMNIST the nearest-neighbour
correlation of the training images is a continuum up to about 0.94 (different scenes), a gap,
and a peak above 0.98 (frames of one scene); ``DEFAULT_THRESHOLD`` sits in the gap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations_with_replacement
from typing import Any

import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.neighbors import NearestNeighbors

from medsight.errors import ConfigError
from medsight.io.images import ImageSet

DEFAULT_THRESHOLD = 0.97
THUMBNAIL = 32
MAX_IMAGES = 30_000  # the search compares every pair: about 30 s for 30,000 images on 2 cores
# bundle.json data key: the threshold that grouped near-duplicates when unsplit data were split
SPLIT_THRESHOLD_KEY = "split_near_duplicate_threshold"
_FLAT = 1e-6  # norm of the centred pixels below which an image is blank (no correlation)


@dataclass(frozen=True)
class DuplicatePair:
    """Two near-duplicate images: ``(split, index)`` each, their correlation and whether their
    labels agree."""

    first: tuple[str, int]
    second: tuple[str, int]
    correlation: float
    same_label: bool

    @property
    def across_splits(self) -> bool:
        return self.first[0] != self.second[0]


@dataclass(frozen=True)
class SplitPairCounts:
    """What the audit found between two splits (or within one, when ``first == second``)."""

    first: str
    second: str
    pairs: int
    conflicting_pairs: int
    second_images_with_duplicate: int  # images of ``second`` with a near-duplicate in ``first``
    second_images_with_conflict: int  # ... whose near-duplicate there has another label


@dataclass(frozen=True)
class ImageAudit:
    """Near-duplicate pairs of a data set's splits, at one correlation threshold; ``pairs`` in
    :func:`audit_images`' order (cross-split label conflicts first)."""

    threshold: float
    sizes: dict[str, int]
    pairs: list[DuplicatePair] = field(default_factory=list)
    blank: dict[str, int] = field(default_factory=dict)
    skipped: str | None = None  # why the search did not run (too many images)

    def counts(self) -> list[SplitPairCounts]:
        """One row per split pair in split order (train/train, train/val, ...)."""
        rows = []
        for first, second in combinations_with_replacement(list(self.sizes), 2):
            pairs = [p for p in self.pairs if (p.first[0], p.second[0]) == (first, second)]
            with_duplicate = {p.second for p in pairs}
            with_conflict = {p.second for p in pairs if not p.same_label}
            rows.append(
                SplitPairCounts(
                    first,
                    second,
                    len(pairs),
                    sum(not p.same_label for p in pairs),
                    len(with_duplicate),
                    len(with_conflict),
                )
            )
        return rows

    def images_with_earlier_duplicate(self, into: str, *, conflicting: bool = False) -> set[int]:
        """Indices of split ``into`` with a near-duplicate in an earlier split (with another
        label only, when ``conflicting``)."""
        return {
            p.second[1]
            for p in self.pairs
            if p.second[0] == into and p.first[0] != into and not (conflicting and p.same_label)
        }

    def seen_earlier(self, into: str) -> np.ndarray:
        """Per image of split ``into``: whether it has a near-duplicate in an earlier split."""
        seen = self.images_with_earlier_duplicate(into)
        return np.array([index in seen for index in range(self.sizes[into])], dtype=bool)

    def summary(self) -> str:
        """One sentence for logs and reports."""
        if self.skipped:
            return f"Near-duplicate audit skipped: {self.skipped}"
        last = list(self.sizes)[-1]
        leaked = len(self.images_with_earlier_duplicate(last))
        conflicting = len(self.images_with_earlier_duplicate(last, conflicting=True))
        within = sum(1 for p in self.pairs if not p.across_splits)
        return (
            f"{leaked} of {self.sizes[last]} {last} images have a near-duplicate (pixel "
            f"correlation >= {self.threshold:g}) in an earlier split, {conflicting} of them "
            f"with another label; {within} near-duplicate pairs lie within splits."
        )

    def to_dict(self, max_pairs: int = 200) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "sizes": self.sizes,
            "blank_images": self.blank,
            "skipped": self.skipped,
            "summary": self.summary(),
            "counts": [vars(row) for row in self.counts()],
            "pairs": [
                {
                    "first": list(p.first),
                    "second": list(p.second),
                    "correlation": round(p.correlation, 5),
                    "same_label": p.same_label,
                }
                for p in self.pairs[:max_pairs]
            ],
            "pairs_listed": min(len(self.pairs), max_pairs),
            "pairs_total": len(self.pairs),
        }


def audit_images(
    splits: Mapping[str, ImageSet] | Sequence[tuple[str, ImageSet]],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    max_images: int = MAX_IMAGES,
) -> ImageAudit:
    """Every near-duplicate pair among the images of ``splits`` (in split order: a pair's
    ``first`` image is never in a later split than its ``second``)."""
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"near-duplicate threshold must be in (0, 1); got {threshold}")
    named = list(splits.items()) if isinstance(splits, Mapping) else list(splits)
    sizes = {name: len(images) for name, images in named}
    total = sum(sizes.values())
    if total > max_images:
        reason = f"{total:,} images, more than max_images={max_images:,}"
        return ImageAudit(threshold, sizes, skipped=reason)
    found, blank = _near_duplicates(
        np.concatenate([images.images for _, images in named]), threshold
    )
    split_of = np.concatenate([np.full(size, k) for k, size in enumerate(sizes.values())])
    index_of = np.concatenate([np.arange(size) for size in sizes.values()])
    labels = [row for _, images in named for row in images.labels]
    names = list(sizes)
    pairs = [
        DuplicatePair(
            (names[split_of[i]], int(index_of[i])),
            (names[split_of[j]], int(index_of[j])),
            correlation,
            bool(np.array_equal(labels[i], labels[j])),
        )
        for i, j, correlation in found
    ]
    blank_counts = {name: int(blank[split_of == k].sum()) for k, name in enumerate(names)}
    blank_counts = {name: count for name, count in blank_counts.items() if count}
    return ImageAudit(threshold, sizes, _ranked(pairs), blank_counts)


def duplicate_groups(
    images: ImageSet,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    max_images: int = MAX_IMAGES,
) -> np.ndarray | None:
    """One group id per image such that near-duplicates (and, when given, one patient's images)
    share a group: split by these groups and no scene lies on both sides. Without near-duplicates
    (or above ``max_images``, where the search is skipped) the patient ids, or None."""
    n = len(images)
    if n > max_images:
        return images.patient_ids
    found, _ = _near_duplicates(images.images, threshold)
    edges = [(i, j) for i, j, _ in found]
    if not edges:
        return images.patient_ids  # the split is what it was without the audit
    nodes = n
    if images.patient_ids is not None:  # one more node per patient, linked to its images
        _, patient = np.unique(images.patient_ids, return_inverse=True)
        edges += [(i, n + int(code)) for i, code in enumerate(patient)]
        nodes += int(patient.max()) + 1
    rows, columns = (np.array(side) for side in zip(*edges, strict=True))
    graph = coo_matrix((np.ones(len(edges)), (rows, columns)), shape=(nodes, nodes))
    _, groups = connected_components(graph, directed=False)
    return groups[:n]


def _near_duplicates(
    images: np.ndarray, threshold: float
) -> tuple[list[tuple[int, int, float]], np.ndarray]:
    """``(i, j, correlation)`` with ``i < j`` for every pair of ``(N, C, H, W)`` images whose
    thumbnails correlate at least ``threshold`` (scikit-learn's brute-force radius search,
    chunked in memory), and the blank-image mask (blank images pair with nothing)."""
    vectors = _centred_thumbnails(images)
    blank = np.linalg.norm(vectors, axis=1) < _FLAT
    kept = np.flatnonzero(~blank)
    if len(kept) < 2:
        return [], blank
    search = NearestNeighbors(radius=1.0 - threshold, metric="cosine", algorithm="brute")
    distances, neighbours = search.fit(vectors[kept]).radius_neighbors(vectors[kept])
    found = []
    for a, (row_distances, row_neighbours) in enumerate(zip(distances, neighbours, strict=True)):
        for distance, b in zip(row_distances, row_neighbours, strict=True):
            if a < b:  # each pair once, the earlier position (split order) first
                found.append((int(kept[a]), int(kept[b]), float(1.0 - distance)))
    return found, blank


def _centred_thumbnails(images: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` images as rows of pixels, area-averaged to at most ``THUMBNAIL`` px a
    side and centred per image (so that a cosine is a Pearson correlation)."""
    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    height, width = tensor.shape[-2:]
    if max(height, width) > THUMBNAIL:
        size = (min(height, THUMBNAIL), min(width, THUMBNAIL))
        tensor = torch.nn.functional.adaptive_avg_pool2d(tensor, size)
    rows = tensor.flatten(1).numpy().astype(np.float64)
    return rows - rows.mean(axis=1, keepdims=True)


def _ranked(pairs: list[DuplicatePair]) -> list[DuplicatePair]:
    """Cross-split label conflicts first, then other cross-split pairs, then within-split pairs;
    highest correlation first within each."""
    return sorted(pairs, key=lambda p: (not p.across_splits, p.same_label, -p.correlation))
