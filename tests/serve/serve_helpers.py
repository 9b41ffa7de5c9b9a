"""Helpers for the service tests: the test password and inputs (a PNG, an ECG signal).

A plain module so test files can import it by name (see tests/shared_helpers.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

PASSWORD = "correct horse battery staple"


def png_bytes(value: float = 0.4, size: int = 28, mode: str = "L") -> bytes:
    """A small PNG: a bright square on a grey background (``mode`` L or RGB)."""
    import io

    from PIL import Image

    pixels = np.full((size, size), value * 255, dtype=np.uint8)
    pixels[size // 4 : size // 2, size // 4 : size // 2] = 230
    image = Image.fromarray(pixels, "L").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def ecg_signal(fs: int = 300, seconds: int = 12, rate_bpm: int = 70) -> np.ndarray:
    """A synthetic single-lead ECG in mV (NeuroKit2's simulator, fixed seed)."""
    import neurokit2 as nk

    signal = nk.ecg_simulate(
        duration=seconds, sampling_rate=fs, heart_rate=rate_bpm, random_state=1, method="simple"
    )
    return np.asarray(signal, dtype=np.float32)


def write_untrained_image_bundle(path: Path, class_names: list[str], **metadata: Any) -> Path:
    """A tiny untrained ``small_cnn`` image bundle for 28x28 grey images at ``path``; extra
    ``metadata`` (``positive_class``, ``multi_label``, ``threshold``) goes into bundle.json."""
    import torch

    from medsight.bundle.image import ImageBundle
    from medsight.tasks.image import build_network

    torch.manual_seed(0)
    spec: dict[str, Any] = {
        "name": "small_cnn",
        "in_channels": 1,
        "num_classes": len(class_names),
        "params": {"width": 4},
    }
    if metadata.get("multi_label"):
        spec["multi_label"] = True
    normalisation = {"mean": [0.5], "std": [0.25]}
    full = {
        "name": "tiny-cnn",
        "class_names": class_names,
        "input_shape": [1, 28, 28],
        "model": spec,
        "normalisation": normalisation,
        "tta": [],
        "training_intensity": {"mean_of_means": 0.4, "sd_of_means": 0.05},
        **metadata,
    }
    ImageBundle.save_model(build_network(spec, normalisation), path, full)
    return path
