"""Shared scattering benchmark: the image ensemble's SVM and tree members on one scattering pass.

Run from the project root in .venv::

    python benchmarks/scattering_members.py --data ../shared/data/breastmnist/breastmnist.npz
    python benchmarks/scattering_members.py --data phantom

Both members start from the same wavelet scattering coefficients (about 95% of their cost), so
``ProbabilityAverage`` computes them once per call and the explanation maps both members with one
occlusion pass of their mixed probability. The baseline, in the same run, is what medsight did
before session 19: each member computes its own scattering (eager and in the ONNX graph), and
each member gets its own occlusion map. Timings are single images, 2 threads; p50 and p95 over
``--calls`` calls (forward) or ``--map-calls`` calls (maps).
Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medsight.config import ImageDataConfig
from medsight.deploy.onnx import OnnxClassifier, export_onnx, latency_ms
from medsight.explain.gradcam import gradcam
from medsight.models.ensemble import ProbabilityAverage
from medsight.models.pixel_svm import fit_pixel_svm
from medsight.models.tree_member import fit_scattering_trees
from medsight.tasks.image_data import load_image_splits

SHARES = (0.6, 0.4)  # the SVM's and the trees' shares of their mixed probability


class WholeMember(nn.Module):
    """A member run as one opaque module, so an ensemble cannot share its features: in a
    :class:`ProbabilityAverage` of these, each member computes its own scattering (the baseline,
    what medsight did before session 19)."""

    def __init__(self, member: nn.Module) -> None:
        super().__init__()
        self.member = member

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.member(x)


def separate_members(ensemble: ProbabilityAverage) -> ProbabilityAverage:
    """The same members and shares, each computing its own features."""
    members = [WholeMember(member) for member in ensemble.members]
    return ProbabilityAverage(members, weights=ensemble.shares).eval()


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fit_members(data: str) -> tuple[ProbabilityAverage, torch.Tensor]:
    """The SVM and the trees fitted on the train split; one test image to time."""
    splits = load_image_splits(ImageDataConfig(path=data))
    images, labels = splits.train.images, splits.train.labels
    n_classes = len(splits.class_names)

    def flip(batch: torch.Tensor) -> torch.Tensor:
        return torch.flip(batch, dims=(3,))

    say(f"fitting the SVM and the trees on {len(images)} training images")
    svm = fit_pixel_svm(images, labels, n_classes, views=[flip], scattering=(3, 8))
    trees = fit_scattering_trees(images, labels, n_classes, views=[flip])
    ensemble = ProbabilityAverage([svm, trees], weights=SHARES).eval()
    return ensemble, torch.from_numpy(splits.test.images[:1])


def separate_maps(ensemble: ProbabilityAverage, image: torch.Tensor) -> np.ndarray:
    """The baseline explanation: each member's own occlusion map, weighted by its share."""
    maps = sum(
        share * gradcam(member, image)
        for member, share in zip(ensemble.members, ensemble.shares, strict=True)
    )
    return maps / max(float(np.max(maps)), 1e-12)


def run(data: str, calls: int, map_calls: int) -> dict[str, Any]:
    torch.set_num_threads(2)
    ensemble, image = fit_members(data)
    baseline = separate_members(ensemble)
    with torch.no_grad():
        gap = (ensemble(image) - baseline(image)).abs().max().item()
    result: dict[str, Any] = {"benchmark": "scattering-members", "data": data, "max_abs_diff": gap}
    with tempfile.TemporaryDirectory() as folder:
        for name, model in (("shared", ensemble), ("separate", baseline)):
            say(f"timing the {name} forward")
            path = export_onnx(model, Path(folder) / f"{name}.onnx", input_shape=image.shape[1:])
            session = OnnxClassifier(path, threads=2)
            with torch.no_grad():
                result[name] = {
                    "onnx_ms": latency_ms(session.logits, image.numpy(), calls=calls),
                    "torch_ms": latency_ms(model, image, calls=calls),
                }
    say("timing the explanation maps")
    result["shared"]["map_ms"] = latency_ms(
        lambda x: gradcam(ensemble, x), image, calls=map_calls, warmup=2
    )
    result["separate"]["map_ms"] = latency_ms(
        lambda x: separate_maps(ensemble, x), image, calls=map_calls, warmup=2
    )
    result["onnx_p50_speedup"] = round(
        result["separate"]["onnx_ms"]["p50"] / result["shared"]["onnx_ms"]["p50"], 2
    )
    result["map_p50_speedup"] = round(
        result["separate"]["map_ms"]["p50"] / result["shared"]["map_ms"]["p50"], 2
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="phantom", help="a MedMNIST-style .npz, or phantom")
    parser.add_argument("--calls", type=int, default=1000, help="forward calls to time")
    parser.add_argument("--map-calls", type=int, default=50, help="explanation maps to time")
    args = parser.parse_args()
    print(json.dumps(run(args.data, args.calls, args.map_calls)))


if __name__ == "__main__":
    main()
