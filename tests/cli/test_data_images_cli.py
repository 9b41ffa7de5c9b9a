"""`medsight data images`: the near-duplicate audit of an image data set from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from medsight.cli.main import app

runner = CliRunner()


def write_npz_with_leak(path: Path) -> Path:
    """MedMNIST-style splits of noise images where test #2 repeats train #5 with another label."""
    rng = np.random.default_rng(0)
    images = {
        name: rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        for name, n in (("train", 30), ("val", 10), ("test", 10))
    }
    labels = {name: (np.arange(len(x)) % 2).reshape(-1, 1) for name, x in images.items()}
    images["test"][2] = images["train"][5]
    labels["test"][2] = 1 - labels["train"][5]
    np.savez(
        path,
        **{f"{k}_images": v for k, v in images.items()},
        **{f"{k}_labels": v for k, v in labels.items()},
    )
    return path


def test_reports_the_leaked_image_and_writes_json_and_figure(tmp_path: Path) -> None:
    data = write_npz_with_leak(tmp_path / "leak.npz")
    out, png = tmp_path / "audit.json", tmp_path / "pairs.png"
    result = runner.invoke(
        app, ["data", "images", str(data), "--json", str(out), "--figure", str(png)]
    )
    assert result.exit_code == 0, result.output
    assert "1 of 10 test images have a near-duplicate" in " ".join(result.output.split())
    payload = json.loads(out.read_text())
    assert payload["pairs"][0] == {
        "first": ["train", 5],
        "second": ["test", 2],
        "correlation": 1.0,
        "same_label": False,
    }
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_clean_data_set_writes_no_figure(tmp_path: Path) -> None:
    png = tmp_path / "pairs.png"
    result = runner.invoke(app, ["data", "images", "phantom", "--figure", str(png)])
    assert result.exit_code == 0, result.output
    assert "0 of" in result.output and "no figure written" in result.output
    assert not png.exists()


def test_bad_threshold_is_a_clear_error(tmp_path: Path) -> None:
    data = write_npz_with_leak(tmp_path / "leak.npz")
    result = runner.invoke(app, ["data", "images", str(data), "--threshold", "1.5"])
    assert result.exit_code != 0
    assert "threshold must be in (0, 1)" in result.output + str(result.exception)
