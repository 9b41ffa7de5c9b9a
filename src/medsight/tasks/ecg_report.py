"""Bundle metadata and model card for a trained ECG rhythm model."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medsight.bundle.ecg import EcgBundle
from medsight.config import EcgTrainConfig
from medsight.data.fingerprint import package_versions
from medsight.evaluate.rhythm import CHALLENGE_SCORE, rhythm_metrics_with_ci
from medsight.models.signal import MIN_SAMPLES
from medsight.tasks.ecg_data import RHYTHM_NAMES, EcgSplits
from medsight.tasks.ecg_rhythm import TrainedRhythmModel, window_samples

MIN_SECONDS = 5.0  # shorter recordings are answered "unreadable": too few beats for a rhythm


def rhythm_metadata(
    config: EcgTrainConfig, splits: EcgSplits, trained: TrainedRhythmModel
) -> dict[str, Any]:
    """What a bundle records about the model, its data and its held-out test figures."""
    length, hop = window_samples(config)
    classes = splits.train.class_names
    metrics = rhythm_metrics_with_ci(
        splits.test.labels,
        trained.test_probabilities,
        classes,
        n_boot=config.evaluation.n_bootstrap,
        seed=config.seed,
    )
    return {
        "name": config.name or f"ecg-{config.model.name}",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "class_names": classes,
        "class_descriptions": {name: RHYTHM_NAMES.get(name, name) for name in classes},
        "fs": config.data.fs,
        "lead": config.data.lead,
        "leads": int(splits.train.signals[0].shape[0]),
        "window_samples": length,
        "hop_samples": hop,
        "min_seconds": max(MIN_SECONDS, MIN_SAMPLES / config.data.fs),
        "model": {"name": config.model.name, "params": dict(config.model.params)},
        "data": {
            "source": splits.source,
            "counts": {name: part.class_counts() for name, part in splits.items()},
        },
        "training": {
            "train_seconds": trained.train_seconds,
            "best_epoch": [fit.best_epoch for fit in trained.fits],
            "seed": config.seed,
        },
        "metrics": {k: v.to_dict() for k, v in metrics.items()},
        "evaluation": "held-out test part, scored once; 95% bootstrap intervals",
        "versions": package_versions(("torch", "onnxruntime", "lightgbm", "neurokit2", "wfdb")),
    }


def model_card(metadata: dict[str, Any]) -> str:
    """A short Markdown model card: intended use, data, performance with CIs, limits."""
    metrics = metadata["metrics"]
    challenge = metrics[CHALLENGE_SCORE]
    lines = [
        f"# Model card: {metadata['name']}",
        "",
        "## Intended use",
        "Decision support for single-lead ECG rhythm review (normal, atrial fibrillation, other "
        "rhythm, noisy): a second reader, never a replacement. Not validated for clinical use.",
        "",
        "## Model",
        f"- {metadata['model']['name']} at {metadata['fs']:g} Hz, lead {metadata['lead']}, "
        f"windows of {metadata['window_samples']} samples every {metadata['hop_samples']}",
        f"- Recordings shorter than {metadata['min_seconds']:g} s, flat or saturated are "
        "answered 'unreadable'",
        "",
        "## Data",
        f"- Source: {metadata['data']['source']}",
        *(f"- {name}: {counts}" for name, counts in metadata["data"]["counts"].items()),
        "",
        "## Performance (held-out test part, 95% bootstrap CI)",
        f"- Challenge score (mean F1 of N, A, O): {challenge['value']:.3f} "
        f"({challenge['lo']:.3f}-{challenge['hi']:.3f})",
        *(f"- F1 {name}: {metrics[f'{name}/f1']['value']:.3f}" for name in metadata["class_names"]),
        "",
        "## Limits",
        "- Trained on one single-lead device population (AliveCor, PhysioNet/CinC 2017); other "
        "devices, leads and populations need their own validation.",
    ]
    return "\n".join(lines) + "\n"


def save_rhythm_bundle(
    config: EcgTrainConfig, splits: EcgSplits, trained: TrainedRhythmModel, path: Path
) -> EcgBundle:
    """Write the trained model's bundle (ONNX network or LightGBM text) to ``path``."""
    metadata = rhythm_metadata(config, splits, trained)
    card = model_card(metadata)
    if trained.is_network:
        return EcgBundle.save_network(trained.model, path, metadata, model_card=card)
    return EcgBundle.save_features(trained.model, path, metadata, model_card=card)
