"""Deep ensembles: members trained from different seeds, their class probabilities averaged.

Averaging a few independently trained networks is the simplest reliable way to lower the
variance that small medical data sets give a single network (Lakshminarayanan et al. 2017).
The ensemble is one ``nn.Module``, so the training task, ONNX export and the bundle treat it like
any network; Grad-CAM averages its members' maps.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np
import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


class FeatureHeadMember(nn.Module):
    """A member that is a fixed feature transform followed by a fitted head.

    Members whose :meth:`feature_key` is equal compute the same features from the same input
    (the SVM and the trees both start from the same wavelet scattering, about 95% of their
    cost), so :class:`ProbabilityAverage` computes them once per call and hands them to each
    head; the ONNX graph then holds the transform once. Alone, a member runs both parts.
    """

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` input -> ``(N, features)``."""
        raise NotImplementedError

    def head(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, features)`` -> ``(N, classes)`` logits."""
        raise NotImplementedError

    def feature_key(self) -> Hashable:
        """Equal for members whose :meth:`features` give the same output for the same input."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ProbabilityAverage(nn.Module):
    """Mean of the members' softmax probabilities, returned as log-probabilities.

    ``softmax(log p) == p``, so code that treats the output as logits (cross-entropy, softmax,
    argmax, ONNX ``predict_proba``) gets the averaged probabilities unchanged. With
    ``multi_label`` each output is a separate finding: the members' sigmoid probabilities are
    averaged per output and returned as log-odds (``sigmoid(logit p) == p``).
    """

    def __init__(
        self,
        members: Sequence[nn.Module],
        *,
        multi_label: bool = False,
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        shares = [1.0 / len(members)] * len(members) if weights is None else list(weights)
        if len(shares) != len(members) or min(shares) < 0 or abs(sum(shares) - 1.0) > 1e-6:
            raise ValueError(f"member weights must be {len(members)} shares summing to 1")
        if multi_label and weights is not None:
            raise ValueError("weighted members are for one label per image")
        self.members = nn.ModuleList(members)
        self.multi_label = multi_label
        # not in the state dict: the bundle's spec stores the shares (older bundles: equal)
        self.register_buffer("weights", torch.tensor(shares, dtype=torch.float64), persistent=False)

    @property
    def shares(self) -> list[float]:
        """Each member's share of the averaged probability."""
        return [float(share) for share in self.weights]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.member_outputs(x)
        if self.multi_label:
            mean = torch.stack([output.sigmoid() for output in outputs]).mean(dim=0)
            mean = mean.clamp(1e-7, 1.0 - 1e-7)
            return mean.log() - (-mean).log1p()
        probabilities = torch.stack([output.softmax(dim=-1) for output in outputs])
        mean = (probabilities * self.weights.to(probabilities.dtype)[:, None, None]).sum(dim=0)
        return mean.clamp_min(1e-12).log()

    def member_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each member's logits for ``x``; features that members share are computed once."""
        shared: dict[Hashable, torch.Tensor] = {}
        outputs = []
        for member in self.members:
            if not isinstance(member, FeatureHeadMember):
                outputs.append(member(x))
                continue
            key = member.feature_key()
            if key not in shared:
                shared[key] = member.features(x)
            outputs.append(member.head(shared[key]))
        return outputs


def member_of_type(model: nn.Module, kind: type[M]) -> M | None:
    """The first member of ``model`` (an ensemble, or the model itself) that is a ``kind``."""
    members = model.members if isinstance(model, ProbabilityAverage) else [model]
    return next((member for member in members if isinstance(member, kind)), None)


def _image_losses(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each labelled image's log-loss under ``(N, classes)`` probabilities."""
    return -np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None))


def share_by_val_loss(
    labels: np.ndarray,
    networks: np.ndarray,
    member: np.ndarray,
    grid: Sequence[float],
) -> tuple[float, dict[float, float]]:
    """The ``member``'s share of the averaged probability, from ``grid``, with the lowest
    log-loss on labelled (val) images, and every share's loss. ``networks`` and ``member`` are
    ``(N, classes)`` probabilities; ties go to the smaller share."""
    losses = {}
    for share in sorted(grid):
        mixed = (1.0 - share) * networks + share * member
        losses[float(share)] = float(_image_losses(mixed, labels).mean())
    lowest = min(losses.values())
    best = min(share for share, loss in losses.items() if loss <= lowest + 1e-12)
    return best, losses


def val_loss_rise(
    labels: np.ndarray, current: np.ndarray, member: np.ndarray, share: float
) -> tuple[float, float]:
    """How far mixing ``member`` in at ``share`` raises the log-loss on labelled (val) images:
    the mean of the paired per-image rises and its standard error (inf with one image)."""
    mixed = (1.0 - share) * current + share * member
    rise = _image_losses(mixed, labels) - _image_losses(current, labels)
    error = rise.std(ddof=1) / np.sqrt(len(rise)) if len(rise) > 1 else np.inf
    return float(rise.mean()), float(error)


def member_seed(seed: int, member: int) -> int:
    """The seed of ensemble ``member`` for a run seeded ``seed`` (member 0 keeps ``seed``)."""
    return seed + 1000 * member
