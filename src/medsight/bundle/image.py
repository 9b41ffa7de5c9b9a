"""Image model bundle: an ONNX graph for prediction plus the torch weights for Grad-CAM.

Layout::

    bundle.json    classes, input shape, model name and parameters, metrics, checksums, versions
    model.onnx     the deployed graph (standardisation + network), dynamic batch, for ONNX Runtime
    weights.pt     the torch state dict (tensors only, loaded with weights_only=True) for Grad-CAM
    model_card.md  generated model card

Prediction takes images in [0, 1] of the bundle's shape; :meth:`ImageBundle.prepare` resizes and
converts channels, and says when an input looks unlike the training images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import expit
from torch import nn

from medsight.bundle.checksum import (
    read_bundle_metadata,
    read_model_card,
    verify_checksums,
    write_bundle_metadata,
)
from medsight.bundle.network import NETWORK_FILES, write_network_files
from medsight.bundle.prediction import ClassPrediction, class_text
from medsight.errors import BundleError, DataError
from medsight.evaluate.thresholds import decide
from medsight.io.images import resize_image
from medsight.runs import staged_directory
from medsight.transforms.image import TTA_AXES

BUNDLE_FORMAT = 1
TASK = "image-classification"
FILES = ("bundle.json", *NETWORK_FILES)


ImagePrediction = ClassPrediction  # one image's result


@dataclass
class ImageBundle:
    """A trained image classifier with what is needed to run, explain and audit it."""

    metadata: dict[str, Any]
    path: Path | None = None
    model_card: str = ""
    _session: Any = field(default=None, repr=False)

    @property
    def class_names(self) -> list[str]:
        return list(self.metadata["class_names"])

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.metadata["input_shape"])  # type: ignore[return-value]

    @property
    def tta(self) -> list[str]:
        return list(self.metadata.get("tta", []))

    @property
    def multi_label(self) -> bool:
        """Whether each class is a separate finding (several may be present in one image)."""
        return bool(self.metadata.get("multi_label", False))

    @property
    def positive_index(self) -> int | None:
        """Index of the positive class of a binary bundle, else None."""
        positive = self.metadata.get("positive_class")
        names = self.class_names
        if self.multi_label or len(names) != 2 or positive not in names:
            return None
        return names.index(positive)

    @property
    def threshold(self) -> float | list[float] | None:
        """The operating threshold on the positive probability (binary bundles; bundles from
        before it was stored decided by the larger probability, i.e. 0.5), or on each finding's
        probability (multi-label bundles: one cut, or one per finding), else None."""
        if self.positive_index is None and not self.multi_label:
            return None
        stored = self.metadata.get("threshold")
        if isinstance(stored, list):
            return [float(value) for value in stored]
        return 0.5 if stored is None else float(stored)

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """Class indices of ``(N, K)`` probabilities at the bundle's operating point;
        multi-label: ``(N, K)`` 0/1, a finding present at probability >= the threshold."""
        return decide(
            probabilities, self.positive_index, self.threshold, multi_label=self.multi_label
        )

    def explained_class(self, probabilities: np.ndarray) -> np.ndarray:
        """The class each image's Grad-CAM is drawn for: the decided class, or for multi-label
        bundles the most probable finding."""
        if self.multi_label:
            return np.asarray(probabilities).argmax(axis=1)
        return self.decide(probabilities)

    # ------------------------------------------------------------------------------ writing

    @classmethod
    def save_model(
        cls,
        model: nn.Module,
        path: str | Path,
        metadata: dict[str, Any],
        *,
        model_card: str = "",
        parity_inputs: np.ndarray | None = None,
    ) -> ImageBundle:
        """Export ``model`` to ONNX, check parity with torch, and write the bundle atomically."""
        path = Path(path)
        shape = tuple(int(s) for s in metadata["input_shape"])
        check = parity_inputs
        if check is None:
            check = np.random.default_rng(0).random((4, *shape), dtype=np.float32)
        with staged_directory(path) as staging:
            difference = write_network_files(model, staging, shape, check[:16])
            full = write_bundle_metadata(
                staging,
                {**metadata, "onnx_max_abs_difference": difference},
                task=TASK,
                bundle_format=BUNDLE_FORMAT,
                checksummed=FILES[1:],
                model_card=model_card,
            )
        return cls(full, path, model_card)

    # ------------------------------------------------------------------------------ reading

    @classmethod
    def load(cls, path: str | Path) -> ImageBundle:
        """Load a bundle folder, checking it is complete, of a known format and unmodified."""
        path = Path(path)
        metadata = read_bundle_metadata(path, FILES, TASK, BUNDLE_FORMAT)
        verify_checksums(path, metadata)
        return cls(metadata, path, read_model_card(path))

    def _classifier(self) -> Any:
        from medsight.deploy.onnx import OnnxClassifier

        if self._session is None:
            if self.path is None:
                raise BundleError("this bundle has not been saved; save or load it first.")
            self._session = OnnxClassifier(self.path / "model.onnx", threads=2)
        return self._session

    def torch_model(self) -> nn.Module:
        """The network rebuilt from the registry with the bundle's weights (for Grad-CAM)."""
        from medsight.tasks.image import build_network

        if self.path is None:
            raise BundleError("this bundle has not been saved; save or load it first.")
        model = build_network(self.metadata["model"], self.metadata["normalisation"])
        state = torch.load(self.path / "weights.pt", map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model.eval()

    # ------------------------------------------------------------------------------ use

    def prepare(self, image: np.ndarray, source: str = "image") -> tuple[np.ndarray, list[str]]:
        """Fit a ``(C, H, W)`` image in [0, 1] to the bundle's input; warnings say what was odd."""
        channels, height, width = self.input_shape
        warnings: list[str] = []
        if image.ndim != 3:
            raise DataError(f"{source}: expected an image (C, H, W); got shape {image.shape}.")
        if image.shape[0] != channels:
            warnings.append(
                f"{image.shape[0]}-channel image converted to the model's {channels} channel(s)"
            )
            image = image.mean(axis=0, keepdims=True) if channels == 1 else np.repeat(image, 3, 0)
        if image.shape[1:] != (height, width):
            if max(height / image.shape[1], width / image.shape[2]) > 4:
                warnings.append(
                    f"small image ({image.shape[1]}x{image.shape[2]}) enlarged to {height}x{width}"
                )
            image = resize_image(image, height)
        warnings.extend(self._intensity_warnings(image))
        return image.astype(np.float32), warnings

    def _intensity_warnings(self, image: np.ndarray) -> list[str]:
        stats = self.metadata.get("training_intensity")
        if not stats:
            return []
        z = (float(image.mean()) - stats["mean_of_means"]) / max(stats["sd_of_means"], 1e-6)
        if abs(z) > 4:
            return [
                f"mean intensity {image.mean():.2f} is far from the training images' "
                f"({stats['mean_of_means']:.2f} ± {stats['sd_of_means']:.2f})"
            ]
        return []

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, K)`` for prepared images, averaged over the bundle's TTA
        (multi-label: each finding's own probability, a sigmoid of its logit)."""
        images = np.ascontiguousarray(images, dtype=np.float32)
        classifier = self._classifier()
        views = [images, *(_flip(images, name) for name in self.tta)]
        if self.multi_label:
            return np.mean([expit(classifier.logits(view)) for view in views], axis=0)
        return np.mean([classifier.predict_proba(view) for view in views], axis=0)

    def prediction(self, source: str, row: np.ndarray, warnings: list[str]) -> ImagePrediction:
        """One image's result: the decided class and its probability; multi-label: the findings
        called present (``|``-joined, ``none`` for none) and the highest finding probability."""
        probabilities = {name: float(p) for name, p in zip(self.class_names, row, strict=True)}
        decided = self.decide(row[None])[0]
        label = class_text(decided, self.class_names)
        probability = float(row.max() if self.multi_label else row[decided])
        return ImagePrediction(source, label, probability, probabilities, warnings)


def _flip(images: np.ndarray, name: str) -> np.ndarray:
    if name not in TTA_AXES:
        raise BundleError(f"unknown test-time augmentation '{name}' in bundle.json.")
    return np.ascontiguousarray(np.flip(images, axis=TTA_AXES[name]))
