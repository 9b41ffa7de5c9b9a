"""`run_ecg` on a synthetic PhysioNet/CinC 2017-style folder: the run folder, its metrics, report,
explanations and bundle, and bad input that must fail cleanly without leaving a run folder."""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medsight.bundle.ecg import EcgBundle
from medsight.config import (
    EcgDataConfig,
    EcgEvaluationConfig,
    EcgModelConfig,
    EcgTrainConfig,
    load_config,
)
from medsight.errors import ConfigError, DataError
from medsight.evaluate.rhythm import challenge_score, rhythm_metrics_with_ci
from medsight.tasks.ecg_data import load_rhythm_folder
from medsight.tasks.ecg_run import EXPLAIN_CASES, EcgRunResult, run_ecg

FS = 300
KINDS = {"N": (70, 0.01), "A": (130, 0.05), "O": (45, 0.02), "~": (80, 0.8)}  # rate, noise


def write_rhythm_folder(folder: Path, per_class: int) -> Path:
    """Single-lead WFDB records (.dat) of 10-14 s and a REFERENCE.csv, ``per_class`` per label."""
    import neurokit2 as nk
    import wfdb

    rows = ["record,label"]
    for k, (label, (rate, noise)) in enumerate(KINDS.items()):
        for i in range(per_class):
            seed = 10 * k + i
            x = nk.ecg_simulate(
                duration=10 + 2 * (i % 3), sampling_rate=FS, heart_rate=rate + i, random_state=seed
            )
            x = x + noise * np.random.default_rng(seed).normal(size=x.size)
            name = f"S{k}{i:02d}"
            wfdb.wrsamp(
                name,
                fs=FS,
                units=["mV"],
                sig_name=["I"],
                p_signal=x[:, None],
                fmt=["16"],
                write_dir=str(folder),
            )
            rows.append(f"{name},{label}")
    (folder / "REFERENCE.csv").write_text("\n".join(rows) + "\n")
    return folder


def tiny_config(folder: Path | None, output: Path, model: str = "ecg_resnet1d") -> EcgTrainConfig:
    """A run that trains in seconds: width-4 network, 2 epochs, 8 s crops, 200 bootstraps."""
    config = EcgTrainConfig(
        name="tiny",
        output_dir=output,
        data=EcgDataConfig(
            path=None if folder is None else str(folder),
            crop_seconds=8,
            hop_seconds=4,
            val_fraction=0.25,
            test_fraction=0.25,
        ),
        model=EcgModelConfig(
            name=model, params={"width": 4} if model != "ecg_hrv_lightgbm" else {}
        ),
        evaluation=EcgEvaluationConfig(n_bootstrap=200),
    )
    config.engine.epochs = 2
    return config


@pytest.fixture(scope="module")
def rhythm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_rhythm_folder(tmp_path_factory.mktemp("rhythm"), per_class=8)


@pytest.fixture(scope="module")
def network_run(rhythm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> EcgRunResult:
    output = tmp_path_factory.mktemp("runs")
    return run_ecg(tiny_config(rhythm_dir, output), progress=False)


def _predictions(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "test_predictions.csv", keep_default_na=False)


def _probabilities(table: pd.DataFrame, classes: list[str]) -> np.ndarray:
    return table[[f"p_{name}" for name in classes]].to_numpy()


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


def _bundle_matches_csv(run: Path, rhythm_dir: Path) -> None:
    bundle = EcgBundle.load(run / "bundle")
    table = _predictions(run)
    data = load_rhythm_folder(rhythm_dir, fs=bundle.fs)
    signals = [data.signals[data.names.index(name)] for name in table["record"]]
    expected = _probabilities(table, bundle.class_names)
    assert np.abs(bundle.predict_signals(signals) - expected).max() < 1e-4


def test_run_folder_holds_everything(network_run: EcgRunResult, rhythm_dir: Path) -> None:
    run = network_run.run_dir
    assert run.name.startswith("tiny-")
    assert [p.name for p in run.parent.iterdir()] == [run.name]  # no staging folder left behind
    for name in (
        "report.html",
        "metrics.json",
        "val_metrics.json",
        "config.yaml",
        "test_predictions.csv",
        "confusion_matrix.csv",
        "history.csv",
        "confusion_matrix.png",
        "training.png",
        "bundle/bundle.json",
        "bundle/model.onnx",
        "bundle/model_card.md",
    ):
        assert (run / name).is_file(), name
    assert load_config(run / "config.yaml") == tiny_config(rhythm_dir, run.parent)
    history = pd.read_csv(run / "history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert network_run.report_path == run / "report.html"
    assert network_run.bundle_path == run / "bundle"


def test_metrics_json_equals_what_the_predictions_give(network_run: EcgRunResult) -> None:
    run = network_run.run_dir
    table = _predictions(run)
    classes = network_run.splits.test.class_names
    assert list(table["record"]) == network_run.splits.test.names
    assert set(table["record"]).isdisjoint(network_run.splits.train.names)
    labels = np.array([classes.index(label) for label in table["label"]])
    probabilities = _probabilities(table, classes)
    assert list(table["predicted"]) == [classes[i] for i in probabilities.argmax(axis=1)]
    recomputed = rhythm_metrics_with_ci(labels, probabilities, classes, n_boot=200, seed=0)
    saved = json.loads((run / "metrics.json").read_text())
    assert set(saved) == set(recomputed)
    for key, estimate in recomputed.items():
        for part in ("value", "lo", "hi"):
            assert _same(saved[key][part], getattr(estimate, part)), (key, part)
    score, f1 = challenge_score(labels, probabilities, classes)
    assert saved["challenge_score"]["value"] == pytest.approx(score)
    assert saved["N/f1"]["value"] == pytest.approx(f1["N"], nan_ok=True)
    assert saved["accuracy"]["value"] == pytest.approx(
        (table["label"] == table["predicted"]).mean()
    )
    bundle_metrics = json.loads((run / "bundle" / "bundle.json").read_text())["metrics"]
    assert bundle_metrics["challenge_score"] == saved["challenge_score"]

    confusion = pd.read_csv(run / "confusion_matrix.csv", index_col=0)
    counts = pd.crosstab(table["label"], table["predicted"]).reindex(
        index=classes, columns=classes, fill_value=0
    )
    assert (confusion.to_numpy() == counts.to_numpy()).all()
    assert confusion.to_numpy().sum() == len(table) == 8

    val = json.loads((run / "val_metrics.json").read_text())
    expected_val = rhythm_metrics_with_ci(
        network_run.splits.val.labels,
        network_run.trained.val_probabilities,
        classes,
        n_boot=200,
        seed=0,
    )
    assert _same(val["challenge_score"]["value"], expected_val["challenge_score"].value)


def test_report_shows_attribution_strips_for_correct_and_wrong_records(
    network_run: EcgRunResult,
) -> None:
    run = network_run.run_dir
    html = (run / "report.html").read_text()
    table = _predictions(run).set_index("record")
    right = table["label"] == table["predicted"]
    strips = sorted((run / "explanations").glob("*.png"))
    correct = [p for p in strips if p.name.startswith("correct-")]
    wrong = [p for p in strips if p.name.startswith("wrong-")]
    assert len(correct) == min(EXPLAIN_CASES, int(right.sum()))
    assert len(wrong) == min(EXPLAIN_CASES, int((~right).sum()))
    assert correct and wrong, "this seed gives both correct and wrong test records"
    for path in strips:
        record = path.stem.split("-", 1)[1]
        assert bool(right[record]) == path.name.startswith("correct-")
        assert base64.b64encode(path.read_bytes()).decode() in html
        with Image.open(path) as image:
            assert image.width > 400 and image.height > 150
    assert "Explanations" in html and "Integrated Gradients" in html
    assert html.count("<figcaption>WRONG: ") == len(wrong)
    assert html.count("<figcaption>correct: ") == len(correct)
    for name in ("confusion_matrix.png", "training.png"):
        assert base64.b64encode((run / name).read_bytes()).decode() in html
    assert "Challenge score (mean F1 of N, A, O)" in html and "Records per class" in html


def test_bundle_in_the_run_folder_predicts_the_csv_probabilities(
    network_run: EcgRunResult, rhythm_dir: Path
) -> None:
    _bundle_matches_csv(network_run.run_dir, rhythm_dir)


def test_lightgbm_run_explains_by_feature_importance(rhythm_dir: Path, tmp_path: Path) -> None:
    result = run_ecg(tiny_config(rhythm_dir, tmp_path, "ecg_hrv_lightgbm"), progress=False)
    run = result.run_dir
    assert (run / "bundle" / "model.txt").is_file() and not (run / "history.csv").exists()
    assert [p.name for p in (run / "explanations").iterdir()] == ["feature_importance.png"]
    html = (run / "report.html").read_text()
    png = (run / "explanations" / "feature_importance.png").read_bytes()
    assert base64.b64encode(png).decode() in html and "feature importance" in html.lower()
    assert "WRONG: " not in html
    _bundle_matches_csv(run, rhythm_dir)


def _assert_no_run_folder(output: Path) -> None:
    assert not output.exists() or not any(output.iterdir())


def test_missing_reference_empty_or_absent_folder_is_a_clear_error(
    rhythm_dir: Path, tmp_path: Path
) -> None:
    output = tmp_path / "runs"
    no_reference = tmp_path / "no_reference"
    no_reference.mkdir()
    for path in rhythm_dir.glob("S0*"):
        (no_reference / path.name).write_bytes(path.read_bytes())
    with pytest.raises(DataError, match=r"no REFERENCE\.csv"):
        run_ecg(tiny_config(no_reference, output), progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"REFERENCE\.csv"):
        run_ecg(tiny_config(empty, output), progress=False)
    with pytest.raises(DataError, match="folder not found"):
        run_ecg(tiny_config(tmp_path / "absent", output), progress=False)
    with pytest.raises(ConfigError, match="--data"):
        run_ecg(tiny_config(None, output), progress=False)
    (empty / "REFERENCE.csv").write_text("record,label\n")
    with pytest.raises(DataError, match="no rows"):
        run_ecg(tiny_config(empty, output), progress=False)
    _assert_no_run_folder(output)


def test_too_few_records_or_a_non_ecg_model_is_refused(rhythm_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "runs"
    small = tmp_path / "small"
    small.mkdir()
    for path in [*rhythm_dir.glob("S000.*"), *rhythm_dir.glob("S100.*")]:
        (small / path.name).write_bytes(path.read_bytes())
    (small / "REFERENCE.csv").write_text("S000,N\nS100,A\n")
    with pytest.raises(DataError, match="too few to split"):
        run_ecg(tiny_config(small, output), progress=False)
    with pytest.raises(ConfigError, match="ECG models"):
        run_ecg(tiny_config(rhythm_dir, output, "small_cnn"), progress=False)
    _assert_no_run_folder(output)


def test_failure_while_writing_leaves_no_run_folder(
    network_run: EcgRunResult, rhythm_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import medsight.tasks.ecg_run as ecg_run
    import medsight.tasks.ecg_run_report as ecg_run_report

    def broken_report(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(ecg_run, "train_rhythm_model", lambda *a, **k: network_run.trained)
    monkeypatch.setattr(ecg_run_report, "build_ecg_report", broken_report)
    output = tmp_path / "runs"
    with pytest.raises(RuntimeError, match="disk full"):
        run_ecg(tiny_config(rhythm_dir, output), progress=False)
    assert list(output.iterdir()) == []  # the staged folder, bundle included, was removed
