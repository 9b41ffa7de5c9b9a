"""Occlusion maps: where masking the image lowers a model's probability for a class.

Model-agnostic (Zeiler and Fergus 2014): a window slides over the image, the pixels under it are
replaced by the image's mean, and each pixel gets the mean fall of the class probability over
the windows that cover it. Image ensembles use it for members that Grad-CAM cannot read: the
SVM member has no feature map, and near its support vectors its gradients saturate (a gradient
map of it, tried first, missed the deciding region on a test where occlusion finds it).
Captum's ``Occlusion`` does the sliding and the averaging.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

WINDOW_FRACTION = 0.25  # the window's side as a share of the image's shorter side


def occlusion_map(
    model: nn.Module,
    batch: torch.Tensor,
    targets: Sequence[int],
    *,
    window: int | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """``(N, H, W)`` float32: the fall of ``softmax(model(x))[target]`` when a ``window``-pixel
    square around each pixel is set to the image's mean (per channel), averaged over the windows
    that cover it; negative where masking raised it. ``batch`` is ``(N, C, H, W)`` as the model
    expects; the window moves by half its side (default side: a quarter of the shorter side)."""
    from captum.attr import Occlusion

    channels, height, width = batch.shape[1:]
    side = window or max(2, round(min(height, width) * WINDOW_FRACTION))
    stride = max(1, side // 2)
    explainer = Occlusion(lambda x: model(x).softmax(dim=-1))
    maps = []
    with torch.no_grad():
        for start in range(0, len(batch), batch_size):
            chunk = batch[start : start + batch_size]
            attribution = explainer.attribute(
                chunk,
                sliding_window_shapes=(channels, side, side),
                strides=(channels, stride, stride),
                baselines=chunk.mean(dim=(2, 3), keepdim=True),
                target=list(targets[start : start + batch_size]),
                perturbations_per_eval=16,
            )
            maps.append(attribution.sum(dim=1).cpu().numpy())
    return np.concatenate(maps).astype(np.float32)
