"""Every registered tabular model builds, fits and predicts (timm's one-test-for-all pattern)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import make_classification

from medsight.errors import ConfigError
from medsight.models.registry import create_model, get_model_entry, list_models

TABULAR = [entry.name for entry in list_models("tabular")]


def test_builtin_models_registered() -> None:
    assert {"logistic", "lightgbm", "mlp", "ensemble"} <= set(TABULAR)
    assert get_model_entry("default").name == "ensemble"
    assert get_model_entry("baseline").name == "logistic"


@pytest.mark.parametrize("name", TABULAR)
def test_every_model_fits_and_predicts(name: str) -> None:
    X, y = make_classification(
        n_samples=150, n_features=6, n_informative=4, class_sep=2.0, random_state=0
    )
    model = create_model(name, class_weight="balanced", random_state=0)
    entry = get_model_entry(name)
    model.set_params(**{k: v[0] for k, v in entry.param_grid.items()})
    proba = clone(model).fit(X, y).predict_proba(X)
    assert proba.shape == (150, 2)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1)
    assert ((proba[:, 1] > 0.5) == y).mean() > 0.7


def test_unknown_model_lists_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'xgboost'.*logistic"):
        create_model("xgboost")


def test_bad_parameter_is_config_error() -> None:
    with pytest.raises(ConfigError, match="model 'logistic'"):
        create_model("logistic", depth=3)
