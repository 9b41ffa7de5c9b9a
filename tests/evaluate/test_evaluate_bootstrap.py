from __future__ import annotations

import math
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medsight.errors import ConfigError, DataError
from medsight.evaluate import (
    BINARY_METRICS,
    Estimate,
    binary_metrics,
    binary_metrics_with_ci,
    bootstrap_ci,
    multiclass_metrics,
    multiclass_metrics_with_ci,
)


def _data(seed: int, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)


def test_estimate_formatting_and_dict() -> None:
    estimate = Estimate(0.9123, 0.8811, 0.9404)
    assert str(estimate) == "0.912 (0.881–0.940)"
    assert estimate.to_dict() == {"value": 0.9123, "lo": 0.8811, "hi": 0.9404}
    assert Estimate(**estimate.to_dict()) == estimate


def test_scalar_statistic_and_reproducibility() -> None:
    values = np.random.default_rng(0).normal(size=300)
    first = bootstrap_ci(lambda i: float(values[i].mean()), values.size, n_boot=300, seed=1)
    again = bootstrap_ci(lambda i: float(values[i].mean()), values.size, n_boot=300, seed=1)
    assert isinstance(first, Estimate)
    assert first == again
    assert first.value == pytest.approx(values.mean())
    half_width = 1.96 * values.std() / math.sqrt(values.size)
    assert first.hi - first.lo == pytest.approx(2 * half_width, rel=0.25)


def test_cluster_bootstrap_keeps_groups_together() -> None:
    groups = np.repeat(np.arange(30), 4)  # 30 patients, 4 rows each
    seen: list[np.ndarray] = []

    def statistic(index: np.ndarray) -> float:
        seen.append(index)
        return float(index.size)

    bootstrap_ci(statistic, groups.size, groups=groups, n_boot=50, seed=0)
    for index in seen[1:]:
        counts = np.bincount(index, minlength=groups.size)
        # Every row of a patient is drawn as often as every other row of that patient.
        per_patient = counts.reshape(30, 4)
        assert (per_patient == per_patient[:, :1]).all()
        assert index.size == groups.size  # equal-sized clusters → same total


def test_cluster_bootstrap_widens_interval_for_duplicated_rows() -> None:
    y, p = _data(1, n=150)
    rows = binary_metrics_with_ci(y, p, n_boot=300)
    # Each patient contributes 4 identical rows: resampling rows would understate uncertainty.
    y4, p4, groups = np.repeat(y, 4), np.repeat(p, 4), np.repeat(np.arange(150), 4)
    naive = binary_metrics_with_ci(y4, p4, n_boot=300)
    clustered = binary_metrics_with_ci(y4, p4, groups=groups, n_boot=300)
    width = {
        name: result["auroc"].hi - result["auroc"].lo
        for name, result in {"rows": rows, "naive": naive, "clustered": clustered}.items()
    }
    assert width["clustered"] == pytest.approx(width["rows"], rel=0.3)
    assert width["clustered"] > 1.5 * width["naive"]


def test_nan_resamples_are_skipped_and_too_many_give_nan_interval() -> None:
    y = np.array([1] * 2 + [0] * 40)
    p = np.linspace(0, 1, y.size)
    result = binary_metrics_with_ci(y, p, n_boot=200)
    # With 2 positives in 42 rows about 1 resample in 7 has none: skipped, the CI remains.
    assert not math.isnan(result["sensitivity"].lo)
    always_nan = bootstrap_ci(lambda i: math.nan if i.size else 0.0, 10, n_boot=20)
    assert math.isnan(always_nan.lo) and math.isnan(always_nan.hi)


def test_dict_statistic_gives_estimate_per_key() -> None:
    y, p = _data(2)
    result = binary_metrics_with_ci(y, p, 0.5, n_boot=100)
    assert list(result) == list(BINARY_METRICS)
    point = binary_metrics(y, p, 0.5)
    for name, estimate in result.items():
        assert estimate.value == pytest.approx(point[name])
        assert estimate.lo <= estimate.value <= estimate.hi


def test_repeats_value_is_mean_of_per_repeat_metrics() -> None:
    y, p = _data(3)
    rng = np.random.default_rng(9)
    repeats = np.clip(p + rng.normal(0, 0.05, size=(3, p.size)), 0, 1)
    thresholds = rng.choice([0.4, 0.5, 0.6], size=repeats.shape)
    result = binary_metrics_with_ci(y, repeats, thresholds, n_boot=50)
    for name in BINARY_METRICS:
        per_repeat = [binary_metrics(y, repeats[r], thresholds[r])[name] for r in range(3)]
        assert result[name].value == pytest.approx(np.mean(per_repeat)), name
    # A per-row threshold (n,) applies to every repeat.
    per_row = thresholds[0]
    result = binary_metrics_with_ci(y, repeats, per_row, n_boot=20)
    expected = np.mean([binary_metrics(y, r, per_row)["sensitivity"] for r in repeats])
    assert result["sensitivity"].value == pytest.approx(expected)


def test_multiclass_with_ci_and_repeats() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 150)
    prob = rng.dirichlet(np.ones(3), size=(2, 150)) * 0.5 + 0.5 * np.eye(3)[y]
    result = multiclass_metrics_with_ci(y, prob, ["a", "b", "c"], n_boot=50)
    per_repeat = [multiclass_metrics(y, prob[r], ["a", "b", "c"]) for r in range(2)]
    for name in ("accuracy", "macro_auroc", "b/ppv"):
        assert result[name].value == pytest.approx(np.mean([m[name] for m in per_repeat]))
        assert result[name].lo <= result[name].value <= result[name].hi


def test_bad_arguments() -> None:
    y, p = _data(0, n=20)
    with pytest.raises(ConfigError):
        binary_metrics_with_ci(y, p, n_boot=0)
    with pytest.raises(ConfigError):
        binary_metrics_with_ci(y, p, alpha=1.5)
    with pytest.raises(DataError):
        binary_metrics_with_ci(y, p, groups=np.arange(5))
    with pytest.raises(DataError):
        binary_metrics_with_ci(y, np.vstack([p, p]), np.zeros((3, 20)))


def test_thousand_resamples_are_fast() -> None:
    y, p = _data(4, n=600)
    start = time.process_time()
    binary_metrics_with_ci(y, p, n_boot=1000)
    assert time.process_time() - start < 3.0


@st.composite
def binary_data(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    n = draw(st.integers(20, 200))
    n_pos = draw(st.integers(3, n - 3))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.r_[np.ones(n_pos, int), np.zeros(n - n_pos, int)])
    signal = draw(st.floats(0.0, 0.6))
    p = np.clip(rng.normal(0.5 + signal * (y - 0.5), 0.2), 0, 1)
    if draw(st.booleans()):
        p = np.round(p, 1)  # heavy ties
    return y, p, seed


@settings(max_examples=25, deadline=None)
@given(binary_data())
def test_interval_contains_point(data: tuple[np.ndarray, np.ndarray, int]) -> None:
    y, p, seed = data
    for name, estimate in binary_metrics_with_ci(y, p, n_boot=200, seed=seed).items():
        if not math.isnan(estimate.lo):
            assert estimate.lo <= estimate.value <= estimate.hi, (name, estimate)


def test_interval_is_widened_to_contain_a_biased_point() -> None:
    # |mean| of values whose mean is exactly 0: every resample is > 0, so the raw percentile
    # interval excludes the point (as ECE's can: resampling noise only adds miscalibration).
    values = np.r_[np.linspace(-1, 1, 51)]
    estimate = bootstrap_ci(lambda i: abs(float(values[i].mean())), values.size, n_boot=200)
    assert estimate.value == pytest.approx(0.0, abs=1e-12)
    assert estimate.lo == estimate.value < estimate.hi
