"""Predict image files with an image bundle, optionally writing Grad-CAM overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medsight.bundle.image import ImageBundle
from medsight.errors import DataError
from medsight.io.images import read_image_file
from medsight.tasks.external import bundle_path


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; folders replaced by the image files inside them (sorted)."""
    from medsight.io.images import is_image_name

    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.rglob("*") if p.is_file() and is_image_name(p))
            if not found:
                raise DataError(f"{item}: folder holds no image files.")
            files.extend(found)
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(f"{item}: no such file or folder.")
    return files


def predict_images(
    bundle: Path, inputs: list[Path], *, gradcam_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Per image: prediction, probability, class probabilities, warnings and Grad-CAM."""
    loaded = ImageBundle.load(bundle_path(bundle))
    files = expand_inputs(inputs)
    prepared = [loaded.prepare(read_image_file(path), str(path)) for path in files]
    images = np.stack([image for image, _ in prepared])
    probabilities = loaded.predict_proba(images)
    results = []
    for path, row, (_, warnings) in zip(files, probabilities, prepared, strict=True):
        results.append(loaded.prediction(str(path), row, warnings).to_dict())
    if gradcam_dir is not None:
        for result, path in zip(
            results, _gradcams(loaded, images, probabilities, files, gradcam_dir), strict=True
        ):
            result["gradcam"] = str(path)
    return results


def _gradcams(
    bundle: ImageBundle,
    images: np.ndarray,
    probabilities: np.ndarray,
    files: list[Path],
    folder: Path,
) -> list[Path]:
    from medsight.explain.gradcam import save_gradcam_pngs

    predicted = bundle.explained_class(probabilities)
    titles = [
        f"{bundle.class_names[k]} p={probabilities[i, k]:.2f}" for i, k in enumerate(predicted)
    ]
    paths = [folder / f"{file.stem}-gradcam.png" for file in files]
    return save_gradcam_pngs(bundle.torch_model(), images, predicted, paths, titles)
