"""The command line end to end on a small synthetic table, in subprocesses as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

FAST = """
data:
  target: disease
  patient_id: patient_id
evaluation:
  folds: 3
  repeats: 1
  inner_folds: 2
  n_bootstrap: 200
  explain_rows: 20
"""


def medsight(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "medsight", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from medsight.data.synthetic import make_risk_table

    root = tmp_path_factory.mktemp("cli")
    make_risk_table(150, seed=3).to_csv(root / "train.csv", index=False)
    make_risk_table(60, seed=4).to_csv(root / "external.csv", index=False)
    (root / "fast.yaml").write_text(FAST)
    result = medsight(
        "train",
        "-c",
        "fast.yaml",
        "--data",
        "train.csv",
        "--output",
        "runs",
        "--name",
        "risk",
        cwd=root,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    runs = list((root / "runs").iterdir())
    assert len(runs) == 1
    return root, runs[0], root / "external.csv"


def test_train_writes_complete_run(trained: tuple[Path, Path, Path]) -> None:
    _, run, _ = trained
    for name in (
        "report.html",
        "metrics.json",
        "config.yaml",
        "quality.json",
        "oof_predictions.csv",
    ):
        assert (run / name).is_file(), name
    for name in ("bundle.json", "model.joblib", "schema.yaml", "model_card.md"):
        assert (run / "bundle" / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    auroc = metrics["model"]["auroc"]
    assert auroc["lo"] <= auroc["value"] <= auroc["hi"]
    assert auroc["value"] > 0.6  # the synthetic outcome is learnable
    html = (run / "report.html").read_text()
    assert "data:image/png;base64," in html and "Subgroups" in html
    card = (run / "bundle" / "model_card.md").read_text()
    assert "## Intended use" in card and "## Subgroups" in card


def test_evaluate_and_predict(trained: tuple[Path, Path, Path]) -> None:
    root, run, external = trained
    shown = medsight("evaluate", run, cwd=root)
    assert shown.returncode == 0, shown.stderr
    assert "AUROC" in shown.stdout

    validated = medsight("evaluate", run, "--data", external, "--n-bootstrap", "200", cwd=root)
    assert validated.returncode == 0, validated.stderr
    assert list((run / "evaluations").glob("*/report.html"))

    patients = pd.read_csv(external).drop(columns="disease").head(4)
    patients.to_csv(root / "patients.csv", index=False)
    predicted = medsight(
        "predict", run / "bundle", "patients.csv", "--output", "out.json", cwd=root
    )
    assert predicted.returncode == 0, predicted.stderr
    results = json.loads((root / "out.json").read_text())
    assert [r["row"] for r in results] == [1, 2, 3, 4]
    assert all(0.0 <= r["probability"] <= 1.0 and r["prediction"] in ("yes", "no") for r in results)
    assert all(len(r["contributions"]) == 5 for r in results)


def _assert_clean_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_predict_rejects_bad_row(trained: tuple[Path, Path, Path]) -> None:
    root, run, external = trained
    patients = pd.read_csv(external).drop(columns="disease").head(5).astype({"cholesterol": object})
    patients.loc[2, "cholesterol"] = "high"
    patients.to_csv(root / "bad_patients.csv", index=False)
    result = medsight("predict", run, "bad_patients.csv", cwd=root)
    _assert_clean_error(result, "row 3", "'cholesterol'", "'high'")


def _bad_inputs(root: Path) -> dict[str, tuple[list[str], tuple[str, ...]]]:
    from medsight.data.synthetic import make_risk_table

    table = make_risk_table(60, seed=5)
    table.to_csv(root / "ok.csv", index=False)
    text = table.astype({"age": object})
    text.loc[9, "age"] = "unknown"
    text.to_csv(root / "text.csv", index=False)
    (root / "empty.csv").write_bytes(b"")
    table.assign(disease="yes").to_csv(root / "one_class.csv", index=False)
    (root / "image.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (root / "typo.yaml").write_text("data:\n  target: disease\nevaluaton:\n  folds: 3\n")
    common = ["--output", "runs"]
    return {
        "missing column": (
            ["train", "--data", "ok.csv", "--target", "outcome", *common],
            ("'outcome'", "not found"),
        ),
        "text in numeric": (
            ["train", "--data", "text.csv", "--target", "disease", *common],
            ("'age'", "row 10", "'unknown'"),
        ),
        "empty file": (
            ["train", "--data", "empty.csv", "--target", "disease", *common],
            ("empty.csv", "empty"),
        ),
        "single class": (
            ["train", "--data", "one_class.csv", "--target", "disease", *common],
            ("single class",),
        ),
        "binary file": (
            ["train", "--data", "image.csv", "--target", "disease", *common],
            ("image.csv", "binary"),
        ),
        "unknown key": (
            ["train", "-c", "typo.yaml", "--data", "ok.csv", *common],
            ("unknown key 'evaluaton'",),
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing column",
        "text in numeric",
        "empty file",
        "single class",
        "binary file",
        "unknown key",
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path: Path, case: str) -> None:
    args, needles = _bad_inputs(tmp_path)[case]
    result = medsight(*args, cwd=tmp_path)
    _assert_clean_error(result, *needles)
    runs = tmp_path / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_data_check_reports(tmp_path: Path) -> None:
    from medsight.data.synthetic import make_risk_table

    make_risk_table(80, seed=6).to_csv(tmp_path / "t.csv", index=False)
    result = medsight(
        "data", "check", "t.csv", "--target", "disease", "--json", "q.json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "80 rows" in result.stdout
    report = json.loads((tmp_path / "q.json").read_text())
    assert report["n_rows"] == 80 and sum(report["class_balance"].values()) == 80
