"""ECG rhythm bundle: a network as ONNX (plus torch weights) or a LightGBM feature model as text.

Layout::

    bundle.json    classes, rate, lead, window, model name and parameters, metrics, checksums
    model.onnx     network bundles: windows (N, leads, samples) in mV -> logits, dynamic batch
    weights.pt     network bundles: the torch state dict (tensors only) for attributions
    model.txt      feature bundles: the LightGBM booster in its own text format (no pickle)
    model_card.md  generated model card

:meth:`EcgBundle.predict_record` takes an :class:`~medsight.io.ecg.EcgRecord` at any rate, checks
its quality first and answers ``unreadable`` with the reasons instead of guessing on a flat,
saturated or too-short recording.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medsight.bundle.checksum import (
    check_complete,
    read_bundle_metadata,
    read_model_card,
    verify_checksums,
    write_bundle_metadata,
)
from medsight.bundle.network import NETWORK_FILES as TORCH_FILES
from medsight.bundle.network import write_network_files
from medsight.bundle.prediction import ClassPrediction
from medsight.errors import BundleError
from medsight.io.ecg import EcgRecord, resample_record
from medsight.runs import staged_directory
from medsight.transforms.ecg import EcgWindowDataset, average_by_record

BUNDLE_FORMAT = 1
TASK = "ecg-rhythm"
NETWORK_FILES = ("bundle.json", *TORCH_FILES)
FEATURE_FILES = ("bundle.json", "model.txt")
UNREADABLE = "unreadable"


RhythmPrediction = ClassPrediction  # one record's rhythm; warnings hold quality reasons


@dataclass
class EcgBundle:
    """A trained ECG rhythm classifier with what is needed to run and audit it."""

    metadata: dict[str, Any]
    path: Path | None = None
    model_card: str = ""
    _runner: Any = field(default=None, repr=False)

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])

    @property
    def fs(self) -> float:
        return float(self.metadata["fs"])

    @property
    def is_network(self) -> bool:
        return self.metadata["kind"] == "network"

    @property
    def window(self) -> tuple[int, int]:
        return int(self.metadata["window_samples"]), int(self.metadata["hop_samples"])

    # ------------------------------------------------------------------------------ writing

    @classmethod
    def save_network(
        cls,
        model: nn.Module,
        path: str | Path,
        metadata: dict[str, Any],
        *,
        model_card: str = "",
        parity_inputs: np.ndarray | None = None,
    ) -> EcgBundle:
        """Export a network to ONNX, check parity with torch, and write the bundle atomically."""
        shape = (int(metadata["leads"]), int(metadata["window_samples"]))
        check = parity_inputs
        if check is None:
            check = np.random.default_rng(0).normal(size=(4, *shape)).astype(np.float32)
        with staged_directory(Path(path)) as staging:
            difference = write_network_files(model, staging, shape, check[:8])
            extra = {"kind": "network", "onnx_max_abs_difference": difference}
            full = _write_metadata(staging, {**metadata, **extra}, NETWORK_FILES, model_card)
        return cls(full, Path(path), model_card)

    @classmethod
    def save_features(
        cls, model: Any, path: str | Path, metadata: dict[str, Any], *, model_card: str = ""
    ) -> EcgBundle:
        """Write a fitted feature model (LightGBM booster as text) and its feature names."""
        with staged_directory(Path(path)) as staging:
            model.model.booster_.save_model(str(staging / "model.txt"))
            extra = {"kind": "features", "feature_names": list(model.feature_names)}
            full = _write_metadata(staging, {**metadata, **extra}, FEATURE_FILES, model_card)
        return cls(full, Path(path), model_card)

    # ------------------------------------------------------------------------------ reading

    @classmethod
    def load(cls, path: str | Path) -> EcgBundle:
        """Load a bundle folder, checking it is complete, of a known format and unmodified."""
        path = Path(path)
        metadata = read_bundle_metadata(path, ("bundle.json",), TASK, BUNDLE_FORMAT)
        check_complete(path, NETWORK_FILES if metadata.get("kind") == "network" else FEATURE_FILES)
        verify_checksums(path, metadata)
        return cls(metadata, path, read_model_card(path))

    def torch_model(self) -> nn.Module:
        """The network rebuilt from the registry with the bundle's weights (for attributions)."""
        from medsight.models.registry import create_model

        if not self.is_network or self.path is None:
            raise BundleError("only a saved network bundle has torch weights.")
        spec = self.metadata["model"]
        model = create_model(
            spec["name"],
            in_channels=int(self.metadata["leads"]),
            num_classes=len(self.class_names),
            **spec.get("params", {}),
        )
        state = torch.load(self.path / "weights.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model.eval()

    # ------------------------------------------------------------------------------ use

    def signal_of(self, record: EcgRecord) -> np.ndarray:
        """The bundle's lead of ``record`` at the bundle's rate, as ``(1, samples)``."""
        lead = self.metadata.get("lead", 0)
        if isinstance(lead, str) and lead not in record.lead_names and record.n_leads == 1:
            lead = 0  # a single-lead recording is taken whatever its lead is called
        resampled = resample_record(record.select([lead]), self.fs)
        return np.ascontiguousarray(resampled.signal.T, dtype=np.float32)

    def predict_signals(self, signals: list[np.ndarray]) -> np.ndarray:
        """Class probabilities ``(n, K)`` for ``(1, samples)`` signals at the bundle's rate."""
        if self.is_network:
            length, hop = self.window
            windows = EcgWindowDataset(signals, length, hop)
            batch = np.stack([windows[i].numpy() for i in range(len(windows))])
            probabilities = self._onnx().predict_proba(batch)
            return average_by_record(probabilities, windows.owner, len(signals))
        import pandas as pd

        from medsight.signal.hrv import record_features

        table = pd.DataFrame([record_features(s[0], self.fs) for s in signals])
        return self._booster().predict(table[self.metadata["feature_names"]])

    def predict_record(self, record: EcgRecord) -> RhythmPrediction:
        """The rhythm of one record, or ``unreadable`` with the reasons when quality is too poor."""
        from medsight.signal.quality import signal_quality

        signal = self.signal_of(record)
        source = record.source or record.name
        quality = signal_quality(signal[0], self.fs, min_seconds=self.metadata["min_seconds"])
        if not quality.usable:
            return RhythmPrediction(source, UNREADABLE, float("nan"), {}, list(quality.reasons))
        row = self.predict_signals([signal])[0]
        best = int(row.argmax())
        names = self.class_names
        return RhythmPrediction(
            source,
            names[best],
            float(row[best]),
            {name: float(p) for name, p in zip(names, row, strict=True)},
            list(quality.reasons),
        )

    def _onnx(self) -> Any:
        from medsight.deploy.onnx import OnnxClassifier

        if self._runner is None:
            self._runner = OnnxClassifier(self._file("model.onnx"), threads=2)
        return self._runner

    def _booster(self) -> Any:
        import lightgbm

        if self._runner is None:
            self._runner = lightgbm.Booster(model_file=str(self._file("model.txt")))
        return self._runner

    def _file(self, name: str) -> Path:
        if self.path is None:
            raise BundleError("this bundle has not been saved; save or load it first.")
        return self.path / name


def _write_metadata(
    staging: Path, metadata: dict[str, Any], files: tuple[str, ...], model_card: str
) -> dict[str, Any]:
    return write_bundle_metadata(
        staging,
        metadata,
        task=TASK,
        bundle_format=BUNDLE_FORMAT,
        checksummed=files[1:],
        model_card=model_card,
    )
