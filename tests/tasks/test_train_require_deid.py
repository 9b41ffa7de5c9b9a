"""``data.require_deidentified`` in training: tables, DICOM image folders and ECG folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from medsight.cli.main import app
from medsight.config import (
    DataConfig,
    EcgDataConfig,
    EcgTrainConfig,
    ImageDataConfig,
    ModelConfig,
    TrainConfig,
    parse_config,
)
from medsight.data.synthetic import make_risk_table
from medsight.errors import ConfigError, DataError
from medsight.privacy.dicom_deid import deidentify_paths
from medsight.privacy.keys import DeidKey
from medsight.tasks import ecg_run
from medsight.tasks.ecg_data import load_rhythm_folder
from medsight.tasks.image_data import load_image_splits
from medsight.tasks.tabular import prepare_table
from shared_helpers import write_wfdb

KEY = DeidKey(b"train-gate-test-key-" + b"k" * 32)


def test_the_flag_is_off_by_default_and_parsed_strictly() -> None:
    assert not DataConfig().require_deidentified
    assert not ImageDataConfig().require_deidentified
    assert not EcgDataConfig().require_deidentified
    for task in ("tabular-classification", "image-classification", "ecg-rhythm"):
        config = parse_config({"task": task, "data": {"require_deidentified": True}})
        assert config.data.require_deidentified is True
    with pytest.raises(ConfigError, match=r"unknown key 'data\.require_deidentifed'"):
        parse_config({"data": {"require_deidentifed": True}})


def _identified_table():
    frame = make_risk_table(120, seed=4)
    frame["name"] = [f"{_FIRST[i % 3]} {_LAST[i % 3]}" for i in range(120)]
    frame["ssn"] = [f"{100 + i:03d}-{10 + i % 80:02d}-{1000 + i:04d}" for i in range(120)]
    return frame


_FIRST = ["Mary", "John", "Chidi"]
_LAST = ["Johnson", "Smith", "Okafor"]


def _config(flag: bool) -> TrainConfig:
    data = DataConfig(target="disease", patient_id="patient_id", require_deidentified=flag)
    return TrainConfig(data=data, model=ModelConfig(name="logistic"))


def test_a_table_with_names_and_ssns_is_refused_only_with_the_flag() -> None:
    frame = _identified_table()
    with pytest.raises(DataError) as caught:
        prepare_table(_config(True), frame)
    message = str(caught.value)
    assert message.startswith("the table: column 'name'") and "NAME (" in message
    assert "Okafor" not in message
    without_names = frame.drop(columns=["name"])
    with pytest.raises(DataError, match=r"column 'ssn'.*SSN \(120\)"):
        prepare_table(_config(True), without_names)
    assert prepare_table(_config(False), frame).frame.shape[0] == 120  # default: accepted
    clean = frame.drop(columns=["name", "ssn"])
    assert prepare_table(_config(True), clean).frame.shape[0] == 120


def test_train_command_flag_refuses_the_table(tmp_path: Path) -> None:
    path = tmp_path / "risk.csv"
    _identified_table().to_csv(path, index=False)
    args = ["train", "--data", str(path), "--target", "disease", "--patient-id", "patient_id"]
    args += ["--output", str(tmp_path)]
    result = CliRunner().invoke(app, [*args, "--require-deidentified"])
    assert result.exit_code != 0
    assert isinstance(result.exception, DataError)
    assert f"{path}: column 'name'" in str(result.exception)
    assert not any(tmp_path.glob("*/bundle"))


@pytest.fixture(scope="module")
def dicom_trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A class-folder tree of 2 x 8 DICOM files, and the same tree after ``medsight deid``."""
    raw = tmp_path_factory.mktemp("raw")
    sources = [get_testdata_file("CT_small.dcm"), get_testdata_file("MR_small.dcm")]
    for label, source in zip(("ct", "mr"), sources, strict=True):
        (raw / label).mkdir()
        for i in range(8):
            shutil.copy(source, raw / label / f"{i}.dcm")
    out = tmp_path_factory.mktemp("deid")
    outcomes = deidentify_paths([raw], out, KEY)
    assert {o.status for o in outcomes} == {"ok"} and len(outcomes) == 16
    return raw, out


def test_dicom_image_training_data_is_refused_until_deidentified(dicom_trees) -> None:
    raw, deidentified = dicom_trees
    # each class is 8 copies of one file: split them as separate images, not as 2 scenes or
    # as the 2 patients their headers name
    settings = {"image_size": 16, "near_duplicate_threshold": None, "dicom_patient_groups": False}
    with pytest.raises(DataError, match=r"\.dcm: not de-identified: Patient Identity Removed"):
        load_image_splits(ImageDataConfig(path=str(raw), require_deidentified=True, **settings))
    assert len(load_image_splits(ImageDataConfig(path=str(raw), **settings)).train) > 0
    config = ImageDataConfig(path=str(deidentified), require_deidentified=True, **settings)
    splits = load_image_splits(config)
    assert sum(len(part) for _, part in splits.items()) == 16
    assert splits.class_names == ["ct", "mr"]


def test_png_and_phantom_images_pass_the_flag(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(8):
            pixels = rng.integers(0, 255, (12, 12), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / label / f"{i}.png")
    splits = load_image_splits(ImageDataConfig(path=str(tmp_path), require_deidentified=True))
    assert sum(len(part) for _, part in splits.items()) == 16
    splits = load_image_splits(ImageDataConfig(path="phantom", require_deidentified=True))
    assert len(splits.train) > 0


def _rhythm_folder(folder: Path, comments: list[str]) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for label in ("N", "A"):
        for i in range(3):
            name = f"{label}{i}"
            write_wfdb(folder, name, rng.normal(0, 0.1, 3000), fs=300, comments=comments)
            rows.append(f"{name},{label}")
    (folder / "REFERENCE.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_ecg_records_with_identifying_comments_are_refused(tmp_path: Path) -> None:
    identified = _rhythm_folder(tmp_path, ["Name: Chidi Okafor", "Phone: 555-123-4567"])
    with pytest.raises(DataError, match=r"N0.hea: header comments: 2 of 2.*NAME.*PHONE"):
        load_rhythm_folder(identified, fs=150, n_jobs=1, require_deidentified=True)
    data = load_rhythm_folder(identified, fs=150, n_jobs=1)  # the default reads them
    assert len(data) == 6
    clean = tmp_path / "clean"
    clean.mkdir()
    _rhythm_folder(clean, ["Age: 61 Sex: F"])
    assert len(load_rhythm_folder(clean, fs=150, n_jobs=1, require_deidentified=True)) == 6


def test_ecg_run_refuses_before_training(tmp_path: Path) -> None:
    identified = _rhythm_folder(tmp_path, ["Name: Chidi Okafor"])
    data = EcgDataConfig(path=str(identified), require_deidentified=True)
    with pytest.raises(DataError, match="header comments"):
        ecg_run.run_ecg(EcgTrainConfig(data=data, output_dir=tmp_path / "runs"), progress=False)
    assert not (tmp_path / "runs").exists()
