"""Imaging benchmark: the default image configuration on a MedMNIST-style ``.npz``, 3 seeds.

Run from the project root in .venv::

    python benchmarks/imaging.py --data ../shared/data/breastmnist/breastmnist.npz
    python benchmarks/imaging.py --data medmnist:pneumoniamnist --seeds 0 1 2

For each seed the default configuration trains on the official train split, selects its epoch on the
val split only, and scores the test split once. In the same run the benchmark times the engine's
training pass against a plain ~20-line PyTorch loop on the same model and data (alternating, so both
see the same machine state), and single-image latency of ONNX Runtime and torch eager (2 threads).
Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from medsight.config import ImageDataConfig, ImageTrainConfig
from medsight.data.image_audit import ImageAudit, audit_images
from medsight.deploy.onnx import OnnxClassifier, export_onnx, latency_ms
from medsight.evaluate.metrics import binary_metrics
from medsight.tasks.image import (
    new_network,
    positive_index,
    score_test,
    train_image_model,
)
from medsight.tasks.image_data import ImageSplits, load_image_splits
from medsight.train.engine import Trainer
from medsight.train.settings import engine_config
from medsight.transforms.image import (
    ImageTensorDataset,
    build_train_transform,
)

SPEED_EPOCHS = 3
SPEED_ROUNDS = 2
LATENCY_CALLS = 1000
THREADS = 2


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plain_loop(
    model: nn.Module,
    data: Dataset,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    multi_label: bool = False,
    channels_last: bool = False,
) -> float:
    """The reference: a plain PyTorch training loop; returns training images per second.

    ``channels_last`` adds the one memory-format change the engine makes by default, so the
    engine's own overhead can be read apart from that speed-up."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    loader = DataLoader(data, batch_size=batch_size, shuffle=True)
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss() if multi_label else nn.CrossEntropyLoss()
    model.train()
    images, start = 0, time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            optimiser.zero_grad()
            x = x.contiguous(memory_format=memory_format)
            loss = loss_fn(model(x), y.float() if multi_label else y)
            loss.backward()
            optimiser.step()
            images += len(y)
    return images / (time.perf_counter() - start)


def engine_speed(
    model: nn.Module,
    config: ImageTrainConfig,
    train: Dataset,
    val: Dataset,
    *,
    multi_label: bool = False,
) -> float:
    """Training images per second of the engine's training pass (validation excluded)."""
    settings = config.engine.model_copy(
        update={"epochs": SPEED_EPOCHS, "patience": None, "max_steps": None}
    )
    engine = engine_config(
        settings, config.seed, n_train=len(train), progress=False, multi_label=multi_label
    )
    trainer = Trainer(model, engine)
    fit = trainer.fit(train, val)
    images = sum(record.train_images for record in fit.history)
    return images / sum(record.train_seconds for record in fit.history)


def compare_speed(config: ImageTrainConfig, splits: ImageSplits) -> dict[str, float]:
    """Engine vs plain loop, alternating rounds on fresh copies of the same model and data (one
    network: an ensemble's members are trained one at a time by the same engine).

    ``engine_vs_plain_speed`` is against the plain loop as written; the plain loop with
    channels-last batches, the engine's default memory format, is timed in the same rounds, so
    ``engine_vs_plain_channels_last_speed`` is the engine's own cost or gain beyond that format."""
    config = config.model_copy(update={"model": config.model.model_copy(update={"ensemble": 1})})
    size = splits.train.image_shape[1]
    transform = build_train_transform(config.augment, size)
    train = ImageTensorDataset(splits.train.images, splits.train.labels, transform, seed=0)
    val = ImageTensorDataset(splits.val.images, splits.val.labels)
    multi_label = splits.train.multi_label
    speeds: dict[str, list[float]] = {"plain": [], "plain_channels_last": [], "engine": []}
    for round_ in range(SPEED_ROUNDS):
        for channels_last, key in ((False, "plain"), (True, "plain_channels_last")):
            torch.manual_seed(round_)
            model, _, _ = new_network(config, splits)
            speeds[key].append(
                plain_loop(
                    model,
                    train,
                    epochs=SPEED_EPOCHS,
                    batch_size=config.engine.batch_size,
                    lr=config.engine.learning_rate,
                    multi_label=multi_label,
                    channels_last=channels_last,
                )
            )
        torch.manual_seed(round_)
        model, _, _ = new_network(config, splits)
        speeds["engine"].append(engine_speed(model, config, train, val, multi_label=multi_label))
        log(
            f"speed round {round_}: "
            + ", ".join(f"{k} {v[-1]:.0f} img/s" for k, v in speeds.items())
        )
    median = {key: statistics.median(values) for key, values in speeds.items()}
    return {
        "plain_images_per_second": median["plain"],
        "plain_channels_last_images_per_second": median["plain_channels_last"],
        "engine_images_per_second": median["engine"],
        "engine_channels_last": config.engine.channels_last,
        "engine_vs_plain_speed": median["engine"] / median["plain"],
        "engine_vs_plain_channels_last_speed": median["engine"] / median["plain_channels_last"],
    }


def measure_latency(model: nn.Module, shape: tuple[int, int, int]) -> dict[str, dict[str, float]]:
    """Single-image latency (ms, p50/p95 over 1000 calls) of ONNX Runtime and torch eager."""
    example = np.random.default_rng(0).random((1, *shape), dtype=np.float32)
    with tempfile.TemporaryDirectory() as folder:
        path = export_onnx(model.eval(), Path(folder) / "model.onnx", input_shape=shape)
        session = OnnxClassifier(path, threads=THREADS)
        onnx = latency_ms(session.logits, example, calls=LATENCY_CALLS)
    tensor = torch.from_numpy(example)

    def eager(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    eager_latency = latency_ms(eager, tensor, calls=LATENCY_CALLS)
    return {"onnx": onnx, "torch": eager_latency}


def setup(data: str, model_name: str | None) -> tuple[ImageTrainConfig, ImageSplits]:
    """The default configuration (optionally another model) and the data's official splits."""
    torch.set_num_threads(THREADS)
    config = ImageTrainConfig(data=ImageDataConfig(path=data))
    if model_name:
        config.model.name = model_name
    return config, load_image_splits(config.data, seed=0)


def latency_only(data: str, model_name: str | None) -> dict[str, Any]:
    """Latency of one freshly initialised network of the chosen architecture (no training)."""
    config, splits = setup(data, model_name)
    config.model.ensemble = 1
    model, _, _ = new_network(config, splits)
    latency = measure_latency(model, splits.train.image_shape)
    return {
        "benchmark": "imaging-latency",
        "data": splits.source,
        "model": config.model.name,
        "ensemble": 1,
        "threads": THREADS,
        "trained": False,
        "latency_ms": latency,
    }


def speed_only(data: str, model_name: str | None) -> dict[str, Any]:
    """The engine-vs-plain-loop comparison alone (no ensemble training, no test scoring)."""
    config, splits = setup(data, model_name)
    return {
        "benchmark": "imaging-speed",
        "data": splits.source,
        "model": config.model.name,
        "threads": THREADS,
        **compare_speed(config, splits),
    }


def novel_test_metrics(
    splits: ImageSplits, probabilities: np.ndarray, positive: int, audit: ImageAudit
) -> dict[str, float] | None:
    """AUROC and accuracy (at 0.5) on the test images without a near-duplicate in train or val
    (two classes only): how the model does on pictures it has not seen in any form."""
    if len(splits.class_names) != 2 or splits.test.multi_label:
        return None
    novel = ~audit.seen_earlier("test")
    y = (splits.test.labels[novel] == positive).astype(int)
    metrics = binary_metrics(y, probabilities[novel, positive])
    return {"n": int(novel.sum()), "auroc": metrics["auroc"], "accuracy": metrics["accuracy"]}


def run(data: str, seeds: list[int], model_name: str | None = None) -> dict[str, Any]:
    config, splits = setup(data, model_name)
    log(f"{splits.source}: " + ", ".join(f"{n} {len(s)}" for n, s in splits.items()))
    audit = audit_images(splits.items())
    log(audit.summary())
    positive = positive_index(splits, None)
    per_seed, last_model = [], None
    for seed in seeds:
        seeded = config.model_copy(update={"seed": seed})
        with_svm = config.model.svm_member.active(splits.train.multi_label)
        with_trees = config.model.tree_member.active(splits.train.multi_label)
        extra = (" + SVM member" if with_svm else "") + (" + tree member" if with_trees else "")
        log(f"seed {seed}: training {config.model.ensemble} x {config.model.name}{extra}")
        started = time.perf_counter()
        trained = train_image_model(seeded, splits, progress=False)
        wall_seconds = time.perf_counter() - started
        metrics = score_test(
            splits, trained.test_probabilities, positive_index=positive, n_bootstrap=1000, seed=seed
        )
        key = "auroc" if "auroc" in metrics else "macro_auroc"
        images = sum(r.train_images for fit in trained.fits for r in fit.history)
        row = {
            "seed": seed,
            "auroc": metrics[key].value,
            "auroc_ci": [metrics[key].lo, metrics[key].hi],
            "accuracy": metrics["accuracy"].value,
            "accuracy_ci": [metrics["accuracy"].lo, metrics["accuracy"].hi],
            "best_epoch": trained.best_epochs,
            "epochs_run": [fit.epochs_run for fit in trained.fits],
            "train_seconds": trained.train_seconds,
            "train_wall_seconds": wall_seconds,
            "svm_seconds": trained.svm_seconds,
            "tree_seconds": trained.tree_seconds,
            # the SVM member's share of the averaged probability, chosen on val (0: left out)
            "svm_share": trained.svm_share if with_svm else None,
            "tree_share": trained.tree_share if with_trees else None,
            # the networks' training passes (the other members' fits are not image throughput)
            "images_per_second": images
            / (trained.train_seconds - trained.svm_seconds - trained.tree_seconds),
            "novel_test": novel_test_metrics(splits, trained.test_probabilities, positive, audit),
        }
        per_seed.append(row)
        last_model = trained.model
        log(
            f"seed {seed}: AUROC {row['auroc']:.4f} acc {row['accuracy']:.4f} "
            f"(best epochs {row['best_epoch']}, {row['train_seconds']:.0f} s in training passes, "
            f"{wall_seconds:.0f} s with validation and test)"
        )
    speed = compare_speed(config, splits)
    latency = measure_latency(last_model, splits.train.image_shape)
    log(f"latency ms: {latency}")

    def mean_sd(key: str) -> tuple[float, float]:
        values = [row[key] for row in per_seed]
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    auroc_mean, auroc_sd = mean_sd("auroc")
    accuracy_mean, accuracy_sd = mean_sd("accuracy")
    return {
        "benchmark": "imaging",
        "data": splits.source,
        "model": config.model.name,
        "ensemble": config.model.ensemble,
        "svm_member": config.model.svm_member.active(splits.train.multi_label),
        "tree_member": config.model.tree_member.active(splits.train.multi_label),
        "threads": THREADS,
        "seeds": per_seed,
        "auroc_mean": auroc_mean,
        "auroc_sd": auroc_sd,
        "accuracy_mean": accuracy_mean,
        "accuracy_sd": accuracy_sd,
        "train_seconds": statistics.fmean(row["train_seconds"] for row in per_seed),
        "train_seconds_max": max(row["train_seconds"] for row in per_seed),
        "train_wall_seconds": statistics.fmean(row["train_wall_seconds"] for row in per_seed),
        "train_wall_seconds_max": max(row["train_wall_seconds"] for row in per_seed),
        "images_per_second": statistics.fmean(row["images_per_second"] for row in per_seed),
        "near_duplicates": audit.to_dict(max_pairs=0)["counts"],
        **speed,
        "latency_ms": latency,
        "config": json.loads(config.model_dump_json()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz path or medmnist:NAME")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", help="registered image model (default: the config's)")
    parser.add_argument(
        "--latency-only",
        action="store_true",
        help="only time single-image inference of an untrained network of --model",
    )
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="only compare the engine's training speed with the plain loops (no test scoring)",
    )
    args = parser.parse_args()
    logging.basicConfig(stream=sys.stderr, format="%(message)s")
    logging.getLogger("medsight.tasks.image").setLevel(logging.INFO)  # one line per network
    if args.latency_only:
        print(json.dumps(latency_only(args.data, args.model)))
        return
    if args.speed_only:
        print(json.dumps(speed_only(args.data, args.model)))
        return
    print(json.dumps(run(args.data, args.seeds, args.model)))


if __name__ == "__main__":
    main()
