"""ECG rhythm data: a folder of labelled records read, resampled and split for training.

A folder holds WFDB records and a ``REFERENCE.csv`` of ``record,label`` rows (the PhysioNet/CinC
2017 layout). Records are resampled to the model's rate once, when read; the split into train,
validation and a held-out test part is stratified by label with a fixed seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from medsight.errors import DataError
from medsight.io.ecg import iter_challenge_records, read_wfdb, resample_record

RHYTHM_CLASSES = ["N", "A", "O", "~"]
RHYTHM_NAMES = {"N": "normal", "A": "atrial fibrillation", "O": "other rhythm", "~": "noisy"}
Progress = Callable[[int, int], None]


@dataclass
class EcgSet:
    """Records as ``(leads, samples)`` float32 arrays at ``fs`` Hz, with label indices."""

    signals: list[np.ndarray]
    labels: np.ndarray
    names: list[str]
    fs: float
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.signals)

    def subset(self, index: np.ndarray) -> EcgSet:
        return EcgSet(
            [self.signals[i] for i in index],
            self.labels[index],
            [self.names[i] for i in index],
            self.fs,
            self.class_names,
        )

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return {name: int(c) for name, c in zip(self.class_names, counts, strict=True)}

    def seconds(self) -> np.ndarray:
        return np.array([s.shape[-1] / self.fs for s in self.signals])


@dataclass
class EcgSplits:
    train: EcgSet
    val: EcgSet
    test: EcgSet
    source: str

    def items(self) -> list[tuple[str, EcgSet]]:
        return [("train", self.train), ("val", self.val), ("test", self.test)]


def read_record_signal(
    path: Path, fs: float, lead: int | str = 0, *, require_deidentified: bool = False
) -> np.ndarray:
    """One lead of a WFDB record at ``fs`` Hz as a ``(1, samples)`` float32 array.

    ``require_deidentified`` refuses a record whose header comments look like identifiers.
    """
    record = read_wfdb(
        path, annotation_extension=None, leads=[lead], require_deidentified=require_deidentified
    )
    record = resample_record(record, fs)
    return np.ascontiguousarray(record.signal.T, dtype=np.float32)


def load_rhythm_folder(
    folder: str | Path,
    *,
    fs: float,
    classes: list[str] | None = None,
    n_jobs: int = 2,
    progress: Progress | None = None,
    require_deidentified: bool = False,
) -> EcgSet:
    """Every record listed in ``folder/REFERENCE.csv``, first lead, resampled to ``fs`` Hz.

    ``require_deidentified`` (``data.require_deidentified``) refuses the folder when any record's
    header comments look like identifiers (:func:`medsight.io.ecg.read_wfdb`).
    """
    from joblib import Parallel, delayed

    classes = classes or RHYTHM_CLASSES
    rows = list(iter_challenge_records(folder, allowed=frozenset(classes)))
    if not rows:
        raise DataError(f"{folder}: REFERENCE.csv lists no records.")
    chunk = 250
    signals: list[np.ndarray] = []
    with Parallel(n_jobs=n_jobs) as parallel:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            signals += parallel(
                delayed(read_record_signal)(path, fs, require_deidentified=require_deidentified)
                for _, _, path in part
            )
            if progress is not None:
                progress(len(signals), len(rows))
    labels = np.array([classes.index(label) for _, label, _ in rows], dtype=np.int64)
    return EcgSet(signals, labels, [name for name, _, _ in rows], float(fs), list(classes))


def split_rhythm_set(
    data: EcgSet,
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    source: str = "",
) -> EcgSplits:
    """Stratified train / validation / held-out test parts (fractions of the whole set)."""
    index = np.arange(len(data))
    rest, test = train_test_split(
        index, test_size=test_fraction, stratify=data.labels, random_state=seed
    )
    val_size = round(val_fraction * len(data))
    train, val = train_test_split(
        rest, test_size=val_size, stratify=data.labels[rest], random_state=seed
    )
    return EcgSplits(data.subset(train), data.subset(val), data.subset(test), source)
