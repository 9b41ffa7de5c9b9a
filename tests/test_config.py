from __future__ import annotations

from pathlib import Path

import pytest

from medsight.cli.runner import resolve_train_config
from medsight.config import dump_config, load_config, parse_config
from medsight.errors import ConfigError


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  nmae: lightgbm\n")
    with pytest.raises(ConfigError, match=r"unknown key 'model.nmae'"):
        load_config(path)


def test_wrong_type_is_named() -> None:
    with pytest.raises(ConfigError, match=r"'evaluation.folds'"):
        parse_config({"evaluation": {"folds": "ten"}})


def test_relative_data_path_resolves_against_config(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "c.yaml"
    path.write_text("data:\n  path: ../data.csv\n  target: y\n")
    assert load_config(path).data.path == (tmp_path / "data.csv").resolve()


def test_image_data_and_dicom_folders_resolve_against_config(tmp_path: Path) -> None:
    (tmp_path / "configs").mkdir()
    path = tmp_path / "configs" / "scans.yaml"
    text = "task: image-classification\ndata:\n  path: ../labels.csv\n  dicom_folder: ../pacs\n"
    path.write_text(text)
    data = load_config(path).data
    assert data.path == str((tmp_path / "labels.csv").resolve())
    assert data.dicom_folder == str((tmp_path / "pacs").resolve())
    path.write_text("task: image-classification\ndata:\n  path: medmnist:breastmnist\n")
    assert load_config(path).data.path == "medmnist:breastmnist"  # a scheme, not a file


@pytest.mark.parametrize(
    "example", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_example_configs_validate(example: Path) -> None:
    config = load_config(example)
    assert config.data.path is not None and Path(config.data.path).is_absolute()


def test_flags_override_yaml_and_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  target: y\nevaluation:\n  folds: 4\n")
    config = resolve_train_config(
        path, {"evaluation.folds": 7, "model.name": "lightgbm", "seed": None}
    )
    assert config.evaluation.folds == 7 and config.model.name == "lightgbm"
    assert config.data.target == "y" and config.seed == 0
    (tmp_path / "again.yaml").write_text(dump_config(config))
    assert load_config(tmp_path / "again.yaml") == config


def test_not_yaml_mapping(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)


def test_a_partial_engine_section_keeps_the_task_defaults() -> None:
    ecg = parse_config({"task": "ecg-rhythm", "engine": {"batch_size": 16}}, source="t")
    assert ecg.engine.batch_size == 16
    # the ECG defaults, not the generic engine's, for every key the section leaves out
    assert (ecg.engine.epochs, ecg.engine.patience, ecg.engine.max_steps) == (40, 10, None)
    assert (ecg.engine.class_balance, ecg.engine.amp, ecg.engine.tta) == (
        "weights",
        "native",
        False,
    )
    image = parse_config({"task": "image-classification", "engine": {"epochs": 3}}, source="t")
    assert image.engine.epochs == 3 and image.engine.max_steps == 3000 and image.engine.tta


def test_engine_settings_reach_the_engine() -> None:
    from medsight.train.settings import engine_config

    image = parse_config(
        {"task": "image-classification", "engine": {"monitor": "loss", "channels_last": False}},
        source="t",
    )
    engine = engine_config(image.engine, seed=3, n_train=100)
    assert (engine.monitor, engine.channels_last, engine.seed) == ("loss", False, 3)
    assert (
        engine_config(parse_config({"task": "image-classification"}).engine, 0, n_train=1).monitor
        == "auroc"
    )
    with pytest.raises(ConfigError, match="monitor"):
        parse_config({"task": "image-classification", "engine": {"monitor": "f1"}}, source="t")
    # class_balance auto: weights for one label per image, none for multi-label findings
    default = parse_config({"task": "image-classification"}).engine
    assert default.class_balance == "auto"
    assert engine_config(default, 0, n_train=1).class_balance == "weights"
    assert engine_config(default, 0, n_train=1, multi_label=True).class_balance == "none"
    chosen = default.model_copy(update={"class_balance": "weights"})
    assert engine_config(chosen, 0, n_train=1, multi_label=True).class_balance == "weights"
