"""Torch network files of a bundle: ``weights.pt`` and a parity-checked ``model.onnx``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from medsight.errors import BundleError

PARITY_TOLERANCE = 1e-4
NETWORK_FILES = ("model.onnx", "weights.pt")


def write_network_files(
    model: nn.Module, folder: Path, input_shape: tuple[int, ...], parity_inputs: np.ndarray
) -> float:
    """Save the state dict and the ONNX graph into ``folder``; return their max |difference|.

    Raises :class:`BundleError` when ONNX Runtime's logits differ from torch's by more than
    :data:`PARITY_TOLERANCE` on ``parity_inputs`` (the caller's staged folder is then discarded).
    """
    from medsight.deploy.onnx import export_onnx, max_abs_difference

    model = model.eval().cpu()
    torch.save(model.state_dict(), folder / "weights.pt")
    export_onnx(model, folder / "model.onnx", input_shape=input_shape)
    difference = max_abs_difference(model, folder / "model.onnx", parity_inputs)
    if not difference <= PARITY_TOLERANCE:
        raise BundleError(
            f"ONNX export differs from torch by {difference:.2e} (> {PARITY_TOLERANCE}); "
            "nothing was written."
        )
    return float(difference)
