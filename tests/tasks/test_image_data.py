"""Image data specs: official splits, generated phantoms, and stratified grouped splitting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsight.config import ImageDataConfig, parse_config
from medsight.data.phantom import make_phantom_images, make_phantom_splits
from medsight.errors import ConfigError, DataError
from medsight.models.imaging import check_input_size
from medsight.models.registry import create_model, list_models
from medsight.tasks.image_data import load_image_splits


def test_phantom_lesions_differ_from_normal_images() -> None:
    data = make_phantom_images(400, seed=3)
    assert data.images.shape == (400, 1, 28, 28)
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    # a lesion is a local bright or dark blob: the largest deviation from the image median is larger
    deviation = np.abs(data.images - np.median(data.images, axis=(2, 3), keepdims=True)).max(
        axis=(1, 2, 3)
    )
    assert deviation[data.labels == 1].mean() > deviation[data.labels == 0].mean()
    again = make_phantom_images(400, seed=3)
    np.testing.assert_array_equal(data.images, again.images)


def test_phantom_splits_are_independent_draws() -> None:
    splits = make_phantom_splits(300, seed=1)
    assert [len(s) for s in splits.values()] == [210, 30, 60]
    assert not np.array_equal(splits["train"].images[:30], splits["val"].images)


def test_phantom_spec_resolves_to_checked_splits() -> None:
    splits = load_image_splits(ImageDataConfig(path="phantom", image_size=32))
    assert splits.train.image_shape == (1, 32, 32)
    assert splits.class_names == ["normal", "lesion"]


def _folder(root: Path, per_class: int, patients: int) -> Path:
    rng = np.random.default_rng(0)
    rows = ["path,label,patient_id"]
    for label in ("a", "b"):
        for i in range(per_class):
            path = root / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(path)
            rows.append(f"{label}/{i}.png,{label},{label}{i % patients}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_csv_is_split_by_patient_and_class(tmp_path: Path) -> None:
    root = _folder(tmp_path, per_class=40, patients=20)
    splits = load_image_splits(ImageDataConfig(path=str(root / "labels.csv")), seed=0)
    seen = [set(s.patient_ids) for _, s in splits.items()]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert sum(len(s) for _, s in splits.items()) == 80
    for _, image_set in splits.items():
        assert set(image_set.labels) == {0, 1}


def _folder_with_sweeps(root: Path, scenes: int, frames: int) -> Path:
    """Class folders of ultrasound-like sweeps: ``frames`` slightly noisy copies of each scene."""
    rng = np.random.default_rng(1)
    for label in ("a", "b"):
        for scene in range(scenes):
            base = rng.integers(20, 235, (16, 16))
            for frame in range(frames):
                pixels = np.clip(base + rng.integers(-4, 5, base.shape), 0, 255)
                path = root / label / f"s{scene}_f{frame}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels.astype(np.uint8)).save(path)
    return root


@pytest.mark.parametrize("threshold", [0.97, None], ids=["grouped", "independent"])
def test_frames_of_one_scene_stay_on_one_side_of_the_splits(
    tmp_path: Path, threshold: float | None
) -> None:
    from medsight.data.image_audit import audit_images

    root = _folder_with_sweeps(tmp_path, scenes=20, frames=3)
    config = ImageDataConfig(path=str(root), near_duplicate_threshold=threshold)
    splits = load_image_splits(config, seed=0)
    assert sum(len(s) for _, s in splits.items()) == 120
    across = [p for p in audit_images(splits.items()).pairs if p.across_splits]
    if threshold is None:  # the old behaviour: a scene's frames fall on both sides
        assert len(across) > 10
    else:
        assert across == []
        scenes = {
            name: {Path(src).stem.split("_")[0] + Path(src).parent.name for src in s.sources}
            for name, s in splits.items()
        }
        assert not (scenes["train"] & scenes["test"]) and not (scenes["train"] & scenes["val"])


def test_copies_too_few_to_split_as_scenes_get_a_clear_error(tmp_path: Path) -> None:
    root = _folder_with_sweeps(tmp_path, scenes=2, frames=8)
    with pytest.raises(DataError, match=r"only 4 groups .* data\.near_duplicate_threshold: null"):
        load_image_splits(ImageDataConfig(path=str(root)))
    independent = ImageDataConfig(path=str(root), near_duplicate_threshold=None)
    assert sum(len(s) for _, s in load_image_splits(independent).items()) == 32


def test_near_duplicates_join_the_patient_groups(tmp_path: Path) -> None:
    from medsight.data.image_audit import duplicate_groups
    from medsight.io.images import ImageSet

    images = np.random.default_rng(2).random((6, 1, 8, 8), dtype=np.float32)
    images[5] = images[0]  # patient p3's image repeats patient p1's
    patients = np.array(["p1", "p1", "p2", "p2", "p3", "p3"])
    groups = duplicate_groups(
        ImageSet(images, [0, 1, 0, 1, 0, 1], ["a", "b"], patient_ids=patients)
    )
    assert groups is not None
    assert len({groups[0], groups[1], groups[4], groups[5]}) == 1  # p1 and p3 joined
    assert groups[2] == groups[3] != groups[0]
    unique = ImageSet(images[:5], [0, 1, 0, 1, 0], ["a", "b"], patient_ids=patients[:5])
    assert duplicate_groups(unique) is unique.patient_ids  # nothing to join: unchanged
    assert duplicate_groups(ImageSet(images[:5], [0, 1, 0, 1, 0], ["a", "b"])) is None


def test_too_few_images_per_class_to_split(tmp_path: Path) -> None:
    root = _folder(tmp_path, per_class=3, patients=3)
    with pytest.raises(DataError, match="at least"):
        load_image_splits(ImageDataConfig(path=str(root)))


def test_missing_data_and_unknown_sources() -> None:
    with pytest.raises(ConfigError, match="no image data"):
        load_image_splits(ImageDataConfig())
    with pytest.raises(DataError, match="not found"):
        load_image_splits(ImageDataConfig(path="/nonexistent/images"))
    with pytest.raises(ConfigError, match="unknown MedMNIST subset"):
        load_image_splits(ImageDataConfig(path="medmnist:nosuchmnist"))


def test_image_config_rejects_unknown_keys_and_tasks() -> None:
    config = parse_config({"task": "image-classification", "engine": {"epochs": 3}})
    assert config.engine.epochs == 3
    with pytest.raises(ConfigError, match=r"unknown key 'augment\.flip'"):
        parse_config({"task": "image-classification", "augment": {"flip": True}})
    with pytest.raises(ConfigError, match="unknown task"):
        parse_config({"task": "video"})


@pytest.mark.parametrize("name", ["small_cnn", "resnet18_28", "densenet121"])
def test_image_models_map_images_to_logits(name: str) -> None:
    import torch

    model = create_model(name, in_channels=3, num_classes=4)
    size = 32
    check_input_size(model, name, size)
    assert model.eval()(torch.rand(2, 3, size, size)).shape == (2, 4)


def test_scattering_cnn_is_built_for_the_data_size_and_refuses_others() -> None:
    import torch

    from medsight.config import ImageTrainConfig
    from medsight.tasks.image import new_network

    config = ImageTrainConfig.model_validate(
        {"data": {"path": "phantom", "image_size": 32}, "model": {"name": "scattering_cnn"}}
    )
    model, spec, _ = new_network(config, load_image_splits(config.data))
    assert spec["params"]["size"] == 32  # from the data, and in the spec the bundle rebuilds from
    assert model.eval()(torch.rand(3, 1, 32, 32)).shape == (3, 2)
    with pytest.raises(DataError, match="built for 32x32 images"):
        model(torch.rand(3, 1, 28, 28))


def test_densenet_refuses_inputs_it_would_pool_away() -> None:
    model = create_model("densenet121", in_channels=1, num_classes=2)
    with pytest.raises(ConfigError, match="at least 32x32"):
        check_input_size(model, "densenet121", 28)


def test_registry_lists_image_models() -> None:
    names = {m.name for m in list_models("image")}
    assert {"small_cnn", "scattering_cnn", "resnet18_28", "densenet121"} <= names


def test_local_weights_load_and_missing_file_is_clear(tmp_path: Path) -> None:
    import torch

    source = create_model("small_cnn", in_channels=1, num_classes=2)
    torch.save(source.state_dict(), tmp_path / "w.pt")
    loaded = create_model("small_cnn", in_channels=1, num_classes=2, weights=tmp_path / "w.pt")
    for a, b in zip(source.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ConfigError, match="never downloads"):
        create_model("small_cnn", weights=tmp_path / "missing.pt")
