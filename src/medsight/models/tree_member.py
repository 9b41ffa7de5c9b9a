"""Gradient-boosted trees (LightGBM) on wavelet scattering coefficients, as a torch module an
image ensemble can average.

A third kind of member beside the networks and the SVM: trees split single coefficients, so they
err differently from both. Adopted in session 16 by cross-validation on ten fresh BreastMNIST
folds against a rule written before the runs (docs/architecture.md).

LightGBM fits the trees; :class:`TreeEnsemble` re-states them as tensor operations so that the
member sits in :class:`~medsight.models.ensemble.ProbabilityAverage`, is saved in the same state
dict and exports to ONNX with the networks. Written by hand because the converters that do this
(hummingbird-ml, onnxmltools) build their own executors or separate ONNX graphs instead of an
``nn.Module`` that composes with the networks and is rebuilt from a spec; evaluating a tree is a
comparison per node and a sum per leaf.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from medsight.errors import DataError
from medsight.models.ensemble import member_of_type
from medsight.models.pixel_svm import PooledFeatureMember, training_features
from medsight.models.scattering import scattering_from_spec


class TreeEnsemble(nn.Module):
    """Boosted trees as tensors: ``(N, features)`` -> ``(N, outputs)`` raw scores.

    Each tree has at most ``max_nodes`` split nodes and ``max_leaves`` leaves (smaller trees are
    padded). A node sends an input left when ``feature <= threshold``. Leaf ``l`` is reached when
    the sum over its path of ``+go_left`` (left turns) and ``-go_left`` (right turns) equals its
    number of left turns, which no other leaf's path allows; padded leaves need ``-1``.
    """

    def __init__(self, n_trees: int, max_nodes: int, max_leaves: int, n_outputs: int) -> None:
        super().__init__()
        self.register_buffer("feature", torch.zeros(n_trees, max_nodes, dtype=torch.long))
        # float32 thresholds rounded down, so x <= threshold decides exactly as LightGBM's
        # double comparison does for float32 features
        self.register_buffer("threshold", torch.zeros(n_trees, max_nodes))
        self.register_buffer("path", torch.zeros(n_trees, max_nodes, max_leaves))
        self.register_buffer("left_turns", torch.full((n_trees, max_leaves), -1.0))
        self.register_buffer("leaf_value", torch.zeros(n_trees, max_leaves))
        self.register_buffer("output_of_tree", torch.zeros(n_trees, n_outputs))  # one-hot

    def sizes(self) -> tuple[int, int, int, int]:
        """``(n_trees, max_nodes, max_leaves, n_outputs)``: what rebuilds it empty."""
        n_trees, max_nodes, max_leaves = self.path.shape
        return n_trees, max_nodes, max_leaves, self.output_of_tree.shape[1]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        go_left = (features[:, self.feature] <= self.threshold).to(features.dtype)  # (N, T, I)
        agreement = torch.einsum("nti,til->ntl", go_left, self.path)
        reached = (agreement == self.left_turns).to(features.dtype)  # (N, T, L), one per tree
        per_tree = (reached * self.leaf_value).sum(dim=2)  # (N, T)
        return per_tree @ self.output_of_tree

    @classmethod
    def from_lightgbm(cls, booster: Any) -> TreeEnsemble:
        """The trees of a fitted LightGBM ``Booster`` (numeric splits only)."""
        dump = booster.dump_model()
        if dump.get("average_output"):
            raise DataError("random-forest LightGBM models (average_output) are not supported.")
        per_iteration = int(dump["num_tree_per_iteration"])
        trees = [_flatten(info["tree_structure"]) for info in dump["tree_info"]]
        max_nodes = max(1, max(len(nodes) for nodes, _ in trees))
        max_leaves = max(len(leaves) for _, leaves in trees)
        module = cls(len(trees), max_nodes, max_leaves, per_iteration)
        for t, (nodes, leaves) in enumerate(trees):
            for i, (feature, threshold) in enumerate(nodes):
                module.feature[t, i] = feature
                module.threshold[t, i] = float(_round_down_to_float32(threshold))
            for leaf, (value, turns) in enumerate(leaves):
                module.leaf_value[t, leaf] = value
                module.left_turns[t, leaf] = sum(1 for _, left in turns if left)
                for node, left in turns:
                    module.path[t, node, leaf] = 1.0 if left else -1.0
            module.output_of_tree[t, t % per_iteration] = 1.0
        return module


def _flatten(
    root: dict[str, Any],
) -> tuple[list[tuple[int, float]], list[tuple[float, list[tuple[int, bool]]]]]:
    """A dumped tree as its split nodes ``(feature, threshold)`` and its leaves ``(value,
    [(node, went_left), ...])`` in depth-first order."""
    nodes: list[tuple[int, float]] = []
    leaves: list[tuple[float, list[tuple[int, bool]]]] = []

    def visit(node: dict[str, Any], turns: list[tuple[int, bool]]) -> None:
        if "split_feature" not in node:
            leaves.append((float(node["leaf_value"]), turns))
            return
        if node.get("decision_type") != "<=" or node.get("num_cat", 0):
            raise DataError(f"only numeric '<=' splits are supported, not {node}.")
        index = len(nodes)
        nodes.append((int(node["split_feature"]), float(node["threshold"])))
        visit(node["left_child"], [*turns, (index, True)])
        visit(node["right_child"], [*turns, (index, False)])

    visit(root, [])
    return nodes, leaves


def _round_down_to_float32(value: float) -> np.float32:
    """The largest float32 not above ``value``: for float32 ``x``, ``x <= result`` exactly when
    ``x <= value``."""
    rounded = np.float32(value)
    if float(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf), dtype=np.float32)
    return rounded


class ScatteringTrees(PooledFeatureMember):
    """Pixels in [0, 1] -> pool -> scattering -> boosted trees -> logits.

    Two classes: ``(0, raw score)`` (the raw score is the log-odds of class 1); more: one raw
    score per class. ``softmax`` of the output gives LightGBM's probabilities either way.
    """

    # trees have no feature map for Grad-CAM: medsight.explain maps them by occlusion
    attribution = "occlusion"

    def __init__(
        self,
        n_trees: int,
        max_nodes: int,
        max_leaves: int,
        n_outputs: int,
        scattering: dict[str, Any],
        pooling: int = 1,
    ) -> None:
        super().__init__()
        self.pooling = int(pooling)
        self.scattering = scattering_from_spec(scattering)
        self.trees = TreeEnsemble(n_trees, max_nodes, max_leaves, n_outputs)

    def spec(self) -> dict[str, object]:
        """The sizes that rebuild this module empty (``ScatteringTrees(**spec)``)."""
        assert self.scattering is not None
        n_trees, max_nodes, max_leaves, n_outputs = self.trees.sizes()
        return {
            "n_trees": n_trees,
            "max_nodes": max_nodes,
            "max_leaves": max_leaves,
            "n_outputs": n_outputs,
            "scattering": self.scattering.spec(),
            "pooling": self.pooling,
        }

    def describe(self) -> str:
        """E.g. ``LightGBM on scattering coefficients (J 3, L 8, 300 trees of <= 15 leaves)``."""
        assert self.scattering is not None
        n_trees, _, max_leaves, _ = self.trees.sizes()
        return (
            f"LightGBM on scattering coefficients (J {self.scattering.scale}, "
            f"L {self.scattering.orientations}, {n_trees} trees of <= {max_leaves} leaves)"
        )

    def head(self, features: torch.Tensor) -> torch.Tensor:
        scores = self.trees(features)
        if scores.shape[1] == 1:
            return torch.cat([torch.zeros_like(scores), scores], dim=1)
        return scores


def tree_member(model: nn.Module) -> ScatteringTrees | None:
    """The tree member of an ensemble (or the model itself), if there is one."""
    return member_of_type(model, ScatteringTrees)


def fit_scattering_trees(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    views: Sequence[Callable[[torch.Tensor], torch.Tensor]] = (),
    scattering: tuple[int, int] = (3, 8),
    trees: int = 300,
    learning_rate: float = 0.03,
    leaves: int = 15,
    row_fraction: float = 0.8,
    feature_fraction: float = 0.3,
    max_train: int = 2000,
    seed: int = 0,
) -> ScatteringTrees:
    """Fit LightGBM on the log scattering coefficients of ``images`` ``(N, C, H, W)`` in [0, 1]
    and of their ``views`` (the test-time flips); at most ``max_train`` images (a stratified
    sample) are used, because every image holds thousands of coefficients."""
    from lightgbm import LGBMClassifier

    counts = np.bincount(np.asarray(labels), minlength=n_classes)
    if (counts < 2).any():
        raise DataError(
            "the tree member needs at least 2 training images of every class; "
            f"counts per class: {counts.tolist()}."
        )
    data = training_features(
        images, labels, views=views, scattering=scattering, max_train=max_train, seed=seed
    )
    assert data.scattering is not None
    model = LGBMClassifier(
        n_estimators=trees,
        learning_rate=learning_rate,
        num_leaves=leaves,
        subsample=row_fraction,
        subsample_freq=1,
        colsample_bytree=feature_fraction,
        random_state=seed,
        n_jobs=torch.get_num_threads(),
        verbose=-1,
    ).fit(data.features, data.targets)
    fitted = TreeEnsemble.from_lightgbm(model.booster_)
    member = ScatteringTrees(*fitted.sizes(), data.scattering.spec(), data.pooling)
    member.trees = fitted
    return member.eval()
