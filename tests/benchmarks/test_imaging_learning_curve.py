"""benchmarks/imaging_learning_curve.py: a power law fitted to held-out error by training size."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared_helpers import benchmark_script, write_fold_file

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "imaging_learning_curve.py"


def test_an_exact_power_law_is_recovered_with_its_size_at_the_target() -> None:
    curve = benchmark_script("imaging_learning_curve")
    sizes = np.array([100.0, 200.0, 400.0, 800.0])
    law = curve.fit_power_law(sizes, 2.0 * sizes**-0.5)
    assert law.a == pytest.approx(2.0) and law.b == pytest.approx(0.5)
    assert law.size_for(0.05) == pytest.approx(1600.0)  # 2 / sqrt(1600) = 0.05
    flat = curve.fit_power_law(sizes, np.full(4, 0.2))
    assert flat.size_for(0.1) == math.inf  # an error that does not fall never reaches it
    assert curve.PowerLaw(0.2, 1e-5).size_for(0.1) == math.inf  # too far for a float


def test_intervals_from_resampled_folds_cover_the_true_exponent() -> None:
    curve = benchmark_script("imaging_learning_curve")
    rng = np.random.default_rng(1)
    groups = []
    for size in (100.0, 200.0, 400.0):
        n = np.full(10, size)
        groups.append((n, 2.0 * n**-0.5 * np.exp(rng.normal(0, 0.05, 10))))
    fit = curve.fit_with_intervals(groups, target_error=0.05)
    low, high = fit["b_ci"]
    assert low < 0.5 < high and high - low < 0.2
    n_low, n_high = fit["n_at_target_ci"]
    assert n_low < fit["n_at_target"] < n_high
    assert n_low < 1600 < n_high


def test_command_line_reads_fold_files_and_draws_the_curve(tmp_path: Path) -> None:
    runs = []
    for n_train, wrong in ((100, 8), (200, 5), (400, 3)):  # error 0.40, 0.25, 0.15 of 20
        folder = tmp_path / f"n{n_train}"
        for fold in range(3):
            write_fold_file(folder, fold, wrong, n_train=n_train + fold)
        runs.append(folder)
    plot = tmp_path / "curve.png"
    command = [sys.executable, str(SCRIPT), "--runs", *map(str, runs), "--plot", str(plot)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert [row["n_train"] for row in result["sizes"]] == [101, 201, 401]
    assert [row["accuracy"] for row in result["sizes"]] == pytest.approx([0.60, 0.75, 0.85])
    fitted = [row["accuracy_fitted"] for row in result["sizes"]]  # the law at the sizes run
    assert fitted == pytest.approx([0.60, 0.75, 0.85], abs=0.03)
    fit = result["fits"]["accuracy"]
    assert 0.5 < fit["b"] < 0.9  # errors 0.40 -> 0.15 over a fourfold size
    assert fit["n_at_target"] > 401  # 0.88 lies beyond the sizes run
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"


def test_fold_files_without_a_training_size_are_refused(tmp_path: Path) -> None:
    curve = benchmark_script("imaging_learning_curve")
    write_fold_file(tmp_path, 0, 4)
    with pytest.raises(SystemExit, match="n_train"):
        curve.learning_curve([tmp_path], 0.88)


def test_one_training_size_is_not_a_curve(tmp_path: Path) -> None:
    curve = benchmark_script("imaging_learning_curve")
    for fold in range(2):
        write_fold_file(tmp_path / "a", fold, 4, n_train=400)
        write_fold_file(tmp_path / "b", fold, 3, n_train=400)
    with pytest.raises(SystemExit, match="two or more training sizes"):
        curve.learning_curve([tmp_path / "a", tmp_path / "b"], 0.88)
