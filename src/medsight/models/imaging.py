"""Image classifiers in the registry: a small CNN, ResNet-18 adapted to 28x28, DenseNet-121.

Every factory takes ``in_channels`` and ``num_classes`` and returns an ``nn.Module`` mapping
``(N, C, H, W)`` to logits ``(N, num_classes)``; any input size works (global pooling). ResNet and
DenseNet come from MONAI; ``weights`` loads a local state dict (no downloads).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from medsight.errors import BundleError, ConfigError, DataError
from medsight.models.registry import register_model


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by batch norm and ReLU (size kept)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _pooled_head(channels: int, num_classes: int, dropout: float) -> list[nn.Module]:
    """Global average pool, dropout and a linear layer: the last layers of a small network,
    spliced into its ``nn.Sequential`` (so its state-dict keys stay flat)."""
    return [
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(channels, num_classes),
    ]


@register_model(
    "small_cnn",
    family="image",
    description="Three double-conv blocks (32-64-128 by default), batch norm, global average pool.",
)
def small_cnn(
    in_channels: int = 1,
    num_classes: int = 2,
    width: int = 32,
    dropout: float = 0.2,
    weights: str | Path | None = None,
) -> nn.Module:
    """A compact CNN for 28-64 px inputs (channels width, 2x, 4x: about 287k parameters at the
    default width 32, 72k at width 16)."""

    model = nn.Sequential(
        _double_conv(in_channels, width),
        nn.MaxPool2d(2),
        _double_conv(width, 2 * width),
        nn.MaxPool2d(2),
        _double_conv(2 * width, 4 * width),
        *_pooled_head(4 * width, num_classes, dropout),
    )
    return _with_weights(model, weights)


class _SizeCheck(nn.Module):
    """Passes ``size`` x ``size`` images through; any other size is a clear ``DataError``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] != (self.size, self.size):
            raise DataError(
                f"this scattering_cnn was built for {self.size}x{self.size} images, got "
                f"{tuple(x.shape[-2:])}; resize the images (data.image_size) or rebuild it"
            )
        return x


@register_model(
    "scattering_cnn",
    family="image",
    description="A small CNN on fixed wavelet scattering maps (J=2): a hybrid for small data sets.",
)
def scattering_cnn(
    in_channels: int = 1,
    num_classes: int = 2,
    size: int = 28,
    width: int = 64,
    dropout: float = 0.2,
    weights: str | Path | None = None,
) -> nn.Module:
    """Oyallon et al.'s hybrid (2017): order 0-2 log scattering maps at 1/4 resolution (81 per
    input channel, fixed), batch-normalised, then two double-conv blocks and a linear head.

    The filters are built for ``size`` x ``size`` inputs (an image run sets it to the data's
    size); other sizes are refused."""
    from medsight.models.scattering import Scattering2d

    scattering = Scattering2d((size, size), scale=2, orientations=8)
    maps = in_channels * scattering.channels_per_input
    side = math.ceil(size / 2**scattering.scale)  # the transform's own subsampling

    model = nn.Sequential(
        _SizeCheck(size),
        scattering,
        nn.Unflatten(1, (maps, side, side)),
        nn.BatchNorm2d(maps),
        _double_conv(maps, width),
        _double_conv(width, 2 * width),
        *_pooled_head(2 * width, num_classes, dropout),
    )
    model.min_input_size = size
    return _with_weights(model, weights)


@register_model(
    "resnet18_28",
    family="image",
    description="ResNet-18 for small inputs (3x3 stride-1 stem, no max-pool), as in MedMNIST v2.",
    aliases=("resnet18",),
)
def resnet18_28(
    in_channels: int = 1, num_classes: int = 2, weights: str | Path | None = None
) -> nn.Module:
    """MONAI's ResNet-18 with the 28x28 adaptation: the stem keeps full resolution."""
    from monai.networks.nets import resnet18

    model = resnet18(
        spatial_dims=2,
        n_input_channels=in_channels,
        num_classes=num_classes,
        conv1_t_size=3,
        conv1_t_stride=1,
        no_max_pool=True,
    )
    return _with_weights(model, weights)


@register_model(
    "densenet121",
    family="image",
    description="MONAI DenseNet-121 (2D); heavier, for inputs of 64 px and more.",
)
def densenet121(
    in_channels: int = 1,
    num_classes: int = 2,
    dropout: float = 0.0,
    weights: str | Path | None = None,
) -> nn.Module:
    """MONAI's DenseNet-121 for 2D images."""
    from monai.networks.nets import DenseNet121

    model = DenseNet121(
        spatial_dims=2, in_channels=in_channels, out_channels=num_classes, dropout_prob=dropout
    )
    model.min_input_size = 32  # five stride-2 stages: smaller inputs pool to nothing
    return _with_weights(model, weights)


def check_input_size(model: nn.Module, name: str, size: int) -> None:
    """ConfigError when ``size`` is below what the model's downsampling allows."""
    minimum = int(getattr(model, "min_input_size", 8))
    if size < minimum:
        raise ConfigError(
            f"model '{name}' needs images of at least {minimum}x{minimum} px, got {size}x{size}; "
            f"set data.image_size to {max(minimum, 64)} or pick resnet18_28 / small_cnn."
        )


def _with_weights(model: nn.Module, weights: str | Path | None) -> nn.Module:
    """Load a local state dict (``.pt``/``.pth``); heads of another size are left as initialised."""
    if weights is None:
        return model
    path = Path(weights)
    if not path.is_file():
        raise ConfigError(f"{path}: pretrained weights file not found (medsight never downloads).")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several unrelated types for a bad file
        raise BundleError(f"{path}: not a readable PyTorch state dict ({exc}).") from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise BundleError(f"{path}: none of its tensors match this model's layers.")
    model.load_state_dict(usable, strict=False)
    return model
