"""Tabular classifiers: logistic regression (baseline), LightGBM, SVM, forest, MLP, ensemble."""

from __future__ import annotations

from typing import Literal

from lightgbm import LGBMClassifier
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC

from medsight.models.registry import register_model

ClassWeight = Literal["balanced"] | None


@register_model(
    "logistic",
    family="tabular",
    description="L2-regularised logistic regression on scaled features (the baseline).",
    param_grid={"C": [0.1, 1.0]},
    aliases=("baseline", "logreg"),
)
def logistic(
    C: float = 1.0, class_weight: ClassWeight = None, random_state: int = 0
) -> LogisticRegression:
    return LogisticRegression(
        C=C, class_weight=class_weight, max_iter=5000, random_state=random_state
    )


@register_model(
    "lightgbm",
    family="tabular",
    description="Gradient-boosted trees (LightGBM), shallow and regularised for small tables.",
    param_grid={"min_child_samples": [5, 20]},
    aliases=("gbm",),
)
def lightgbm(
    n_estimators: int = 300,
    learning_rate: float = 0.03,
    num_leaves: int = 8,
    min_child_samples: int = 10,
    subsample: float = 0.8,
    colsample_bytree: float = 0.8,
    reg_lambda: float = 1.0,
    class_weight: ClassWeight = None,
    random_state: int = 0,
) -> LGBMClassifier:
    return LGBMClassifier(
        n_estimators=n_estimators,
        learning_rate=learning_rate,
        num_leaves=num_leaves,
        min_child_samples=min_child_samples,
        subsample=subsample,
        subsample_freq=1,
        colsample_bytree=colsample_bytree,
        reg_lambda=reg_lambda,
        class_weight=class_weight,
        random_state=random_state,
        n_jobs=1,
        verbose=-1,
    )


@register_model(
    "mlp",
    family="tabular",
    description="A small torch multilayer perceptron with dropout and early stopping.",
    param_grid={"weight_decay": [1e-4, 1e-2]},
)
def mlp(
    hidden_sizes: tuple[int, ...] = (64, 32),
    dropout: float = 0.2,
    weight_decay: float = 1e-4,
    class_weight: ClassWeight = None,
    random_state: int = 0,
):
    from medsight.models.torch_mlp import TorchMLPClassifier

    return TorchMLPClassifier(
        hidden_sizes=tuple(hidden_sizes),
        dropout=dropout,
        weight_decay=weight_decay,
        class_weight=class_weight,
        random_state=random_state,
    )


@register_model(
    "svm",
    family="tabular",
    description="Support-vector machine with an RBF kernel (probabilities by Platt scaling).",
    param_grid={"estimator__C": [0.3, 1.0]},
)
def svm(
    C: float = 1.0, class_weight: ClassWeight = None, random_state: int = 0
) -> CalibratedClassifierCV:
    # SVC has no probabilities; sklearn >= 1.9 wants this wrapper instead of probability=True
    kernel_svm = SVC(C=C, class_weight=class_weight, random_state=random_state)
    return CalibratedClassifierCV(kernel_svm, method="sigmoid", cv=3, ensemble=False)


@register_model(
    "random_forest",
    family="tabular",
    description="Random forest of 200 trees, leaves of at least 3 rows.",
    param_grid={"max_features": ["sqrt", 0.3]},
    aliases=("rf",),
)
def random_forest(
    n_estimators: int = 200,
    min_samples_leaf: int = 3,
    max_features: float | str = 0.3,
    class_weight: ClassWeight = None,
    random_state: int = 0,
) -> RandomForestClassifier:
    return RandomForestClassifier(
        n_estimators=n_estimators,
        min_samples_leaf=min_samples_leaf,
        max_features=max_features,
        class_weight=class_weight,
        random_state=random_state,
        n_jobs=1,
    )


@register_model(
    "ensemble",
    family="tabular",
    description=(
        "The default: soft vote of logistic regression, an RBF SVM and a random forest "
        "(a linear, a kernel and a tree view of the same rows)."
    ),
    param_grid={"logistic__C": [0.1, 1.0]},
    aliases=("default",),
)
def ensemble(class_weight: ClassWeight = None, random_state: int = 0) -> VotingClassifier:
    return VotingClassifier(
        [
            ("logistic", logistic(class_weight=class_weight, random_state=random_state)),
            ("svm", svm(class_weight=class_weight, random_state=random_state)),
            ("forest", random_forest(class_weight=class_weight, random_state=random_state)),
        ],
        voting="soft",
    )
