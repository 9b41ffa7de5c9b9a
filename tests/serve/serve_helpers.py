"""Helpers for the service tests: the test password and inputs (a PNG, an ECG signal).

A plain module so test files can import it by name (see tests/shared_helpers.py).
"""

from __future__ import annotations

import numpy as np

PASSWORD = "correct horse battery staple"


def png_bytes(value: float = 0.4, size: int = 28, mode: str = "L") -> bytes:
    """A small PNG: a bright square on a grey background (``mode`` L or RGB)."""
    import io

    from PIL import Image

    pixels = np.full((size, size), value * 255, dtype=np.uint8)
    pixels[size // 4 : size // 2, size // 4 : size // 2] = 230
    image = Image.fromarray(pixels, "L").convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def ecg_signal(fs: int = 300, seconds: int = 12, rate_bpm: int = 70) -> np.ndarray:
    """A synthetic single-lead ECG in mV (NeuroKit2's simulator, fixed seed)."""
    import neurokit2 as nk

    signal = nk.ecg_simulate(
        duration=seconds, sampling_rate=fs, heart_rate=rate_bpm, random_state=1, method="simple"
    )
    return np.asarray(signal, dtype=np.float32)
