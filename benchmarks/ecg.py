"""ECG rhythm benchmark: PhysioNet/CinC 2017-style folder, each rhythm model, challenge score.

Run from the project root in .venv::

    python benchmarks/ecg.py --data ../shared/data/physionet2017/training
    python benchmarks/ecg.py --data ../shared/data/physionet2017/training --save runs/ecg-bundle
    python benchmarks/ecg.py --model runs/ecg-bundle --data OTHER_FOLDER

The records are split once (stratified by label, fixed seed) into train, validation and a held-out
test part. Each model trains on train, selects on validation only, and scores the test part once:
the challenge score (mean F1 of N, A and O) with a bootstrap interval, per-class F1 and training
time. ``--model BUNDLE`` instead scores a saved bundle on every record of ``--data``. Progress goes
to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medsight.bundle.ecg import EcgBundle
from medsight.config import EcgDataConfig, EcgModelConfig, EcgTrainConfig
from medsight.evaluate.rhythm import CHALLENGE_SCORE, rhythm_metrics_with_ci
from medsight.stream.ecg import alert_scenario, stream_benchmark
from medsight.tasks.ecg_data import load_rhythm_folder, split_rhythm_set
from medsight.tasks.ecg_report import save_rhythm_bundle
from medsight.tasks.ecg_rhythm import train_rhythm_model

MODELS = ["ecg_resnet1d", "ecg_cnn_bilstm", "ecg_hrv_lightgbm"]
THREADS = 2
MITBIH_100 = Path(__file__).resolve().parents[2] / "shared" / "data" / "mitbih" / "100.hea"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def scores(labels: np.ndarray, probabilities: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Challenge score with its 95% bootstrap interval, per-class F1 and macro AUROC."""
    metrics = rhythm_metrics_with_ci(labels, probabilities, classes, n_boot=1000)
    challenge = metrics[CHALLENGE_SCORE]
    return {
        "challenge_score": challenge.value,
        "challenge_score_ci": [challenge.lo, challenge.hi],
        "f1_per_class": {name: metrics[f"{name}/f1"].value for name in classes},
        "accuracy": metrics["accuracy"].value,
        "macro_auroc": metrics["macro_auroc"].value,
    }


def train_and_score(folder: str, models: list[str], save: Path | None, seed: int) -> dict:
    torch.set_num_threads(THREADS)
    base = EcgTrainConfig(data=EcgDataConfig(path=folder), seed=seed)
    default = EcgModelConfig().name
    start = time.perf_counter()
    data = load_rhythm_folder(folder, fs=base.data.fs)
    log(f"read {len(data)} records in {time.perf_counter() - start:.0f} s")
    splits = split_rhythm_set(
        data,
        seed=seed,
        test_fraction=base.data.test_fraction,
        val_fraction=base.data.val_fraction,
        source=folder,
    )
    log(", ".join(f"{name} {part.class_counts()}" for name, part in splits.items()))
    results: dict[str, Any] = {}
    for name in models:
        config = base.model_copy(update={"model": EcgModelConfig(name=name)})
        trained = train_rhythm_model(config, splits, progress=False)
        row = scores(splits.test.labels, trained.test_probabilities, data.class_names)
        row["train_seconds"] = trained.train_seconds
        row["val_challenge_score"] = scores(
            splits.val.labels, trained.val_probabilities, data.class_names
        )["challenge_score"]
        results[name] = row
        log(
            f"{name}: challenge {row['challenge_score']:.4f} {row['f1_per_class']}, "
            f"{row['train_seconds']:.0f} s"
        )
        if name == default:
            bundle_dir = save or Path(tempfile.mkdtemp(prefix="medsight-ecg-")) / "bundle"
            save_rhythm_bundle(config, splits, trained, bundle_dir)
            log(f"saved the {name} bundle to {bundle_dir}")
            streaming = streaming_figures(EcgBundle.load(bundle_dir))
    return {
        "benchmark": "ecg",
        "data": folder,
        "seed": seed,
        "split": {name: part.class_counts() for name, part in splits.items()},
        "default_model": default,
        "challenge_score": results[default]["challenge_score"] if default in results else None,
        "models": results,
        "streaming": streaming if default in results else streaming_figures(None),
        "threads": THREADS,
    }


def streaming_figures(bundle: EcgBundle | None) -> dict[str, Any]:
    """Streaming on one core: alert latency on a synthetic recording built to raise every kind
    of alert (pause, tachycardia, signal loss, bradycardia), and speed and R-peak accuracy on
    MIT-BIH record 100 (30 min) when ../shared/data has it."""
    scenario, _ = alert_scenario(360)
    figures: dict[str, Any] = {"alerts_scenario": stream_benchmark(scenario, 360, bundle)}
    if MITBIH_100.exists():
        from medsight.io.ecg import read_ecg

        record = read_ecg(MITBIH_100)
        figures["mitbih_100"] = stream_benchmark(record, bundle=bundle, lead="MLII")
    log(f"streaming: {json.dumps(figures)}")
    return figures


def score_bundle(bundle_path: str, folder: str) -> dict:
    """A saved bundle on every record of ``folder`` (its REFERENCE.csv gives the truth)."""
    torch.set_num_threads(THREADS)
    bundle = EcgBundle.load(bundle_path)
    data = load_rhythm_folder(folder, fs=bundle.fs, classes=bundle.class_names)
    start = time.perf_counter()
    probabilities = bundle.predict_signals(data.signals)
    seconds = time.perf_counter() - start
    row = scores(data.labels, probabilities, data.class_names)
    return {
        "benchmark": "ecg-bundle",
        "bundle": bundle_path,
        "data": folder,
        "records": len(data),
        "model": bundle.metadata["model"]["name"],
        **row,
        "predict_seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="folder with records and REFERENCE.csv")
    parser.add_argument("--models", nargs="+", default=MODELS, help="registered ECG models")
    parser.add_argument("--model", help="score this saved bundle instead of training")
    parser.add_argument("--save", type=Path, help="write the default model's bundle here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.model:
        print(json.dumps(score_bundle(args.model, args.data)))
        return
    print(json.dumps(train_and_score(args.data, args.models, args.save, args.seed)))


if __name__ == "__main__":
    main()
