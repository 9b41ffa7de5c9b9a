"""Image readers: class folders, CSV manifests, MedMNIST npz, and their errors on bad input."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsight.errors import DataError
from medsight.io import medmnist
from medsight.io.images import (
    read_image_csv,
    read_image_file,
    read_image_folder,
    read_medmnist_npz,
)
from medsight.io.medmnist_catalog import MedMNISTSubset


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


def _class_tree(root: Path, size: int = 16) -> Path:
    rng = np.random.default_rng(0)
    for label in ("benign", "malignant"):
        for i in range(3):
            _png(root / label / f"{i}.png", rng.integers(0, 255, (size, size), dtype=np.uint8))
    return root


def test_png_grey_values_scale_to_unit_range(tmp_path: Path) -> None:
    pixels = np.array([[0, 255], [128, 64]], dtype=np.uint8)
    image = read_image_file(_png(tmp_path / "a.png", pixels))
    assert image.shape == (1, 2, 2) and image.dtype == np.float32
    np.testing.assert_allclose(image[0], pixels / 255.0, atol=1e-6)


def test_sixteen_bit_png_keeps_its_precision(tmp_path: Path) -> None:
    pixels = np.array([[0, 65535], [1000, 30000]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(pixels).save(path)
    image = read_image_file(path)
    np.testing.assert_allclose(image[0], pixels / 65535.0, atol=1e-6)


def test_colour_image_is_channels_first_rgb(tmp_path: Path) -> None:
    pixels = np.zeros((4, 5, 3), dtype=np.uint8)
    pixels[..., 0] = 255
    image = read_image_file(_png(tmp_path / "red.png", pixels))
    assert image.shape == (3, 4, 5)
    assert image[0].min() == 1.0 and image[1].max() == 0.0


def test_class_folders_give_sorted_class_names_and_labels(tmp_path: Path) -> None:
    data = read_image_folder(_class_tree(tmp_path / "data"))
    assert data.class_names == ["benign", "malignant"]
    assert data.images.shape == (6, 1, 16, 16)
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.sources[0].endswith("benign/0.png")


def test_csv_manifest_with_relative_paths_and_patients(tmp_path: Path) -> None:
    root = _class_tree(tmp_path / "data")
    rows = ["path,label,patient_id"] + [
        f"data/{c}/{i}.png,{c},p{i}" for c in ("benign", "malignant") for i in range(3)
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = read_image_csv(tmp_path / "labels.csv")
    assert len(data) == 6 and root.exists()
    assert data.patient_ids.tolist() == ["p0", "p1", "p2"] * 2


def test_grey_and_colour_images_are_unified_to_rgb(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "grey.png", np.full((8, 8), 100, dtype=np.uint8))
    _png(tmp_path / "b" / "rgb.png", np.full((8, 8, 3), 100, dtype=np.uint8))
    data = read_image_folder(tmp_path)
    assert data.images.shape == (2, 3, 8, 8)
    np.testing.assert_allclose(data.images[0], data.images[1], atol=1e-6)


def test_truncated_png_names_the_file(tmp_path: Path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    good = _png(tmp_path / "x.png", noise)
    assert len(good.read_bytes()) > 2000
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:1500])
    with pytest.raises(DataError, match=r"broken\.png.*(damaged|truncated)"):
        read_image_file(broken)


def test_non_image_file_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("patient notes, not an image")
    with pytest.raises(DataError, match=r"notes\.png: not an image"):
        read_image_file(fake)


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    _class_tree(tmp_path)
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError, match=r"empty_class.*no image files"):
        read_image_folder(tmp_path)


def test_single_class_is_refused(tmp_path: Path) -> None:
    _png(tmp_path / "only" / "a.png", np.zeros((4, 4), dtype=np.uint8))
    _png(tmp_path / "only" / "b.png", np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(DataError, match="only one class"):
        read_image_folder(tmp_path)


def test_mixed_sizes_need_an_image_size(tmp_path: Path) -> None:
    _class_tree(tmp_path, size=16)
    _png(tmp_path / "benign" / "big.png", np.zeros((40, 30), dtype=np.uint8))
    with pytest.raises(DataError, match=r"different sizes.*image_size"):
        read_image_folder(tmp_path)
    resized = read_image_folder(tmp_path, size=20)
    assert resized.images.shape == (7, 1, 20, 20)
    assert resized.images.min() >= 0.0 and resized.images.max() <= 1.0


def test_npz_splits_and_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = {}
    for split, n in (("train", 10), ("val", 4), ("test", 5)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 3)[:, None]
    np.savez(tmp_path / "toy.npz", **arrays)
    sets = read_medmnist_npz(tmp_path / "toy.npz", class_names=["a", "b", "c"])
    assert sorted(sets) == ["test", "train", "val"]
    assert sets["train"].images.shape == (10, 1, 28, 28)
    np.testing.assert_allclose(sets["val"].images[:, 0] * 255, arrays["val_images"], atol=1e-3)
    assert sets["test"].labels.tolist() == [0, 1, 2, 0, 1]


def test_npz_multilabel_is_read_as_findings_and_bad_files_are_refused(tmp_path: Path) -> None:
    findings = np.array([[0, 1, 1], [0, 0, 0]])
    np.savez(
        tmp_path / "chest.npz",
        train_images=np.zeros((2, 8, 8), np.uint8),
        train_labels=findings,
    )
    (train,) = read_medmnist_npz(tmp_path / "chest.npz", class_names=["a", "b", "c"]).values()
    assert train.multi_label and train.labels.tolist() == findings.tolist()
    assert train.class_counts() == {"a": 0, "b": 1, "c": 1}
    np.savez(
        tmp_path / "bad.npz",
        train_images=np.zeros((2, 8, 8), np.uint8),
        train_labels=findings * 2,
    )
    with pytest.raises(DataError, match="other than 0 and 1"):
        read_medmnist_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "odd.npz", x=np.zeros(3))
    with pytest.raises(DataError, match="train_images"):
        read_medmnist_npz(tmp_path / "odd.npz")


def test_medmnist_offline_error_says_where_to_put_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDSIGHT_CACHE", str(tmp_path))
    monkeypatch.setattr(
        medmnist, "candidate_paths", lambda name: [tmp_path / "medmnist" / f"{name}.npz"]
    )
    with pytest.raises(DataError, match=r"pneumoniamnist.*zenodo.*MD5.*pneumoniamnist\.npz"):
        medmnist.locate_medmnist("pneumoniamnist", download=False)


class _FakeResponse(io.BytesIO):
    def __enter__(self) -> _FakeResponse:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()


def test_download_checks_md5_and_keeps_nothing_on_mismatch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = b"npz bytes"
    monkeypatch.setattr(
        medmnist.urllib.request, "urlopen", lambda url, timeout: _FakeResponse(payload)
    )
    wrong = MedMNISTSubset(
        "toy", "https://example.invalid/toy.npz", "0" * 32, "binary-class", 1, ("a", "b")
    )
    target = tmp_path / "toy.npz"
    with pytest.raises(DataError, match="MD5"):
        medmnist.download_medmnist(wrong, target)
    assert not target.exists() and not list(tmp_path.iterdir())
    right = MedMNISTSubset(
        "toy", wrong.url, hashlib.md5(payload).hexdigest(), "binary-class", 1, ("a", "b")
    )
    assert medmnist.download_medmnist(right, target).read_bytes() == payload


def test_download_failure_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(url: str, timeout: float) -> None:
        raise medmnist.urllib.error.URLError("no network")

    monkeypatch.setattr(medmnist.urllib.request, "urlopen", offline)
    info = medmnist.subset_info("breastmnist")
    with pytest.raises(DataError, match=r"could not download breastmnist.*save it as"):
        medmnist.download_medmnist(info, tmp_path / "breastmnist.npz")
    assert not list(tmp_path.iterdir())
