"""Calibrated and soft-voting classifiers predicted without scikit-learn's per-call checks.

For one row, ``CalibratedClassifierCV.predict_proba`` around the default soft vote spends most of
its time (about 0.8 of 1.1 ms, measured) re-deriving what is fixed once fitted: the target type
of the classes, a fresh ``LabelEncoder``, the response method, input checks at every level. This
module gives the fitted instances of the default model's wrappers a ``predict_proba`` that does
the same arithmetic on the same values for the binary case (scikit-learn 1.9's
``_CalibratedClassifier.predict_proba`` with ``_get_response_values``, and
``VotingClassifier.predict_proba``), and binary dense ``LogisticRegression`` and ``SVC`` their
decision function (and the logistic one its probabilities) without input checks, so the
probabilities are identical; anything else keeps its own method. Hand-written: scikit-learn has
no switch to skip the checks.
``tests/serve/test_serve_fast_path.py`` compares with the untouched model bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.sparse import issparse
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.ensemble import VotingClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC
from sklearn.svm import _libsvm as libsvm
from sklearn.svm._base import LIBSVM_IMPL
from sklearn.utils._response import _check_response_method

Proba = Callable[[np.ndarray], np.ndarray]


def lean_calibration(model: Any) -> int:
    """Give every binary ``CalibratedClassifierCV`` (one calibrated classifier, sigmoid or
    isotonic), soft ``VotingClassifier`` and binary ``LogisticRegression`` inside ``model`` a lean
    ``predict_proba`` (binary ``SVC`` a lean ``decision_function``), innermost first; return how
    many ``predict_proba`` were replaced. The model on disk is unchanged."""
    done = 0
    for node in _walk(model, set()):
        lean = _lean(node)
        if lean is not None:
            node.predict_proba = lean
            done += 1
    return done


def _walk(node: Any, seen: set[int]) -> list[Any]:
    """Fitted scikit-learn estimators inside ``node``, children before parents."""
    if id(node) in seen:
        return []
    seen.add(id(node))
    found: list[Any] = []
    children: list[Any] = []
    if isinstance(node, CalibratedClassifierCV):
        children = [c.estimator for c in getattr(node, "calibrated_classifiers_", [])]
    elif isinstance(node, VotingClassifier):
        children = list(getattr(node, "estimators_", []))
    elif hasattr(node, "steps"):
        children = [step for _, step in node.steps]
    for child in children:
        found += _walk(child, seen)
    return [*found, node]


def _lean(node: Any) -> Proba | None:
    if isinstance(node, CalibratedClassifierCV):
        return _lean_calibrated(node)
    if isinstance(node, VotingClassifier):
        return _lean_vote(node)
    if _binary_dense(node, LogisticRegression):
        node.decision_function = _lean_linear_decision(node)
        return _lean_logistic_proba(node)
    if _binary_dense(node, SVC) and node._impl == "c_svc" and not callable(node.kernel):
        node.decision_function = _lean_svc_decision(node)
    return None


def _binary_dense(node: Any, kind: type) -> bool:
    return (
        isinstance(node, kind)
        and len(getattr(node, "classes_", ())) == 2
        and not getattr(node, "_sparse", False)
        and not issparse(getattr(node, "coef_", None))
    )


def _lean_linear_decision(model: LogisticRegression) -> Proba:
    """``LinearClassifierMixin.decision_function`` for dense input, without its checks."""
    coef_t = model.coef_.T if model.coef_.ndim == 2 else model.coef_
    intercept = model.intercept_

    def decision_function(X: np.ndarray) -> np.ndarray:
        scores = np.asarray(X, dtype=np.float64) @ coef_t + intercept
        return scores.reshape(-1) if scores.ndim > 1 and scores.shape[1] == 1 else scores

    return decision_function


def _lean_logistic_proba(model: LogisticRegression) -> Proba:
    """Binary ``LogisticRegression.predict_proba`` (``_predict_proba_lr``): expit of the
    decision, stacked as (1 - p, p)."""
    decide = model.decision_function

    def predict_proba(X: np.ndarray) -> np.ndarray:
        prob = decide(X)
        expit(prob, out=prob)
        return np.stack([1 - prob, prob], axis=1)

    return predict_proba


def _lean_svc_decision(model: SVC) -> Proba:
    """Binary ``SVC.decision_function`` for dense input: libsvm's own call, as
    ``BaseLibSVM._dense_decision_function`` makes it, without the checks around it."""
    fitted = (
        model.support_,
        model.support_vectors_,
        model._n_support,
        model._dual_coef_,
        model._intercept_,
        model._probA,
        model._probB,
    )
    options = {
        "svm_type": LIBSVM_IMPL.index(model._impl),
        "kernel": model.kernel,
        "degree": model.degree,
        "cache_size": model.cache_size,
        "coef0": model.coef0,
        "gamma": model._gamma,
    }

    def decision_function(X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        return -libsvm.decision_function(X, *fitted, **options).ravel()

    return decision_function


def _lean_calibrated(calibrated: CalibratedClassifierCV) -> Proba | None:
    members = getattr(calibrated, "calibrated_classifiers_", [])
    if len(members) != 1 or len(calibrated.classes_) != 2:
        return None  # the mean over several members stays scikit-learn's
    member = members[0]
    estimator = member.estimator
    if member.method not in ("sigmoid", "isotonic") or len(estimator.classes_) != 2:
        return None
    (calibrator,) = member.calibrators
    if not isinstance(calibrator, _SigmoidCalibration | IsotonicRegression):
        return None
    respond = _check_response_method(estimator, ["decision_function", "predict_proba"])
    classes = estimator.classes_
    positive = classes[-1]  # _get_response_values' pos_label for a binary target
    negate = respond.__name__ == "decision_function" and positive == classes[0]
    column = int(np.flatnonzero(classes == positive)[0])
    sigmoid = isinstance(calibrator, _SigmoidCalibration)

    def predict_proba(X: np.ndarray) -> np.ndarray:
        predictions = respond(X)
        if respond.__name__ == "predict_proba":
            predictions = predictions[:, column]
        elif negate:
            predictions = -1 * predictions
        scores = np.ravel(predictions)
        proba = np.zeros((scores.shape[0], 2))
        if sigmoid:
            proba[:, 1] = expit(-(calibrator.a_ * scores + calibrator.b_))
        else:
            proba[:, 1] = calibrator.predict(scores)
        proba[:, 0] = 1.0 - proba[:, 1]
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        # CalibratedClassifierCV averages its members: one member, + 0.0 and / 1 change nothing
        return proba

    return predict_proba


def _lean_vote(vote: VotingClassifier) -> Proba | None:
    if vote.voting != "soft" or not hasattr(vote, "estimators_"):
        return None
    members = list(vote.estimators_)
    weights = vote._weights_not_none

    def predict_proba(X: np.ndarray) -> np.ndarray:
        probas = np.asarray([member.predict_proba(X) for member in members])
        return np.average(probas, axis=0, weights=weights)

    return predict_proba
