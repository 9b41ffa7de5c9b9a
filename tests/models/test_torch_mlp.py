"""TorchMLPClassifier: learning, sklearn conventions and composition, weights, determinism."""

from __future__ import annotations

import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import make_classification
from sklearn.ensemble import VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import recall_score, roc_auc_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from medsight.models.torch_mlp import TorchMLPClassifier

FAST = {"max_epochs": 30, "patience": 5}


def _binary(n: int = 400, n_features: int = 10, seed: int = 0, **kwargs):
    return make_classification(
        n_samples=n,
        n_features=n_features,
        n_informative=min(6, n_features),
        n_redundant=0,
        class_sep=kwargs.pop("class_sep", 2.0),
        random_state=seed,
        **kwargs,
    )


def test_learns_separable_problem() -> None:
    X, y = _binary(n=700, n_features=20)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
    model = TorchMLPClassifier().fit(X_tr, y_tr)
    assert model.n_features_in_ == 20
    assert list(model.classes_) == [0, 1]
    assert roc_auc_score(y_te, model.predict_proba(X_te)[:, 1]) > 0.95
    assert (model.predict(X_te) == y_te).mean() > 0.85


def test_multiclass_string_labels() -> None:
    X, y = make_classification(
        n_samples=450, n_features=8, n_informative=6, n_classes=3, class_sep=2.0, random_state=1
    )
    labels = np.array(["flu", "covid", "rsv"])[y]
    model = TorchMLPClassifier(**FAST).fit(X, labels)
    assert list(model.classes_) == ["covid", "flu", "rsv"]
    proba = model.predict_proba(X)
    assert proba.shape == (450, 3) and proba.dtype == np.float64
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert np.all((proba >= 0) & (proba <= 1))
    pred = model.predict(X)
    assert set(pred) <= set(model.classes_)
    assert (pred == labels).mean() > 0.8
    assert np.allclose(np.exp(model.predict_log_proba(X)), proba)


def test_deterministic_and_free_of_global_side_effects() -> None:
    X, y = _binary()
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    a = TorchMLPClassifier(**FAST, random_state=3).fit(X, y).predict_proba(X)
    b = TorchMLPClassifier(**FAST, random_state=3).fit(X, y).predict_proba(X)
    c = TorchMLPClassifier(**FAST, random_state=4).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.get_num_threads() == threads


def test_deterministic_when_fitted_concurrently_in_threads() -> None:
    X, y = _binary(n=200)

    def fit(seed: int) -> np.ndarray:
        return TorchMLPClassifier(**FAST, random_state=seed).fit(X, y).predict_proba(X)

    serial = [fit(seed) for seed in (1, 2, 1, 2)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(fit, (1, 2, 1, 2)))
    for a, b in zip(serial, threaded, strict=True):
        np.testing.assert_array_equal(a, b)


def test_pickle_round_trip() -> None:
    X, y = _binary()
    model = TorchMLPClassifier(**FAST).fit(X, y)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))


def test_pipeline_grid_search_and_calibration() -> None:
    X, y = _binary(n=300, n_features=6)
    X = X * 10 + 5  # unscaled: the pipeline's scaler matters
    pipe = Pipeline([("scale", StandardScaler()), ("mlp", TorchMLPClassifier(**FAST))])
    search = GridSearchCV(
        pipe, {"mlp__hidden_sizes": [(16,), (32, 16)], "mlp__weight_decay": [1e-4, 1e-2]}, cv=3
    )
    search.fit(X, y)
    assert search.best_score_ > 0.85
    assert search.predict_proba(X).shape == (300, 2)

    calibrated = CalibratedClassifierCV(clone(pipe), cv=3).fit(X, y)
    proba = calibrated.predict_proba(X)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y, proba[:, 1]) > 0.9


def test_soft_voting_and_clone() -> None:
    X, y = _binary(n=300, n_features=6)
    mlp = TorchMLPClassifier(hidden_sizes=(16,), **FAST)
    clone_ = clone(mlp)
    assert clone_.get_params() == mlp.get_params() and not hasattr(clone_, "model_")
    vote = VotingClassifier([("lr", LogisticRegression()), ("mlp", mlp)], voting="soft")
    proba = vote.fit(X, y).predict_proba(X)
    assert proba.shape == (300, 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert not hasattr(mlp, "model_")  # the ensemble fitted a clone


def test_balanced_class_weight_raises_minority_recall() -> None:
    X, y = make_classification(
        n_samples=1000,
        n_features=10,
        n_informative=4,
        weights=[0.93, 0.07],
        class_sep=0.6,
        flip_y=0.0,
        random_state=0,
    )
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.4, stratify=y, random_state=0)
    recalls = {
        cw: recall_score(y_te, TorchMLPClassifier(class_weight=cw).fit(X_tr, y_tr).predict(X_te))
        for cw in (None, "balanced")
    }
    assert recalls["balanced"] > recalls[None] + 0.1


def test_sample_weight() -> None:
    X, y = _binary()
    base = TorchMLPClassifier(**FAST).fit(X, y).predict_proba(X)
    ones = TorchMLPClassifier(**FAST).fit(X, y, sample_weight=np.ones(len(y))).predict_proba(X)
    np.testing.assert_array_equal(base, ones)

    weights = np.ones(len(y))
    weights[np.flatnonzero(y == 1)[:100]] = 0.0
    zeroed = TorchMLPClassifier(**FAST).fit(X, y, sample_weight=weights).predict_proba(X)
    assert np.abs(zeroed - base).max() > 0.01
    # Down-weighting class 1 lowers its predicted probability on average.
    assert zeroed[:, 1].mean() < base[:, 1].mean()

    with pytest.raises(ValueError, match="non-negative"):
        TorchMLPClassifier(**FAST).fit(X, y, sample_weight=-np.ones(len(y)))


def test_early_stopping_keeps_best_epoch() -> None:
    X, y = _binary(n=300, flip_y=0.2, class_sep=0.5)
    model = TorchMLPClassifier(hidden_sizes=(128, 128), dropout=0.0, max_epochs=300, patience=10)
    model.fit(X, y)
    assert model.n_iter_ < 300
    assert model.n_iter_ == len(model.loss_curve_) == len(model.validation_loss_curve_)
    assert model.best_loss_ == min(model.validation_loss_curve_)
    assert model.validation_loss_curve_[model.best_epoch_ - 1] == model.best_loss_
    assert model.n_iter_ - model.best_epoch_ == 10

    no_val = TorchMLPClassifier(validation_fraction=0.0, **FAST).fit(X, y)
    assert no_val.validation_loss_curve_ == [] and len(no_val.loss_curve_) == no_val.n_iter_


def test_input_validation() -> None:
    X, y = _binary(n=60)
    X_nan = X.copy()
    X_nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        TorchMLPClassifier(**FAST).fit(X_nan, y)
    with pytest.raises(ValueError, match="at least two classes"):
        TorchMLPClassifier(**FAST).fit(X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="dropout"):
        TorchMLPClassifier(dropout=1.0).fit(X, y)
    for bad in [(16, 0), (16.5,), (True,)]:
        with pytest.raises(ValueError, match="hidden_sizes"):
            TorchMLPClassifier(hidden_sizes=bad).fit(X, y)
    with pytest.raises(TypeError, match="unexpected keyword"):
        TorchMLPClassifier(**FAST).fit(X, y, epochs=5)
    model = TorchMLPClassifier(**FAST).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        model.predict_proba(X[:, :5])
    with pytest.raises(ValueError, match="NaN"):
        model.predict_proba(X_nan)


def test_dataframe_feature_names_and_tiny_data() -> None:
    X, y = _binary(n=80, n_features=4)
    frame = pd.DataFrame(X, columns=["age", "sbp", "hr", "crp"])
    model = TorchMLPClassifier(**FAST).fit(frame, pd.Series(y))
    assert list(model.feature_names_in_) == ["age", "sbp", "hr", "crp"]
    assert model.predict_proba(frame).shape == (80, 2)
    # Too few rows to stratify a validation split: trains on all rows instead.
    tiny = TorchMLPClassifier(**FAST).fit(X[:5], np.array([0, 1, 0, 1, 1]))
    assert tiny.validation_loss_curve_ == []


@pytest.mark.parametrize(("hidden_sizes", "n_hidden"), [(8, 1), ([8, 4], 2), ((), 0)])
def test_hidden_sizes_forms(hidden_sizes, n_hidden: int) -> None:
    X, y = _binary(n=120)
    model = TorchMLPClassifier(hidden_sizes=hidden_sizes, **FAST).fit(X, y)
    assert len(model.model_.hidden) == n_hidden
    assert model.predict_proba(X).shape == (120, 2)


def test_verbose_prints_losses(capsys: pytest.CaptureFixture[str]) -> None:
    X, y = _binary(n=100)
    TorchMLPClassifier(max_epochs=2, verbose=True).fit(X, y)
    out = capsys.readouterr().out
    assert "epoch 1: training loss" in out and "validation loss" in out


EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "minibatch SGD with shuffling and a random validation split: a weight of 2 is "
        "equivalent to a repeated row only in expectation, not to the 1e-7 tolerance"
    ),
}


@parametrize_with_checks(
    [TorchMLPClassifier(**FAST)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)
