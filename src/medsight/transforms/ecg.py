"""Fixed-length crops of variable-length ECG records for the torch models.

Training takes one random crop per record and epoch; validation a centred crop; prediction
averages the class probabilities of overlapping windows that cover the whole record. A record
shorter than the crop is tiled (repeated end to end) rather than zero-padded, so the rhythm
statistics the model pools over are those of the record and standardisation sees no flat
stretch. The random draws depend only on (seed, epoch, rank, record), so they are the same
whatever the loader order or number of workers, and a resumed run repeats them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from medsight.errors import DataError


def fit_length(signal: np.ndarray, length: int, start: int = 0) -> np.ndarray:
    """``(leads, length)``: the record tiled to at least ``length``, then cut at ``start``."""
    samples = signal.shape[-1]
    if samples == 0:
        raise DataError("an ECG record has no samples")
    if samples < length:
        repeats = -(-(length + start) // samples)
        signal = np.tile(signal, (1, repeats))
    return signal[:, start : start + length]


def window_starts(samples: int, length: int, hop: int) -> list[int]:
    """Window starts covering ``samples`` with windows of ``length`` every ``hop`` (last flush)."""
    if samples <= length:
        return [0]
    starts = list(range(0, samples - length + 1, hop))
    if starts[-1] != samples - length:
        starts.append(samples - length)
    return starts


class EcgCropDataset(Dataset):
    """Records ``(leads, samples)`` with labels as crops of ``length`` samples.

    ``train=True``: a random crop per (epoch, record), and optional Gaussian noise (in the
    record's standard deviations); otherwise the centred crop.
    """

    def __init__(
        self,
        signals: Sequence[np.ndarray],
        labels: np.ndarray,
        length: int,
        *,
        train: bool = False,
        seed: int = 0,
        rank: int = 0,
        noise_std: float = 0.0,
    ) -> None:
        if len(signals) != len(labels):
            raise DataError(f"{len(signals)} ECG records but {len(labels)} labels")
        self.signals = [np.asarray(s, dtype=np.float32) for s in signals]
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.length = length
        self.train = train
        self.seed = seed
        self.rank = rank
        self.noise_std = noise_std
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.signals)

    def set_epoch(self, epoch: int) -> None:
        """Draw the crops of ``epoch`` (called by the training engine)."""
        self.epoch = epoch

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        signal = self.signals[index]
        spare = max(signal.shape[-1] - self.length, 0)
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, self.rank, index])
            crop = fit_length(signal, self.length, int(rng.integers(0, spare + 1)))
            if self.noise_std:
                scale = self.noise_std * float(crop.std())
                crop = crop + rng.normal(0.0, scale, crop.shape).astype(np.float32)
        else:
            crop = fit_length(signal, self.length, spare // 2)
        return torch.from_numpy(np.ascontiguousarray(crop)), self.labels[index]


class EcgWindowDataset(Dataset):
    """Every window of every record (``owner[i]`` is the record of window ``i``)."""

    def __init__(self, signals: Sequence[np.ndarray], length: int, hop: int) -> None:
        self.signals = [np.asarray(s, dtype=np.float32) for s in signals]
        self.length = length
        self.index = [
            (record, start)
            for record, signal in enumerate(self.signals)
            for start in window_starts(signal.shape[-1], length, hop)
        ]
        self.owner = np.array([record for record, _ in self.index], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, index: int) -> torch.Tensor:
        record, start = self.index[index]
        return torch.from_numpy(fit_length(self.signals[record], self.length, start).copy())


def average_by_record(probabilities: np.ndarray, owner: np.ndarray, n_records: int) -> np.ndarray:
    """Mean window probabilities per record: ``(n_windows, K) -> (n_records, K)``."""
    sums = np.zeros((n_records, probabilities.shape[1]), dtype=np.float64)
    np.add.at(sums, owner, probabilities)
    counts = np.bincount(owner, minlength=n_records)[:, None]
    return sums / np.maximum(counts, 1)
