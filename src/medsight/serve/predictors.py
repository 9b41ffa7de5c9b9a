"""Production models, loaded once per (task, version) and wrapped in one adapter per bundle kind.

The adapter is chosen by the kind recorded in the registered copy's ``bundle.json``
(``tabular-classification``, ``image-classification``, ``ecg-rhythm``), never by the task name a
site filed it under. Each adapter turns its input into :class:`Outcome`: label, probability,
threshold, class probabilities, input-quality warnings and, when asked, the explanation.

Thread safety: the service calls adapters from a thread pool. Loading is serialised by the
cache's lock; prediction through ONNX Runtime runs concurrently; a tabular adapter runs plain
predictions one at a time (pure-Python work under the GIL; see ``predict_rows``); explanations
that hook into a torch network (Grad-CAM, Integrated Gradients) take the adapter's own lock.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from medsight.errors import BundleError
from medsight.io.ecg import EcgRecord

TABULAR: Final = "tabular-classification"
IMAGE: Final = "image-classification"
ECG: Final = "ecg-rhythm"
KINDS: Final = (TABULAR, IMAGE, ECG)
ECG_SEGMENT_SECONDS: Final = 0.25


@dataclass(frozen=True)
class Served:
    """The registered version being served (copied out of its database row)."""

    task: str
    version: int
    version_id: int
    name: str
    folder: Path
    bundle_sha256: str


@dataclass
class Outcome:
    """One case's answer from an adapter, plus the input bytes it was computed from."""

    label: str
    probability: float | None
    threshold: float | None
    positive_class: str | None
    probabilities: dict[str, float]
    classes: list[str]
    warnings: list[str]
    input_bytes: bytes
    input_type: str
    explanation: dict[str, Any] | None = None
    # multi-label models: the cut each finding's probability is compared with
    finding_thresholds: dict[str, float] | None = None

    def stored_output(self, kind: str) -> dict[str, Any]:
        """What the prediction row keeps: no input values, names or explanation images."""
        return {
            "kind": kind,
            "classes": self.classes,
            "probabilities": self.probabilities,
            "threshold": self.threshold,
            "finding_thresholds": self.finding_thresholds,
            # several findings may be present: feedback names a set of them (``a|b``, ``none``)
            "multi_label": self.finding_thresholds is not None,
            "positive_class": self.positive_class,
            "warnings": self.warnings,
            "explained": self.explanation is not None,
        }


def _finite(value: float) -> float | None:
    return round(float(value), 6) if math.isfinite(value) else None


# ------------------------------------------------------------------------------ tabular


class TabularPredictor:
    """A :class:`~medsight.bundle.tabular.TabularBundle`: rows checked against its schema."""

    kind = TABULAR

    def __init__(self, folder: Path) -> None:
        from medsight.bundle.forests import sequential_forests
        from medsight.bundle.tabular import TabularBundle

        self.bundle = TabularBundle.load(folder)
        self.classes = [str(c) for c in self.bundle.schema.classes]
        self.features = frozenset(self.bundle.schema.feature_columns)
        self._lock = threading.Lock()
        sequential_forests(self.bundle.model)  # same probabilities, without joblib per tree
        # compile the one-row path (packs the forests too); with it a row takes ~1 ms of CPU
        self.quick = self.bundle.row_model is not None
        self.bundle.row_validator  # noqa: B018 (compile the schema checks before requests)

    def predict_rows(
        self, rows: list[dict[str, Any]], *, explain: bool, top_k: int
    ) -> list[Outcome]:
        """Validate every row (a :class:`SchemaError` names the row and column), then predict.

        One row (every ``/v1/predict`` request) takes the bundle's pandas-free check,
        :meth:`~medsight.bundle.tabular.TabularBundle.predict_row`; a batch the DataFrame path.
        """
        import pandas as pd

        features = self.features
        # plain predictions one at a time: the work holds the GIL anyway, and threads taking
        # turns through a lock waste less than threads fighting for the GIL (measured: a lower
        # p99 under 8 clients); explanations (seconds of SHAP) stay outside it
        serial = self._lock if not explain else contextlib.nullcontext()
        with serial:
            if len(rows) == 1:
                results = [self.bundle.predict_row(rows[0], explain=explain, top_k=top_k)]
            else:
                frame = pd.DataFrame.from_records(rows)
                results = self.bundle.predict(frame, explain=explain, top_k=top_k, where="rows")
        positive, negative = self.bundle.positive_class, self.bundle.negative_class
        outcomes = []
        for row, result in zip(rows, results, strict=True):
            p = float(result["probability"])
            warnings = [f"empty, imputed by the model: {name}" for name in result["imputed"]]
            ignored = sorted(set(row) - features)
            if ignored:
                warnings.append(f"columns not used by the model, ignored: {', '.join(ignored)}")
            explanation = None
            if "contributions" in result:
                explanation = {
                    "kind": "shap",
                    "top_features": result["contributions"],
                    "base_probability": result["base_probability"],
                }
            outcomes.append(
                Outcome(
                    label=str(result["prediction"]),
                    probability=p,
                    threshold=float(result["threshold"]),
                    positive_class=positive,
                    probabilities={negative: round(1.0 - p, 6), positive: round(p, 6)},
                    classes=self.classes,
                    warnings=warnings,
                    input_bytes=canonical_row(row),
                    input_type="application/json; tabular row",
                    explanation=explanation,
                )
            )
        return outcomes


def canonical_row(row: dict[str, Any]) -> bytes:
    """A row as compact JSON with sorted keys: the bytes fingerprinted (and stored if allowed)."""
    return json.dumps(row, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


# ------------------------------------------------------------------------------ image


def _finding_thresholds(bundle: Any) -> dict[str, float] | None:
    """A multi-label image bundle's cut per finding (rounded as answers are), else None."""
    if not bundle.multi_label:
        return None
    from medsight.evaluate.thresholds import finding_thresholds

    cuts = finding_thresholds(bundle.threshold, len(bundle.class_names))
    return {c: round(float(t), 6) for c, t in zip(bundle.class_names, cuts, strict=True)}


class ImagePredictor:
    """An :class:`~medsight.bundle.image.ImageBundle` (ONNX), Grad-CAM from its torch weights."""

    kind = IMAGE

    def __init__(self, folder: Path) -> None:
        from medsight.bundle.image import ImageBundle

        self.bundle = ImageBundle.load(folder)
        self.classes = self.bundle.class_names
        self.finding_thresholds = _finding_thresholds(self.bundle)
        self._torch: Any = None
        self._lock = threading.Lock()
        self.bundle.predict_proba(np.zeros((1, *self.bundle.input_shape), np.float32))  # warm up

    def predict_image(
        self, image: np.ndarray, data: bytes, media_type: str, *, explain: bool
    ) -> Outcome:
        prepared, warnings = self.bundle.prepare(image, "upload")
        row = self.bundle.predict_proba(prepared[None])[0]
        result = self.bundle.prediction("upload", row, warnings)
        decided = int(self.bundle.explained_class(row[None])[0])
        positive = self.bundle.positive_index
        probability = result.probability if positive is None else float(row[positive])
        threshold = self.bundle.threshold
        outcome = Outcome(
            label=result.label,
            probability=round(probability, 6),
            threshold=threshold if isinstance(threshold, float) else None,
            finding_thresholds=self.finding_thresholds,
            positive_class=None if positive is None else self.classes[positive],
            probabilities={c: round(float(p), 6) for c, p in zip(self.classes, row, strict=True)},
            classes=self.classes,
            warnings=warnings,
            input_bytes=data,
            input_type=media_type,
        )
        if explain:
            outcome.explanation = self._gradcam(prepared, decided, float(row[decided]))
        return outcome

    def _gradcam(self, image: np.ndarray, target: int, probability: float) -> dict[str, Any]:
        from medsight.explain.gradcam import gradcam, gradcam_figure_base64, map_method
        from medsight.io.images import channels_last

        with self._lock:  # Grad-CAM hooks into the shared network: one call at a time
            if self._torch is None:
                self._torch = self.bundle.torch_model()
            heatmap = gradcam(self._torch, image[None], target_class=[target])[0]
        title = f"{self.classes[target]} p={probability:.2f}"
        png = gradcam_figure_base64(
            channels_last(image), heatmap, title=title, method=map_method(self._torch)
        )
        return {"kind": "gradcam", "image_png_base64": png}


# ------------------------------------------------------------------------------ ECG


class EcgPredictor:
    """An :class:`~medsight.bundle.ecg.EcgBundle`: quality check, rhythm, attribution."""

    kind = ECG

    def __init__(self, folder: Path) -> None:
        from medsight.bundle.ecg import EcgBundle

        self.bundle = EcgBundle.load(folder)
        self.classes = self.bundle.class_names
        self._torch: Any = None
        self._lock = threading.Lock()
        if self.bundle.is_network:  # warm up ONNX Runtime before requests share it
            length, _ = self.bundle.window
            self.bundle.predict_signals([np.zeros((1, length), np.float32)])

    def predict_record(
        self, record: EcgRecord, data: bytes, input_type: str, *, explain: bool
    ) -> Outcome:
        from medsight.bundle.ecg import UNREADABLE

        result = self.bundle.predict_record(record)
        readable = result.label != UNREADABLE
        outcome = Outcome(
            label=result.label,
            probability=_finite(result.probability) if readable else None,
            threshold=None,
            positive_class=None,
            probabilities={k: round(v, 6) for k, v in result.probabilities.items()},
            classes=self.classes,
            warnings=list(result.warnings),
            input_bytes=data,
            input_type=input_type,
        )
        if explain and readable:
            if self.bundle.is_network:
                outcome.explanation = self._attribution(record, self.classes.index(result.label))
            else:
                outcome.warnings.append("no per-sample attribution for a feature (LightGBM) model")
        return outcome

    def _attribution(self, record: EcgRecord, target: int) -> dict[str, Any]:
        from medsight.evaluate.plots import figure_to_png_base64
        from medsight.explain.ecg import attribution_strip, integrated_gradients
        from medsight.tasks.ecg_run_report import strongest_window
        from medsight.transforms.ecg import fit_length

        fs = self.bundle.fs
        length, hop = self.bundle.window
        signal = self.bundle.signal_of(record)
        if signal.shape[1] < length:
            signal = fit_length(signal, length)
        with self._lock:  # Captum hooks into the shared network: one call at a time
            if self._torch is None:
                self._torch = self.bundle.torch_model()
            window, start = strongest_window(self._torch, signal, target, (length, hop))
            attribution, _, _ = integrated_gradients(self._torch, window, target)
        evidence = np.clip(attribution[0], 0, None)
        step = max(round(fs * ECG_SEGMENT_SECONDS), 1)
        segments = np.add.reduceat(evidence, np.arange(0, evidence.size, step))
        peak = float(segments.max()) if segments.size else 0.0
        segments = segments / peak if peak > 0 else segments
        figure = attribution_strip(
            window, attribution, fs, title=f"Evidence for '{self.classes[target]}'"
        )
        return {
            "kind": "ecg_attribution",
            "attribution": [round(float(v), 4) for v in segments],
            "segment_seconds": step / fs,
            "window_start_seconds": start / fs,
            "image_png_base64": figure_to_png_base64(figure),
        }


# ------------------------------------------------------------------------------ cache

Predictor = TabularPredictor | ImagePredictor | EcgPredictor
_ADAPTERS: Final[dict[str, Callable[[Path], Predictor]]] = {
    TABULAR: TabularPredictor,
    IMAGE: ImagePredictor,
    ECG: EcgPredictor,
}


def bundle_kind(folder: Path) -> str:
    """The kind recorded in a bundle's ``bundle.json`` (its ``task`` field)."""
    try:
        return str(json.loads((folder / "bundle.json").read_text()).get("task", ""))
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"{folder}/bundle.json cannot be read ({exc}).") from exc


@dataclass
class PredictorCache:
    """Loaded adapters by (task, version, bundle digest); the oldest load is dropped first.

    ``verify`` checks a registered copy against its manifest before it is loaded (the registry's
    :meth:`~medsight.registry.ModelRegistry.verify`); it runs once per version, not per request.
    """

    size: int = 8
    _items: OrderedDict[tuple[str, int, str], Predictor] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, served: Served, verify: Callable[[], Path]) -> Predictor:
        key = (served.task, served.version, served.bundle_sha256)
        found = self._items.get(key)
        if found is not None:
            return found
        with self._lock:  # one load at a time; a second request for the same model waits
            found = self._items.get(key)
            if found is None:
                found = load_predictor(verify())
                self._items[key] = found
                while len(self._items) > self.size:
                    self._items.popitem(last=False)
            return found

    def __len__(self) -> int:
        return len(self._items)


def load_predictor(folder: Path) -> Predictor:
    """The adapter for the bundle in ``folder``, by the kind its ``bundle.json`` records."""
    kind = bundle_kind(folder)
    if kind not in _ADAPTERS:
        raise BundleError(
            f"{folder}: bundle kind {kind!r} cannot be served; served kinds: {', '.join(KINDS)}."
        )
    return _ADAPTERS[kind](folder)
