"""Random forests inside fitted models, predicted without scikit-learn's per-tree overhead.

scikit-learn evaluates a forest one tree at a time, through joblib even with ``n_jobs=1``: about
40 us per tree with joblib and 5 us without, against well under a microsecond of work per tree for
one row. The service predicts one row per request, so this module offers two drop-in
``predict_proba`` replacements, set on the fitted instance (a bundle on disk is unchanged), both
giving identical probabilities: :func:`sequential_forests` (the same per-tree calls, no joblib)
and :func:`pack_forests` (all trees walked together as arrays). Hand-written: scikit-learn has no
switch for either.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

_MODEL_PACKAGES = frozenset({"sklearn", "medsight", "lightgbm"})  # searched for forests


def find_forests(model: object) -> list[Any]:
    """Every random forest (or extra-trees) classifier inside a fitted model, once each."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    seen: set[int] = set()
    found: list[Any] = []

    def visit(node: object, depth: int) -> None:
        if depth > 12 or id(node) in seen:
            return
        seen.add(id(node))
        if isinstance(node, list | tuple):
            for item in node:
                visit(item, depth + 1)
        elif isinstance(node, dict):
            for item in node.values():
                visit(item, depth + 1)
        elif isinstance(node, RandomForestClassifier | ExtraTreesClassifier):
            found.append(node)
        elif type(node).__module__.split(".")[0] in _MODEL_PACKAGES and hasattr(node, "__dict__"):
            for item in vars(node).values():
                visit(item, depth + 1)

    visit(model, 0)
    return found


def sequential_forests(model: object) -> int:
    """Make every random forest inside ``model`` predict without joblib; return how many.

    scikit-learn's ``ForestClassifier.predict_proba`` dispatches each tree through
    ``joblib.Parallel`` even with ``n_jobs=1``: about 40 us per tree, 8-10 ms for the default
    model's 200 trees on one row, ten times the trees' own work. Forests with ``n_jobs`` 1 (or
    unset) get :func:`forest_proba` as their instance's ``predict_proba``: the same sums in the
    same order, so identical probabilities. The service applies it to the models it loads and
    never saves them again; a bundle on disk is unchanged. Hand-written: sklearn offers no switch.
    """
    patched = 0
    for forest in find_forests(model):
        sequential = forest.n_jobs in (None, 1) and hasattr(forest, "_validate_X_predict")
        if sequential and "predict_proba" not in vars(forest):
            forest.predict_proba = functools.partial(forest_proba, forest)  # type: ignore[method-assign]
            patched += 1
    return patched


def forest_proba(forest: Any, X: Any) -> Any:
    """``ForestClassifier.predict_proba`` (scikit-learn 1.9) without joblib, trees in order."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(forest)
    X = forest._validate_X_predict(X)
    all_proba = [
        np.zeros((X.shape[0], j), dtype=np.float64) for j in np.atleast_1d(forest.n_classes_)
    ]
    single = forest.n_outputs_ == 1
    for tree in forest.estimators_:
        # the tree's predict_proba minus its per-tree fitted and shape checks (done above)
        if single:
            prediction = tree.tree_.predict(X)[:, : tree.n_classes_]
        else:
            prediction = tree.predict_proba(X, check_input=False)
        if len(all_proba) == 1:
            all_proba[0] += prediction
        else:
            for i in range(len(all_proba)):
                all_proba[i] += prediction[i]
    for proba in all_proba:
        proba /= len(forest.estimators_)
    return all_proba[0] if len(all_proba) == 1 else all_proba


class PackedForest:
    """A fitted random forest's trees in flat arrays, walked together for each row.

    Hand-written because scikit-learn evaluates a forest tree by tree (about 5 us of call overhead
    each, 1 ms for 200 trees on one row). The walk uses the trees' own test
    (``float32(x) <= threshold``, in double), and the leaf values are summed over trees in
    order, as ``ForestClassifier.predict_proba`` does, so the probabilities are identical.
    """

    def __init__(self, forest: Any) -> None:
        trees = [estimator.tree_ for estimator in forest.estimators_]
        offsets = np.cumsum([0] + [t.node_count for t in trees[:-1]])
        self.roots = offsets.astype(np.intp)
        self.left = np.concatenate(
            [t.children_left + o for t, o in zip(trees, offsets, strict=True)]
        )
        self.right = np.concatenate(
            [t.children_right + o for t, o in zip(trees, offsets, strict=True)]
        )
        leaf = np.concatenate([t.children_left == -1 for t in trees])
        self.left[leaf] = np.flatnonzero(leaf)  # a leaf points to itself: the walk stays put
        self.right[leaf] = np.flatnonzero(leaf)
        self.feature = np.concatenate([np.maximum(t.feature, 0) for t in trees])
        self.threshold = np.concatenate([t.threshold for t in trees])
        n_classes = int(forest.n_classes_)
        self.value = np.concatenate([t.value[:, 0, :n_classes] for t in trees])
        self.depth = max(t.max_depth for t in trees)
        self.n_trees = len(trees)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities for finite rows ``X`` (n x features)."""
        x = np.asarray(X, dtype=np.float32).astype(np.float64)
        rows = np.arange(x.shape[0])[:, None]
        node = np.broadcast_to(self.roots, (x.shape[0], self.n_trees))
        for _ in range(self.depth):
            go_left = x[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
        # a sequential sum over trees, in tree order, as scikit-learn accumulates (np.sum would
        # add pairwise and could differ in the last bit)
        return np.cumsum(self.value[node], axis=1)[:, -1] / self.n_trees


def pack_forests(model: Any) -> int:
    """Give every single-output random forest inside ``model`` a :class:`PackedForest`
    ``predict_proba`` for finite inputs (others take the per-tree path); return how many.
    The model on disk is unchanged."""
    packed = 0
    for forest in find_forests(model):
        if not hasattr(forest, "estimators_") or forest.n_outputs_ != 1:
            continue  # unfitted (a template inside a search) or multi-output
        packed_forest = PackedForest(forest)

        def predict_proba(X: Any, _packed: PackedForest = packed_forest, _forest: Any = forest):
            X = np.asarray(X)
            if X.dtype.kind != "f" or X.ndim != 2 or not np.isfinite(X).all():
                return forest_proba(_forest, X)
            return _packed.predict_proba(X)

        forest.predict_proba = predict_proba  # type: ignore[method-assign]
        packed += 1
    return packed
