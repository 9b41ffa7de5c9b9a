from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medsight.errors import ConfigError, DataError
from medsight.evaluate import age_bands, binary_metrics, subgroup_table


@pytest.fixture
def cohort() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    return {
        "y": y,
        "p": np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1),
        "sex": rng.choice(np.array(["F", "M"], dtype=object), n),
        "age": rng.uniform(20, 90, n),
        "site": np.where(np.arange(n) < 6, "site 10", rng.choice(["site 2", "site 1"], n)),
    }


def test_level_auroc_equals_sklearn_on_subset(cohort: dict[str, np.ndarray]) -> None:
    y, p = cohort["y"], cohort["p"]
    table = subgroup_table(y, p, {"sex": cohort["sex"]}, n_boot=50)
    assert list(table.columns[:4]) == ["variable", "level", "n", "n_positive"]
    assert list(table.columns[4:6]) == ["auroc", "auroc_ci"]
    assert table.columns[-1] == "note"
    for _, row in table.iterrows():
        mask = cohort["sex"] == row["level"]
        assert row["n"] == mask.sum()
        assert row["n_positive"] == y[mask].sum()
        assert row["auroc"] == pytest.approx(roc_auc_score(y[mask], p[mask]))
        assert row["sensitivity"] == pytest.approx(binary_metrics(y[mask], p[mask])["sensitivity"])
        lo, hi = (float(x) for x in row["auroc_ci"].split("–"))
        assert lo <= row["auroc"] <= hi


def test_small_levels_missing_values_and_natural_order(cohort: dict[str, np.ndarray]) -> None:
    site = cohort["site"].astype(object)
    site[6:9] = None
    table = subgroup_table(cohort["y"], cohort["p"], {"site": site}, n_boot=20, min_size=10)
    assert list(table["level"]) == ["site 1", "site 2", "site 10", "missing"]
    small = table.set_index("level").loc["site 10"]
    assert small["n"] == 6
    assert small["note"] == "too few rows"
    assert np.isnan(small["auroc"]) and small["auroc_ci"] == ""
    assert table.set_index("level").loc["missing", "n"] == 3


def test_repeats_and_per_row_thresholds(cohort: dict[str, np.ndarray]) -> None:
    y, p = cohort["y"], cohort["p"]
    repeats = np.vstack([p, np.clip(p + 0.05, 0, 1)])
    thresholds = np.full(repeats.shape, 0.5)
    thresholds[1] = 0.45
    table = subgroup_table(y, repeats, {"sex": cohort["sex"]}, thresholds, n_boot=20)
    row = table.iloc[0]
    mask = cohort["sex"] == row["level"]
    expected = np.mean(
        [binary_metrics(y[mask], repeats[r, mask], thresholds[r, mask])["ppv"] for r in (0, 1)]
    )
    assert row["ppv"] == pytest.approx(expected)


def test_custom_metrics_groups_and_errors(cohort: dict[str, np.ndarray]) -> None:
    y, p = cohort["y"], cohort["p"]
    patients = np.arange(y.size) // 2
    table = subgroup_table(
        y, p, {"age": age_bands(cohort["age"])}, metrics=("brier",), groups=patients, n_boot=20
    )
    assert list(table.columns) == [
        "variable",
        "level",
        "n",
        "n_positive",
        "brier",
        "brier_ci",
        "note",
    ]
    assert list(table["level"]) == ["<40", "40–49", "50–59", "60–69", "≥70"]
    assert subgroup_table(y, p, {}).empty
    with pytest.raises(ConfigError):
        subgroup_table(y, p, {"sex": cohort["sex"]}, metrics=("youden",))
    with pytest.raises(DataError):
        subgroup_table(y, p, {"sex": cohort["sex"][:10]})


def test_age_bands() -> None:
    values = [5, 39.9, 40, 49, 55, 69.5, 70, 101, np.nan]
    bands = age_bands(values)
    expected = ["<40", "<40", "40–49", "40–49", "50–59", "60–69", "≥70", "≥70", "missing"]
    assert list(bands) == expected
    assert list(age_bands([10, 30, 80], [0, 18, 65, 120])) == ["<18", "18–64", "≥65"]
    assert list(age_bands([1.0, 2.0], [0, 1.5, 3])) == ["<1.5", "≥1.5"]
    with pytest.raises(ConfigError):
        age_bands([1, 2], [0, 50])
    with pytest.raises(ConfigError):
        age_bands([1, 2], [0, 50, 40])
    with pytest.raises(DataError):
        age_bands(["old", "young"])
