"""Synthetic bundle folders for tests of the registry and of code that serves registered models.

The files are placeholders (the registry never loads a model); ``bundle.json`` records their
SHA-256 the way real bundles do, so checksum verification behaves as with a trained bundle.
"""

from __future__ import annotations

import json
from pathlib import Path

from medsight.bundle.checksum import sha256_file, write_bundle_metadata


def write_test_bundle(
    folder: str | Path,
    *,
    task: str = "image-classification",
    name: str = "test-model",
    content: bytes = b"weights",
    tabular_layout: bool = False,
) -> Path:
    """Write a small bundle at ``folder`` and return it.

    The default layout records ``sha256`` for ``model.onnx`` and ``weights.pt`` (image and ECG
    bundles); ``tabular_layout`` records ``model_sha256`` for ``model.joblib`` instead.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=False)
    (folder / "model_card.md").write_text(f"# {name}\n")
    if tabular_layout:
        (folder / "model.joblib").write_bytes(content)
        (folder / "schema.yaml").write_text("target: y\n")
        metadata = {
            "format": 1,
            "task": task,
            "name": name,
            "model_sha256": sha256_file(folder / "model.joblib"),
        }
        (folder / "bundle.json").write_text(json.dumps(metadata, indent=2))
        return folder
    (folder / "model.onnx").write_bytes(content)
    (folder / "weights.pt").write_bytes(content[::-1] + b"-weights")
    write_bundle_metadata(
        folder,
        {"name": name, "classes": ["benign", "malignant"]},
        task=task,
        bundle_format=1,
        checksummed=("model.onnx", "weights.pt"),
    )
    return folder
