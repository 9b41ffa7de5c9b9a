"""Integrated Gradients over ECG windows: completeness, the class explained, and the strip PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medsight.errors import DataError
from medsight.explain.ecg import integrated_gradients, save_attribution_png
from medsight.models.registry import create_model

FS = 150


def _window() -> np.ndarray:
    import neurokit2 as nk

    signal = nk.ecg_simulate(duration=10, sampling_rate=FS, heart_rate=70, random_state=1)
    return signal[None].astype(np.float32)


def test_attributions_add_up_to_the_score_difference() -> None:
    torch.manual_seed(0)
    model = create_model("ecg_resnet1d", num_classes=4, width=8).eval()
    window = _window()
    attribution, target, _ = integrated_gradients(model, window, steps=128)
    assert attribution.shape == window.shape
    with torch.no_grad():
        logits = model(torch.from_numpy(window)[None])
        baseline = model(torch.zeros(1, *window.shape))
    assert target == int(logits.argmax())
    difference = float(logits[0, target] - baseline[0, target])
    assert attribution.sum() == pytest.approx(difference, abs=0.05 * abs(difference) + 1e-3)
    other, explained, _ = integrated_gradients(model, window, target=(target + 1) % 4)
    assert explained == (target + 1) % 4 and not np.allclose(other, attribution)


def test_strip_png_is_written_and_bad_input_is_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("ecg_cnn_bilstm", num_classes=4, width=8).eval()
    path = save_attribution_png(
        model, _window(), FS, tmp_path / "strip.png", class_names=["N", "A", "O", "~"]
    )
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 500
    with pytest.raises(DataError, match="finite"):
        integrated_gradients(model, np.full((1, 300), np.nan, dtype=np.float32))
