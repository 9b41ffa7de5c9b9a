"""The HTML report, Grad-CAM examples and model card of an image run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from torch import nn

from medsight.bundle.prediction import class_text
from medsight.config import ImageTrainConfig, dump_config
from medsight.data.image_audit import ImageAudit
from medsight.evaluate.bootstrap import Estimate
from medsight.evaluate.metrics import (
    METRIC_LABELS,
    MULTILABEL_METRIC_LABELS,
    PER_CLASS_METRICS,
)
from medsight.evaluate.plots import (
    plot_calibration,
    plot_confusion_matrix,
    plot_roc,
    plot_roc_per_class,
)
from medsight.evaluate.report import Report, Section
from medsight.evaluate.subgroups import subgroup_table
from medsight.evaluate.thresholds import finding_thresholds, threshold_text
from medsight.io.images import ImageSet
from medsight.models.pixel_svm import svm_member
from medsight.models.tree_member import tree_member

if TYPE_CHECKING:
    from medsight.tasks.image import TrainedImageModel
    from medsight.tasks.image_data import ImageSplits


HEADLINE_BINARY = ("auroc", "accuracy", "sensitivity", "specificity")
HEADLINE_MULTICLASS = ("macro_auroc", "accuracy", "macro_f1", "balanced_accuracy")
HEADLINE_MULTILABEL = ("macro_auroc", "accuracy", "exact_match", "macro_f1")


@dataclass
class GradCamExample:
    """One test image with its Grad-CAM overlay."""

    source: str
    label: str
    prediction: str
    probability: float
    correct: bool
    png: Path


def gradcam_examples(
    model: nn.Module,
    splits: ImageSplits,
    probabilities: np.ndarray,
    predicted: np.ndarray,
    folder: Path,
    *,
    count: int,
    seed: int,
) -> list[GradCamExample]:
    """Grad-CAM PNGs for up to ``count`` test cases, half correctly and half wrongly
    ``predicted`` (class indices at the model's operating point). Multi-label: ``predicted`` is
    ``(N, L)`` 0/1, a case is correct when every finding is, and the map is drawn for the most
    probable finding."""
    from medsight.explain.gradcam import save_gradcam_pngs

    if count == 0:
        return []
    names = splits.class_names
    labels = splits.test.labels
    if splits.test.multi_label:
        correct = (predicted == labels).all(axis=1)
        target = probabilities.argmax(axis=1)
    else:
        correct = predicted == labels
        target = predicted
    rng = np.random.default_rng(seed)
    wrong_pick = rng.permutation(np.flatnonzero(~correct))[: count // 2]
    right_pick = rng.permutation(np.flatnonzero(correct))[: count - len(wrong_pick)]
    chosen = np.concatenate([right_pick, wrong_pick]).astype(int)
    if not len(chosen):
        return []
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"test-{index:05d}.png" for index in chosen]
    titles = [
        f"predicted {class_text(predicted[i], names)} "
        f"(map: {names[target[i]]}, p={probabilities[i, target[i]]:.2f}); "
        f"reference {class_text(labels[i], names)}"
        for i in chosen
    ]
    save_gradcam_pngs(model, splits.test.images[chosen], target[chosen], paths, titles)
    examples = [
        GradCamExample(
            splits.test.sources[index],
            class_text(labels[index], names),
            class_text(predicted[index], names),
            float(probabilities[index, target[index]]),
            bool(correct[index]),
            path,
        )
        for index, path in zip(chosen, paths, strict=True)
    ]
    return examples


def build_image_report(
    config: ImageTrainConfig,
    splits: ImageSplits,
    trained: TrainedImageModel,
    metrics: dict[str, Estimate],
    metadata: dict[str, Any],
    examples: list[GradCamExample],
    audit: ImageAudit | None = None,
) -> Report:
    """Summary, test metrics with CIs, curves, confusion matrix, Grad-CAM, data (with the
    near-duplicate audit) and config."""
    names = splits.class_names
    multi_label = trained.multi_label
    binary = len(names) == 2 and not multi_label
    report = Report(
        title=f"medsight report: {metadata['name']}",
        subtitle=(
            f"Image classification ({', '.join(names)}"
            + ("; several findings per image" if multi_label else "")
            + f") with '{config.model.name}'; "
            "figures are from the held-out test split, scored once."
        ),
    )
    headline = HEADLINE_BINARY if binary else HEADLINE_MULTICLASS
    if multi_label:
        headline = HEADLINE_MULTILABEL
    labels = _metric_labels(trained)
    summary = report.add_section(
        "Summary",
        "The model was trained on the training split; early stopping and the choice of epoch used "
        "the validation split only. Intervals are 95% bootstrap intervals over test images"
        + (" resampled by patient." if splits.test.patient_ids is not None else "."),
    )
    summary.add_key_values(
        {
            "Data": splits.source + (" (official splits)" if splits.official_splits else ""),
            "Images (train / val / test)": " / ".join(str(len(s)) for _, s in splits.items()),
            "Image shape (C, H, W)": str(splits.train.image_shape),
            "Model": _model_name(config, trained),
            "Best epoch (val AUROC)": trained.describe_selection(),
            "Training time": f"{trained.train_seconds:.0f} s",
            "Test-time augmentation": ", ".join(trained.tta) or "none",
            **({"Positive class": metadata["positive_class"]} if binary else {}),
            **(
                {
                    "Decision threshold": f"{threshold_text(trained.threshold, names)} "
                    f"({trained.threshold_method})"
                }
                if trained.threshold is not None
                else {}
            ),
            **{labels[k]: str(metrics[k]) for k in headline},
            "ONNX vs torch max |difference|": f"{metadata['onnx_max_abs_difference']:.1e}",
            "Seed": config.seed,
        }
    )
    performance = report.add_section("Performance on the test split")
    overall = {k: v for k, v in metrics.items() if "/" not in k}
    performance.add_metrics(overall, caption="Test split", labels=labels)
    if not binary:
        caption = "Per finding" if multi_label else "Per class (one-vs-rest)"
        performance.add_table(_per_class_table(metrics, names), caption=caption)
    y = splits.test.labels
    probabilities = trained.test_probabilities
    if binary:
        positive = names.index(metadata["positive_class"])
        performance.add_figure(plot_roc((y == positive).astype(int), probabilities[:, positive]))
        performance.add_figure(
            plot_calibration((y == positive).astype(int), probabilities[:, positive])
        )
    if not binary:
        indicator = y if multi_label else np.eye(len(names), dtype=int)[y]
        cuts = finding_thresholds(trained.threshold, len(names)) if multi_label else None
        noun = "finding" if multi_label else "class"
        performance.add_figure(
            plot_roc_per_class(indicator, probabilities, names, cuts, noun=noun),
            caption=f"ROC curve per {noun}"
            + (", dots at each finding's threshold" if multi_label else " (one-vs-rest)"),
        )
    if not multi_label:  # findings are not exclusive: there is no one confusion matrix
        predicted = trained.predicted_classes(probabilities)
        performance.add_figure(plot_confusion_matrix(y, predicted, names))

    training = report.add_section("Training", "Loss and validation AUROC per epoch.")
    training.add_figure(_plot_history(trained))

    if examples:
        explain = report.add_section(
            "Grad-CAM examples",
            "Where the network looked for its predicted class: correct and wrong test cases. "
            "Warm colours mark the regions that raised the predicted class's score."
            + _svm_note(trained),
        )
        for example in examples:
            verdict = "correct" if example.correct else "WRONG"
            explain.add_image_png(example.png.read_bytes(), caption=f"{verdict}: {example.source}")

    data = report.add_section("Data")
    counts = pd.DataFrame({name: s.class_counts() for name, s in splits.items()})
    counts.index.name = "finding" if multi_label else "class"
    noun = "each finding" if multi_label else "class"
    data.add_table(counts, caption=f"Images per {noun} and split")
    if audit is not None:
        positive = names.index(metadata["positive_class"]) if binary else None
        _add_audit(data, audit, splits, trained, positive)
    settings = report.add_section("Configuration")
    settings.add_text(dump_config(config))
    return report


def _add_audit(
    section: Section,
    audit: ImageAudit,
    splits: ImageSplits,
    trained: TrainedImageModel,
    positive: int | None,
) -> None:
    """The near-duplicate audit: a sentence, counts per split pair, the cross-split pairs and,
    for two classes, test metrics with and without a near-duplicate in an earlier split."""
    section.add_text(
        audit.summary()
        + " Near-duplicates across splits make test figures partly a measure of recall; pairs "
        "with different labels cannot both be predicted right."
    )
    if audit.skipped:
        return
    rows = [
        {
            "splits": f"{row.first} / {row.second}",
            "near-duplicate pairs": row.pairs,
            "pairs with different labels": row.conflicting_pairs,
            "images of the second with one": row.second_images_with_duplicate,
            "... with a different label": row.second_images_with_conflict,
        }
        for row in audit.counts()
    ]
    table = pd.DataFrame(rows)
    section.add_table(table, caption=f"Pixel correlation >= {audit.threshold:g} on thumbnails")
    figure = plot_duplicate_pairs(audit, dict(splits.items()))
    if figure is not None:
        section.add_figure(figure, caption="Cross-split pairs, different labels first")
    if positive is None:
        return
    seen = np.where(audit.seen_earlier("test"), "yes", "no")
    threshold = 0.5 if trained.threshold is None else float(trained.threshold)
    table = subgroup_table(
        (splits.test.labels == positive).astype(int),
        trained.test_probabilities[:, positive],
        {"near-duplicate in train or val": seen},
        threshold,
        metrics=("auroc", "accuracy", "sensitivity", "specificity"),
    )
    section.add_table(
        table, caption="Test metrics for images with and without a near-duplicate seen earlier"
    )


def plot_duplicate_pairs(
    audit: ImageAudit, splits: Mapping[str, ImageSet], *, max_pairs: int = 8
) -> Figure | None:
    """The cross-split pairs side by side (label conflicts first, then by correlation), each
    titled with split, index, label and correlation; None when there are none."""
    shown = [p for p in audit.pairs if p.across_splits][:max_pairs]
    if not shown:
        return None
    figure = Figure(figsize=(1.5 + 1.6 * len(shown), 4.6), dpi=110, layout="constrained")
    axes = figure.subplots(2, len(shown), squeeze=False)
    for column, pair in enumerate(shown):
        for row, (split, index) in enumerate((pair.first, pair.second)):
            images = splits[split]
            axis = axes[row, column]
            picture = images.images[index]
            axis.imshow(
                picture[0] if picture.shape[0] == 1 else picture[:3].transpose(1, 2, 0),
                cmap="gray",
                vmin=0.0,
                vmax=1.0,
            )
            axis.set_xticks([])
            axis.set_yticks([])
            label = class_text(images.labels[index], images.class_names)
            axis.set_title(f"{split} #{index}\n{label}", fontsize=7)
        axes[1, column].set_xlabel(
            f"r = {pair.correlation:.3f}" + ("" if pair.same_label else "\nlabels differ"),
            fontsize=7,
            color="black" if pair.same_label else "crimson",
        )
    figure.suptitle("Near-duplicate images across splits (top row: earlier split)", fontsize=9)
    return figure


def _per_class_table(metrics: dict[str, Estimate], names: list[str]) -> pd.DataFrame:
    rows = []
    for name in names:
        row = {"class": name}
        for metric in PER_CLASS_METRICS:
            estimate = metrics.get(f"{name}/{metric}")
            row[METRIC_LABELS.get(metric, metric)] = str(estimate) if estimate else ""
        rows.append(row)
    return pd.DataFrame(rows)


def _svm_note(trained: TrainedImageModel) -> str:
    """How the maps cover the members without a feature map (the SVM, the trees)."""
    parts = []
    if svm_member(trained.model) is not None and trained.svm_share > 0:
        parts.append(f"the SVM ({trained.svm_share:.0%} of the averaged probability)")
    if trained.tree_share > 0:
        parts.append(f"the trees ({trained.tree_share:.0%})")
    if not parts:
        return ""
    return (
        f" Members without a feature map, {' and '.join(parts)}, are mapped by occlusion (how "
        "far their probability for the class, mixed in their shares, falls when a "
        "quarter-sized window of the image is masked), and every map is weighted by its share."
    )


def _model_name(config: ImageTrainConfig, trained: TrainedImageModel) -> str:
    """E.g. ``small_cnn, ensemble of 5, a scattering SVM (...) with a share of 0.38 and
    LightGBM on scattering coefficients (...) with a share of 0.25 (mean probability)``."""
    members = config.model.ensemble
    name = config.model.name + (f", ensemble of {members}" if members > 1 else "")
    extra = []
    svm = svm_member(trained.model)
    if svm is not None:
        extra.append(f"a {svm.describe()} with a share of {trained.svm_share:.2g}")
    trees = tree_member(trained.model)
    if trees is not None:
        extra.append(f"{trees.describe()} with a share of {trained.tree_share:.2g}")
    if extra:
        name += (", " if len(extra) > 1 else " and ") + " and ".join(extra)
    return name + (" (mean probability)" if members > 1 or extra else "")


def _plot_history(trained: TrainedImageModel) -> Figure:
    """Loss and validation AUROC per epoch, one line per ensemble member."""
    figure = Figure(figsize=(7.5, 3.2))
    loss_axis, auroc_axis = figure.subplots(1, 2)
    for member, fit in enumerate(trained.fits):
        epochs = [r.epoch for r in fit.history]
        suffix = f" ({member + 1})" if len(trained.fits) > 1 else ""
        colour = f"C{member % 10}"
        loss_axis.plot(
            epochs, [r.train_loss for r in fit.history], color=colour, label="train" + suffix
        )
        loss_axis.plot(
            epochs,
            [r.val_loss for r in fit.history],
            color=colour,
            linestyle="--",
            label="validation" + suffix,
        )
        auroc_axis.plot(epochs, [r.val_auroc for r in fit.history], color=colour)
        auroc_axis.axvline(
            fit.best_epoch, color=colour, linestyle=":", label=("best epoch" + suffix)
        )
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("cross-entropy (dashed: validation)")
    loss_axis.legend(frameon=False, fontsize="small")
    auroc_axis.set_xlabel("epoch")
    auroc_axis.set_ylabel("validation AUROC")
    auroc_axis.legend(frameon=False, fontsize="small")
    figure.tight_layout()
    return figure


def model_card(
    config: ImageTrainConfig,
    splits: ImageSplits,
    trained: TrainedImageModel,
    metrics: dict[str, Estimate],
    metadata: dict[str, Any],
    audit: ImageAudit | None = None,
) -> str:
    """A short Markdown model card: intended use, data, performance with CIs, limits."""
    labels = _metric_labels(trained)
    lines = [
        f"# Model card: {metadata['name']}",
        "",
        "## Intended use",
        "Decision support for image classification: a second reader for a clinician, never a "
        "replacement. Not validated for clinical use.",
        "",
        "## Model",
        f"- Architecture: {_model_name(config, trained)} "
        f"({trained.model_spec['in_channels']} channel(s), "
        f"{len(splits.class_names)} classes: {', '.join(splits.class_names)})",
        f"- Input: {splits.train.image_shape} images scaled to [0, 1]",
        f"- Test-time augmentation: {', '.join(trained.tta) or 'none'}",
        f"- Decision: {_decision_rule(trained, splits.class_names)}",
        "",
        "## Data",
        f"- Source: {splits.source}",
        *(f"- {name}: {len(s)} images {s.class_counts()}" for name, s in splits.items()),
        "",
        "## Performance (held-out test split, 95% bootstrap CI)",
        *(f"- {labels.get(k, k)}: {v}" for k, v in metrics.items() if "/" not in k),
        "",
        "## Limits",
        "- Figures come from one data source; performance on other scanners, sites and "
        "populations is unknown until validated there.",
        "- Inputs unlike the training images (other modality, size, intensity) are flagged but "
        "not refused.",
        *([f"- {audit.summary()}"] if audit is not None else []),
    ]
    return "\n".join(lines) + "\n"


def _metric_labels(trained: TrainedImageModel) -> dict[str, str]:
    """Human metric names: MedMNIST's multi-label figures are means over findings."""
    return MULTILABEL_METRIC_LABELS if trained.multi_label else METRIC_LABELS


def _decision_rule(trained: TrainedImageModel, names: list[str]) -> str:
    if trained.multi_label:
        assert trained.threshold is not None, "multi-label models always have a threshold"
        if isinstance(trained.threshold, list):
            return (
                "each finding is called present when its probability is >= its own threshold "
                f"({trained.threshold_method}): {threshold_text(trained.threshold, names)}"
            )
        return f"each finding is called present when its probability is >= {trained.threshold:.3f}"
    if trained.threshold is None or trained.positive_index is None:
        return "the most probable class"
    return (
        f"{names[trained.positive_index]} when its probability is >= "
        f"{threshold_text(trained.threshold)} "
        f"({trained.threshold_method})"
    )
