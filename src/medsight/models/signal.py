"""ECG classifiers in the registry: a 1D ResNet and a CNN + BiLSTM.

Every factory takes ``in_channels`` (leads) and ``num_classes`` and returns an ``nn.Module``
mapping ``(N, leads, samples)`` signals in millivolts to logits ``(N, num_classes)``. Each record
is standardised inside the model (per lead, over time), so a bundle takes raw millivolts and its
ONNX graph carries the same arithmetic. Global pooling makes any length at least
:data:`MIN_SAMPLES` work. torch has no 1D ResNet and MONAI's ``ResNet`` fixes the stem for images,
so the blocks are written here, following He et al. 2016 and Hannun et al. 2019.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from medsight.models.registry import register_model

MIN_SAMPLES = 256  # the shortest input every model here accepts (deep stride-2 stacks)


class RecordStandardize(nn.Module):
    """``(x - mean) / std`` per record and lead over time, then the wrapped network."""

    def __init__(self, network: nn.Module, eps: float = 1e-3) -> None:
        super().__init__()
        self.network = network
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        std = x.std(dim=-1, keepdim=True)
        return self.network((x - mean) / (std + self.eps))


class ResidualBlock1d(nn.Module):
    """Two ``k``-wide convolutions with batch norm and a (strided) shortcut."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, dropout: float):
        super().__init__()
        pad = kernel_size // 2
        self.body = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel_size, stride=stride, padding=pad, bias=False),
            nn.BatchNorm1d(c_out),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv1d(c_out, c_out, kernel_size, padding=pad, bias=False),
            nn.BatchNorm1d(c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv1d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm1d(c_out)
            )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


class MeanMaxPool1d(nn.Module):
    """Global average and max pooling over time, concatenated: ``(N, C, T) -> (N, 2C)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=1)


def _stem(in_channels: int, width: int, kernel_size: int) -> nn.Sequential:
    """A strided wide convolution and max-pool: 4x fewer time steps for the blocks."""
    return nn.Sequential(
        nn.Conv1d(in_channels, width, kernel_size, stride=2, padding=kernel_size // 2, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(inplace=True),
        nn.MaxPool1d(3, stride=2, padding=1),
    )


def _stages(width: int, blocks: Sequence[int], kernel_size: int, dropout: float) -> nn.Sequential:
    """Residual stages; each after the first halves time and doubles channels."""
    layers: list[nn.Module] = []
    c_in = width
    for stage, count in enumerate(blocks):
        c_out = width * 2**stage
        for index in range(count):
            stride = 2 if stage > 0 and index == 0 else 1
            layers.append(ResidualBlock1d(c_in, c_out, kernel_size, stride, dropout))
            c_in = c_out
    return nn.Sequential(*layers)


@register_model(
    "ecg_resnet1d",
    family="signal",
    description="1D ResNet (wide stem, 4 residual stages, mean+max pooling) for ECG rhythm.",
)
def ecg_resnet1d(
    in_channels: int = 1,
    num_classes: int = 4,
    width: int = 32,
    blocks: Sequence[int] = (1, 1, 1, 1),
    kernel_size: int = 9,
    dropout: float = 0.2,
) -> nn.Module:
    """A residual 1D CNN: 32x downsampling in time, any length >= ``MIN_SAMPLES``."""
    features = nn.Sequential(
        _stem(in_channels, width, 2 * kernel_size + 1),
        _stages(width, blocks, kernel_size, dropout),
        MeanMaxPool1d(),
    )
    channels = 2 * width * 2 ** (len(blocks) - 1)
    head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, num_classes))
    return RecordStandardize(nn.Sequential(features, head))


class CnnBiLstm(nn.Module):
    """Convolutional front end (16x downsampling), a bidirectional LSTM, mean+max pooling."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: int,
        hidden: int,
        kernel_size: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.front = nn.Sequential(
            _stem(in_channels, width, 2 * kernel_size + 1),
            _stages(width, (1, 1, 1), kernel_size, dropout),
        )
        self.lstm = nn.LSTM(4 * width, hidden, batch_first=True, bidirectional=True)
        self.pool = MeanMaxPool1d()
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * hidden, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.front(x).transpose(1, 2)  # (N, T, C) for the LSTM
        sequence, _ = self.lstm(steps)
        return self.head(self.pool(sequence.transpose(1, 2)))


@register_model(
    "ecg_cnn_bilstm",
    family="signal",
    description="CNN front end + bidirectional LSTM over time, mean+max pooling, for ECG rhythm.",
)
def ecg_cnn_bilstm(
    in_channels: int = 1,
    num_classes: int = 4,
    width: int = 32,
    hidden: int = 64,
    kernel_size: int = 9,
    dropout: float = 0.2,
) -> nn.Module:
    """CNN features every 16 samples, read in both directions by an LSTM."""
    network = CnnBiLstm(in_channels, num_classes, width, hidden, kernel_size, dropout)
    return RecordStandardize(network)
