"""An RBF support-vector machine on wavelet scattering coefficients or on the pixels, as a torch
module an image ensemble can average.

A kernel machine makes errors unlike a CNN's. On the pixels it scores well below the CNNs on
BreastMNIST; on log scattering coefficients (:mod:`medsight.models.scattering`: fixed wavelets,
stable to small shifts and deformations) it scores about as well as five CNNs trained from
scratch, and differently (docs/architecture.md).

scikit-learn fits it: features -> ``StandardScaler`` -> ``PCA`` -> a balanced RBF ``SVC`` with C
chosen by grouped cross-validated AUROC, then Platt scaling, a logistic regression on the
out-of-fold decision values. :class:`PixelSVM` re-states the fitted arithmetic in torch (the
scattering as fixed convolutions) so that the machine sits in
:class:`~medsight.models.ensemble.ProbabilityAverage` beside the CNNs, is saved in the same
state dict and exports to ONNX with them. This is written by hand because no maintained
converter turns a scikit-learn pipeline into an ``nn.Module`` that can be rebuilt from a spec and
composed with other modules (hummingbird-ml builds its own executor and lags scikit-learn
releases); the arithmetic is a projection, a kernel and a sigmoid.

Two classes: one machine, positive class 1. More classes: one machine per class against the
rest; the softmax of their Platt log-odds gives the probabilities.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medsight.errors import DataError
from medsight.models.ensemble import FeatureHeadMember, member_of_type
from medsight.models.scattering import Scattering2d, scattering_from_spec

logger = logging.getLogger(__name__)

MAX_SIDE = 32  # larger images are average-pooled by an integer factor to at most this side
FEATURE_BATCH = 256  # images per scattering pass while fitting (bounds the wavelet maps' memory)


def pooling_factor(height: int, width: int) -> int:
    """The integer average-pooling factor that brings the longer side to at most ``MAX_SIDE``."""
    return max(1, math.ceil(max(height, width) / MAX_SIDE))


def pooled_pixels(images: torch.Tensor, factor: int) -> torch.Tensor:
    """``(N, C, H, W)`` images average-pooled by ``factor`` and flattened to ``(N, features)``."""
    if factor > 1:
        images = F.avg_pool2d(images, kernel_size=factor, stride=factor)
    return images.flatten(1)


def member_features(
    images: torch.Tensor, pooling: int, scattering: Scattering2d | None
) -> torch.Tensor:
    """``(N, C, H, W)`` images in [0, 1] -> ``(N, features)``: the pooled pixels, or the log
    scattering coefficients of the pooled images."""
    if scattering is None:
        return pooled_pixels(images, pooling)
    if pooling > 1:
        images = F.avg_pool2d(images, kernel_size=pooling, stride=pooling)
    return scattering(images)


class PooledFeatureMember(FeatureHeadMember):
    """A member whose features are :func:`member_features`: the pooled pixels or their log
    scattering coefficients. Members with the same pooling and scattering share them."""

    pooling: int
    scattering: Scattering2d | None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return member_features(x, self.pooling, self.scattering)

    def feature_key(self) -> Hashable:
        if self.scattering is None:
            return ("pixels", self.pooling)
        spec = self.scattering.spec()
        return ("scattering", self.pooling, *spec["size"], spec["scale"], spec["orientations"])


@dataclass
class TrainingFeatures:
    """The rows a member on fixed features (the SVM, the trees) is fitted on."""

    features: np.ndarray  # (V * N, F) float32: every image, then every image's next view
    targets: np.ndarray  # (V * N,) each row's label
    groups: np.ndarray  # (V * N,) the image each row comes from (a view shares its original's)
    pooling: int  # the average-pooling factor applied before the features
    scattering: Scattering2d | None  # the transform on the pooled images, or None (pixels)


def training_features(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    views: Sequence[Callable[[torch.Tensor], torch.Tensor]] = (),
    scattering: tuple[int, int] | None = None,
    max_train: int = 2000,
    seed: int = 0,
) -> TrainingFeatures:
    """:func:`member_features` of ``images`` ``(N, C, H, W)`` in [0, 1] and of their ``views``
    (scattering ``(J, L)`` or pixels), from at most ``max_train`` images (a stratified sample)."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    if len(images) > max_train:
        images, _, labels, _ = train_test_split(
            images, labels, train_size=max_train, stratify=labels, random_state=seed
        )
    factor = pooling_factor(*images.shape[2:])
    transform = None
    if scattering is not None:
        size = (images.shape[2] // factor, images.shape[3] // factor)
        transform = Scattering2d(size, scattering[0], scattering[1])
    originals = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    versions = [originals, *(view(originals) for view in views)]
    with torch.no_grad():
        features = torch.cat(
            [
                member_features(batch, factor, transform)
                for version in versions
                for batch in version.split(FEATURE_BATCH)
            ]
        ).numpy()
    return TrainingFeatures(
        features,
        np.tile(labels, len(versions)),
        np.tile(np.arange(len(labels)), len(versions)),
        factor,
        transform,
    )


class RBFMachine(nn.Module):
    """One two-class RBF machine on projected inputs, returning its Platt log-odds."""

    def __init__(self, n_support: int, n_components: int) -> None:
        super().__init__()
        self.register_buffer("support", torch.zeros(n_support, n_components))
        self.register_buffer("support_sq", torch.zeros(n_support))
        self.register_buffer("dual", torch.zeros(n_support))
        # intercept, gamma, Platt slope, Platt intercept
        self.register_buffer("constants", torch.zeros(4))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        intercept, gamma, slope, offset = self.constants
        distances = (z * z).sum(dim=1, keepdim=True) + self.support_sq - 2.0 * z @ self.support.T
        decision = torch.exp(-gamma * distances.clamp_min(0.0)) @ self.dual + intercept
        return slope * decision + offset


class PixelSVM(PooledFeatureMember):
    """Pixels in [0, 1] -> pool -> (scattering) -> standardise -> PCA -> RBF machine(s) -> logits.

    For two classes the logits are ``(0, log-odds of class 1)``; for more, one Platt log-odds per
    class. Either way ``softmax`` of the output gives the class probabilities. Build an empty one
    from :meth:`spec` values and load a state dict, or fit one with :func:`fit_pixel_svm`.
    """

    def __init__(
        self,
        n_inputs: int,
        n_components: int,
        support_counts: Sequence[int],
        pooling: int = 1,
        c: Sequence[float] = (),
        scattering: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.pooling = int(pooling)
        self.c = [float(value) for value in c]  # each machine's chosen C (for reports)
        # {"size": [h, w], "scale": J, "orientations": L} of the pooled images, or None (pixels)
        self.scattering = scattering_from_spec(scattering)
        self.binary = len(support_counts) == 1
        # standardisation and PCA folded into one affine map: z = x @ projection.T - offset
        self.register_buffer("projection", torch.zeros(n_components, n_inputs))
        self.register_buffer("offset", torch.zeros(n_components))
        self.machines = nn.ModuleList(RBFMachine(n, n_components) for n in support_counts)

    # a kernel on flattened features has no feature map for Grad-CAM, and its gradients saturate
    # near the support vectors: medsight.explain maps it by occlusion (masking regions)
    attribution = "occlusion"

    def spec(self) -> dict[str, object]:
        """The sizes that rebuild this module empty (``PixelSVM(**spec)``) for a state dict."""
        return {
            "n_inputs": self.projection.shape[1],
            "n_components": self.projection.shape[0],
            "support_counts": [machine.support.shape[0] for machine in self.machines],
            "pooling": self.pooling,
            "c": self.c,
            "scattering": None if self.scattering is None else self.scattering.spec(),
        }

    def describe(self) -> str:
        """E.g. ``scattering SVM (J 3, L 8, 100 PCA components, C 10, 641 support vectors)``."""
        c = "/".join(f"{value:g}" for value in self.c) or "?"
        support = "/".join(str(machine.support.shape[0]) for machine in self.machines)
        kind = "pixel SVM ("
        if self.scattering is not None:
            kind = f"scattering SVM (J {self.scattering.scale}, L {self.scattering.orientations}, "
        return f"{kind}{self.projection.shape[0]} PCA components, C {c}, {support} support vectors)"

    def head(self, features: torch.Tensor) -> torch.Tensor:
        z = features @ self.projection.T - self.offset
        logits = torch.stack([machine(z) for machine in self.machines], dim=1)
        if self.binary:
            return torch.cat([torch.zeros_like(logits), logits], dim=1)
        return logits


def fit_pixel_svm(
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    views: Sequence[Callable[[torch.Tensor], torch.Tensor]] = (),
    components: int = 50,
    c_grid: Sequence[float] = (0.3, 1.0, 3.0, 10.0),
    folds: int = 3,
    max_train: int = 2000,
    seed: int = 0,
    scattering: tuple[int, int] | None = None,
) -> PixelSVM:
    """Fit the machine(s) on ``images`` ``(N, C, H, W)`` in [0, 1] with integer ``labels``.

    ``scattering`` ``(J, L)``: the machine sees the log scattering coefficients of the pooled
    images instead of their pixels.

    ``views`` are extra versions of every image to train on (the test-time flips), kept in the
    same cross-validation group as their original so that no image is scored by a machine that
    saw its mirror. ``components`` PCA components; C is the value of ``c_grid`` with the best
    mean AUROC over ``folds`` grouped folds. At most ``max_train`` images are used (a stratified
    sample): the kernel machine's cost grows with the square of the training size.
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    data = training_features(
        images, labels, views=views, scattering=scattering, max_train=max_train, seed=seed
    )
    features, targets, groups = data.features.astype(np.float64), data.targets, data.groups

    scaler = StandardScaler().fit(features)
    n_components = min(components, features.shape[1], len(features) - 1)
    pca = PCA(n_components=n_components, random_state=seed).fit(scaler.transform(features))
    projected = pca.transform(scaler.transform(features))

    positives = [1] if n_classes == 2 else list(range(n_classes))
    machines = [
        _fit_machine(projected, targets == k, groups, c_grid, folds, seed) for k in positives
    ]
    module = PixelSVM(
        features.shape[1],
        n_components,
        [len(m.support) for m in machines],
        pooling=data.pooling,
        c=[m.c for m in machines],
        scattering=None if data.scattering is None else data.scattering.spec(),
    )
    # z = ((x - mean) / scale - pca_mean) @ components.T, folded into one affine map
    components = pca.components_ / scaler.scale_
    offset = (scaler.mean_ / scaler.scale_ + pca.mean_) @ pca.components_.T
    with torch.no_grad():
        module.projection.copy_(torch.from_numpy(components))
        module.offset.copy_(torch.from_numpy(offset))
        for machine, fitted in zip(module.machines, machines, strict=True):
            fitted.copy_into(machine)
    return module.eval()


def svm_member(model: nn.Module) -> PixelSVM | None:
    """The pixel SVM member of an ensemble (or the model itself), if there is one."""
    return member_of_type(model, PixelSVM)


@dataclass
class _FittedMachine:
    support: np.ndarray
    dual: np.ndarray
    intercept: float
    gamma: float
    slope: float
    offset: float
    c: float

    def copy_into(self, machine: RBFMachine) -> None:
        machine.support.copy_(torch.from_numpy(self.support))
        machine.support_sq.copy_(torch.from_numpy((self.support**2).sum(axis=1)))
        machine.dual.copy_(torch.from_numpy(self.dual))
        constants = [self.intercept, self.gamma, self.slope, self.offset]
        machine.constants.copy_(torch.tensor(constants, dtype=torch.float64))


def _fit_machine(
    z: np.ndarray,
    positive: np.ndarray,
    groups: np.ndarray,
    c_grid: Sequence[float],
    n_folds: int,
    seed: int,
) -> _FittedMachine:
    """One balanced RBF SVC: C by mean grouped-fold AUROC, Platt scaling on out-of-fold values."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.svm import SVC

    y = positive.astype(int)
    smallest = int(min(np.unique(groups[y == 1]).size, np.unique(groups[y == 0]).size))
    folds = min(n_folds, smallest)
    if folds < 2:
        raise DataError(
            "the SVM member needs at least 2 training images of every class; "
            "turn it off (model.svm_member.enabled: false) or add images."
        )
    gamma = 1.0 / (z.shape[1] * z.var())  # scikit-learn's gamma="scale", fixed for export
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(splitter.split(z, y, groups))
    best: tuple[float, float, np.ndarray] | None = None
    for c in c_grid:
        out_of_fold = np.zeros(len(y))
        scores = []
        for train, held in splits:
            svc = SVC(C=c, gamma=gamma, class_weight="balanced").fit(z[train], y[train])
            out_of_fold[held] = svc.decision_function(z[held])
            scores.append(roc_auc_score(y[held], out_of_fold[held]))
        score = float(np.mean(scores))
        if best is None or score > best[0]:
            best = (score, c, out_of_fold)
    assert best is not None
    _, c, out_of_fold = best
    platt = LogisticRegression(C=1e4).fit(out_of_fold[:, None], y)
    svc = SVC(C=c, gamma=gamma, class_weight="balanced").fit(z, y)
    logger.info("SVM member: C %g (grouped %d-fold AUROC %.3f)", c, folds, best[0])
    return _FittedMachine(
        support=svc.support_vectors_,
        dual=svc.dual_coef_[0],
        intercept=float(svc.intercept_[0]),
        gamma=gamma,
        slope=float(platt.coef_[0, 0]),
        offset=float(platt.intercept_[0]),
        c=c,
    )
