"""Near-duplicate audit of image splits: pairs, label conflicts, blanks, limits, the figure."""

from __future__ import annotations

import numpy as np
import pytest

from medsight.config import ImageDataConfig
from medsight.data.image_audit import audit_images
from medsight.errors import ConfigError
from medsight.io.images import ImageSet
from medsight.tasks.image_report import plot_duplicate_pairs
from shared_helpers import shared_file

CLASSES = ["benign", "malignant"]


def noise_images(n: int, seed: int, size: int = 28) -> np.ndarray:
    """Independent noise images: unrelated pairs correlate near 0."""
    return np.random.default_rng(seed).random((n, 1, size, size), dtype=np.float32)


def splits_with_known_duplicates() -> dict[str, ImageSet]:
    train = noise_images(20, 0)
    test = noise_images(6, 1)
    test[0] = np.clip(train[3] + 0.01 * noise_images(1, 2)[0], 0, 1)  # same label as train #3
    test[1] = 0.5 * train[7] + 0.2  # darker, lower contrast copy: correlation stays 1
    test[2] = 0.4  # blank
    train_labels = np.zeros(20, dtype=int)
    test_labels = np.array([0, 1, 0, 0, 1, 1])  # test #1 copies train #7 with another label
    return {
        "train": ImageSet(train, train_labels, CLASSES),
        "test": ImageSet(test, test_labels, CLASSES),
    }


def test_finds_copies_across_splits_and_their_label_conflicts() -> None:
    splits = splits_with_known_duplicates()
    audit = audit_images(splits)
    assert [(p.first, p.second, p.same_label) for p in audit.pairs] == [
        (("train", 7), ("test", 1), False),  # label conflicts are listed first
        (("train", 3), ("test", 0), True),
    ]
    assert audit.pairs[0].correlation == pytest.approx(1.0, abs=1e-9)
    assert audit.images_with_earlier_duplicate("test") == {0, 1}
    assert audit.images_with_earlier_duplicate("test", conflicting=True) == {1}
    assert audit.seen_earlier("test").tolist() == [True, True, False, False, False, False]
    assert audit.blank == {"test": 1}
    assert audit.summary().startswith("2 of 6 test images have a near-duplicate")
    assert "1 of them with another label; 0 near-duplicate pairs lie within splits" in (
        audit.summary()
    )
    rows = {(row.first, row.second): row for row in audit.counts()}
    assert set(rows) == {("train", "train"), ("train", "test"), ("test", "test")}
    assert rows["train", "test"].pairs == 2 and rows["train", "test"].conflicting_pairs == 1
    assert rows["train", "train"].pairs == 0
    payload = audit.to_dict()
    assert payload["pairs_total"] == 2 and payload["counts"][1]["second_images_with_conflict"] == 1


def test_pairs_within_one_split_and_multi_label_rows() -> None:
    images = noise_images(5, 3)
    images[4] = images[0]
    labels = np.array([[1, 0], [0, 1], [0, 0], [1, 1], [1, 0]])
    audit = audit_images([("train", ImageSet(images, labels, ["a", "b"]))])
    assert [(p.first, p.second, p.same_label) for p in audit.pairs] == [
        (("train", 0), ("train", 4), True)
    ]
    assert not audit.pairs[0].across_splits
    assert plot_duplicate_pairs(audit, {"train": ImageSet(images, labels, ["a", "b"])}) is None


def test_large_images_are_compared_as_thumbnails() -> None:
    train = noise_images(4, 4, size=96)
    test = train[[2]] * 0.9
    audit = audit_images(
        {"train": ImageSet(train, [0] * 4, CLASSES), "test": ImageSet(test, [1], CLASSES)}
    )
    assert [(p.first, p.second) for p in audit.pairs] == [(("train", 2), ("test", 0))]


def test_threshold_and_size_limits() -> None:
    splits = splits_with_known_duplicates()
    with pytest.raises(ConfigError, match="threshold must be in"):
        audit_images(splits, threshold=1.0)
    skipped = audit_images(splits, max_images=10)
    assert skipped.pairs == [] and "26 images, more than max_images=10" in skipped.skipped
    assert skipped.summary().startswith("Near-duplicate audit skipped")


def test_figure_shows_each_cross_split_pair_top_and_bottom() -> None:
    splits = splits_with_known_duplicates()
    figure = plot_duplicate_pairs(audit_images(splits), splits)
    assert figure is not None
    titles = [axis.get_title() for axis in figure.axes]
    assert titles == [
        "train #7\nbenign",
        "train #3\nbenign",
        "test #1\nmalignant",
        "test #0\nbenign",
    ]
    assert "labels differ" in figure.axes[2].get_xlabel()


def test_breastmnist_holds_an_identical_image_with_opposite_labels() -> None:
    from medsight.tasks.image_data import load_image_splits

    path = shared_file("breastmnist", "breastmnist.npz")
    splits = load_image_splits(ImageDataConfig(path=str(path)))
    audit = audit_images(splits.items())
    identical = [p for p in audit.pairs if p.correlation > 0.9999 and not p.same_label]
    assert (("train", 115), ("test", 76)) in [(p.first, p.second) for p in identical]
    leaked = audit.images_with_earlier_duplicate("test")
    assert 0.2 * len(splits.test) < len(leaked) < 0.6 * len(splits.test)
