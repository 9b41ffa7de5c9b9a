"""benchmarks/scattering_members.py: the shared and separate forwards agree; both are timed."""

from __future__ import annotations

from shared_helpers import benchmark_script


def test_shared_and_separate_members_give_the_same_output_and_both_are_timed() -> None:
    result = benchmark_script("scattering_members").run("phantom", calls=3, map_calls=1)
    assert result["max_abs_diff"] <= 1e-6
    for name in ("shared", "separate"):
        assert {"onnx_ms", "torch_ms", "map_ms"} <= result[name].keys()
        assert 0 < result[name]["onnx_ms"]["p50"] <= result[name]["onnx_ms"]["p95"]
    assert result["onnx_p50_speedup"] > 0 and result["map_p50_speedup"] > 0
