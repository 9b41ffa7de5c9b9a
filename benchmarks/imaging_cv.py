"""Cross-validation of an image recipe on train+val only: how recipes are compared here.

Run from the project root in .venv::

    python benchmarks/imaging_cv.py --data ../shared/data/breastmnist/breastmnist.npz \\
        --fold-seed 3 --set model.ensemble=10 --out runs/cv-ensemble10
    python benchmarks/imaging_cv.py --out runs/cv-ensemble10 --summarise

The official train and val splits are pooled and cut by ``StratifiedKFold(folds, shuffle,
random_state=fold_seed)``. In each fold an inner validation split the size of the official one
(stratified, ``random_state`` = the fold) early-stops the product's ``train_image_model``, and the
held-out fold is scored once. The official test split is never scored, so a recipe chosen here has
not seen it. Write the adoption rule down before running.

Each fold writes ``fold{K}.npz`` to ``--out``: per ensemble member and per view (the identity and
each test-time flip) the held-out probabilities, the labels, the training seconds and the model's
operating point (a binary model's threshold, chosen on the inner val split when the recipe says
so; accuracy is scored there, else at the argmax), so that
ensembles of fewer members or other view sets can be scored afterwards without retraining. Each
file also marks the held-out images with a near-duplicate in the fold's train or inner val split
(``seen_in_training``); the summary scores the others apart (``auroc_novel``,
``accuracy_novel``), since recall of seen scenes is not generalisation. Folds
may run in separate processes (``--folds 0 2 4`` and ``--folds 1 3``); ``--summarise`` combines
them. ``--train-fraction F`` trains on a stratified fraction of each fold's training part, the
inner val and held-out images unchanged, so runs at several fractions are a learning curve
(``benchmarks/imaging_learning_curve.py``). Progress goes to stderr; the last line of stdout is
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from sklearn.model_selection import StratifiedKFold, StratifiedShuffleSplit

from medsight.cli.runner import resolve_train_config
from medsight.config import ImageTrainConfig
from medsight.data.image_audit import audit_images
from medsight.evaluate.metrics import binary_metrics, multiclass_metrics
from medsight.evaluate.thresholds import decide
from medsight.io.images import ImageSet
from medsight.tasks.image import ensemble_members, train_image_model
from medsight.tasks.image_data import ImageSplits, load_image_splits
from medsight.train.engine import Trainer
from medsight.train.settings import engine_config
from medsight.transforms.image import tta_functions


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def recipe(data: str, overrides: list[str]) -> ImageTrainConfig:
    """The default image configuration with ``section.key=value`` overrides (YAML values)."""
    parsed: dict[str, Any] = {"data.path": data}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set takes section.key=value; got {item!r}")
        parsed[key] = yaml.safe_load(value)
    config = resolve_train_config(None, parsed, task="image-classification")
    assert isinstance(config, ImageTrainConfig)
    return config


def fold_splits(
    official: ImageSplits, folds: int, fold_seed: int, train_fraction: float = 1.0
) -> list[tuple[ImageSplits, np.ndarray]]:
    """Per fold: train / inner val / held-out splits of the pooled official train and val
    splits, and the held-out rows' indices into the pool. ``train_fraction`` below 1 keeps a
    stratified sample of each fold's training part (the inner val and held-out images stay
    the same): a learning curve on the same held-out folds."""
    if not 0.0 < train_fraction <= 1.0:
        raise SystemExit(f"--train-fraction must be in (0, 1]; got {train_fraction}")
    if official.train.multi_label:
        raise SystemExit("imaging_cv compares one-label recipes; multi-label data are not folded.")
    images = np.concatenate([official.train.images, official.val.images])
    labels = np.concatenate([official.train.labels, official.val.labels])
    names = official.class_names

    def subset(rows: np.ndarray) -> ImageSet:
        return ImageSet(images[rows], labels[rows], names)

    outer = StratifiedKFold(folds, shuffle=True, random_state=fold_seed)
    result = []
    for fold, (train_rows, held_out) in enumerate(outer.split(images, labels)):
        inner = StratifiedShuffleSplit(1, test_size=len(official.val), random_state=fold)
        ((fit, val),) = inner.split(images[train_rows], labels[train_rows])
        if train_fraction < 1.0:
            sample = StratifiedShuffleSplit(1, train_size=train_fraction, random_state=fold)
            ((kept, _),) = sample.split(fit, labels[train_rows[fit]])
            fit = fit[np.sort(kept)]
        splits = ImageSplits(
            subset(train_rows[fit]),
            subset(train_rows[val]),
            subset(held_out),
            f"{official.source}, fold {fold} of {folds} (fold seed {fold_seed})",
            official_splits=False,
        )
        result.append((splits, held_out))
    return result


def run_fold(config: ImageTrainConfig, splits: ImageSplits) -> dict[str, Any]:
    """Train the recipe on one fold; per-member, per-view held-out probabilities."""
    started = time.perf_counter()
    trained = train_image_model(config, splits, progress=False)
    seconds = time.perf_counter() - started
    held_out = torch.from_numpy(splits.test.images)
    views = [lambda batch: batch, *tta_functions(trained.tta)]
    per_member = []
    for member in ensemble_members(trained.model):
        predictor = Trainer(member, engine_config(config.engine, config.seed, n_train=1))
        per_member.append([predictor.predict_proba(view(held_out)) for view in views])
    probabilities = np.asarray(per_member)  # (members, views, n, classes)
    product = trained.test_probabilities
    shares = np.asarray(getattr(trained.model, "shares", [1.0]), dtype=float)
    # the saved parts must add up to the product's own ensemble
    combined = np.tensordot(shares, probabilities.mean(axis=1), axes=1)
    assert np.abs(combined - product).max() < 1e-5
    return {
        "probabilities": probabilities,
        "product_probabilities": product,
        "labels": splits.test.labels,
        "views": np.array(["identity", *trained.tta]),
        # each member's share of the averaged probability (an SVM member's is chosen on val)
        "member_weights": shares,
        "svm_share": np.array(trained.svm_share),
        "tree_share": np.array(trained.tree_share),
        # the model's operating point, chosen on the fold's inner val split (binary models)
        "threshold": np.array(_binary_threshold(trained.threshold), dtype=float),
        "positive_index": np.array(
            -1 if trained.positive_index is None else trained.positive_index
        ),
        # held-out images with a near-duplicate in the fold's train or inner val split: the
        # summary scores the others apart (accuracy there measures generalisation, not recall)
        "seen_in_training": seen_in_training(splits),
        "member_train_seconds": np.array(
            [sum(r.train_seconds for r in fit.history) for fit in trained.fits]
        ),
        "wall_seconds": seconds,
        "n_train": np.array(len(splits.train)),
    }


def seen_in_training(splits: ImageSplits) -> np.ndarray:
    """Per held-out image: whether a near-duplicate of it is in the train or val split."""
    return audit_images(splits.items()).seen_earlier("test")


def _binary_threshold(threshold: float | list[float] | None) -> float:
    """A binary model's threshold, NaN for none (argmax) or one per finding."""
    return float(threshold) if isinstance(threshold, int | float) else float("nan")


def scores(
    labels: np.ndarray,
    probabilities: np.ndarray,
    threshold: float = float("nan"),
    positive: int = -1,
) -> dict[str, float]:
    """Ensemble AUROC (one-vs-rest mean for more classes) and accuracy at the model's
    operating point: the positive probability at ``threshold`` (binary), else the argmax."""
    decided = probabilities.argmax(axis=1)
    if positive >= 0 and np.isfinite(threshold):
        decided = decide(probabilities, positive, float(threshold))
    accuracy = float((decided == labels).mean())
    if probabilities.shape[1] == 2:
        auroc = binary_metrics(labels, probabilities[:, 1])["auroc"]
    else:
        names = [str(k) for k in range(probabilities.shape[1])]
        auroc = multiclass_metrics(labels, probabilities, names)["macro_auroc"]
    return {"auroc": float(auroc), "accuracy": accuracy}


def summarise(out: Path, members: int | None = None) -> dict[str, Any]:
    """Per-fold and mean scores of the ensemble of the first ``members`` members (all)."""
    files = sorted(out.glob("fold*.npz"))
    if not files:
        raise SystemExit(f"{out}: no fold*.npz files yet")
    per_fold, used = [], 0
    for path in files:
        saved = np.load(path)
        probabilities = saved["probabilities"][:members]
        count = probabilities.shape[0]
        used = max(used, count)  # folds whose SVM member was left out have one fewer
        # the saved operating point was chosen for the whole ensemble; fewer members: argmax
        whole = count == saved["probabilities"].shape[0] and "threshold" in saved.files
        point = (float(saved["threshold"]), int(saved["positive_index"])) if whole else ()
        # the product's shares for the whole ensemble (files before session 15: equal)
        shares = np.full(count, 1.0 / count)
        if whole and "member_weights" in saved.files:
            shares = saved["member_weights"]
        ensemble = np.tensordot(shares, probabilities.mean(axis=1), axes=1)
        row = scores(saved["labels"], ensemble, *point)
        if "seen_in_training" in saved.files:  # fold files from session 14 on
            novel = ~saved["seen_in_training"]
            unseen = scores(saved["labels"][novel], ensemble[novel], *point)
            row |= {
                "novel_images": int(novel.sum()),
                **{f"{k}_novel": v for k, v in unseen.items()},
            }
        networks = probabilities[: len(saved["member_train_seconds"])]  # not the SVM or trees
        single = [scores(saved["labels"], member.mean(axis=0))["auroc"] for member in networks]
        per_fold.append(
            {
                "fold": path.stem,
                **row,
                "single_network_auroc": statistics.fmean(single),
                # the SVM member's share chosen on the inner val split (0: left out or off)
                "svm_share": float(saved["svm_share"]) if "svm_share" in saved.files else None,
                "tree_share": float(saved["tree_share"]) if "tree_share" in saved.files else None,
                "seconds_per_network": float(saved["member_train_seconds"][:members].mean()),
                "n_train": int(saved["n_train"]) if "n_train" in saved.files else None,
            }
        )

    def mean(key: str) -> float:
        return statistics.fmean(row[key] for row in per_fold)

    novel = (
        {"auroc_novel_mean": mean("auroc_novel"), "accuracy_novel_mean": mean("accuracy_novel")}
        if all("auroc_novel" in row for row in per_fold)
        else {}
    )

    return {
        "benchmark": "imaging-cv",
        "out": str(out),
        "members": used,
        "folds": per_fold,
        "auroc_mean": mean("auroc"),
        "accuracy_mean": mean("accuracy"),
        "single_network_auroc_mean": mean("single_network_auroc"),
        "seconds_per_network": mean("seconds_per_network"),
        **novel,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help=".npz path or medmnist:NAME (not with --summarise)")
    parser.add_argument("--out", type=Path, required=True, help="folder for fold*.npz")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--folds", type=int, nargs="+", help="which folds to run (default all)")
    parser.add_argument("--n-folds", type=int, default=5)
    parser.add_argument("--fold-seed", type=int, default=0)
    parser.add_argument(
        "--train-fraction",
        type=float,
        default=1.0,
        help="train on this stratified fraction of each fold's training part (a learning curve)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--summarise", action="store_true", help="only combine fold files")
    parser.add_argument("--members", type=int, help="--summarise: the first N members only")
    args = parser.parse_args()
    if not args.summarise:
        if not args.data:
            parser.error("--data is needed unless --summarise")
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
        torch.set_num_threads(args.threads)
        config = recipe(args.data, args.set)
        official = load_image_splits(config.data, seed=config.seed)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "recipe.json").write_text(config.model_dump_json(indent=2))
        folds = fold_splits(official, args.n_folds, args.fold_seed, args.train_fraction)
        for fold, (splits, _) in enumerate(folds):
            if args.folds is not None and fold not in args.folds:
                continue
            log(f"{splits.source}: train {len(splits.train)}, val {len(splits.val)}")
            saved = run_fold(config, splits)
            np.savez(args.out / f"fold{fold}.npz", **saved)
            log(f"fold {fold}: {scores(saved['labels'], saved['product_probabilities'])}")
    print(json.dumps(summarise(args.out, args.members)))


if __name__ == "__main__":
    main()
