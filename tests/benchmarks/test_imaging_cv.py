"""benchmarks/imaging_cv.py: folds of train+val only, per-member files that add up to the
product's ensemble, accuracy at the operating point chosen on the inner val split, and a summary
that re-scores fewer members (at the argmax) without retraining."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medsight.config import ImageDataConfig
from medsight.tasks.image_data import load_image_splits
from shared_helpers import benchmark_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "imaging_cv.py"


def test_folds_cover_train_and_val_once_and_never_the_test_split() -> None:
    cv = benchmark_script("imaging_cv")
    official = load_image_splits(ImageDataConfig(path="phantom"))
    pool = len(official.train) + len(official.val)
    folds = cv.fold_splits(official, 3, fold_seed=5)
    held_out = np.concatenate([rows for _, rows in folds])
    assert sorted(held_out.tolist()) == list(range(pool))  # each pooled image held out once
    test_images = {image.tobytes() for image in official.test.images}
    for splits, rows in folds:
        assert len(splits.val) == len(official.val)
        assert len(splits.train) + len(splits.val) + len(rows) == pool
        for part in (splits.train, splits.val, splits.test):
            assert not test_images & {image.tobytes() for image in part.images}
    again = cv.fold_splits(official, 3, fold_seed=5)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again, strict=True))


def test_a_train_fraction_samples_only_the_training_part_by_class() -> None:
    cv = benchmark_script("imaging_cv")
    official = load_image_splits(ImageDataConfig(path="phantom"))
    whole = cv.fold_splits(official, 3, fold_seed=5)
    half = cv.fold_splits(official, 3, fold_seed=5, train_fraction=0.5)
    for (full, rows), (sampled, sampled_rows) in zip(whole, half, strict=True):
        assert (rows == sampled_rows).all()  # the same held-out images
        assert (full.val.images == sampled.val.images).all()
        assert len(sampled.train) == pytest.approx(len(full.train) / 2, abs=1)
        full_images = {image.tobytes() for image in full.train.images}
        assert {image.tobytes() for image in sampled.train.images} <= full_images
        for label in np.unique(full.train.labels):  # stratified: each class about halved
            count = (sampled.train.labels == label).sum()
            assert count == pytest.approx((full.train.labels == label).sum() / 2, abs=1)
    with pytest.raises(SystemExit, match="train-fraction"):
        cv.fold_splits(official, 3, fold_seed=5, train_fraction=0.0)


def test_overrides_are_typed_and_bad_ones_refused() -> None:
    cv = benchmark_script("imaging_cv")
    config = cv.recipe("phantom", ["model.ensemble=3", "engine.mixup_alpha=0.4"])
    assert config.model.ensemble == 3 and config.engine.mixup_alpha == 0.4
    with pytest.raises(SystemExit, match=r"section\.key=value"):
        cv.recipe("phantom", ["model.ensemble"])


def test_runs_a_fold_and_summarises_fewer_members(tmp_path: Path) -> None:
    settings = ["engine.epochs=2", "model.ensemble=2", "model.params.width=4"]
    settings += ["evaluation.threshold=accuracy"]  # an operating point chosen on the inner val
    settings += ["model.svm_member.enabled=true", "model.svm_member.weight=0.5"]  # a 3rd member
    settings += ["model.tree_member.trees=20"]  # the 4th (on by default), a quarter
    settings += ["model.tree_member.leave_out_if_worse_on_val=false"]  # whatever val says
    command = [sys.executable, str(SCRIPT), "--data", "phantom", "--out", str(tmp_path)]
    command += ["--n-folds", "2", "--folds", "1"]
    command += [item for setting in settings for item in ("--set", setting)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["members"] == 4 and [f["fold"] for f in summary["folds"]] == ["fold1"]
    saved = np.load(tmp_path / "fold1.npz")
    assert saved["probabilities"].shape[:2] == (4, 2)  # members x (identity, horizontal flip)
    assert saved["views"].tolist() == ["identity", "flip_horizontal"]
    assert saved["seen_in_training"].shape == saved["labels"].shape
    # two networks and the SVM (half of the rest), then the trees
    assert saved["member_weights"].tolist() == [0.1875, 0.1875, 0.375, 0.25]
    assert summary["folds"][0]["svm_share"] == float(saved["svm_share"]) == 0.375
    assert summary["folds"][0]["tree_share"] == float(saved["tree_share"]) == 0.25
    ensemble = np.tensordot(saved["member_weights"], saved["probabilities"].mean(axis=1), axes=1)
    positive, threshold = int(saved["positive_index"]), float(saved["threshold"])
    assert positive == 1 and 0 < threshold <= 1 and threshold != 0.5  # not the fixed cut
    called = np.where(ensemble[:, positive] >= threshold, positive, 1 - positive)
    assert summary["accuracy_mean"] == pytest.approx(float((called == saved["labels"]).mean()))
    networks = [  # the single-network figure leaves the SVM and the trees out
        roc_auc_score(saved["labels"], member.mean(axis=0)[:, 1])
        for member in saved["probabilities"][:2]
    ]
    assert summary["single_network_auroc_mean"] == pytest.approx(np.mean(networks))

    first = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path), "--summarise", "--members", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0, first.stderr[-2000:]
    one = json.loads(first.stdout.strip().splitlines()[-1])
    member = saved["probabilities"][0].mean(axis=0)
    assert one["members"] == 1
    assert one["accuracy_mean"] == pytest.approx(
        float((member.argmax(axis=1) == saved["labels"]).mean())
    )
    assert one["auroc_mean"] == pytest.approx(one["single_network_auroc_mean"])


def test_summary_scores_held_out_images_without_a_training_duplicate_apart(
    tmp_path: Path,
) -> None:
    labels = np.array([0, 0, 1, 1, 0, 1])
    # members x views x images x classes; image 1 and 3 are wrong, image 3 was seen in training
    positive = np.array([0.2, 0.7, 0.9, 0.3, 0.1, 0.8])
    probabilities = np.stack([1 - positive, positive], axis=1)[None, None]
    np.savez(
        tmp_path / "fold0.npz",
        probabilities=probabilities,
        labels=labels,
        seen_in_training=np.array([False, False, True, True, True, False]),
        member_train_seconds=np.array([1.0]),
    )
    summary = benchmark_script("imaging_cv").summarise(tmp_path)
    (fold,) = summary["folds"]
    assert fold["accuracy"] == pytest.approx(4 / 6)
    assert fold["novel_images"] == 3 and fold["accuracy_novel"] == pytest.approx(2 / 3)
    assert summary["accuracy_novel_mean"] == pytest.approx(2 / 3)
    assert summary["auroc_novel_mean"] == pytest.approx(1.0)  # 0.2, 0.7 vs 0.8 among the novel
