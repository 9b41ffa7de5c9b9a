"""Training checkpoints: atomic writes, safe loading, and checks that a checkpoint fits the run.

A checkpoint is a plain dict of tensors, numbers, strings and containers saved with ``torch.save``
and read back with ``weights_only=True`` (no arbitrary pickled code runs on load).
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medsight.errors import BundleError, ConfigError

__all__ = [
    "FORMAT",
    "capture_rng_state",
    "check_compatible",
    "load_checkpoint",
    "model_signature",
    "restore_rng_state",
    "save_checkpoint",
]

FORMAT = "medsight-train-checkpoint/1"
REQUIRED_KEYS = (
    "format",
    "config",
    "model_signature",
    "epoch",
    "model",
    "optimizer",
    "scheduler",
    "scaler",
    "best_state",
    "best_score",
    "best_val_loss",
    "best_epoch",
    "epochs_since_best",
    "finished",
    "stopped_early",
    "history",
    "rng",
    "world_size",
    "train_size",
    "val_size",
)


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temp file in the same folder, fsync, ``os.replace``).

    A process killed at any moment leaves either the previous checkpoint or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        torch.save(dict(state), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by `save_checkpoint`; `BundleError` if unreadable or incomplete."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise BundleError(
            f"{path}: cannot read the training checkpoint ({type(exc).__name__}: {exc}); "
            "delete it to start afresh, or fit without resume"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise BundleError(
            f"{path}: not a medsight training checkpoint of format {FORMAT!r} (found {found!r}); "
            "delete it or point checkpoint_dir elsewhere"
        )
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise BundleError(f"{path}: incomplete training checkpoint, missing {missing}; delete it")
    return state


def model_signature(model: nn.Module) -> list[list[Any]]:
    """``[name, shape, dtype]`` of every entry of the model's state dict (its architecture)."""
    return [
        [name, list(tensor.shape), str(tensor.dtype).removeprefix("torch.")]
        for name, tensor in model.state_dict().items()
    ]


def check_compatible(
    state: Mapping[str, Any],
    path: Path,
    *,
    config: Mapping[str, Any],
    signature: list[list[Any]],
    ignore: frozenset[str] = frozenset(),
) -> None:
    """Raise `ConfigError` / `BundleError` when a checkpoint was written by another run setup.

    ``config`` holds the fields that change the training trajectory; fields in ``ignore`` (device,
    AMP, workers, progress display) may differ.
    """
    saved = state["config"]
    changed = [
        f"{key}: checkpoint {saved.get(key)!r}, now {value!r}"
        for key, value in config.items()
        if key not in ignore and saved.get(key) != value
    ]
    if changed:
        raise ConfigError(
            f"{path} was written with a different training configuration ("
            + "; ".join(changed)
            + "). Resume with the original settings, or fit without resume to start afresh."
        )
    if state["model_signature"] != signature:
        old = {row[0]: row[1:] for row in state["model_signature"]}
        new = {row[0]: row[1:] for row in signature}
        diffs = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        raise BundleError(
            f"{path} holds weights of a different model architecture ({len(diffs)} differing "
            f"entries, e.g. {diffs[:3]}). Use the same model, or fit without resume."
        )


def capture_rng_state() -> dict[str, Any]:
    """The state of Python's, NumPy's and torch's (CPU and CUDA) global random generators."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [
            np_state[0],
            torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            int(np_state[2]),
            int(np_state[3]),
            float(np_state[4]),
        ],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Put the global random generators back to a state from `capture_rng_state`."""
    random.setstate(_as_tuple(state["python"]))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def _as_tuple(value: Any) -> Any:
    """Lists back to tuples (``random.setstate`` insists on tuples)."""
    if isinstance(value, list | tuple):
        return tuple(_as_tuple(v) for v in value)
    return value
