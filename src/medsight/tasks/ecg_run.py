"""The ECG rhythm task as a run: read a folder, split, train, score once, write the run folder.

The folder is in the PhysioNet/CinC 2017 layout (WFDB records plus ``REFERENCE.csv``). Records are
split once (stratified, the config's seed); the model trains on train, selects on val only, and
val and test are each scored once. The run folder is written under a temporary name and renamed
into place only when complete::

    bundle/               the EcgBundle (ONNX network or LightGBM text) with its model card
    config.yaml           the resolved config
    metrics.json          held-out test metrics with 95% bootstrap intervals (flat, as image runs)
    val_metrics.json      the same on the validation part
    confusion_matrix.csv  test counts: rows the reference class, columns the predicted class
    test_predictions.csv  record, label, predicted and p_<class> for each test record
    history.csv           networks: one row per epoch
    explanations/         attribution strips (networks) or the feature importance (LightGBM)
    report.html
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix

from medsight.config import EcgTrainConfig, dump_config
from medsight.errors import ConfigError, DataError
from medsight.evaluate.bootstrap import Estimate
from medsight.evaluate.rhythm import rhythm_metrics_with_ci
from medsight.models.registry import get_model_entry
from medsight.runs import run_name, staged_directory
from medsight.tasks.ecg_data import (
    EcgSet,
    EcgSplits,
    Progress,
    load_rhythm_folder,
    split_rhythm_set,
)
from medsight.tasks.ecg_report import save_rhythm_bundle
from medsight.tasks.ecg_rhythm import FEATURE_FAMILY, TrainedRhythmModel, train_rhythm_model

logger = logging.getLogger(__name__)
Stage = Callable[[str], None]
ECG_FAMILIES = ("signal", FEATURE_FAMILY)
EXPLAIN_CASES = 4  # attribution strips for up to this many correct and this many wrong records


@dataclass
class EcgRunResult:
    """Where a finished ECG run is, with its validation and held-out test figures."""

    run_dir: Path
    report_path: Path
    bundle_path: Path
    metrics: dict[str, Estimate]  # held-out test part
    val_metrics: dict[str, Estimate]
    confusion: np.ndarray  # test counts, rows reference, columns predicted
    trained: TrainedRhythmModel
    splits: EcgSplits


def run_ecg(
    config: EcgTrainConfig,
    *,
    progress: bool = True,
    log: Stage | None = None,
    on_read: Progress | None = None,
    explain_cases: int = EXPLAIN_CASES,
) -> EcgRunResult:
    """The whole run: data, training, scoring, bundle, explanations, report.

    ``progress`` draws the engine's per-epoch bar; ``log`` receives one line per stage;
    ``on_read(done, total)`` follows the reading of records.
    """
    say = log or logger.info
    folder = check_rhythm_folder(config.data.path)
    check_ecg_model(config.model.name)
    data = load_rhythm_folder(
        folder,
        fs=config.data.fs,
        progress=on_read,
        require_deidentified=config.data.require_deidentified,
    )
    splits = split_records(data, config, source=str(folder))
    say(
        f"Data: {folder}: "
        + ", ".join(f"{name} {len(part)}" for name, part in splits.items())
        + f" records at {data.fs:g} Hz; classes {data.class_names}"
    )
    trained = train_rhythm_model(config, splits, progress=progress)
    say(f"Trained {config.model.name}: {_describe_selection(trained)}")
    val_metrics = score_rhythm(splits.val, trained.val_probabilities, config)
    metrics = score_rhythm(splits.test, trained.test_probabilities, config)
    predicted = trained.test_probabilities.argmax(axis=1)
    labels = np.arange(len(data.class_names))
    confusion = confusion_matrix(splits.test.labels, predicted, labels=labels)
    run_dir = _write_run_folder(
        config, splits, trained, metrics, val_metrics, confusion, explain_cases
    )
    say(f"Wrote {run_dir}")
    return EcgRunResult(
        run_dir,
        run_dir / "report.html",
        run_dir / "bundle",
        metrics,
        val_metrics,
        confusion,
        trained,
        splits,
    )


def check_rhythm_folder(path: str | Path | None) -> Path:
    """The data folder, checked to exist and to hold ``REFERENCE.csv``."""
    if path is None:
        raise ConfigError(
            "no ECG data given: pass --data FOLDER (WFDB records plus REFERENCE.csv) "
            "or set data.path in the config."
        )
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"{folder}: ECG data folder not found.")
    if not (folder / "REFERENCE.csv").is_file():
        raise DataError(
            f"{folder}: no REFERENCE.csv; an ECG rhythm folder holds WFDB records "
            "(.hea + .mat/.dat) and a REFERENCE.csv of record,label rows (PhysioNet/CinC 2017)."
        )
    return folder


def check_ecg_model(name: str) -> None:
    """A :class:`ConfigError` unless ``name`` is a registered ECG network or feature model."""
    entry = get_model_entry(name)
    if entry.family not in ECG_FAMILIES:
        raise ConfigError(
            f"model '{name}' is a {entry.family} model; ECG models: ecg_resnet1d, "
            "ecg_cnn_bilstm, ecg_hrv_lightgbm (see `medsight models`)."
        )


def split_records(data: EcgSet, config: EcgTrainConfig, *, source: str) -> EcgSplits:
    """The stratified train / val / test split, with too-small data said plainly."""
    try:
        return split_rhythm_set(
            data,
            seed=config.seed,
            test_fraction=config.data.test_fraction,
            val_fraction=config.data.val_fraction,
            source=source,
        )
    except ValueError as exc:  # scikit-learn: a class too rare to stratify, or parts too small
        raise DataError(
            f"{source}: {len(data)} records {data.class_counts()} are too few to split into "
            f"stratified train, val and test parts ({exc})."
        ) from exc


def score_rhythm(
    part: EcgSet, probabilities: np.ndarray, config: EcgTrainConfig
) -> dict[str, Estimate]:
    """Challenge score, accuracy, macro AUROC and per-class metrics with bootstrap intervals."""
    return rhythm_metrics_with_ci(
        part.labels,
        probabilities,
        part.class_names,
        n_boot=config.evaluation.n_bootstrap,
        seed=config.seed,
    )


def predictions_table(part: EcgSet, probabilities: np.ndarray) -> pd.DataFrame:
    """One row per record: name, reference label, predicted label and each class probability."""
    names = part.class_names
    table = pd.DataFrame(
        {
            "record": part.names,
            "label": [names[i] for i in part.labels],
            "predicted": [names[i] for i in probabilities.argmax(axis=1)],
        }
    )
    for k, name in enumerate(names):
        table[f"p_{name}"] = probabilities[:, k]
    return table


def _describe_selection(trained: TrainedRhythmModel) -> str:
    if not trained.fits:
        return f"{trained.train_seconds:.0f} s"
    fit = trained.fits[0]
    return (
        f"best epoch {fit.best_epoch} of {fit.epochs_run} (val {fit.monitored} "
        f"{fit.best_score:.3f}), {trained.train_seconds:.0f} s"
    )


def _write_run_folder(
    config: EcgTrainConfig,
    splits: EcgSplits,
    trained: TrainedRhythmModel,
    metrics: dict[str, Estimate],
    val_metrics: dict[str, Estimate],
    confusion: np.ndarray,
    explain_cases: int,
) -> Path:
    """Bundle, tables, config, metrics, explanations and report, renamed into place whole."""
    from medsight.tasks.ecg_run_report import build_ecg_report, explain_run

    final = config.output_dir / run_name(config.name or f"ecg-{config.model.name}")
    with staged_directory(final) as staging:
        bundle = save_rhythm_bundle(config, splits, trained, staging / "bundle")
        (staging / "config.yaml").write_text(dump_config(config))
        _write_json(staging / "metrics.json", metrics)
        _write_json(staging / "val_metrics.json", val_metrics)
        _write_tables(staging, splits, trained, confusion)
        explanations = explain_run(
            config, splits, trained, staging / "explanations", count=explain_cases
        )
        report = build_ecg_report(
            config,
            splits,
            trained,
            metrics,
            val_metrics,
            bundle.metadata,
            explanations,
            staging,
        )
        report.write(staging / "report.html")
    return final


def _write_json(path: Path, metrics: dict[str, Estimate]) -> None:
    path.write_text(json.dumps({k: v.to_dict() for k, v in metrics.items()}, indent=2))


def _write_tables(
    folder: Path, splits: EcgSplits, trained: TrainedRhythmModel, confusion: np.ndarray
) -> None:
    predictions_table(splits.test, trained.test_probabilities).to_csv(
        folder / "test_predictions.csv", index=False
    )
    names = splits.test.class_names
    counts = pd.DataFrame(confusion, index=pd.Index(names, name="reference"), columns=names)
    counts.to_csv(folder / "confusion_matrix.csv")
    if trained.fits:
        history = pd.DataFrame([vars(record) for record in trained.fits[0].history])
        history.to_csv(folder / "history.csv", index=False)
