"""The imaging part of ``medsight demo``: BreastMNIST when present, else a generated phantom set.

BreastMNIST (breast ultrasound, 28x28) is used when it is in the cache or in ../shared/data; without
it and without a network the demo generates lesion-like phantoms, and says which one it used. Three
test images are written out as PNG files and predicted from disk through the bundle (ONNX Runtime),
with Grad-CAM overlays, as a clinician's tool would.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from rich.console import Console

from medsight.config import EngineSettings, ImageDataConfig, ImageModelConfig, ImageTrainConfig
from medsight.errors import DataError
from medsight.io.images import channels_last
from medsight.io.medmnist import locate_medmnist

if TYPE_CHECKING:
    from medsight.tasks.image import ImageRunResult

EXAMPLES = 3
DEMO_ENSEMBLE = 1  # one network: the demo shows the workflow in minutes, not the best model


def demo_data_source() -> tuple[str, str]:
    """``(data spec, description)``: BreastMNIST if available offline, else the phantom set."""
    try:
        path = locate_medmnist("breastmnist", download=False)
    except DataError:
        return "phantom", "generated phantom images (BreastMNIST not found offline)"
    return str(path), f"BreastMNIST breast ultrasound ({path})"


def run_image_demo(console: Console, output: Path, *, epochs: int | None = None) -> ImageRunResult:
    """Train, test, bundle and report an image model, then predict three PNG files.

    Returns the run (``bundle_path``, ``report_path``, ...) for the service part of the demo.
    """
    from medsight.cli.render import print_image_predictions, print_image_run
    from medsight.cli.runner import run_image_with_progress
    from medsight.tasks.image_predict import predict_images

    data, description = demo_data_source()
    console.rule("[bold]medsight demo: image diagnosis")
    console.print(f"Data: {description}")
    engine = EngineSettings() if epochs is None else EngineSettings(epochs=epochs)
    config = ImageTrainConfig(
        name="image-demo",
        data=ImageDataConfig(path=data),
        engine=engine,
        model=ImageModelConfig(ensemble=DEMO_ENSEMBLE),
        output_dir=Path(output),
    )
    console.print(
        f"Training {DEMO_ENSEMBLE} network to keep the demo short; the default averages "
        f"{ImageModelConfig().ensemble} (`medsight train --data ... --ensemble N`)."
    )
    result = run_image_with_progress(console, config)
    print_image_run(console, result)

    console.rule("[bold]New images")
    files, truth = _write_examples(result.splits.test, Path(output) / "demo-data" / "images")
    predictions = predict_images(
        result.bundle_path, files, gradcam_dir=result.run_dir / "predictions"
    )
    print_image_predictions(console, predictions)
    console.print(
        ", ".join(
            f"{Path(p['source']).name}: predicted {p['prediction']}, actual {actual}"
            for p, actual in zip(predictions, truth, strict=True)
        )
    )
    console.print(
        f"\nOpen the report: [bold]{result.report_path.resolve()}[/bold]\n"
        f"Predict your own images: medsight predict {result.bundle_path} IMAGE.png "
        f"--gradcam-dir overlays/"
    )
    return result


def _write_examples(test, folder: Path) -> tuple[list[Path], list[str]]:
    """Save one test image per class (then any) as 8-bit PNGs, with their reference labels."""
    folder.mkdir(parents=True, exist_ok=True)
    chosen = [int(np.flatnonzero(test.labels == k)[0]) for k in np.unique(test.labels)][:EXAMPLES]
    chosen += [i for i in range(len(test)) if i not in chosen][: EXAMPLES - len(chosen)]
    files, truth = [], []
    for index in chosen:
        pixels = channels_last(test.images[index]) * 255.0
        path = folder / f"case-{index:04d}.png"
        Image.fromarray(np.round(pixels).astype(np.uint8)).save(path)
        files.append(path)
        truth.append(test.class_names[test.labels[index]])
    return files, truth
