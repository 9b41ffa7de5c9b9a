"""The tabular fast path answers exactly as the DataFrame path: same checks, messages, results."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medsight.bundle.forests import sequential_forests
from medsight.bundle.tabular import TabularBundle
from medsight.data.rows import RowValidator
from medsight.data.schema import ColumnRole, ColumnSpec, TableSchema, validate_frame
from medsight.data.synthetic import make_risk_table
from medsight.errors import SchemaError

SCHEMA = TableSchema(
    target="disease",
    classes=["no", "yes"],
    positive_class="yes",
    columns={
        "age": ColumnSpec(role=ColumnRole.NUMERIC, min=0, max=120),
        "bp": ColumnSpec(role=ColumnRole.NUMERIC, missing_values=[0.0], min=40, max=250),
        "code": ColumnSpec(role=ColumnRole.NUMERIC, missing_values=["?", -1.0]),
        "sex": ColumnSpec(role=ColumnRole.CATEGORICAL, categories=["female", "male"]),
        "pain": ColumnSpec(role=ColumnRole.CATEGORICAL, categories=["1", "2", "3"]),
        "grade": ColumnSpec(
            role=ColumnRole.CATEGORICAL, categories=["1", "2"], missing_values=["9"]
        ),
        "free": ColumnSpec(role=ColumnRole.CATEGORICAL),  # no category list: anything goes
        "note": ColumnSpec(role=ColumnRole.IGNORE),
        "disease": ColumnSpec(role=ColumnRole.TARGET),
    },
)
VALID = {
    "age": 61,
    "bp": 142.0,
    "code": 3,
    "sex": "male",
    "pain": 2,
    "grade": "1",
    "free": "x",
    "note": "n",
}
# values JSON can carry (and a NaN, as pandas may hand over), valid and invalid for the columns
CELLS: list[Any] = [
    None,
    float("nan"),
    0,
    0.0,
    -1,
    -1.0,
    1,
    1.0,
    2,
    2.5,
    3.0,
    9,
    39.9,
    40,
    250,
    251,
    121,
    -0.5,
    1e300,
    float("inf"),
    float("-inf"),
    True,
    False,
    "",
    "?",
    "0",
    "0.0",
    "2",
    "2.0",
    "9",
    "61",
    " 61 ",
    "1e2",
    "abc",
    "nan",
    "inf",
    "male",
    "Male",
    "female",
    "x",
]


def _frame_answer(row: dict[str, Any], where: str = "row") -> list[str] | str:
    try:
        return validate_frame(pd.DataFrame.from_records([row]), SCHEMA, where=where)[0]
    except SchemaError as exc:
        return f"SchemaError: {exc}"


def _row_answer(
    validator: RowValidator, row: dict[str, Any], where: str = "row"
) -> list[str] | str:
    try:
        return validator.validate(row, where=where)
    except SchemaError as exc:
        return f"SchemaError: {exc}"


def test_every_cell_in_every_column_is_judged_as_the_frame_path_judges_it() -> None:
    validator = RowValidator(SCHEMA)
    judged = {"ok": 0, "error": 0}
    for column, value in itertools.product(list(VALID), CELLS):
        row = {**VALID, column: value}
        expected = _frame_answer(row)
        assert _row_answer(validator, row) == expected, (column, value)
        judged["error" if isinstance(expected, str) else "ok"] += 1
    assert judged["ok"] > 50 and judged["error"] > 50  # both kinds were exercised


def test_several_problems_report_the_first_column_as_the_frame_path_does() -> None:
    validator = RowValidator(SCHEMA)
    rng = np.random.default_rng(0)
    for _ in range(400):
        row = {name: CELLS[rng.integers(len(CELLS))] for name in VALID}
        assert _row_answer(validator, row, "input") == _frame_answer(row, "input"), row


def test_missing_columns_are_named_with_the_columns_that_were_sent() -> None:
    validator = RowValidator(SCHEMA)
    row = {k: v for k, v in VALID.items() if k not in ("bp", "pain")}
    answer = _row_answer(validator, row)
    assert answer == _frame_answer(row)
    assert "'bp', 'pain' not found in row" in answer
    wide = {f"extra{i}": i for i in range(25)} | {"age": 50}
    assert _row_answer(validator, wide) == _frame_answer(wide)
    assert _row_answer(validator, wide).endswith(" ....")


def test_empty_cells_and_missing_codes_are_listed_for_imputation() -> None:
    row = {**VALID, "bp": 0, "code": "?", "grade": "9", "free": None}
    assert RowValidator(SCHEMA).validate(row) == ["bp", "code", "grade", "free"]


@pytest.fixture(scope="module")
def risk_rows() -> list[dict[str, Any]]:
    """Rows of the synthetic table as JSON sends them, some with empty cells and missing codes."""
    frame = make_risk_table(60, seed=11).drop(columns=["disease"])
    rows = frame.to_dict("records")
    for i, row in enumerate(rows):
        if i % 5 == 0:
            row["cholesterol"] = None
        if i % 7 == 0:
            row["smoker"] = None
        if i % 4 == 0:
            row["age"] = int(row["age"])
    return rows


def test_bundle_predict_row_equals_predict_for_many_rows(
    tabular_bundle: Path, risk_rows: list[dict[str, Any]]
) -> None:
    bundle = TabularBundle.load(tabular_bundle)
    for row in risk_rows:
        expected = bundle.predict(pd.DataFrame.from_records([row]), where="row", top_k=3)
        assert bundle.predict_row(row, top_k=3) == expected[0]
    assert any(bundle.predict_row(row, explain=False)["imputed"] for row in risk_rows)


def test_bundle_predict_row_refuses_what_predict_refuses(tabular_bundle: Path) -> None:
    bundle = TabularBundle.load(tabular_bundle)
    good = make_risk_table(5, seed=2).drop(columns=["disease"]).to_dict("records")[1]
    for column, value in [("sex", "other"), ("age", "old"), ("biomarker", float("inf"))]:
        bad = {**good, column: value}
        with pytest.raises(SchemaError) as frame_error:
            bundle.predict(pd.DataFrame.from_records([bad]), where="row")
        with pytest.raises(SchemaError) as row_error:
            bundle.predict_row(bad)
        assert str(row_error.value) == str(frame_error.value)


def _forest_model(forest: Any) -> Any:
    """A forest nested as the default model nests it: pipeline > calibration > soft vote."""
    vote = VotingClassifier(
        [("logistic", LogisticRegression(max_iter=1000)), ("forest", forest)], voting="soft"
    )
    return make_pipeline(StandardScaler(), CalibratedClassifierCV(vote, cv=3, ensemble=False))


@pytest.mark.parametrize(
    "forest",
    [
        RandomForestClassifier(n_estimators=40, min_samples_leaf=2, random_state=0),
        ExtraTreesClassifier(n_estimators=30, random_state=1, n_jobs=1),
    ],
    ids=["random-forest", "extra-trees"],
)
def test_sequential_forests_give_identical_probabilities(forest: Any) -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 6))
    y = (X[:, 0] + X[:, 1] ** 2 + rng.normal(scale=0.5, size=300) > 1).astype(int)
    model = _forest_model(forest).fit(X, y)
    expected = model.predict_proba(X)
    assert sequential_forests(model) >= 1
    assert sequential_forests(model) == 0  # already done: nothing patched twice
    fitted = model[-1].calibrated_classifiers_[0].estimator.named_estimators_["forest"]
    assert "predict_proba" in vars(fitted)
    np.testing.assert_array_equal(model.predict_proba(X), expected)
    np.testing.assert_array_equal(model.predict_proba(X[:1]), expected[:1])


def test_parallel_forests_are_left_to_joblib() -> None:
    forest = RandomForestClassifier(n_estimators=5, n_jobs=2, random_state=0)
    forest.fit(np.eye(4), [0, 1, 0, 1])
    assert sequential_forests({"model": forest}) == 0
    assert "predict_proba" not in vars(forest)


# ------------------------------------------------------------------------------ row model


def _fit_bundle(model: str, cleaning: dict[str, Any], rows: int = 160) -> TabularBundle:
    from medsight.config import (
        CleaningConfig,
        DataConfig,
        EvaluationConfig,
        ModelConfig,
        TrainConfig,
    )
    from medsight.tasks.tabular import prepare_table
    from medsight.train.tabular import fit_tabular_model

    config = TrainConfig(
        name="risk",
        data=DataConfig(target="disease", patient_id="patient_id"),
        model=ModelConfig(name=model, tune=False),
        cleaning=CleaningConfig(**cleaning),
        evaluation=EvaluationConfig(inner_folds=2),
    )
    prepared = prepare_table(config, make_risk_table(rows, seed=5))
    X = prepared.frame[prepared.schema.feature_columns]
    fitted = fit_tabular_model(
        X,
        prepared.y,
        prepared.groups,
        prepared.schema,
        model=config.model,
        cleaning=config.cleaning,
        evaluation=config.evaluation,
        seed=0,
    )
    return TabularBundle.from_fit(fitted, prepared.schema, X, {"name": "risk"})


def _messy_rows(risk_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as JSON sends them plus empty cells, missing codes, ints for floats, clip-worthy
    values and categories given as numbers or text."""
    rows = [dict(r) for r in risk_rows]
    for i, row in enumerate(rows):
        if i % 3 == 0:
            row["systolic_bp"] = 0  # the table's "not measured" code
        if i % 6 == 1:
            row["biomarker"] = None
        if i % 5 == 2:
            row["chest_pain"] = str(int(row["chest_pain"]))
        if i % 9 == 4:
            row["cholesterol"] = 10_000.0  # far outside the training range: clipped
        if i % 8 == 5:
            row["sex"] = None
    return rows


def _pipeline_probability(bundle: TabularBundle, row: dict[str, Any]) -> float:
    frame = pd.DataFrame.from_records([row])[bundle.schema.feature_columns]
    return float(bundle.model.pipeline.predict_proba(frame)[0, 1])


@pytest.mark.parametrize(
    ("model", "cleaning"),
    [
        ("logistic", {"scaling": "standard", "clip": "range"}),
        ("logistic", {"scaling": "none", "clip": "none", "missing_indicators": False}),
        ("default", {"scaling": "power", "clip": "quantile", "impute": "mean"}),
    ],
    ids=["standard", "unscaled", "power-forest-ensemble"],
)
def test_row_model_gives_the_pipeline_probability_bit_for_bit(
    model: str, cleaning: dict[str, Any], risk_rows: list[dict[str, Any]]
) -> None:
    from medsight.bundle.tabular_row import compile_row_model

    reference = _fit_bundle(model, cleaning)
    served = _fit_bundle(model, cleaning)
    row_model = compile_row_model(served.model.pipeline)
    assert row_model is not None
    rows = _messy_rows(risk_rows)
    for row in rows:
        RowValidator(served.schema).validate(row)  # rows the service would accept
        assert row_model.predict_proba(row) == _pipeline_probability(reference, row), row
    imputed = [served.predict_row(row, explain=False)["imputed"] for row in rows]
    assert any("systolic_bp" in names for names in imputed)


def test_packed_forests_match_scikit_learn_on_batches() -> None:
    from medsight.bundle.forests import PackedForest

    rng = np.random.default_rng(8)
    X = rng.normal(size=(400, 5))
    X[:, 4] = np.round(X[:, 4])  # ties at thresholds between repeated values
    y = rng.integers(0, 3, size=400)
    for forest in (
        RandomForestClassifier(n_estimators=25, random_state=0),
        ExtraTreesClassifier(n_estimators=25, max_depth=6, random_state=0),
    ):
        forest.fit(X[:300], y[:300])
        np.testing.assert_array_equal(
            PackedForest(forest).predict_proba(X[300:]), forest.predict_proba(X[300:])
        )


def test_unsupported_pipelines_keep_the_scikit_learn_path(tabular_bundle: Path) -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import QuantileTransformer

    from medsight.bundle.tabular_row import compile_row_model

    bundle = TabularBundle.load(tabular_bundle)
    custom = Pipeline(
        [("scale", QuantileTransformer(n_quantiles=10)), ("model", LogisticRegression())]
    )
    custom.fit(np.arange(40.0).reshape(20, 2), [0, 1] * 10)
    assert compile_row_model(custom) is None
    bundle.row_model = None  # as for a bundle whose pipeline did not compile
    row = make_risk_table(3, seed=4).drop(columns=["disease"]).to_dict("records")[0]
    expected = bundle.predict(pd.DataFrame.from_records([row]), explain=False, where="row")[0]
    assert bundle.predict_row(row, explain=False) == expected


def test_an_empty_category_is_imputed_whether_null_or_nan(tabular_bundle: Path) -> None:
    # JSON null used to reach the one-hot encoder as a category of its own (all zeros), while
    # the answer said "imputed"; now None and NaN both take the training set's most frequent
    bundle = TabularBundle.load(tabular_bundle)
    row = make_risk_table(3, seed=4).drop(columns=["disease"]).to_dict("records")[0]
    as_null = _pipeline_probability(bundle, {**row, "smoker": None})
    as_nan = _pipeline_probability(bundle, {**row, "smoker": float("nan")})
    others = {_pipeline_probability(bundle, {**row, "smoker": s}) for s in ("never", "current")}
    assert as_null == as_nan
    assert len(others | {as_null}) >= 2
    assert bundle.predict_row({**row, "smoker": None}, explain=False)["imputed"] == ["smoker"]
