"""The imaging benchmark's speed comparison: the plain reference loops and the reported ratios."""

from __future__ import annotations

import pytest
import torch

from medsight.models.registry import create_model
from medsight.transforms.image import ImageTensorDataset
from shared_helpers import benchmark_script


@pytest.mark.parametrize("channels_last", [False, True])
def test_plain_loop_trains_the_model_in_the_asked_memory_format(channels_last: bool) -> None:
    imaging = benchmark_script("imaging")
    torch.manual_seed(0)
    model = create_model("small_cnn", in_channels=1, num_classes=2, width=8)
    before = [p.detach().clone() for p in model.parameters()]
    images = torch.rand(32, 1, 28, 28).numpy()
    labels = torch.randint(0, 2, (32,)).numpy()
    speed = imaging.plain_loop(
        model,
        ImageTensorDataset(images, labels),
        epochs=1,
        batch_size=16,
        lr=1e-2,
        channels_last=channels_last,
    )
    assert speed > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # a convolution with several input channels: there the two memory formats differ
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1)
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert conv.weight.is_contiguous() != channels_last


def test_speed_only_reports_the_engine_against_both_plain_loops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    imaging = benchmark_script("imaging")
    monkeypatch.setattr(imaging, "SPEED_EPOCHS", 1)
    monkeypatch.setattr(imaging, "SPEED_ROUNDS", 1)
    result = imaging.speed_only("phantom", None)
    engine = result["engine_images_per_second"]
    assert result["benchmark"] == "imaging-speed"
    assert result["engine_vs_plain_speed"] == pytest.approx(
        engine / result["plain_images_per_second"]
    )
    assert result["engine_vs_plain_channels_last_speed"] == pytest.approx(
        engine / result["plain_channels_last_images_per_second"]
    )
    assert result["engine_channels_last"] is True
