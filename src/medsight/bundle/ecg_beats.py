"""ECG beat-classifier bundle: a LightGBM booster as text plus what is needed to use and audit it.

Layout::

    bundle.json    classes, fs, lead, feature names and version, window, metrics, records,
                   checksums
    model.txt      the LightGBM booster in its own text format (no pickle)
    model_card.md  generated model card

:meth:`BeatBundle.classify` labels the beats of a lead: at given R peaks (e.g. reference
annotations) or at R peaks it detects. Features are computed at the lead's own rate (they are
measured in seconds); the bundle refuses a feature set other than the one it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from medsight.bundle.checksum import (
    read_bundle_metadata,
    read_model_card,
    verify_checksums,
    write_bundle_metadata,
)
from medsight.errors import BundleError, ConfigError
from medsight.runs import staged_directory

TASK = "ecg-beats"
BUNDLE_FORMAT = 1
FILES = ("bundle.json", "model.txt")


@dataclass(frozen=True)
class BeatPredictions:
    """Classified beats: R peaks (samples, as given or detected), AAMI labels, probabilities."""

    rpeaks: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    classes: tuple[str, ...]
    fs: float

    def counts(self) -> dict[str, int]:
        return {c: int(np.sum(self.labels == c)) for c in self.classes}


@dataclass
class BeatBundle:
    """A trained beat classifier (LightGBM on :mod:`medsight.signal.beat_features` rows)."""

    metadata: dict[str, Any]
    path: Path | None = None
    model_card: str = ""
    _booster: Any = field(default=None, repr=False)

    @property
    def classes(self) -> list[str]:
        return list(self.metadata["classes"])

    @property
    def fs(self) -> float:
        return float(self.metadata["fs"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata["feature_names"])

    @classmethod
    def save(
        cls, model: Any, path: str | Path, metadata: dict[str, Any], *, model_card: str = ""
    ) -> BeatBundle:
        """Write a fitted :class:`~medsight.models.ecg_beats.BeatBoostingClassifier` atomically."""
        path = Path(path)
        if path.exists():
            raise ConfigError(f"{path} already exists; choose a new bundle folder.")
        from medsight.signal.beat_features import FEATURES_VERSION

        extra = {
            "classes": list(model.classes),
            "feature_names": list(model.feature_names),
            "features_version": FEATURES_VERSION,
        }
        with staged_directory(path) as staging:
            model.booster.save_model(str(staging / "model.txt"))
            full = write_bundle_metadata(
                staging,
                {**metadata, **extra},
                task=TASK,
                bundle_format=BUNDLE_FORMAT,
                checksummed=FILES[1:],
                model_card=model_card,
            )
        return cls(full, path, model_card)

    @classmethod
    def load(cls, path: str | Path) -> BeatBundle:
        """Load a bundle folder: complete, of this task and format, unmodified, same features."""
        from medsight.signal.beat_features import FEATURE_NAMES, FEATURES_VERSION

        path = Path(path)
        metadata = read_bundle_metadata(path, FILES, TASK, BUNDLE_FORMAT)
        verify_checksums(path, metadata)
        same = list(metadata.get("feature_names", [])) == list(FEATURE_NAMES)
        if not same or metadata.get("features_version") != FEATURES_VERSION:
            raise BundleError(
                f"{path}: the bundle was trained on other beat features than this version of "
                "medsight computes; retrain it with `medsight ecg beats-train`."
            )
        return cls(metadata, path, read_model_card(path))

    def predict_rows(self, rows: np.ndarray, threads: int = 0) -> np.ndarray:
        """Class probabilities (n, K) of feature rows (``threads`` 0: LightGBM's default)."""
        from medsight.models.ecg_beats import predict_booster

        return predict_booster(self._model(), rows, len(self.classes), threads)

    def classify(self, x: ArrayLike, fs: float, rpeaks: ArrayLike | None = None) -> BeatPredictions:
        """Label the beats of one lead (mV): at ``rpeaks``, or at detected R peaks when None.

        Beats within about 0.3 s of either end get no label (their window does not fit).
        """
        from medsight.signal.beat_features import beat_features
        from medsight.signal.peaks import detect_rpeaks

        peaks = detect_rpeaks(x, fs) if rpeaks is None else np.asarray(rpeaks)
        features = beat_features(x, fs, peaks)
        probabilities = self.predict_rows(features.rows)
        labels = np.array(self.classes)[probabilities.argmax(axis=1)].astype("<U1")
        kept = np.asarray(peaks)[features.kept].astype(np.int64)
        return BeatPredictions(kept, labels, probabilities, tuple(self.classes), float(fs))

    def classify_record(
        self, record: Any, lead: str | int | None = None, *, use_annotations: bool = True
    ) -> BeatPredictions:
        """Label the beats of an :class:`~medsight.io.ecg.EcgRecord`.

        The lead is ``lead``, else the bundle's lead when the record has it, else the first.
        With ``use_annotations`` the record's beat annotations give the R peaks (as in
        evaluation); otherwise, or without annotations, R peaks are detected.
        """
        from medsight.signal.beats import beat_labels

        chosen = lead if lead is not None else self.metadata.get("lead")
        if chosen is None or (isinstance(chosen, str) and chosen not in record.lead_names):
            chosen = 0
        peaks = None
        if use_annotations and record.annotations is not None:
            _, mask = beat_labels(record.annotations.symbol)
            peaks = record.annotations.sample[mask]
        return self.classify(record.lead(chosen), record.fs, peaks)

    def _model(self) -> Any:
        import lightgbm

        if self._booster is None:
            if self.path is None:
                raise BundleError("this bundle has not been saved; save or load it first.")
            self._booster = lightgbm.Booster(model_file=str(self.path / "model.txt"))
        return self._booster
