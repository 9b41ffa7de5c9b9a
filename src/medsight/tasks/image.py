"""The image-classification task: read, train with the shared engine, test once, bundle, report.

Model selection (early stopping) uses the validation split only; the test split is scored once,
after training, with bootstrap confidence intervals.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from medsight.bundle.image import ImageBundle
from medsight.bundle.prediction import class_text
from medsight.config import (
    ImageTrainConfig,
    OperatingPointConfig,
    SvmMemberConfig,
    TreeMemberConfig,
    dump_config,
)
from medsight.data.fingerprint import package_versions
from medsight.data.image_audit import (
    DEFAULT_THRESHOLD,
    SPLIT_THRESHOLD_KEY,
    ImageAudit,
    audit_images,
)
from medsight.errors import ConfigError, DataError
from medsight.evaluate.bootstrap import (
    Estimate,
    binary_metrics_with_ci,
    multiclass_metrics_with_ci,
    multilabel_metrics_with_ci,
)
from medsight.evaluate.thresholds import (
    choose_finding_thresholds,
    choose_threshold,
    decide,
    threshold_text,
)
from medsight.models.ensemble import (
    ProbabilityAverage,
    member_seed,
    share_by_val_loss,
    val_loss_rise,
)
from medsight.models.imaging import check_input_size
from medsight.models.pixel_svm import PixelSVM, fit_pixel_svm
from medsight.models.registry import create_model, get_model_entry, list_models
from medsight.models.tree_member import ScatteringTrees, fit_scattering_trees
from medsight.runs import run_name, staged_directory
from medsight.tasks.image_data import ImageSplits, load_image_splits
from medsight.train.distributed import DistributedContext, init_from_env
from medsight.train.engine import FitResult, Trainer
from medsight.train.settings import engine_config
from medsight.transforms.image import (
    ImageTensorDataset,
    Standardize,
    build_train_transform,
    channel_statistics,
    tta_functions,
    tta_names,
)

logger = logging.getLogger(__name__)
M = TypeVar("M")
Stage = Callable[[str], None]


@dataclass
class TrainedImageModel:
    """A model trained on the train split, selected on val, and its test-split probabilities."""

    model: nn.Module
    fits: list[FitResult]  # one per ensemble member (one for a single network)
    tta: list[str]
    test_probabilities: np.ndarray
    model_spec: dict[str, Any]
    normalisation: dict[str, list[float]]
    train_seconds: float
    positive_index: int | None  # binary tasks only
    # on the positive probability (binary), one per finding or one for all (multi-label), or
    # None (argmax)
    threshold: float | list[float] | None
    threshold_method: str  # "fixed", "youden on val", "sensitivity 0.95 on val" or "argmax"
    svm_seconds: float = 0.0  # fitting the SVM member (part of train_seconds)
    multi_label: bool = False  # several findings per image, each with its own probability
    tree_seconds: float = 0.0  # fitting the tree member (part of train_seconds)

    def predicted_classes(self, probabilities: np.ndarray) -> np.ndarray:
        """Class indices at the model's operating point (argmax for more than two classes);
        multi-label: ``(N, L)`` 0/1, each finding present at probability >= the threshold."""
        return decide(
            probabilities, self.positive_index, self.threshold, multi_label=self.multi_label
        )

    @property
    def svm_share(self) -> float:
        """The SVM member's share of the averaged probability (0 without one)."""
        return _extra_member_share(self.model_spec, "svm_member")

    @property
    def tree_share(self) -> float:
        """The tree member's share of the averaged probability (0 without one)."""
        return _extra_member_share(self.model_spec, "tree_member")

    @property
    def best_epochs(self) -> list[int]:
        return [fit.best_epoch for fit in self.fits]

    def describe_selection(self) -> str:
        """Best epoch(s) and validation score(s), e.g. ``23 of 100 (0.951)``."""
        return "; ".join(
            f"{fit.best_epoch} of {fit.epochs_run} ({fit.best_score:.3f})" for fit in self.fits
        )


@dataclass
class ImageRunResult:
    """Where a finished image run is, with its headline numbers."""

    run_dir: Path
    report_path: Path
    bundle_path: Path
    metrics: dict[str, Estimate]
    trained: TrainedImageModel
    splits: ImageSplits
    audit: ImageAudit | None = None  # near-duplicates within and across the splits (rank 0)


EXTRA_MEMBERS = ("svm_member", "tree_member")  # after the networks, in this order


def _extra_member_share(spec: dict[str, Any], key: str) -> float:
    """The share of the member that ``spec[key]`` describes (0 without one)."""
    shares = spec.get("member_weights")
    if not shares or not spec.get(key):
        return 0.0
    present = [name for name in EXTRA_MEMBERS if spec.get(name)]
    return float(shares[len(shares) - len(present) + present.index(key)])


def build_network(spec: dict[str, Any], normalisation: dict[str, list[float]]) -> nn.Module:
    """The registered network named in ``spec`` wrapped with its input standardisation; an
    ensemble of ``spec["ensemble"]`` such networks when that is more than 1, with an (empty)
    SVM member and tree member when ``spec["svm_member"]`` and ``spec["tree_member"]`` give
    their sizes (``spec["member_weights"]``: the members' shares, else equal)."""
    networks = [_single_network(spec, normalisation) for _ in range(int(spec.get("ensemble", 1)))]
    multi_label = bool(spec.get("multi_label", False))
    extra: list[nn.Module] = []
    if spec.get("svm_member"):
        extra.append(PixelSVM(**spec["svm_member"]))
    if spec.get("tree_member"):
        extra.append(ScatteringTrees(**spec["tree_member"]))
    if extra:
        return ProbabilityAverage([*networks, *extra], weights=spec.get("member_weights"))
    if len(networks) > 1:
        return ProbabilityAverage(networks, multi_label=multi_label)
    return networks[0]


def _single_network(spec: dict[str, Any], normalisation: dict[str, list[float]]) -> nn.Module:
    entry = get_model_entry(spec["name"])
    if entry.family != "image":
        raise ConfigError(
            f"model '{spec['name']}' is a {entry.family} model; image models: "
            f"{', '.join(e.name for e in list_models('image'))} (see `medsight models`)."
        )
    network = create_model(
        spec["name"],
        in_channels=spec["in_channels"],
        num_classes=spec["num_classes"],
        **spec.get("params", {}),
    )
    return Standardize(network, normalisation["mean"], normalisation["std"])


def _takes_image_size(name: str) -> bool:
    """Whether the registered model's factory builds for one input ``size``."""
    return "size" in inspect.signature(get_model_entry(name).factory).parameters


def new_network(
    config: ImageTrainConfig, splits: ImageSplits
) -> tuple[nn.Module, dict[str, Any], dict[str, list[float]]]:
    """An untrained network for ``splits`` (with optional local weights), its spec for the bundle
    and the training images' channel normalisation."""
    channels, height, _ = splits.train.image_shape
    spec = {
        "name": config.model.name,
        "params": dict(config.model.params),
        "in_channels": channels,
        "num_classes": len(splits.class_names),
        "ensemble": config.model.ensemble,
    }
    if splits.train.multi_label:
        spec["multi_label"] = True
    if config.model.weights is not None:
        spec["params"]["weights"] = str(config.model.weights)
    if _takes_image_size(config.model.name):  # built for one size (scattering_cnn's filters)
        spec["params"].setdefault("size", height)
    mean, std = channel_statistics(splits.train.images)
    normalisation = {"mean": mean, "std": std}
    model = build_network(spec, normalisation)
    for member in ensemble_members(model):
        check_input_size(member.network, config.model.name, height)
    spec["params"].pop("weights", None)  # the bundle carries the trained weights itself
    return model, spec, normalisation


def train_image_model(
    config: ImageTrainConfig,
    splits: ImageSplits,
    *,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    progress: bool = True,
    distributed: DistributedContext | None = None,
) -> TrainedImageModel:
    """Train on ``splits.train``, early-stop on ``splits.val``, predict ``splits.test`` once.

    Ensemble members are trained one after another, each from its own seed and early-stopped on
    val by itself. Under ``torchrun`` pass the job's ``distributed`` context: every rank trains
    its shard and ends with the same weights and test probabilities.
    """
    multi_label = splits.train.multi_label
    if multi_label:
        check_multi_label_config(config)
    torch.manual_seed(config.seed)  # the initial weights
    model, spec, normalisation = new_network(config, splits)
    height = splits.train.image_shape[1]
    transform = build_train_transform(config.augment, height)
    val = ImageTensorDataset(splits.val.images, splits.val.labels)
    members = ensemble_members(model)
    fits = []
    for index, member in enumerate(members):
        seed = member_seed(config.seed, index)
        train = ImageTensorDataset(splits.train.images, splits.train.labels, transform, seed=seed)
        trainer = Trainer(
            member,
            engine_config(
                config.engine,
                seed,
                n_train=len(train),
                progress=progress,
                multi_label=multi_label,
            ),
            checkpoint_dir=_member_folder(checkpoint_dir, index, len(members)),
            distributed=distributed,
        )
        started = time.perf_counter()
        fits.append(trainer.fit(train, val, resume=resume))
        if distributed is None or distributed.is_main:
            logger.info(
                "ensemble member %d/%d: best epoch %d of %d, %s %.4f, %.0f s",
                index + 1,
                len(members),
                fits[-1].best_epoch,
                fits[-1].epochs_run,
                fits[-1].monitored,
                fits[-1].best_score,
                time.perf_counter() - started,
            )
    tta = tta_names(config.augment) if config.engine.tta else []
    svm_seconds = tree_seconds = 0.0
    if config.model.svm_member.active(multi_label):
        started = time.perf_counter()
        fit = partial(fit_svm_member, config, splits)
        model = add_member(config, "svm_member", "SVM", fit, model, spec, val, tta, distributed)
        svm_seconds = time.perf_counter() - started
    if config.model.tree_member.active(multi_label):
        started = time.perf_counter()
        fit = partial(fit_tree_member, config, splits)
        model = add_member(config, "tree_member", "tree", fit, model, spec, val, tta, distributed)
        tree_seconds = time.perf_counter() - started
    predictor = Trainer(
        model, engine_config(config.engine, config.seed, n_train=1, multi_label=multi_label)
    )
    test = ImageTensorDataset(splits.test.images, splits.test.labels)
    test_probabilities = predictor.predict_proba(test, tta=tta_functions(tta))
    seconds = svm_seconds + tree_seconds
    seconds += sum(record.train_seconds for fit in fits for record in fit.history)
    positive: int | None = None
    threshold: float | None = None
    method = "argmax"
    if multi_label:
        threshold, method = config.evaluation.fixed_threshold, "each finding at a fixed cut"
        if config.evaluation.threshold != "fixed":
            val_probabilities = predictor.predict_proba(val, tta=tta_functions(tta))
            threshold, method = val_finding_thresholds(
                config.evaluation, splits.val.labels, val_probabilities, splits.class_names
            )
    elif len(splits.class_names) == 2:
        positive = positive_index(splits, config.data.positive_class)
        threshold, method = config.evaluation.fixed_threshold, "fixed"
        if config.evaluation.threshold != "fixed":  # only then is val predicted
            val_probabilities = predictor.predict_proba(val, tta=tta_functions(tta))
            threshold, method = val_threshold(
                config.evaluation, splits.val.labels == positive, val_probabilities[:, positive]
            )
    return TrainedImageModel(
        predictor.model,
        fits,
        tta,
        test_probabilities,
        spec,
        normalisation,
        seconds,
        positive,
        threshold,
        method,
        svm_seconds,
        multi_label,
        tree_seconds,
    )


def check_multi_label_config(config: ImageTrainConfig) -> None:
    """Settings that have no multi-label meaning are refused before any training."""
    if config.model.svm_member.enabled is True:
        raise ConfigError(
            "the SVM member is for one label per image; turn it off "
            "(model.svm_member.enabled: false) for multi-label data."
        )
    if config.model.tree_member.enabled is True:
        raise ConfigError(
            "the tree member is for one label per image; turn it off "
            "(model.tree_member.enabled: false) for multi-label data."
        )


# one-sided 5%: a member is left out only where its val log-loss rise is unlikely to be chance
LEAVE_OUT_Z = 1.645


def member_share(
    config: ImageTrainConfig,
    settings: SvmMemberConfig | TreeMemberConfig,
    name: str,
    current: nn.Module,
    member: nn.Module,
    val: ImageTensorDataset,
    tta: list[str],
) -> float:
    """``member``'s share of the averaged probability (``current`` keeps the rest): the setting,
    or with ``"val"`` the share in ``settings.weight_grid`` whose mixture has the lowest log-loss
    on the val split. With ``leave_out_if_worse_on_val`` a share of 0 where mixing the member in
    raises the val log-loss by more than ``LEAVE_OUT_Z`` standard errors (paired, per image)."""
    if settings.weight != "val" and not settings.leave_out_if_worse_on_val:
        return float(settings.weight)
    engine = engine_config(config.engine, config.seed, n_train=1)
    views = tta_functions(tta)
    current_probabilities = Trainer(current, engine).predict_proba(val, tta=views)
    member_probabilities = Trainer(member, engine).predict_proba(val, tta=views)
    labels = np.asarray(val.labels)
    share = settings.weight
    if share == "val":
        share, losses = share_by_val_loss(
            labels, current_probabilities, member_probabilities, settings.weight_grid
        )
        logger.info(
            "%s member share by val log-loss: %s",
            name,
            ", ".join(f"{k:g}: {v:.3f}" for k, v in losses.items()),
        )
    if settings.leave_out_if_worse_on_val and share > 0:
        rise, error = val_loss_rise(labels, current_probabilities, member_probabilities, share)
        worse = rise > LEAVE_OUT_Z * error
        logger.info(
            "%s member at %.2f %s the val log-loss by %+.4f (standard error %.4f)%s",
            name,
            share,
            "raises" if rise > 0 else "changes",
            rise,
            error,
            ": left out" if worse else "",
        )
        if worse:
            return 0.0
    return float(share)


def fit_svm_member(config: ImageTrainConfig, splits: ImageSplits) -> PixelSVM | None:
    """The SVM member fitted on the train split, also on the test-time flips of each
    image (the views it will be asked about), seeded by the run's seed. With ``enabled: auto``
    a training split it cannot be fitted on gives a warning and no member (None)."""
    return _fit_or_skip(
        config.model.svm_member.enabled, "SVM", lambda: _fit_svm_member(config, splits)
    )


def _fit_or_skip(enabled: bool | str, member: str, fit: Callable[[], M]) -> M | None:
    """``fit()``; with ``enabled: auto`` a :class:`DataError` (a training split the member
    cannot be fitted on) is logged as a warning and gives no member, with ``true`` it stands."""
    try:
        return fit()
    except DataError as error:
        if enabled is True:
            raise
        logger.warning("no %s member: %s", member, error)
        return None


def _fit_svm_member(config: ImageTrainConfig, splits: ImageSplits) -> PixelSVM:
    settings = config.model.svm_member
    return fit_pixel_svm(
        splits.train.images,
        splits.train.labels,
        len(splits.class_names),
        views=tta_functions(tta_names(config.augment)),
        components=settings.n_components(),
        c_grid=settings.c_grid,
        folds=settings.folds,
        max_train=settings.max_train,
        seed=config.seed,
        scattering=(
            (settings.scattering_scale, settings.orientations)
            if settings.features == "scattering"
            else None
        ),
    )


def val_threshold(
    settings: OperatingPointConfig, positive: np.ndarray, probability: np.ndarray
) -> tuple[float, str]:
    """The threshold on the positive probability chosen on validation data by
    ``settings.threshold`` (youden, sensitivity or accuracy), and how, e.g. ``sensitivity 0.9 on
    val``."""
    threshold = choose_threshold(
        positive.astype(int), probability, settings.threshold, settings.target_sensitivity
    )
    return threshold, f"{_operating_rule(settings)} on val"


def _operating_rule(settings: OperatingPointConfig) -> str:
    """``youden``, ``accuracy`` or ``sensitivity 0.95``: how a threshold is chosen on val."""
    if settings.threshold == "sensitivity":
        return f"sensitivity {settings.target_sensitivity:g}"
    return settings.threshold


def val_finding_thresholds(
    settings: OperatingPointConfig,
    labels: np.ndarray,
    probabilities: np.ndarray,
    names: list[str],
) -> tuple[list[float], str]:
    """Multi-label: a threshold per finding chosen on validation data by ``settings.threshold``,
    and how; a finding without positives (or negatives) in val keeps ``fixed_threshold``."""
    thresholds, kept = choose_finding_thresholds(
        labels,
        probabilities,
        settings.threshold,
        settings.target_sensitivity,
        fallback=settings.fixed_threshold,
    )
    method = f"{_operating_rule(settings)} per finding on val"
    if kept:
        method += (
            f"; {', '.join(names[k] for k in kept)} at the fixed "
            f"{settings.fixed_threshold:g} (no positive or no negative val image)"
        )
    return thresholds, method


def ensemble_members(model: nn.Module) -> list[nn.Module]:
    """The networks an ensemble averages, or ``[model]`` for a single network."""
    return list(model.members) if isinstance(model, ProbabilityAverage) else [model]


def _member_folder(folder: Path | None, index: int, members: int) -> Path | None:
    if folder is None or members == 1:
        return folder
    return folder / f"member-{index}"


def score_test(
    splits: ImageSplits,
    probabilities: np.ndarray,
    *,
    positive_index: int,
    n_bootstrap: int,
    seed: int,
    threshold: float | list[float] = 0.5,
) -> dict[str, Estimate]:
    """Test-split metrics with bootstrap CIs: binary metrics for 2 classes (decided at
    ``threshold``), multi-label metrics (each finding at ``threshold``, one cut or one per
    finding), else multi-class."""
    y = splits.test.labels
    groups = splits.test.patient_ids
    if splits.test.multi_label:
        return multilabel_metrics_with_ci(
            y,
            probabilities,
            splits.class_names,
            threshold=threshold,
            groups=groups,
            n_boot=n_bootstrap,
            seed=seed,
        )
    if len(splits.class_names) == 2:
        return binary_metrics_with_ci(
            (y == positive_index).astype(int),
            probabilities[:, positive_index],
            float(threshold),  # type: ignore[arg-type]  # one cut for one-label data
            groups=groups,
            n_boot=n_bootstrap,
            seed=seed,
        )
    return multiclass_metrics_with_ci(
        y, probabilities, splits.class_names, groups=groups, n_boot=n_bootstrap, seed=seed
    )


def positive_index(splits: ImageSplits, positive_class: str | None) -> int:
    """Index of the positive class for binary metrics (the second class unless named)."""
    names = splits.class_names
    if positive_class is None:
        return min(1, len(names) - 1)
    if positive_class not in names:
        raise ConfigError(
            f"data.positive_class '{positive_class}' is not a class; classes: {names}."
        )
    return names.index(positive_class)


def checkpoint_folder(config: ImageTrainConfig, splits_source: str) -> Path:
    """Where the engine keeps ``last.pt`` for this run, stable across restarts for ``--resume``."""
    stem = config.name or f"image-{_source_stem(splits_source)}"
    return config.output_dir / ".checkpoints" / stem


def run_image(
    config: ImageTrainConfig,
    *,
    resume: bool = False,
    stage: Stage | None = None,
    progress: bool = True,
) -> ImageRunResult:
    """The whole run: data, training, test scoring, bundle, Grad-CAM examples and report.

    Started under ``torchrun`` (``torchrun --nproc_per_node N -m medsight.cli.main train ...``)
    every rank trains its share of each batch with DDP; rank 0 alone writes the run folder and
    reports progress, and every rank returns the same result.
    """
    with init_from_env() as ctx:
        say = (stage or (lambda message: logger.info(message))) if ctx.is_main else _silent
        return _run_image(config, ctx, resume=resume, say=say, progress=progress)


def _silent(message: str) -> None:
    """The stage reporter of ranks other than 0."""


def _run_image(
    config: ImageTrainConfig,
    ctx: DistributedContext,
    *,
    resume: bool,
    say: Stage,
    progress: bool,
) -> ImageRunResult:
    splits = load_image_splits(config.data, seed=config.seed)
    say(
        f"Data: {splits.source}: "
        + ", ".join(f"{name} {len(s)}" for name, s in splits.items())
        + f" images of {splits.train.image_shape}; classes {splits.class_names}"
    )
    threshold = config.data.near_duplicate_threshold or DEFAULT_THRESHOLD
    audit = audit_images(splits.items(), threshold=threshold) if ctx.is_main else None
    if audit is not None:
        say(audit.summary())
    checkpoints = checkpoint_folder(config, splits.source)
    trained = train_image_model(
        config,
        splits,
        checkpoint_dir=checkpoints,
        resume=resume,
        progress=progress,
        distributed=ctx,
    )
    members = f"{len(trained.fits)} x " if len(trained.fits) > 1 else ""
    say(
        f"Trained {members}{config.model.name}: best epoch of "
        f"{trained.describe_selection()} (val AUROC), {trained.train_seconds:.0f} s"
        + (f" on {ctx.world_size} processes" if ctx.is_distributed else "")
    )
    positive = positive_index(splits, config.data.positive_class)
    if trained.threshold is not None:
        cut = threshold_text(trained.threshold, splits.class_names)
        say(f"Operating threshold {cut} ({trained.threshold_method})")
    metrics = score_test(
        splits,
        trained.test_probabilities,
        positive_index=positive,
        n_bootstrap=config.evaluation.n_bootstrap,
        seed=config.seed,
        threshold=0.5 if trained.threshold is None else trained.threshold,
    )
    final: Path | None = None
    if ctx.is_main:
        assert audit is not None
        final = _write_run_folder(config, splits, trained, metrics, positive, audit)
        shutil.rmtree(checkpoints, ignore_errors=True)
        say(f"Wrote {final}")
    final = ctx.broadcast_object(final)
    assert final is not None
    return ImageRunResult(
        final, final / "report.html", final / "bundle", metrics, trained, splits, audit
    )


def _write_run_folder(
    config: ImageTrainConfig,
    splits: ImageSplits,
    trained: TrainedImageModel,
    metrics: dict[str, Estimate],
    positive: int,
    audit: ImageAudit,
) -> Path:
    """Bundle, Grad-CAM examples, tables, config, metrics, the near-duplicate audit and the
    report, renamed into place whole."""
    from medsight.tasks.image_report import build_image_report, gradcam_examples, model_card

    final = config.output_dir / run_name(config.name or f"image-{_source_stem(splits.source)}")
    with staged_directory(final) as staging:
        metadata = bundle_metadata(config, splits, trained, metrics, positive)
        metadata["data"]["near_duplicates"] = audit.to_dict(max_pairs=0)
        card = model_card(config, splits, trained, metrics, metadata, audit)
        bundle = ImageBundle.save_model(
            trained.model,
            staging / "bundle",
            metadata,
            model_card=card,
            parity_inputs=splits.test.images[:16],
        )
        examples = gradcam_examples(
            trained.model,
            splits,
            trained.test_probabilities,
            trained.predicted_classes(trained.test_probabilities),
            staging / "gradcam",
            count=config.evaluation.gradcam_cases,
            seed=config.seed,
        )
        _write_tables(staging, splits, trained)
        (staging / "config.yaml").write_text(dump_config(config))
        metrics_json = {k: v.to_dict() for k, v in metrics.items()}
        (staging / "metrics.json").write_text(json.dumps(metrics_json, indent=2))
        (staging / "data_audit.json").write_text(json.dumps(audit.to_dict(), indent=2))
        report = build_image_report(
            config, splits, trained, metrics, bundle.metadata, examples, audit
        )
        report.write(staging / "report.html")
    return final


def bundle_metadata(
    config: ImageTrainConfig,
    splits: ImageSplits,
    trained: TrainedImageModel,
    metrics: dict[str, Estimate],
    positive: int | None,
) -> dict[str, Any]:
    image_means = splits.train.images.mean(axis=(1, 2, 3))
    return {
        "name": config.name or _source_stem(splits.source),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "class_names": splits.class_names,
        "positive_class": (
            splits.class_names[positive]
            if positive is not None and len(splits.class_names) == 2 and not trained.multi_label
            else None
        ),
        "multi_label": trained.multi_label,
        "input_shape": list(splits.train.image_shape),
        "input_range": [0.0, 1.0],
        "model": trained.model_spec,
        "normalisation": trained.normalisation,
        "tta": trained.tta,
        "threshold": trained.threshold,
        "threshold_method": trained.threshold_method,
        "training_intensity": {
            "mean_of_means": float(image_means.mean()),
            "sd_of_means": float(image_means.std()),
        },
        "data": {
            "source": splits.source,
            "official_splits": splits.official_splits,
            # how unsplit data were grouped into splits, so that retraining rebuilds them
            SPLIT_THRESHOLD_KEY: config.data.near_duplicate_threshold,
            "counts": {name: s.class_counts() for name, s in splits.items()},
        },
        "training": {
            "best_epoch": trained.best_epochs,
            "epochs_run": [fit.epochs_run for fit in trained.fits],
            "best_val_auroc": [fit.best_score for fit in trained.fits],
            "train_seconds": trained.train_seconds,
            "seed": config.seed,
        },
        "metrics": {k: v.to_dict() for k, v in metrics.items()},
        "evaluation": "held-out test split, scored once; 95% bootstrap intervals",
        "versions": package_versions(("torch", "monai", "onnxruntime", "numpy")),
    }


def _write_tables(folder: Path, splits: ImageSplits, trained: TrainedImageModel) -> None:
    history = pd.DataFrame(
        [
            {"member": member, **vars(record)}
            for member, fit in enumerate(trained.fits)
            for record in fit.history
        ]
    )
    history.to_csv(folder / "history.csv", index=False)
    probabilities = trained.test_probabilities
    names = splits.class_names
    predicted = trained.predicted_classes(probabilities)
    table = pd.DataFrame(
        {
            "source": splits.test.sources,
            "label": [class_text(row, names) for row in splits.test.labels],
            "prediction": [class_text(row, names) for row in predicted],
        }
    )
    for k, name in enumerate(splits.class_names):
        table[f"p_{name}"] = probabilities[:, k].round(6)
    table.to_csv(folder / "test_predictions.csv", index=False)


def _source_stem(source: str) -> str:
    tail = source.removeprefix("medmnist:").rstrip("/").split("/")[-1]
    return re.sub(r"\.(npz|csv)$", "", tail) or "images"


def add_member(
    config: ImageTrainConfig,
    key: str,
    name: str,
    fit: Callable[[], PixelSVM | ScatteringTrees | None],
    model: nn.Module,
    spec: dict[str, Any],
    val: ImageTensorDataset,
    tta: list[str],
    distributed: DistributedContext | None,
) -> nn.Module:
    """``model`` with the member that ``fit`` returns (``config.model.<key>`` its settings) at
    its share (:func:`member_share`; the members before keep their proportions), ``spec[key]``
    and ``spec["member_weights"]`` updated; ``model`` unchanged where no member could be fitted
    or its share is 0. Under ``torchrun`` rank 0 fits it and the other ranks receive it."""
    settings = getattr(config.model, key)
    member, share = None, 0.0
    started = time.perf_counter()
    if distributed is None or distributed.is_main:  # one fit, shared with the other ranks
        member = fit()
        if member is not None:
            share = member_share(config, settings, name, model, member, val, tta)
    if distributed is not None:
        member, share = distributed.broadcast_object((member, share))
    if member is None:
        return model
    if distributed is None or distributed.is_main:
        verdict = f"share {share:.2f}" if share > 0 else "left out (share 0 on val)"
        logger.info("%s, %.1f s, %s", member.describe(), time.perf_counter() - started, verdict)
    if share <= 0:
        return model
    others = ensemble_members(model)
    before = spec.get("member_weights") or [1.0 / len(others)] * len(others)
    spec[key] = member.spec()
    spec["member_weights"] = [weight * (1.0 - share) for weight in before] + [share]
    return ProbabilityAverage([*others, member], weights=spec["member_weights"])


def fit_tree_member(config: ImageTrainConfig, splits: ImageSplits) -> ScatteringTrees | None:
    """The tree member fitted on the train split and its test-time flips, seeded by the run's
    seed. With ``enabled: auto`` a training split it cannot be fitted on gives a warning and no
    member (None)."""
    settings = config.model.tree_member
    return _fit_or_skip(
        settings.enabled,
        "tree",
        lambda: fit_scattering_trees(
            splits.train.images,
            splits.train.labels,
            len(splits.class_names),
            views=tta_functions(tta_names(config.augment)),
            scattering=(settings.scattering_scale, settings.orientations),
            trees=settings.trees,
            learning_rate=settings.learning_rate,
            leaves=settings.leaves,
            row_fraction=settings.row_fraction,
            feature_fraction=settings.feature_fraction,
            max_train=settings.max_train,
            seed=config.seed,
        ),
    )
