"""Helpers for tests: the location of ../shared/data (skip when absent) and small networks.

A plain module, not conftest.py: test files import it by name, and several conftest.py files
exist (a bare ``import conftest`` would get whichever was imported first).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/data is not available on this machine)")
    return path


def benchmark_script(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` imported as a module (benchmarks are scripts, not a package); it is
    registered in ``sys.modules`` first, as a dataclass defined in it needs."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def small_densenet() -> object:
    """A test-sized MONAI DenseNet (the same layer types as DenseNet-121, far fewer of them)."""
    from monai.networks.nets import DenseNet

    return DenseNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=2,
        init_features=8,
        growth_rate=8,
        block_config=(2, 2, 2, 2),
    )


def write_untrained_ecg_bundle(path: Path, name: str) -> Path:
    """An untrained 1D ResNet (width 4, seed 0) saved as a real ECG bundle (ONNX) at ``path``:
    four rhythm classes, 10 s windows at 150 Hz."""
    import torch

    from medsight.bundle.ecg import EcgBundle
    from medsight.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("ecg_resnet1d", in_channels=1, num_classes=4, width=4)
    metadata = {
        "name": name,
        "class_names": ["N", "A", "O", "~"],
        "fs": 150.0,
        "lead": 0,
        "leads": 1,
        "window_samples": 1500,
        "hop_samples": 750,
        "min_seconds": 5.0,
        "model": {"name": "ecg_resnet1d", "params": {"width": 4}},
    }
    EcgBundle.save_network(model, path, metadata)
    return path


def write_wfdb(
    folder: Path, name: str, signal: object, *, fs: int, comments: list[str] | None = None
) -> Path:
    """A one-lead WFDB record (16-bit, mV) ``name`` in ``folder``; returns its ``.hea`` path."""
    import numpy as np
    import wfdb

    wfdb.wrsamp(
        name,
        fs=fs,
        units=["mV"],
        sig_name=["I"],
        p_signal=np.asarray(signal, dtype=float).reshape(-1, 1),
        fmt=["16"],
        comments=comments or [],
        write_dir=str(folder),
    )
    return folder / f"{name}.hea"


# where each multi-label test finding puts its bright square: on the vertical midline, so that
# the default horizontal flips (augmentation and TTA) keep each finding where it is
FINDING_PATCHES = [(2, 11), (11, 11), (20, 11)]
FINDINGS_SIZES = {"train": 300, "val": 90, "test": 120}


def write_findings_npz(
    path: Path, seed: int = 0, *, unlabelled_in_train: int | None = None
) -> Path:
    """A MedMNIST-style ``.npz`` of 28x28 8-bit noise images with three findings, each present
    independently (p 0.35) as a bright 6x6 square. With ``unlabelled_in_train`` that finding's
    training labels are all 0 (readers at that site missed it; its images still show it)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in FINDINGS_SIZES.items():
        labels = (rng.random((n, len(FINDING_PATCHES))) < 0.35).astype(np.uint8)
        images = rng.normal(80, 20, (n, 28, 28))
        for k, (row, col) in enumerate(FINDING_PATCHES):
            images[labels[:, k] == 1, row : row + 6, col : col + 6] += 90
        if split == "train" and unlabelled_in_train is not None:
            labels[:, unlabelled_in_train] = 0
        arrays[f"{split}_images"] = np.clip(images, 0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels
    np.savez(path, **arrays)
    return path


def write_fold_file(
    folder: Path,
    fold: int,
    wrong: int,
    labels: np.ndarray | None = None,
    n_train: int | None = None,
) -> None:
    """An ``imaging_cv`` fold file of two equal networks that get the first ``wrong`` of 20
    images confidently wrong (so accuracy and AUROC both fall with ``wrong``); the last 4 images
    are 'seen in training'. ``n_train``: the training images recorded (left out when None, as
    in files before session 21)."""
    y = np.tile([0, 1], 10) if labels is None else labels
    positive = np.where(y == 1, 0.8, 0.2)
    positive[:wrong] = 1.0 - positive[:wrong]
    probabilities = np.stack([1 - positive, positive], axis=1)
    folder.mkdir(parents=True, exist_ok=True)
    extra = {} if n_train is None else {"n_train": np.array(n_train)}
    np.savez(
        folder / f"fold{fold}.npz",
        probabilities=np.broadcast_to(probabilities, (2, 1, *probabilities.shape)),
        product_probabilities=probabilities,
        labels=y,
        views=np.array(["identity"]),
        member_weights=np.array([0.5, 0.5]),
        svm_share=np.array(0.0),
        tree_share=np.array(0.0),
        threshold=np.array(float("nan")),
        positive_index=np.array(1),
        seen_in_training=np.arange(20) >= 16,
        member_train_seconds=np.array([1.0, 1.0]),
        wall_seconds=2.0,
        **extra,
    )


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    index: int = 1,
    instance: int | None = None,
    position: float | None = None,
    series: str = "1.2.826.0.1.3680043.10.1",
    patient: str = "P1",
) -> Path:
    """A one-frame secondary-capture DICOM file of ``pixels`` (12 bits stored) at ``path``,
    SOP Instance UID ``{series}.{index}``, Patient ID ``patient``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = f"{series}.{index}"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.3680043.10.9", series
    ds.Modality, ds.PatientID = "OT", patient
    if instance is not None:
        ds.InstanceNumber = instance
    if position is not None:
        ds.ImagePositionPatient = [0.0, 0.0, position]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.set_pixel_data(pixels.astype(np.uint16), photometric, 12, generate_instance_uid=False)
    ds.save_as(path, enforce_file_format=True)
    return path
