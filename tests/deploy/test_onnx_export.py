"""ONNX export: parity with torch for the project's image models, and a careful runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from medsight.deploy.onnx import (
    OnnxClassifier,
    export_onnx,
    latency_ms,
    max_abs_difference,
)
from medsight.errors import BundleError, DataError
from medsight.models.imaging import resnet18_28, scattering_cnn, small_cnn
from medsight.transforms.image import Standardize
from shared_helpers import small_densenet

# name: (factory, (C, H, W), classes)
MODELS = {
    "small_cnn": (lambda: Standardize(small_cnn(width=8), [0.4], [0.2]), (1, 28, 28), 2),
    "resnet18_28": (lambda: resnet18_28(in_channels=3, num_classes=3), (3, 28, 28), 3),
    "densenet": (small_densenet, (1, 32, 32), 2),
    "scattering_cnn": (lambda: scattering_cnn(3, 3, width=8), (3, 28, 28), 3),
}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[nn.Module, Path]]:
    """Each model kind with random weights, exported once for the module."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("onnx")
    result = {}
    for name, (factory, shape, _) in MODELS.items():
        torch.manual_seed(0)
        model = factory()
        model.train()  # export must use eval mode and hand the model back in train mode
        path = export_onnx(model, folder / f"{name}.onnx", input_shape=shape)
        assert model.training
        result[name] = (model, path)
    return result


@pytest.mark.parametrize("name", list(MODELS))
def test_parity_with_torch_for_batch_8_and_1(
    name: str, exported: dict[str, tuple[nn.Module, Path]]
) -> None:
    model, path = exported[name]
    _, shape, _ = MODELS[name]
    rng = np.random.default_rng(0)
    for batch in (8, 1):
        inputs = rng.random((batch, *shape), dtype=np.float32)
        assert max_abs_difference(model, path, inputs) <= 1e-4
    assert model.training  # max_abs_difference also leaves the mode alone


@pytest.mark.parametrize("name", list(MODELS))
def test_file_is_one_checked_graph_with_named_dynamic_io(
    name: str, exported: dict[str, tuple[nn.Module, Path]]
) -> None:
    _, path = exported[name]
    _, shape, classes = MODELS[name]
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith(name)) == [
        f"{name}.onnx"
    ]  # no external-data side file, no temp folder left
    proto = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(proto)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert [i.name for i in proto.graph.input] == ["image"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    batch_axis = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_axis.dim_param and not batch_axis.HasField("dim_value")
    classifier = OnnxClassifier(path, threads=1)
    assert classifier.input_shape == shape
    assert classifier.n_classes == classes


def test_probabilities_sum_to_one_and_follow_the_logits(
    exported: dict[str, tuple[nn.Module, Path]],
) -> None:
    _, path = exported["resnet18_28"]
    classifier = OnnxClassifier(path, threads=1)
    x = np.random.default_rng(1).random((5, 3, 28, 28), dtype=np.float32)
    probabilities = classifier.predict_proba(x)
    assert probabilities.shape == (5, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    assert (probabilities >= 0).all()
    np.testing.assert_array_equal(probabilities.argmax(1), classifier.logits(x).argmax(1))


def test_wrong_inputs_raise_data_error(exported: dict[str, tuple[nn.Module, Path]]) -> None:
    _, path = exported["small_cnn"]
    classifier = OnnxClassifier(path, threads=1)
    good = np.zeros((2, 1, 28, 28), dtype=np.float32)
    assert classifier.logits(good).shape == (2, 2)
    with pytest.raises(DataError, match=r"takes \(N, 1, 28, 28\)"):
        classifier.logits(np.zeros((2, 3, 28, 28), dtype=np.float32))
    with pytest.raises(DataError, match=r"takes \(N, 1, 28, 28\); got shape \(2, 1, 32, 32\)"):
        classifier.logits(np.zeros((2, 1, 32, 32), dtype=np.float32))
    with pytest.raises(DataError, match="x\\[None\\]"):
        classifier.logits(np.zeros((1, 28, 28), dtype=np.float32))
    with pytest.raises(DataError, match="float32"):
        classifier.predict_proba(good.astype(np.float64))
    with pytest.raises(DataError, match="NaN"):
        classifier.logits(np.full((1, 1, 28, 28), np.nan, dtype=np.float32))


def test_corrupt_or_missing_file_raises_bundle_error(
    tmp_path: Path, exported: dict[str, tuple[nn.Module, Path]]
) -> None:
    _, path = exported["small_cnn"]
    corrupt = tmp_path / "model.onnx"
    corrupt.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BundleError, match="cannot load"):
        OnnxClassifier(corrupt)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx model at all")
    with pytest.raises(BundleError, match=r"garbage\.onnx"):
        OnnxClassifier(garbage)
    with pytest.raises(BundleError, match="not found"):
        OnnxClassifier(tmp_path / "missing.onnx")


def test_export_failure_leaves_no_file(tmp_path: Path) -> None:
    class Broken(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("cannot trace me")

    target = tmp_path / "broken.onnx"
    with pytest.raises(RuntimeError, match="cannot trace me"):
        export_onnx(Broken(), target, input_shape=(1, 8, 8))
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="positive sizes"):
        export_onnx(Broken(), target, input_shape=(8, 0))
    with pytest.raises(DataError, match="positive sizes"):
        export_onnx(Broken(), target, input_shape=())


def test_export_replaces_an_existing_file_and_honours_opset(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = small_cnn(width=4)
    target = tmp_path / "model.onnx"
    target.write_text("old")
    export_onnx(model, target, input_shape=(1, 16, 16), opset=18)
    proto = onnx.load(str(target))
    assert {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")} == {18}
    x = np.random.default_rng(0).random((3, 1, 16, 16), dtype=np.float32)
    assert max_abs_difference(model, target, x) <= 1e-4


def test_latency_ms_reports_ordered_percentiles() -> None:
    stats = latency_ms(lambda v: sum(range(v)), 100, calls=50, warmup=2)
    assert set(stats) == {"p50", "p95"}
    assert 0 < stats["p50"] <= stats["p95"]
    with pytest.raises(ValueError, match="at least 1"):
        latency_ms(lambda v: v, 1, calls=0)


def test_torchscript_fallback_when_dynamo_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medsight.deploy.onnx as deploy_onnx

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("dynamo exporter unavailable")

    monkeypatch.setattr(deploy_onnx, "_export_dynamo", refuse)
    torch.manual_seed(0)
    model = resnet18_28(in_channels=3, num_classes=3)
    path = export_onnx(model, tmp_path / "fallback.onnx", input_shape=(3, 28, 28))
    assert [p.name for p in tmp_path.iterdir()] == ["fallback.onnx"]
    rng = np.random.default_rng(2)
    for batch in (4, 1):
        x = rng.random((batch, 3, 28, 28), dtype=np.float32)
        assert max_abs_difference(model, path, x) <= 1e-4
