"""A small torch multilayer perceptron for tabular data, as a scikit-learn classifier.

`TorchMLPClassifier` follows scikit-learn's estimator conventions (``__init__`` only
stores arguments, fitted attributes end in ``_``), so it works in ``Pipeline``,
``GridSearchCV``, ``clone``, ``CalibratedClassifierCV`` and soft ``VotingClassifier``
beside logistic regression and LightGBM. Inputs are expected to be already scaled and
one-hot encoded. Training is float32 on the CPU with AdamW, dropout, and early
stopping on the loss of a stratified validation split whose best weights are restored.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from itertools import pairwise
from numbers import Integral
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import Tags, check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
from torch import nn

__all__ = ["TorchMLPClassifier"]

_MIN_IMPROVEMENT = 1e-6


def _hidden_sizes(hidden_sizes: int | Sequence[int]) -> tuple[int, ...]:
    """``hidden_sizes`` as a tuple of positive ints (a single int means one hidden layer)."""
    sizes = (hidden_sizes,) if isinstance(hidden_sizes, Integral) else tuple(hidden_sizes)
    if not all(isinstance(h, Integral) and not isinstance(h, bool) and h >= 1 for h in sizes):
        raise ValueError(f"hidden_sizes must be positive integers, got {hidden_sizes!r}")
    return tuple(int(h) for h in sizes)


def _linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    """``nn.Linear`` with torch's default initialisation, drawn from ``generator``.

    ``skip_init`` avoids the constructor's draws from the global torch RNG.
    """
    layer = nn.utils.skip_init(nn.Linear, n_in, n_out)
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(n_in)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


class _MLP(nn.Module):
    """Linear → ReLU → dropout blocks, then a linear layer of logits.

    Dropout masks come from the generator passed to ``forward`` (in training mode only),
    so training never touches torch's global random state.
    """

    def __init__(
        self,
        n_features: int,
        hidden_sizes: tuple[int, ...],
        dropout: float,
        n_outputs: int,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        widths = (n_features, *hidden_sizes)
        self.hidden = nn.ModuleList(_linear(a, b, generator) for a, b in pairwise(widths))
        self.output = _linear(widths[-1], n_outputs, generator)
        self.dropout = float(dropout)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        keep = 1.0 - self.dropout
        for layer in self.hidden:
            x = torch.relu(layer(x))
            if self.training and self.dropout > 0:
                mask = torch.bernoulli(torch.full_like(x, keep), generator=generator)
                x = x * mask / keep
        return self.output(x)


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """Multilayer perceptron classifier (torch, CPU) with early stopping.

    Parameters
    ----------
    hidden_sizes : widths of the hidden layers (an int means one layer); ``()`` gives
        multinomial logistic regression.
    dropout : dropout probability after each hidden ReLU.
    weight_decay : decoupled (AdamW) weight decay.
    learning_rate : AdamW learning rate.
    batch_size : minibatch size (capped at the number of training rows).
    max_epochs : upper bound on passes over the training rows.
    patience : epochs without improvement of the monitored loss before stopping.
    validation_fraction : share of rows held out (stratified) to monitor the loss for
        early stopping; ``0`` monitors the training loss instead. The split is skipped
        when the data are too small to stratify.
    class_weight : ``None``, ``"balanced"`` or a ``{label: weight}`` mapping; multiplies
        the per-sample losses (together with ``sample_weight``).
    random_state : seed (int, ``None`` or ``RandomState``) for the split, the weight
        initialisation, shuffling and dropout. Torch draws come from a private
        ``torch.Generator``: the global torch RNG and thread settings are left alone.
    verbose : print the losses of every epoch.

    Attributes
    ----------
    classes_ : sorted unique labels seen in ``fit``.
    n_features_in_ : number of input columns; ``feature_names_in_`` when X had names.
    model_ : the trained ``torch.nn.Module`` (best weights, eval mode); it maps a float32
        tensor of rows to logits.
    n_iter_ : epochs run.
    best_epoch_ : epoch (1-based) whose weights were kept.
    best_loss_ : the monitored loss at ``best_epoch_``.
    loss_curve_ : mean weighted training loss per epoch.
    validation_loss_curve_ : validation loss per epoch (empty without a validation split).
    """

    def __init__(
        self,
        hidden_sizes: int | Sequence[int] = (64, 32),
        dropout: float = 0.2,
        weight_decay: float = 1e-4,
        learning_rate: float = 1e-3,
        batch_size: int = 64,
        max_epochs: int = 200,
        patience: int = 20,
        validation_fraction: float = 0.15,
        class_weight: str | Mapping[Any, float] | None = None,
        random_state: int | np.random.RandomState | None = 0,
        verbose: bool = False,
    ) -> None:
        self.hidden_sizes = hidden_sizes
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags

    # ------------------------------------------------------------------ fitting
    def _check_params(self) -> None:
        """Reject invalid hyper-parameters with a ValueError."""
        _hidden_sizes(self.hidden_sizes)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if int(self.max_epochs) < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs!r}")
        if int(self.patience) < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}"
            )
        if self.class_weight is not None and not (
            self.class_weight == "balanced" or isinstance(self.class_weight, Mapping)
        ):
            raise ValueError(
                f"class_weight must be None, 'balanced' or a dict, got {self.class_weight!r}"
            )

    def _split(
        self, y_enc: np.ndarray, n_classes: int, rng: np.random.RandomState
    ) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the training and validation rows (validation empty when infeasible)."""
        n = len(y_enc)
        all_rows = np.arange(n)
        n_val = math.ceil(self.validation_fraction * n)
        counts = np.bincount(y_enc, minlength=n_classes)
        if n_val == 0 or n_val < n_classes or n - n_val < n_classes or counts.min() < 2:
            return all_rows, all_rows[:0]
        train_idx, val_idx = train_test_split(
            all_rows, test_size=n_val, stratify=y_enc, random_state=rng
        )
        return np.sort(train_idx), np.sort(val_idx)

    def fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> TorchMLPClassifier:
        """Train on ``X`` (n_samples, n_features) and labels ``y``; returns ``self``."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        classes, y_enc = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least two classes in y; "
                f"got only one class: {classes.tolist()!r}"
            )
        weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if self.class_weight is not None:
            per_class = compute_class_weight(self.class_weight, classes=classes, y=y)
            weights = weights * per_class[y_enc]
        if np.any(weights < 0):
            raise ValueError("sample_weight must be non-negative")
        if not np.any(weights > 0):
            raise ValueError("sample_weight (times class_weight) is zero for every sample")

        self.classes_ = classes
        rng = check_random_state(self.random_state)
        train_idx, val_idx = self._split(y_enc, len(classes), rng)
        seed = int(rng.randint(0, 2**31 - 1))

        X32 = np.ascontiguousarray(X, dtype=np.float32)
        self._train(X32, y_enc, weights, train_idx, val_idx, seed)
        return self

    def _train(
        self,
        X: np.ndarray,
        y_enc: np.ndarray,
        weights: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        seed: int,
    ) -> None:
        """The optimisation loop; sets ``model_`` and the training-history attributes."""
        generator = torch.Generator().manual_seed(seed)
        model = _MLP(
            X.shape[1],
            _hidden_sizes(self.hidden_sizes),
            self.dropout,
            len(self.classes_),
            generator,
        )
        optimizer = torch.optim.AdamW(
            model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        loss_fn = nn.CrossEntropyLoss(reduction="none")

        Xt = torch.from_numpy(X[train_idx])
        yt = torch.from_numpy(y_enc[train_idx].astype(np.int64))
        # Normalise so that weights average 1 over the training rows: the learning rate
        # then means the same thing whatever the scale of sample_weight.
        w_train = weights[train_idx]
        wt = torch.from_numpy((w_train / max(w_train.mean(), 1e-12)).astype(np.float32))
        has_val = len(val_idx) > 0 and weights[val_idx].sum() > 0
        if has_val:
            Xv = torch.from_numpy(X[val_idx])
            yv = torch.from_numpy(y_enc[val_idx].astype(np.int64))
            wv = torch.from_numpy(weights[val_idx].astype(np.float32))

        n_train = len(train_idx)
        batch_size = min(int(self.batch_size), n_train)
        best_loss = math.inf
        best_state = copy.deepcopy(model.state_dict())
        best_epoch = 0
        stale = 0
        self.loss_curve_: list[float] = []
        self.validation_loss_curve_: list[float] = []
        epoch = 0
        for epoch in range(1, int(self.max_epochs) + 1):
            model.train()
            order = torch.randperm(n_train, generator=generator)
            total = 0.0
            for start in range(0, n_train, batch_size):
                idx = order[start : start + batch_size]
                losses = loss_fn(model(Xt[idx], generator), yt[idx]) * wt[idx]
                loss = losses.mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(losses.detach().sum())
            train_loss = total / n_train
            self.loss_curve_.append(train_loss)
            monitored = train_loss
            if has_val:
                model.eval()
                with torch.no_grad():
                    v = (loss_fn(model(Xv), yv) * wv).sum() / wv.sum()
                monitored = float(v)
                self.validation_loss_curve_.append(monitored)
            if self.verbose:
                val_text = f", validation loss {monitored:.4f}" if has_val else ""
                print(f"epoch {epoch}: training loss {train_loss:.4f}{val_text}")
            if monitored < best_loss - _MIN_IMPROVEMENT:
                best_loss, best_epoch, stale = monitored, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if stale >= int(self.patience):
                    break
        model.load_state_dict(best_state)
        model.eval()
        self.model_ = model
        self.n_iter_ = epoch
        self.best_epoch_ = best_epoch
        self.best_loss_ = best_loss

    # ---------------------------------------------------------------- inference
    def _log_proba(self, X: ArrayLike) -> np.ndarray:
        """Log class probabilities (float64) from the network's log-softmax."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        self.model_.eval()
        with torch.no_grad():
            logits = self.model_(Xt).double()
        return torch.log_softmax(logits, dim=1).numpy()

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        proba = np.exp(self._log_proba(X))
        return proba / proba.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """Natural logarithm of ``predict_proba``."""
        return self._log_proba(X)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Most probable label for each row, in the original label values."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]
