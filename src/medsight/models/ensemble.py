"""Deep ensembles: members trained from different seeds, their class probabilities averaged.

Averaging a few independently trained networks is the simplest reliable way to lower the
variance that small medical data sets give a single network (Lakshminarayanan et al. 2017).
The ensemble is one ``nn.Module``, so the training task, ONNX export and the bundle treat it like
any network; Grad-CAM averages its members' maps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class ProbabilityAverage(nn.Module):
    """Mean of the members' softmax probabilities, returned as log-probabilities.

    ``softmax(log p) == p``, so code that treats the output as logits (cross-entropy, softmax,
    argmax, ONNX ``predict_proba``) gets the averaged probabilities unchanged. With
    ``multi_label`` each output is a separate finding: the members' sigmoid probabilities are
    averaged per output and returned as log-odds (``sigmoid(logit p) == p``).
    """

    def __init__(self, members: Sequence[nn.Module], *, multi_label: bool = False) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.multi_label = multi_label

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            mean = torch.stack([member(x).sigmoid() for member in self.members]).mean(dim=0)
            mean = mean.clamp(1e-7, 1.0 - 1e-7)
            return mean.log() - (-mean).log1p()
        probabilities = torch.stack([member(x).softmax(dim=-1) for member in self.members])
        return probabilities.mean(dim=0).clamp_min(1e-12).log()


def member_seed(seed: int, member: int) -> int:
    """The seed of ensemble ``member`` for a run seeded ``seed`` (member 0 keeps ``seed``)."""
    return seed + 1000 * member
