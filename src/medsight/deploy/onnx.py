"""ONNX export of torch image classifiers and CPU inference with ONNX Runtime.

The exported graph takes ``image`` float32 ``(N, C, H, W)`` with a dynamic batch axis and returns
``logits`` ``(N, n_classes)``; it is one self-contained ``.onnx`` file (weights inside).
``torch.onnx.export``'s default (dynamo) exporter is tried first; where it fails the TorchScript
exporter is used instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import softmax
from torch import nn

from medsight.errors import BundleError, DataError
from medsight.models.state import device_of, eval_mode

logger = logging.getLogger(__name__)

INPUT_NAME = "image"
OUTPUT_NAME = "logits"
# torch logs one warning per torchvision op it cannot register; irrelevant to these models
_NOISY_LOGGERS = ("torch.onnx._internal.exporter._registration",)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    input_shape: tuple[int, ...],
    opset: int | None = None,
) -> Path:
    """Export ``model`` (run in eval mode) to one ``.onnx`` file at ``path``, atomically.

    ``input_shape`` is one example's shape without the batch axis, e.g. ``(C, H, W)`` for images
    or ``(leads, samples)`` for ECG windows; the batch axis is dynamic. ``opset`` ``None`` takes the
    exporter's default. The file is checked with ``onnx.checker`` before it replaces ``path``.
    The model's train/eval flags are restored afterwards.
    """
    import onnx

    path = Path(path)
    shape = tuple(int(s) for s in input_shape)
    if not shape or min(shape) < 1:
        raise DataError(
            f"input_shape must be one example's shape, e.g. (C, H, W), with positive sizes; "
            f"got {input_shape}."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    # a private folder, so that a side file (external weights) would be noticed, not shipped
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        staged = folder / path.name
        with eval_mode(model), _quiet_exporter():
            example = torch.rand(2, *shape, device=device_of(model))  # batch 2: not specialised
            try:
                _export_dynamo(model, example, staged, opset)
            except Exception as exc:  # the dynamo exporter fails in many ways on exotic models
                logger.info("dynamo ONNX export failed (%s); using the TorchScript exporter", exc)
                staged.unlink(missing_ok=True)
                _export_torchscript(model, example, staged, opset)
        extra = sorted(p.name for p in folder.iterdir() if p != staged)
        if extra:
            raise BundleError(
                f"ONNX export of {type(model).__name__} wrote side files {extra}; medsight needs "
                "one self-contained .onnx file (models must stay under 2 GB)."
            )
        proto = onnx.load(str(staged), load_external_data=False)
        onnx.checker.check_model(proto)
        if any(_is_external(tensor) for tensor in proto.graph.initializer):
            raise BundleError(f"ONNX export of {type(model).__name__} uses external data.")
        os.replace(staged, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return path


def max_abs_difference(model: nn.Module, onnx_path: str | Path, inputs: np.ndarray) -> float:
    """Largest absolute difference between torch (eval mode) and ONNX Runtime logits."""
    batch = np.ascontiguousarray(inputs, dtype=np.float32)
    if batch.ndim < 2 or len(batch) == 0:
        raise DataError(f"parity inputs must be a non-empty batch (N, ...); got {batch.shape}.")
    with eval_mode(model), torch.no_grad():
        expected = model(torch.from_numpy(batch).to(device_of(model))).float().cpu().numpy()
    actual = OnnxClassifier(onnx_path, threads=1).logits(batch)
    if expected.shape != actual.shape:
        raise BundleError(
            f"{onnx_path}: ONNX logits have shape {actual.shape}, torch {expected.shape}."
        )
    return float(np.max(np.abs(expected - actual)))


class OnnxClassifier:
    """An exported classifier run by ONNX Runtime on the CPU: one float input ``(N, ...)`` (images
    ``(N, C, H, W)``, ECG windows ``(N, leads, samples)``), logits out."""

    def __init__(self, path: str | Path, *, threads: int = 2) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise BundleError(f"{self.path}: ONNX model file not found.")
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own pybind error types
            raise BundleError(
                f"{self.path}: ONNX Runtime cannot load this model ({exc}); the file is damaged "
                "or not an ONNX model. Restore the bundle or export the model again."
            ) from exc
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) < 2 or inputs[0].type != "tensor(float)":
            raise BundleError(
                f"{self.path}: expected one float input (N, ...); the model has "
                f"{[(i.name, i.shape, i.type) for i in inputs]}."
            )
        self._input = inputs[0].name
        self._output = outputs[0].name
        self._shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape[1:])
        classes = outputs[0].shape[-1] if outputs[0].shape else None
        self._n_classes = classes if isinstance(classes, int) else None

    @property
    def input_shape(self) -> tuple[int | None, ...]:
        """One example's shape, e.g. ``(C, H, W)``; ``None`` where an axis is dynamic."""
        return self._shape

    @property
    def n_classes(self) -> int | None:
        """Number of classes (logit columns), if fixed in the graph."""
        return self._n_classes

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Logits ``(N, n_classes)`` for a float32 batch ``(N, *input_shape)``."""
        batch = self._check(x)
        return self._session.run([self._output], {self._input: batch})[0]

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, n_classes)`` (softmax of the logits); rows sum to 1."""
        return softmax(self.logits(x).astype(np.float64), axis=1)

    def _check(self, x: np.ndarray) -> np.ndarray:
        expected = "(N, " + ", ".join("?" if d is None else str(d) for d in self._shape) + ")"
        if not isinstance(x, np.ndarray):
            raise DataError(f"{self.path.name}: inputs must be a numpy array {expected}.")
        if x.dtype != np.float32:
            raise DataError(
                f"{self.path.name}: inputs must be float32, got {x.dtype}; "
                "convert with x.astype(np.float32)."
            )
        if x.ndim != len(self._shape) + 1 or len(x) == 0:
            raise DataError(
                f"{self.path.name}: expected a batch {expected}; got shape {x.shape} "
                "(add a batch axis with x[None] for one example)."
            )
        if any(d is not None and d != s for d, s in zip(self._shape, x.shape[1:], strict=True)):
            raise DataError(
                f"{self.path.name}: the model takes {expected}; got shape {x.shape}. "
                "Resize images or convert their channels; cut signals into the bundle's windows."
            )
        if not np.isfinite(x).all():
            raise DataError(f"{self.path.name}: inputs contain NaN or infinite values.")
        return np.ascontiguousarray(x)


def latency_ms(
    fn: Callable[[Any], object], example: Any, *, calls: int = 1000, warmup: int = 20
) -> dict[str, float]:
    """Median and 95th-percentile wall time in ms of single ``fn(example)`` calls."""
    if calls < 1:
        raise ValueError("calls must be at least 1")
    for _ in range(max(0, warmup)):
        fn(example)
    times = np.empty(calls)
    for i in range(calls):
        start = time.perf_counter_ns()
        fn(example)
        times[i] = time.perf_counter_ns() - start
    p50, p95 = np.percentile(times / 1e6, [50, 95])
    return {"p50": float(p50), "p95": float(p95)}


# ---------------------------------------------------------------------------------- helpers


def _export_dynamo(model: nn.Module, example: torch.Tensor, path: Path, opset: int | None) -> None:
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        external_data=False,
        verbose=False,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
    )


def _export_torchscript(
    model: nn.Module, example: torch.Tensor, path: Path, opset: int | None
) -> None:
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=False,
        opset_version=opset,
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
    )


def _is_external(tensor: Any) -> bool:
    import onnx

    return tensor.data_location == onnx.TensorProto.EXTERNAL


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporters' deprecation chatter and torchvision notices for one export."""
    levels = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
