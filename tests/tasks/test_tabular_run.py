"""The tabular task end to end in-process: run folder, bundle round-trip, explanations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medsight.bundle.tabular import TabularBundle
from medsight.config import DataConfig, EvaluationConfig, ModelConfig, TrainConfig
from medsight.data.synthetic import make_risk_table
from medsight.errors import BundleError
from medsight.explain.tabular import explain_pipeline
from medsight.tasks.tabular import run_tabular


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("run")
    frame = make_risk_table(180, seed=11)
    config = TrainConfig(
        name="synthetic",
        data=DataConfig(target="disease", patient_id="patient_id"),
        model=ModelConfig(name="logistic"),
        evaluation=EvaluationConfig(
            folds=3, repeats=2, inner_folds=2, n_bootstrap=200, explain_rows=30
        ),
        output_dir=root,
    )
    return run_tabular(config, frame=frame), frame


def test_run_folder_is_complete_and_metrics_have_cis(run) -> None:
    result, _ = run
    assert result.run_dir.is_dir() and result.report_path.is_file()
    assert not [p for p in result.run_dir.parent.iterdir() if p.name.startswith(".")]
    for name, estimate in result.model.metrics.items():
        if not np.isnan(estimate.value):
            assert estimate.lo <= estimate.value <= estimate.hi, name
    assert result.model.cv.probabilities.shape == (2, 180)
    assert not np.isnan(result.model.cv.probabilities).any()
    # default subgroups found by column name: sex, and age cut into bands
    assert {"sex", "age band"} <= set(result.subgroups["variable"])


def test_bundle_round_trip_gives_identical_predictions(run, tmp_path: Path) -> None:
    result, _frame = run
    bundle = TabularBundle.load(result.bundle_path)
    new = make_risk_table(25, seed=99).drop(columns="disease")
    before = bundle.predict(new, explain=False)
    copy = bundle.save(tmp_path / "copy")
    after = TabularBundle.load(copy).predict(new, explain=False)
    assert before == after
    assert bundle.metadata["data_fingerprint"]["rows"] == 180
    assert bundle.metadata["seed"] == 0 and "scikit-learn" in bundle.metadata["package_versions"]
    assert set(bundle.metadata["metrics"]) >= {"auroc", "sensitivity", "ece"}


def test_tampered_bundle_refused(run, tmp_path: Path) -> None:
    result, _ = run
    copy = TabularBundle.load(result.bundle_path).save(tmp_path / "b")
    with (copy / "model.joblib").open("ab") as handle:
        handle.write(b"x")
    with pytest.raises(BundleError, match="checksum"):
        TabularBundle.load(copy)


def test_shap_values_add_up_to_the_prediction(run) -> None:
    result, _ = run
    bundle = TabularBundle.load(result.bundle_path)
    rows = make_risk_table(5, seed=7)[bundle.schema.feature_columns]
    explanation = explain_pipeline(bundle.model.pipeline, rows, bundle.background, bundle.sources)
    assert list(explanation.values.columns) == bundle.schema.feature_columns or set(
        explanation.values.columns
    ) <= set(bundle.schema.feature_columns)
    total = explanation.values.sum(axis=1).to_numpy() + explanation.base_value
    np.testing.assert_allclose(total, bundle.model.predict_proba(rows), atol=1e-6)


def test_predict_reports_imputed_columns(run) -> None:
    result, _ = run
    bundle = TabularBundle.load(result.bundle_path)
    rows = make_risk_table(3, seed=8).drop(columns="disease")
    rows["systolic_bp"] = 130.0  # no "missing" code (0) in these rows
    rows.loc[1, "cholesterol"] = np.nan
    out = bundle.predict(rows, top_k=3)
    assert out[1]["imputed"] == ["cholesterol"]
    assert len(out[0]["contributions"]) == 3
    assert all(isinstance(c["feature"], str) for c in out[0]["contributions"])


def test_failed_run_leaves_nothing(tmp_path: Path) -> None:
    frame = make_risk_table(60, seed=1)
    config = TrainConfig(
        data=DataConfig(target="disease"),
        model=ModelConfig(name="no-such-model"),
        evaluation=EvaluationConfig(folds=3, repeats=1),
        output_dir=tmp_path / "runs",
    )
    with pytest.raises(Exception, match="unknown model"):
        run_tabular(config, frame=frame)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    pd.testing.assert_frame_equal(frame, make_risk_table(60, seed=1))  # input untouched
