"""Attribution over time for ECG rhythm networks, drawn over the strip with the detected beats.

Integrated Gradients (Captum) integrates the gradient of the class logit along a straight path
from a flat-line baseline to the recording: each sample's attribution says how much it moved the
class score, and the attributions add up to the score difference between the recording and the
flat line (completeness). The strip plot shades where the evidence for the class lies and marks
the R-peaks the signal package detected, so a reader can check it against the beats.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from medsight.errors import DataError
from medsight.models.state import device_of, eval_mode


def integrated_gradients(
    model: nn.Module, signal: np.ndarray, target: int | None = None, *, steps: int = 64
) -> tuple[np.ndarray, int, float]:
    """Attribution per sample ``(leads, samples)`` for ``target`` (default: the predicted class).

    Returns the attributions, the class explained and the completeness error ``|sum - (f(x) -
    f(baseline))|`` that Captum reports (small when ``steps`` is enough).
    """
    from captum.attr import IntegratedGradients

    x = np.asarray(signal, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] < 2 or not np.isfinite(x).all():
        raise DataError(f"expected a finite (leads, samples) signal; got shape {x.shape}.")
    device = device_of(model)
    batch = torch.from_numpy(x)[None].to(device)
    with eval_mode(model), torch.inference_mode(False), torch.enable_grad():
        if target is None:
            with torch.no_grad():
                target = int(model(batch).argmax(dim=1).item())
        explainer = IntegratedGradients(model)
        attribution, delta = explainer.attribute(
            batch.clone().requires_grad_(True),
            baselines=torch.zeros_like(batch),
            target=target,
            n_steps=steps,
            return_convergence_delta=True,
        )
    return attribution[0].detach().cpu().numpy(), target, float(delta.abs().max())


def attribution_strip(
    signal: np.ndarray,
    attribution: np.ndarray,
    fs: float,
    *,
    rpeaks: np.ndarray | None = None,
    title: str = "",
) -> Figure:
    """The first lead as an ECG strip, shaded by positive attribution, with R-peaks marked."""
    lead = np.asarray(signal, dtype=float)[0]
    evidence = np.clip(np.asarray(attribution, dtype=float)[0], 0, None)
    width = max(int(fs * 0.2), 1)  # 200 ms smoothing: shade beats and waves, not single samples
    evidence = np.convolve(evidence, np.ones(width) / width, mode="same")
    peak = evidence.max()
    evidence = evidence / peak if peak > 0 else evidence
    seconds = np.arange(lead.size) / fs
    figure = Figure(figsize=(max(6.0, min(lead.size / fs * 0.4, 16.0)), 2.6))
    axis = figure.subplots()
    low, high = float(lead.min()), float(lead.max())
    axis.imshow(
        evidence[None],
        aspect="auto",
        cmap="Reds",
        extent=(0.0, seconds[-1], low, high + 1e-6),
        alpha=0.6,
        vmin=0.0,
        vmax=1.0,
    )
    axis.plot(seconds, lead, color="black", linewidth=0.7)
    if rpeaks is not None and len(rpeaks):
        peaks = np.asarray(rpeaks, dtype=int)
        peaks = peaks[(peaks >= 0) & (peaks < lead.size)]
        axis.plot(peaks / fs, lead[peaks], "v", color="tab:blue", markersize=4, label="R-peak")
        axis.legend(loc="upper right", frameon=False, fontsize="small")
    axis.set_xlabel("seconds")
    axis.set_ylabel("mV")
    axis.set_title(title or "Evidence for the class (red) over the ECG", fontsize="medium")
    figure.tight_layout()
    return figure


def save_attribution_png(
    model: nn.Module,
    signal: np.ndarray,
    fs: float,
    path: str | Path,
    *,
    class_names: list[str] | None = None,
    target: int | None = None,
) -> Path:
    """Explain one window and write the strip PNG (R-peaks detected with ``medsight.signal``)."""
    from medsight.signal.peaks import detect_rpeaks

    attribution, explained, _ = integrated_gradients(model, signal, target)
    try:
        rpeaks = detect_rpeaks(np.asarray(signal)[0], fs)
    except DataError:
        rpeaks = None  # a strip without detectable beats is still drawn
    name = class_names[explained] if class_names else str(explained)
    figure = attribution_strip(
        signal, attribution, fs, rpeaks=rpeaks, title=f"Evidence for '{name}'"
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
