"""Grad-CAM heatmaps for torch image classifiers, and pictures a clinician can read.

Grad-CAM weights a convolutional layer's feature maps by the spatially averaged gradient of the
class logit and keeps the positive part: where the layer saw evidence *for* the class. The map is
as coarse as that layer (4x4 for ResNet-18 on 28x28 inputs) and is upsampled to the image.

Captum's ``LayerGradCam`` computes the maps, not ``monai.visualize.GradCAM``: Captum registers its
hook for one call and removes it, takes one target class per image, and differentiates with
``torch.autograd.grad`` so the model's ``.grad`` buffers are never touched. MONAI's wrapper keeps
its hooks on the model for good, calls ``backward()`` (accumulating parameter gradients) and
takes one class for the whole batch. An ensemble's map is its members' maps for the ensemble's
class, averaged with their shares of the probability; a member that declares
``attribution = "occlusion"`` (the SVM) is mapped by :mod:`medsight.explain.occlusion`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.figure import Figure
from PIL import Image
from torch import nn

from medsight.errors import ConfigError, DataError
from medsight.evaluate.plots import figure_to_png_base64, figure_to_png_bytes
from medsight.explain.occlusion import occlusion_map
from medsight.io.images import channels_last
from medsight.models.ensemble import ProbabilityAverage
from medsight.models.state import device_of, eval_mode

logger = logging.getLogger(__name__)

COLORMAP = "jet"
ALPHA = 0.4
MAX_PANEL_PX = 768  # an upscaled panel is at most this many pixels on its longer side
_DPI = 110  # the resolution figure_to_png_bytes saves at: 1 inch of figure = 110 px
_TITLE_PX = 34
_TITLE_LINE_PX = 19  # each further line of a wrapped title (11 pt bold, line spacing 1.1)
_TITLE_CHAR_PX = 10.5  # mean width of an 11 pt bold character
_LABEL_CHAR_PX = 7.0  # mean width of an 8.5 pt character
_LABEL_PX = 22
_GAP_PX = 12


def default_target_layer(model: nn.Module, example: torch.Tensor | None = None) -> str:
    """The layer Grad-CAM uses by default: the network's final feature map, before pooling.

    Rule: run one image through the model (``example[:1]``, or zeros of the first ``Conv2d``'s
    channels at 64x64) and note every sub-module's output in the order the calls finish. The
    last ``Conv2d`` fixes the final feature-map size ``h x w``; the default is the last module to
    finish whose output is an ``(N, C, h, w)`` tensor: the final feature map after whatever
    normalisation and activation follow the last convolution (Grad-CAM assumes non-negative
    activations). That is ``layer4`` of a ResNet, ``class_layers.relu`` of MONAI's DenseNet and
    the last conv block of a ``Sequential`` CNN, also inside a wrapper such as ``Standardize``.
    Pass ``layer=`` to :func:`gradcam` to choose another.
    """
    names = {module: name for name, module in model.named_modules()}
    convs = [module for module in names if isinstance(module, nn.Conv2d)]
    if not convs:
        raise ConfigError(
            f"{type(model).__name__} has no Conv2d layer, so Grad-CAM has no feature map to use; "
            "pass layer= with the name of a layer that outputs (N, C, h, w)."
        )
    if example is None:
        example = torch.zeros(1, convs[0].in_channels, 64, 64)
    probe = _as_batch(example)[:1].to(device_of(model))
    finished: list[tuple[str, tuple[int, ...] | None]] = []

    def record(module: nn.Module, _inputs: object, output: object) -> None:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else None
        finished.append((names[module], shape))

    # hand-made probe: no library reports the order in which modules finish on a real input
    handles = [module.register_forward_hook(record) for module in names if module is not model]
    try:
        with eval_mode(model), torch.no_grad():
            model(probe)
    except Exception as exc:  # any failure of an arbitrary model's forward on the probe
        raise ConfigError(
            f"could not run {type(model).__name__} on a {tuple(probe.shape)} probe to find the "
            f"Grad-CAM layer ({exc}); pass layer= or an example image."
        ) from exc
    finally:
        for handle in handles:
            handle.remove()
    last_conv = names[convs[-1]]
    conv_shapes = [shape for name, shape in finished if name == last_conv and shape]
    if not conv_shapes or len(conv_shapes[-1]) != 4:
        raise ConfigError(
            f"the last Conv2d '{last_conv}' of {type(model).__name__} did not run on the probe; "
            "pass layer= naming the layer whose output is the final feature map."
        )
    size = conv_shapes[-1][2:]
    matches = [name for name, shape in finished if shape and len(shape) == 4 and shape[2:] == size]
    return matches[-1]


def gradcam(
    model: nn.Module,
    images: torch.Tensor | np.ndarray,
    *,
    target_class: int | Sequence[int] | None = None,
    layer: str | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """Grad-CAM maps ``(N, H, W)`` float32 in [0, 1], one per image, at the input's size.

    ``images`` is ``(N, C, H, W)`` or one ``(C, H, W)`` image, preprocessed as the model expects.
    ``target_class`` is one class for all images, one per image, or ``None`` for each image's
    predicted class. ``layer`` names a module (``dict(model.named_modules())``); default
    :func:`default_target_layer`. Each map is divided by its maximum, so 1 marks the strongest
    evidence for the class in that image and 0 none; a map with no positive evidence is all 0.
    The model is run in eval mode; its train/eval flags, parameters and hooks are left as found.
    """
    from captum.attr import LayerAttribution, LayerGradCam

    batch = _as_batch(images)
    if isinstance(model, ProbabilityAverage) and layer is None:
        return _ensemble_gradcam(model, batch, target_class, batch_size)
    if _occluded(model) and layer is None:
        with eval_mode(model):
            targets = _targets(model, batch.to(device_of(model)), target_class)
        return _occlusion(model, batch, targets, batch_size)
    height, width = batch.shape[-2:]
    name = layer if layer is not None else default_target_layer(model, batch)
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        raise ConfigError(
            f"Grad-CAM layer '{name}' is not a sub-module of {type(model).__name__}; "
            f"e.g. '{default_target_layer(model, batch)}' (names as in model.named_modules())."
        )
    device = device_of(model)
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        batch = batch.to(device)
        targets = _targets(model, batch, target_class)
        explainer = LayerGradCam(model, modules[name])
        maps = []
        for start in range(0, len(batch), batch_size):
            # a leaf that requires grad keeps the graph alive even when every weight is frozen
            chunk = batch[start : start + batch_size].clone().requires_grad_(True)
            try:
                attribution = explainer.attribute(
                    chunk, target=targets[start : start + batch_size], relu_attributions=True
                )
            except (AssertionError, RuntimeError, TypeError) as exc:
                raise ConfigError(
                    f"Grad-CAM failed on layer '{name}' ({exc}); pass layer= naming a layer "
                    "whose output is a feature map (N, C, h, w)."
                ) from exc
            if attribution.ndim != 4:
                raise ConfigError(
                    f"Grad-CAM layer '{name}' outputs shape {tuple(attribution.shape)}, not a "
                    "feature map (N, C, h, w); pass layer= naming a convolutional layer."
                )
            if attribution.shape[-2:] == (1, 1):
                logger.warning(
                    "Grad-CAM layer '%s' is 1x1 for %dx%d inputs: the map cannot localise; "
                    "use larger images or an earlier layer.",
                    name,
                    height,
                    width,
                )
            upsampled = LayerAttribution.interpolate(attribution, (height, width), "bilinear")
            maps.append(upsampled.detach()[:, 0].cpu().numpy())
    return _normalise(np.concatenate(maps).astype(np.float32))


def _ensemble_gradcam(
    model: ProbabilityAverage,
    batch: torch.Tensor,
    target_class: int | Sequence[int] | None,
    batch_size: int,
) -> np.ndarray:
    """The members' maps for the ensemble's class, averaged with the members' shares of the
    probability: each network's Grad-CAM, and one occlusion map of the probability of the
    members without a feature map (the SVM, the trees: their ``attribution``), mixed in their
    shares, for their summed share. One map for them costs one occlusion pass, and their shared
    scattering is computed once per masked image. A member with no share is left out."""
    with eval_mode(model):
        targets = _targets(model, batch.to(device_of(model)), target_class)
    live = [(m, share) for m, share in zip(model.members, model.shares, strict=True) if share > 0]
    networks = [(member, share) for member, share in live if _has_conv(member)]
    occluded = [(member, share) for member, share in live if _occluded(member)]
    if not networks and not occluded:
        raise ConfigError("no member of this ensemble has a feature map or an occlusion map.")
    occluded_share = sum(share for _, share in occluded)
    total = sum(share for _, share in networks) + occluded_share
    maps = [
        share / total * gradcam(member, batch, target_class=targets, batch_size=batch_size)
        for member, share in networks
    ]
    if occluded:
        mixture = ProbabilityAverage(
            [member for member, _ in occluded],
            weights=[share / occluded_share for _, share in occluded],
        ).to(device_of(model))
        maps.append(occluded_share / total * _occlusion(mixture, batch, targets, batch_size))
    return _normalise(np.sum(maps, axis=0).astype(np.float32))


def _occlusion(
    model: nn.Module, batch: torch.Tensor, targets: Sequence[int], batch_size: int
) -> np.ndarray:
    """``model``'s occlusion maps for ``targets``, each divided by its maximum."""
    with eval_mode(model):
        batch = batch.to(device_of(model))
        return _normalise(occlusion_map(model, batch, targets, batch_size=batch_size))


def map_method(model: nn.Module) -> str:
    """What :func:`gradcam` draws for ``model``: ``"Grad-CAM"``, ``"occlusion"`` or
    ``"Grad-CAM + occlusion"`` (an ensemble with networks and an SVM or tree member)."""
    members = [model]
    if isinstance(model, ProbabilityAverage):
        pairs = zip(model.members, model.shares, strict=True)
        members = [member for member, share in pairs if share > 0]
    kinds = []
    if any(_has_conv(member) for member in members):
        kinds.append("Grad-CAM")
    if any(_occluded(member) for member in members):
        kinds.append("occlusion")
    return " + ".join(kinds) or "Grad-CAM"


def _occluded(member: nn.Module) -> bool:
    return not _has_conv(member) and getattr(member, "attribution", None) == "occlusion"


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(layer, nn.Conv2d) for layer in module.modules())


def overlay(
    image: np.ndarray, heatmap: np.ndarray, *, alpha: float = ALPHA, cmap: str = COLORMAP
) -> np.ndarray:
    """The heatmap in colour blended over the image: ``(H, W, 3)`` uint8.

    ``image`` is ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` in [0, 1]; ``heatmap`` is ``(H, W)``
    in [0, 1]. Each pixel is ``(1 - alpha) * image + alpha * colour(heatmap)``.
    """
    rgb = _rgb(image)
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.shape != rgb.shape[:2]:
        raise DataError(
            f"heatmap shape {heat.shape} does not match the image's {rgb.shape[:2]}; "
            "compute Grad-CAM on the image shown."
        )
    colour = colormaps[cmap](np.clip(np.nan_to_num(heat), 0.0, 1.0))[..., :3]
    blended = (1.0 - alpha) * rgb + alpha * colour
    return np.round(np.clip(blended, 0.0, 1.0) * 255).astype(np.uint8)


def gradcam_figure(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    title: str | None = None,
    scale: int = 8,
    method: str = "Grad-CAM",
) -> Figure:
    """The image and its Grad-CAM overlay side by side, each upscaled ``scale`` times.

    The image is enlarged with nearest-neighbour (its pixels stay visible as they are), the
    heatmap bilinearly (it is a smooth, coarse map). ``scale`` is reduced so that a panel stays
    within ``MAX_PANEL_PX``. At the figure's 110 dpi the PNG is ``2 * W * s + 3 * 12`` pixels
    wide and ``H * s + 22 + 12 + (34 if title)`` high (``s`` the effective scale), 19 more per
    further line of a long title, which wraps to the width. ``method`` names the map in the
    right panel's label (:func:`map_method`).
    """
    rgb = _rgb(image)
    height, width = rgb.shape[:2]
    if np.asarray(heatmap).shape != (height, width):
        raise DataError(
            f"heatmap shape {np.asarray(heatmap).shape} does not match the image's "
            f"{(height, width)}; compute Grad-CAM on the image shown."
        )
    s = max(1, min(int(scale), MAX_PANEL_PX // max(height, width)))
    panel_h, panel_w = height * s, width * s
    picture = np.repeat(np.repeat(rgb, s, axis=0), s, axis=1)
    # PIL resizes float ("F") images bilinearly; numpy has no image resampling of its own
    heat = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F")
    big_heat = np.asarray(heat.resize((panel_w, panel_h), Image.Resampling.BILINEAR))
    blended = overlay(picture, big_heat)

    fig_w = 2 * panel_w + 3 * _GAP_PX
    # estimated glyph widths at 110 dpi (DejaVu Sans): long titles wrap instead of running off
    # the figure, and the heat label drops its colour key where the key would not fit
    lines = textwrap.wrap(title or "", width=max(12, int((fig_w - 2 * _GAP_PX) / _TITLE_CHAR_PX)))
    top = _TITLE_PX + _TITLE_LINE_PX * (len(lines) - 1) if lines else 0
    fig_h = panel_h + _LABEL_PX + _GAP_PX + top
    figure = Figure(figsize=(fig_w / _DPI, fig_h / _DPI), dpi=_DPI, facecolor="white")
    bottom = _GAP_PX / fig_h
    keyed = f"{method} (red = strongest evidence)"
    heat_label = keyed if len(keyed) * _LABEL_CHAR_PX <= panel_w + 2 * _GAP_PX else method
    for column, (panel, label) in enumerate(((picture, "image"), (blended, heat_label))):
        left = (_GAP_PX + column * (panel_w + _GAP_PX)) / fig_w
        axis = figure.add_axes((left, bottom, panel_w / fig_w, panel_h / fig_h))
        axis.imshow(panel, interpolation="nearest")
        axis.set_axis_off()
        axis.text(
            0.5,
            1.0 + 4 / panel_h,
            label,
            transform=axis.transAxes,
            ha="center",
            va="bottom",
            fontsize=8.5,
        )
    if lines:
        figure.text(
            0.5,
            1 - 6 / fig_h,
            "\n".join(lines),
            ha="center",
            va="top",
            fontsize=11,
            fontweight="bold",
            linespacing=1.1,
        )
    return figure


def gradcam_png_bytes(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    title: str | None = None,
    scale: int = 8,
    method: str = "Grad-CAM",
) -> bytes:
    """:func:`gradcam_figure` as PNG bytes."""
    figure = gradcam_figure(image, heatmap, title=title, scale=scale, method=method)
    return figure_to_png_bytes(figure)


def gradcam_figure_base64(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    title: str | None = None,
    scale: int = 8,
    method: str = "Grad-CAM",
) -> str:
    """:func:`gradcam_figure` as a base64 PNG string, ready for an HTML ``data:`` URI."""
    figure = gradcam_figure(image, heatmap, title=title, scale=scale, method=method)
    return figure_to_png_base64(figure)


def save_gradcam_png(
    image: np.ndarray,
    heatmap: np.ndarray,
    path: str | Path,
    *,
    title: str | None = None,
    scale: int = 8,
    method: str = "Grad-CAM",
) -> Path:
    """Write :func:`gradcam_figure` to ``path`` as PNG (atomically; folders are created)."""
    data = gradcam_png_bytes(image, heatmap, title=title, scale=scale, method=method)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def save_gradcam_pngs(
    model: nn.Module,
    images: np.ndarray,
    target_classes: Sequence[int],
    paths: Sequence[Path],
    titles: Sequence[str],
) -> list[Path]:
    """Grad-CAM of each ``(C, H, W)`` image for its target class, written to its path as PNG."""
    heatmaps = gradcam(model, images, target_class=[int(k) for k in target_classes])
    method = map_method(model)
    return [
        save_gradcam_png(channels_last(image), heatmap, path, title=title, method=method)
        for image, heatmap, path, title in zip(images, heatmaps, paths, titles, strict=True)
    ]


# ---------------------------------------------------------------------------------- helpers


def _as_batch(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    batch = torch.as_tensor(images).detach()
    if batch.ndim == 3:
        batch = batch.unsqueeze(0)
    if batch.ndim != 4 or batch.shape[0] == 0:
        raise DataError(
            f"Grad-CAM needs images (N, C, H, W) or one image (C, H, W); got shape "
            f"{tuple(batch.shape)}."
        )
    return batch.to(torch.float32)


def _targets(
    model: nn.Module, batch: torch.Tensor, target_class: int | Sequence[int] | None
) -> list[int]:
    """One class index per image; the predicted class where none is given."""
    with torch.no_grad():
        logits = torch.cat([model(batch[i : i + 64]) for i in range(0, len(batch), 64)])
    n_classes = logits.shape[1]
    if target_class is None:
        return [int(k) for k in logits.argmax(dim=1).tolist()]
    if isinstance(target_class, int | np.integer):
        targets = [int(target_class)] * len(batch)
    else:
        targets = [int(k) for k in target_class]
        if len(targets) != len(batch):
            raise DataError(
                f"target_class has {len(targets)} entries for {len(batch)} images; give one "
                "class per image, a single class, or None for the predicted class."
            )
    bad = sorted({k for k in targets if not 0 <= k < n_classes})
    if bad:
        raise DataError(f"target_class {bad} out of range: the model has {n_classes} classes.")
    return targets


def _normalise(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum; maps without positive evidence become all 0."""
    maps = np.nan_to_num(np.maximum(maps, 0.0))
    peak = maps.reshape(len(maps), -1).max(axis=1)
    out = np.zeros_like(maps)
    positive = peak > 1e-12
    out[positive] = maps[positive] / peak[positive, None, None]
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def _rgb(image: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` in [0, 1] as float ``(H, W, 3)``."""
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise DataError(
            f"image for the overlay must be (H, W), (H, W, 1) or (H, W, 3); got {array.shape} "
            "(move channels last: np.moveaxis(image, 0, -1))."
        )
    return np.clip(np.nan_to_num(array), 0.0, 1.0)
