"""DICOM files as training data: labels keyed by SOP Instance UID, and splits grouped by the
DICOM Patient ID."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsight.config import ImageDataConfig
from medsight.errors import DataError
from medsight.io.images import read_image_csv, read_image_folder
from medsight.tasks.image_data import load_image_splits
from shared_helpers import write_dicom

SERIES = "1.2.826.0.1.3680043.10.7"


def _scan(path: Path, index: int, patient: str, brightness: int) -> Path:
    """A 12x12 DICOM image of grey ``brightness + 10 * index`` between a black and a 4000
    corner (min-max scaling keeps that grey at its share of 4000, so order can be checked)."""
    pixels = np.full((12, 12), brightness + 10 * index, dtype=np.uint16)
    pixels[0, 0], pixels[11, 11] = 0, 4000
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_dicom(path, pixels, index=index, series=SERIES, patient=patient)


def _export(root: Path) -> list[str]:
    """A PACS-style export: DICOM files in nested folders named by UID, a stray instance the
    label list does not name, and a non-DICOM file; returns the UIDs of the 4 labelled ones."""
    for index in range(4):
        _scan(root / "study" / f"series{index % 2}" / f"IM{index:04d}", index, f"P{index}", 500)
    _scan(root / "study" / "localizer" / "IM9999", 9, "P0", 900)
    (root / "study" / "README.txt").write_text("exported by the PACS\n")
    return [f"{SERIES}.{index}" for index in range(4)]


def test_labels_keyed_by_sop_instance_uid_find_their_files_in_the_csv_folder(
    tmp_path: Path,
) -> None:
    uids = _export(tmp_path)
    labels = ["tumour", "normal", "normal", "tumour"]
    order = [2, 0, 3, 1]  # the list is in another order than the files
    rows = [f"{uids[i]},{labels[i]}" for i in order]
    (tmp_path / "labels.csv").write_text("SOP_Instance_UID,label\n" + "\n".join(rows) + "\n")
    data = read_image_csv(tmp_path / "labels.csv")
    assert len(data) == 4  # the stray instance and the text file are left out
    assert data.class_names == ["normal", "tumour"]
    assert [data.class_names[k] for k in data.labels] == [labels[i] for i in order]
    greys = np.rint(data.images[:, 0, 5, 5] * 4000).astype(int)
    assert greys.tolist() == [500 + 10 * i for i in order]
    assert data.patient_ids.tolist() == [f"P{i}" for i in order]  # from the DICOM headers


def test_a_dicom_folder_elsewhere_and_csv_patient_ids_first(tmp_path: Path) -> None:
    uids = _export(tmp_path / "pacs")
    csv = tmp_path / "lists" / "labels.csv"
    csv.parent.mkdir()
    rows = [f"{uid},{'ab'[i % 2]},{'X' if i == 0 else ''}" for i, uid in enumerate(uids)]
    csv.write_text("sop_instance_uid,label,patient_id\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"match no DICOM file under .*lists \(0 DICOM files"):
        read_image_csv(csv)
    data = read_image_csv(csv, dicom_folder=tmp_path / "pacs")
    assert data.patient_ids.tolist() == ["X", "P1", "P2", "P3"]  # blank: the header's id
    alone = read_image_csv(csv, dicom_folder=tmp_path / "pacs", dicom_patient_ids=False)
    assert alone.patient_ids[0] == "X" and alone.patient_ids[1].startswith("image:")


def test_unknown_and_repeated_uids_and_one_instance_in_two_files_are_clear_errors(
    tmp_path: Path,
) -> None:
    uids = _export(tmp_path)
    csv = tmp_path / "labels.csv"
    csv.write_text(f"sop_instance_uid,label\n{uids[0]},a\n1.2.3.404,b\n")
    with pytest.raises(
        DataError, match=r"1 sop_instance_uid\(s\) match no DICOM file.*1\.2\.3\.404"
    ):
        read_image_csv(csv)
    csv.write_text(f"sop_instance_uid,label\n{uids[0]},a\n{uids[0]},b\n")
    with pytest.raises(DataError, match="listed more than once"):
        read_image_csv(csv)
    _scan(tmp_path / "copy" / "IM0000", 0, "P0", 500)  # the same instance exported twice
    csv.write_text(f"sop_instance_uid,label\n{uids[0]},a\n{uids[1]},b\n")
    with pytest.raises(DataError, match=rf"{uids[0]} is in two files"):
        read_image_csv(csv)


def test_class_folders_of_dicom_files_are_split_by_patient(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    index = 0
    for label, patients in (("normal", range(0, 10)), ("tumour", range(10, 20))):
        for patient in patients:
            for _ in range(3):  # three different images of each patient
                path = tmp_path / label / f"{index}.dcm"
                _scan(path, index, f"P{patient}", int(rng.integers(200, 3000)))
                index += 1
    config = ImageDataConfig(path=str(tmp_path), near_duplicate_threshold=None)
    splits = load_image_splits(config)
    sides = [set(part.patient_ids.tolist()) for _, part in splits.items()]
    assert sum(len(side) for side in sides) == 20  # every patient on exactly one side
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    ungrouped = load_image_splits(config.model_copy(update={"dicom_patient_groups": False}))
    assert ungrouped.train.patient_ids is None


def test_png_folders_stay_ungrouped_and_mixed_sets_group_only_the_dicom_files(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(1)
    for label in ("a", "b"):
        for i in range(3):
            path = tmp_path / "png" / label / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (12, 12), dtype=np.uint8)).save(path)
    assert read_image_folder(tmp_path / "png").patient_ids is None
    _scan(tmp_path / "png" / "a" / "scan.dcm", 0, "P7", 800)
    mixed = read_image_folder(tmp_path / "png")
    assert "P7" in mixed.patient_ids.tolist()
    assert len(set(mixed.patient_ids.tolist())) == 7  # each PNG a group of its own
