"""ECG rhythm classification: train a network with the shared engine, or LightGBM on features.

Networks learn from random crops of each record and are early-stopped on the validation part
(centred crops); a record is then predicted by averaging the windows that cover it. The feature
model (``ecg_hrv_lightgbm``) learns from per-record HRV and morphology features and stops adding
trees when the validation loss stops falling. The test part is predicted once, after training.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from medsight.config import EcgTrainConfig
from medsight.models.registry import create_model, get_model_entry
from medsight.tasks.ecg_data import EcgSet, EcgSplits
from medsight.train.distributed import DistributedContext
from medsight.train.engine import FitResult, Trainer
from medsight.train.settings import engine_config
from medsight.transforms.ecg import EcgCropDataset, EcgWindowDataset, average_by_record

FEATURE_FAMILY = "signal-features"


@dataclass
class TrainedRhythmModel:
    """A rhythm model trained on train, selected on val, with its val and test probabilities."""

    name: str
    model: Any  # nn.Module for networks, a fitted classifier for feature models
    val_probabilities: np.ndarray
    test_probabilities: np.ndarray
    train_seconds: float
    fits: list[FitResult] = field(default_factory=list)
    feature_names: list[str] = field(default_factory=list)

    @property
    def is_network(self) -> bool:
        return isinstance(self.model, nn.Module)


def window_samples(config: EcgTrainConfig) -> tuple[int, int]:
    """Crop/window length and hop in samples at the model's rate."""
    fs = config.data.fs
    return round(config.data.crop_seconds * fs), max(1, round(config.data.hop_seconds * fs))


def train_rhythm_model(
    config: EcgTrainConfig,
    splits: EcgSplits,
    *,
    progress: bool = True,
    distributed: DistributedContext | None = None,
) -> TrainedRhythmModel:
    """Train the model named in ``config.model`` (network or feature model)."""
    if get_model_entry(config.model.name).family == FEATURE_FAMILY:
        return train_feature_model(config, splits)
    return train_rhythm_network(config, splits, progress=progress, distributed=distributed)


def train_rhythm_network(
    config: EcgTrainConfig,
    splits: EcgSplits,
    *,
    progress: bool = True,
    distributed: DistributedContext | None = None,
) -> TrainedRhythmModel:
    """Train a registered ECG network on crops; predict val and test by window averaging."""
    torch.manual_seed(config.seed)
    leads = splits.train.signals[0].shape[0]
    model = create_model(
        config.model.name,
        in_channels=leads,
        num_classes=len(splits.train.class_names),
        **config.model.params,
    )
    length, hop = window_samples(config)
    train = EcgCropDataset(
        splits.train.signals, splits.train.labels, length, train=True, seed=config.seed
    )
    val = EcgCropDataset(splits.val.signals, splits.val.labels, length)
    settings = engine_config(config.engine, config.seed, n_train=len(train), progress=progress)
    trainer = Trainer(model, settings, distributed=distributed)
    fit = trainer.fit(train, val)
    seconds = float(sum(record.train_seconds for record in fit.history))
    return TrainedRhythmModel(
        config.model.name,
        trainer.model,
        predict_records(trainer, splits.val, length, hop),
        predict_records(trainer, splits.test, length, hop),
        seconds,
        fits=[fit],
    )


def predict_records(trainer: Trainer, data: EcgSet, length: int, hop: int) -> np.ndarray:
    """Class probabilities per record: the mean over windows of ``length`` every ``hop``."""
    windows = EcgWindowDataset(data.signals, length, hop)
    return average_by_record(trainer.predict_proba(windows), windows.owner, len(data))


def feature_table(data: EcgSet, *, n_jobs: int = 2) -> pd.DataFrame:
    """Per-record HRV, morphology and quality features (one row per record, stable columns)."""
    from joblib import Parallel, delayed

    from medsight.signal.hrv import record_features

    rows = Parallel(n_jobs=n_jobs, batch_size=32)(
        delayed(record_features)(signal[0], data.fs) for signal in data.signals
    )
    return pd.DataFrame(rows, index=data.names)


def train_feature_model(config: EcgTrainConfig, splits: EcgSplits) -> TrainedRhythmModel:
    """LightGBM (or another registered feature model) on :func:`feature_table` features."""
    start = time.perf_counter()
    tables = {name: feature_table(part) for name, part in splits.items()}
    model = create_model(config.model.name, seed=config.seed, **config.model.params)
    model.fit_with_validation(
        tables["train"], splits.train.labels, tables["val"], splits.val.labels
    )
    seconds = time.perf_counter() - start
    return TrainedRhythmModel(
        config.model.name,
        model,
        model.predict_proba(tables["val"]),
        model.predict_proba(tables["test"]),
        seconds,
        feature_names=list(tables["train"].columns),
    )
