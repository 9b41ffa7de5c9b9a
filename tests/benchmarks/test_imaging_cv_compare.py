"""benchmarks/imaging_cv_compare.py: the adoption rule applied to two recipes' fold files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shared_helpers import benchmark_script, write_fold_file

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "imaging_cv_compare.py"


def _recipe(root: Path, name: str, errors: list[list[int]]) -> list[Path]:
    """One folder per fold set, each fold with the given number of wrong images."""
    folders = []
    for index, per_fold in enumerate(errors):
        folder = root / f"{name}{index}"
        for fold, wrong in enumerate(per_fold):
            write_fold_file(folder, fold, wrong)
        folders.append(folder)
    return folders


def test_a_candidate_better_on_every_fold_set_is_adopted(tmp_path: Path) -> None:
    compare = benchmark_script("imaging_cv_compare")
    base = _recipe(tmp_path, "base", [[4, 4], [4, 4]])
    candidate = _recipe(tmp_path, "cand", [[3, 3], [2, 3]])  # 1 and 1.5 fewer errors of 20
    result = compare.compare(base, candidate, compare.Rule())
    assert result["folds"] == 4
    assert result["pooled"]["base"]["accuracy"] == pytest.approx(0.8)
    assert result["delta"]["accuracy"] == pytest.approx(0.0625)
    assert result["delta"]["accuracy_novel"] == pytest.approx(1.25 / 16)
    assert result["adopt"] and "accuracy" in result["carried_by"]
    assert result["fold_sets"][1]["delta"]["accuracy"] == pytest.approx(0.075)


def test_a_pooled_gain_from_one_fold_set_only_is_not_adopted(tmp_path: Path) -> None:
    compare = benchmark_script("imaging_cv_compare")
    base = _recipe(tmp_path, "base", [[4, 4], [4, 4]])
    candidate = _recipe(tmp_path, "cand", [[0, 0], [4, 5]])  # a big gain, then a small loss
    result = compare.compare(base, candidate, compare.Rule())
    assert result["delta"]["accuracy"] > 0.010 and result["delta"]["auroc"] > 0.005
    assert not result["adopt"] and result["carried_by"] == []


def test_folds_of_different_images_are_refused(tmp_path: Path) -> None:
    compare = benchmark_script("imaging_cv_compare")
    base = _recipe(tmp_path, "base", [[4, 4]])
    other = tmp_path / "other"
    write_fold_file(other, 0, 4)
    write_fold_file(other, 1, 4, labels=np.tile([1, 0], 10))
    with pytest.raises(SystemExit, match="different held-out images"):
        compare.compare(base, [other], compare.Rule())
    missing = tmp_path / "missing"
    write_fold_file(missing, 0, 4)
    with pytest.raises(SystemExit, match="not the same folds"):
        compare.compare(base, [missing], compare.Rule())


def test_command_line_prints_one_json_line(tmp_path: Path) -> None:
    base = _recipe(tmp_path, "base", [[4, 4]])
    candidate = _recipe(tmp_path, "cand", [[2, 2]])
    command = [sys.executable, str(SCRIPT), "--base", *map(str, base)]
    command += ["--candidate", *map(str, candidate), "--accuracy-gain", "0.2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rule"]["accuracy_gain"] == 0.2
    assert result["carried_by"] == ["auroc"]  # +0.1 accuracy is short of 0.2; AUROC carries
