"""Shared pieces of the model tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn


@pytest.fixture
def tiny_cnn() -> Callable[[int], nn.Module]:
    """A factory of small_cnn networks of width 4 for 1-channel, 2-class images, in eval mode,
    their initial weights drawn from ``torch.manual_seed(seed)``."""
    from medsight.tasks.image import build_network

    def build(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        spec = {"name": "small_cnn", "params": {"width": 4}, "in_channels": 1, "num_classes": 2}
        return build_network(spec, {"mean": [0.5], "std": [0.25]}).eval()

    return build
