"""The HTML report and the explanation images of an ECG rhythm run.

Networks are explained by Integrated Gradients strips (:mod:`medsight.explain.ecg`) over test
records, correct and wrong ones; the LightGBM feature model by its feature importance. Every image
is a PNG file in the run folder and is also inlined in the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch import nn

from medsight.config import EcgTrainConfig, dump_config
from medsight.evaluate.bootstrap import Estimate
from medsight.evaluate.metrics import METRIC_LABELS, PER_CLASS_METRICS
from medsight.evaluate.plots import figure_to_png_bytes, plot_confusion_matrix
from medsight.evaluate.report import Report, Section
from medsight.evaluate.rhythm import CHALLENGE_SCORE
from medsight.models.state import device_of, eval_mode
from medsight.tasks.ecg_data import RHYTHM_NAMES, EcgSet, EcgSplits
from medsight.tasks.ecg_rhythm import window_samples
from medsight.transforms.ecg import EcgWindowDataset

if TYPE_CHECKING:
    from medsight.tasks.ecg_rhythm import TrainedRhythmModel
    from medsight.train.engine import FitResult

CHALLENGE_LABEL = "Challenge score (mean F1 of N, A, O)"
TOP_FEATURES = 20


@dataclass
class AttributionExample:
    """One test record with the attribution strip of its strongest window."""

    record: str
    label: str
    prediction: str
    probability: float
    correct: bool
    window_start_s: float
    png: Path


@dataclass
class Explanations:
    """Attribution strips (networks) or the feature-importance image (feature models)."""

    examples: list[AttributionExample] = field(default_factory=list)
    importance_png: Path | None = None


def explain_run(
    config: EcgTrainConfig,
    splits: EcgSplits,
    trained: TrainedRhythmModel,
    folder: Path,
    *,
    count: int,
) -> Explanations:
    """Strips for up to ``count`` correct and ``count`` wrong test records, or the importance."""
    if not trained.is_network:
        return Explanations(importance_png=save_feature_importance(trained.model, folder))
    length, hop = window_samples(config)
    examples = attribution_examples(
        trained.model,
        splits.test,
        trained.test_probabilities,
        folder,
        count=count,
        seed=config.seed,
        window=(length, hop),
    )
    return Explanations(examples=examples)


def attribution_examples(
    model: nn.Module,
    data: EcgSet,
    probabilities: np.ndarray,
    folder: Path,
    *,
    count: int,
    seed: int,
    window: tuple[int, int],
) -> list[AttributionExample]:
    """Integrated-Gradients strips for the predicted class of up to ``count`` correctly and
    ``count`` wrongly predicted records (drawn with ``seed``), each over the record's window
    with the highest probability for that class."""
    from medsight.explain.ecg import save_attribution_png

    names = data.class_names
    predicted = probabilities.argmax(axis=1)
    correct = predicted == data.labels
    rng = np.random.default_rng(seed)
    chosen = [
        *rng.permutation(np.flatnonzero(correct))[:count],
        *rng.permutation(np.flatnonzero(~correct))[:count],
    ]
    examples = []
    for index in chosen:
        target = int(predicted[index])
        signal, start = strongest_window(model, data.signals[index], target, window)
        verdict = "correct" if correct[index] else "wrong"
        path = folder / f"{verdict}-{_safe(data.names[index])}.png"
        save_attribution_png(model, signal, data.fs, path, class_names=names, target=target)
        examples.append(
            AttributionExample(
                data.names[index],
                names[data.labels[index]],
                names[target],
                float(probabilities[index, target]),
                bool(correct[index]),
                start / data.fs,
                path,
            )
        )
    return examples


def strongest_window(
    model: nn.Module, signal: np.ndarray, target: int, window: tuple[int, int]
) -> tuple[np.ndarray, int]:
    """The record's prediction window with the highest probability of ``target``, and its start."""
    windows = EcgWindowDataset([signal], *window)
    batch = torch.stack([windows[i] for i in range(len(windows))]).to(device_of(model))
    with eval_mode(model), torch.no_grad():
        scores = torch.softmax(model(batch).float(), dim=1)[:, target]
    best = int(scores.argmax())
    return batch[best].cpu().numpy(), windows.index[best][1]


def save_feature_importance(model: Any, folder: Path) -> Path:
    """A bar chart of the feature model's total gain per feature (top features), as PNG."""
    gain = model.feature_importance().head(TOP_FEATURES)[::-1]
    share = gain / max(float(gain.sum()), 1e-12)
    figure = Figure(figsize=(7.0, 0.28 * len(gain) + 1.2), layout="constrained")
    axis = figure.subplots()
    axis.barh(list(gain.index), share.to_numpy(), color="tab:blue")
    axis.set_xlabel("share of the total gain of the features shown")
    axis.set_title(f"LightGBM feature importance (top {len(gain)} by gain)")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "feature_importance.png"
    path.write_bytes(figure_to_png_bytes(figure))
    return path


def build_ecg_report(
    config: EcgTrainConfig,
    splits: EcgSplits,
    trained: TrainedRhythmModel,
    metrics: dict[str, Estimate],
    val_metrics: dict[str, Estimate],
    metadata: dict[str, Any],
    explanations: Explanations,
    folder: Path,
) -> Report:
    """Summary, test metrics with CIs, confusion matrix, training, explanations, data, config.

    The confusion matrix and training curve are also written as PNG files into ``folder``.
    """
    names = splits.test.class_names
    report = Report(
        title=f"medsight report: {metadata['name']}",
        subtitle=(
            f"ECG rhythm classification ({', '.join(names)}) with '{config.model.name}'; "
            "figures are from the held-out test part, scored once."
        ),
    )
    _summary(report, config, splits, trained, metrics, val_metrics, metadata)
    performance = report.add_section(
        "Performance on the test part",
        "95% bootstrap intervals over test records. The challenge score is the mean F1 of "
        "normal (N), atrial fibrillation (A) and other rhythm (O), as in PhysioNet/CinC 2017.",
    )
    performance.add_metrics(_overall(metrics), caption="Held-out test part")
    performance.add_table(_per_class_table(metrics, names), caption="Per class (one-vs-rest)")
    predicted = trained.test_probabilities.argmax(axis=1)
    matrix = plot_confusion_matrix(splits.test.labels, predicted, names)
    _add_png(performance, matrix, folder / "confusion_matrix.png", "Test records")
    performance.add_metrics(
        _overall(val_metrics), caption="Validation part (used for early stopping only)"
    )
    _training(report, trained, folder)
    _explanations(report, explanations)
    data = report.add_section("Data")
    counts = pd.DataFrame({name: part.class_counts() for name, part in splits.items()})
    counts.index = pd.Index([f"{c} ({RHYTHM_NAMES.get(c, c)})" for c in counts.index])
    counts.index.name = "class"
    data.add_table(counts, caption="Records per class and part (stratified split)")
    data.add_table(_durations(splits), caption="Record length in seconds")
    report.add_section("Configuration").add_text(dump_config(config))
    return report


def _summary(
    report: Report,
    config: EcgTrainConfig,
    splits: EcgSplits,
    trained: TrainedRhythmModel,
    metrics: dict[str, Estimate],
    val_metrics: dict[str, Estimate],
    metadata: dict[str, Any],
) -> None:
    summary = report.add_section(
        "Summary",
        "The model was trained on the training part; early stopping and the choice of epoch "
        "used the validation part only. The test part was scored once, after training.",
    )
    length, hop = window_samples(config)
    fs = config.data.fs
    items: dict[str, object] = {
        "Data": splits.source,
        "Records (train / val / test)": " / ".join(str(len(p)) for _, p in splits.items()),
        "Model": config.model.name,
        "Input": f"lead {config.data.lead} at {fs:g} Hz; windows of {length / fs:g} s "
        f"every {hop / fs:g} s, probabilities averaged per record",
        "Training time": f"{trained.train_seconds:.0f} s",
        f"{CHALLENGE_LABEL}, test": str(metrics[CHALLENGE_SCORE]),
        f"{CHALLENGE_LABEL}, validation": str(val_metrics[CHALLENGE_SCORE]),
        "Accuracy": str(metrics["accuracy"]),
        METRIC_LABELS["macro_auroc"]: str(metrics["macro_auroc"]),
        **{f"F1 {name}": str(metrics[f"{name}/f1"]) for name in splits.test.class_names},
    }
    if trained.fits:
        fit = trained.fits[0]
        items["Best epoch"] = f"{fit.best_epoch} of {fit.epochs_run} (val {fit.monitored})"
    if "onnx_max_abs_difference" in metadata:
        items["ONNX vs torch max |difference|"] = f"{metadata['onnx_max_abs_difference']:.1e}"
    items["Seed"] = config.seed
    summary.add_key_values(items)


def _training(report: Report, trained: TrainedRhythmModel, folder: Path) -> None:
    if trained.fits:
        section = report.add_section(
            "Training", "Loss and validation score (macro AUROC) per epoch."
        )
        _add_png(section, plot_history(trained.fits[0]), folder / "training.png")
        return
    section = report.add_section(
        "Training", "Gradient boosting; the number of trees was chosen on the validation part."
    )
    trees = getattr(trained.model, "best_iteration", None)
    section.add_key_values(
        {
            "Trees (early-stopped on validation log-loss)": trees,
            "Features": len(trained.feature_names),
            "Training time (features included)": f"{trained.train_seconds:.0f} s",
        }
    )


def _explanations(report: Report, explanations: Explanations) -> None:
    if explanations.importance_png is not None:
        section = report.add_section(
            "Explanations",
            "Which per-record features (heart-rate variability, morphology, signal quality) the "
            "LightGBM model relied on, by total gain over all its trees.",
        )
        section.add_image_png(explanations.importance_png.read_bytes(), "Feature importance")
        return
    section = report.add_section(
        "Explanations",
        "Integrated Gradients for the predicted class over the record's window with the highest "
        "probability for that class: red shading marks the samples that raised the class score, "
        "triangles the R-peaks detected by medsight.signal. Correct and wrong test records.",
    )
    for correct, heading in ((True, "Correct predictions"), (False, "Wrong predictions")):
        chosen = [e for e in explanations.examples if e.correct == correct]
        section.add_text(f"{heading}: {len(chosen) or 'none'}")
        for example in chosen:
            caption = (
                f"{'correct' if correct else 'WRONG'}: {example.record}: reference "
                f"{example.label}, predicted {example.prediction} (p={example.probability:.2f}); "
                f"window from {example.window_start_s:.1f} s"
            )
            section.add_image_png(example.png.read_bytes(), caption=caption)


def plot_history(fit: FitResult) -> Figure:
    """Training and validation loss, and the validation score, per epoch; best epoch marked."""
    figure = Figure(figsize=(7.5, 3.2), layout="constrained")
    loss_axis, score_axis = figure.subplots(1, 2)
    epochs = [r.epoch for r in fit.history]
    loss_axis.plot(epochs, [r.train_loss for r in fit.history], label="train")
    loss_axis.plot(epochs, [r.val_loss for r in fit.history], linestyle="--", label="validation")
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("cross-entropy")
    loss_axis.legend(frameon=False, fontsize="small")
    scores = [r.val_auroc if r.val_auroc is not None else r.score for r in fit.history]
    score_axis.plot(epochs, scores, color="C2")
    score_axis.axvline(fit.best_epoch, color="grey", linestyle=":", label="best epoch")
    score_axis.set_xlabel("epoch")
    score_axis.set_ylabel(f"validation {fit.monitored.lstrip('-')}")
    score_axis.legend(frameon=False, fontsize="small")
    return figure


def _overall(metrics: dict[str, Estimate]) -> dict[str, Estimate]:
    """Whole-set metrics, the challenge score first and named for readers."""
    rest = {k: v for k, v in metrics.items() if "/" not in k and k != CHALLENGE_SCORE}
    return {CHALLENGE_LABEL: metrics[CHALLENGE_SCORE], **rest}


def _per_class_table(metrics: dict[str, Estimate], names: list[str]) -> pd.DataFrame:
    rows = []
    for name in names:
        row = {"class": f"{name} ({RHYTHM_NAMES.get(name, name)})"}
        for metric in PER_CLASS_METRICS:
            row[METRIC_LABELS.get(metric, metric)] = str(metrics[f"{name}/{metric}"])
        rows.append(row)
    return pd.DataFrame(rows)


def _durations(splits: EcgSplits) -> pd.DataFrame:
    rows = []
    for name, part in splits.items():
        seconds = part.seconds()
        rows.append(
            {
                "part": name,
                "shortest": float(seconds.min()),
                "median": float(np.median(seconds)),
                "longest": float(seconds.max()),
            }
        )
    return pd.DataFrame(rows)


def _add_png(section: Section, figure: Figure, path: Path, caption: str = "") -> None:
    """Write the figure as a PNG file and inline the same bytes in the report."""
    png = figure_to_png_bytes(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    section.add_image_png(png, caption)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "record"
