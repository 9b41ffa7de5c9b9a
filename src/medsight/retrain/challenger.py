"""What every retrainer writes about its challenger: feedback counts, provenance, a model card, and
the copy of a scored bundle folder (images and ECG score the saved bundle, then copy it)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medsight.bundle.checksum import write_bundle_metadata
from medsight.errors import DataError
from medsight.retrain.base import Challenge, Champion, FeedbackCase
from medsight.runs import staged_directory

FEEDBACK_COUNTS = ("feedback_used", "feedback_confirmed", "feedback_corrected")


def class_of(label: str, classes: list[str]) -> str:
    """The model's class a clinician's label names (exact, else ignoring case and spaces)."""
    if label in classes:
        return label
    folded = {name.strip().casefold(): name for name in classes}
    found = folded.get(str(label).strip().casefold())
    if found is None:
        raise DataError(f"label {label!r} is not one of the classes {classes}")
    return found


def feedback_counts(used: Sequence[FeedbackCase]) -> dict[str, int]:
    """How many feedback cases trained the challenger, confirmed and corrected."""
    return {
        "feedback_used": len(used),
        "feedback_confirmed": sum(c.verdict == "confirmed" for c in used),
        "feedback_corrected": sum(c.verdict == "corrected" for c in used),
    }


def retraining_provenance(
    champion: Champion, champion_metadata: dict[str, Any], counts: dict[str, int]
) -> dict[str, Any]:
    """The challenger's name, creation time, the champion it came from and its feedback counts."""
    base = str(champion_metadata.get("name") or champion.task)
    return {
        "name": f"{base.removesuffix('-retrained')}-retrained",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "retrained_from": {
            "task": champion.task,
            "version": champion.version,
            "name": champion.name,
        },
        "feedback": {k: counts[k] for k in FEEDBACK_COUNTS},
    }


def challenger_model_card(
    metadata: dict[str, Any], challenge: Challenge, noun: str, closing: Sequence[str]
) -> str:
    """The model card of a challenger (``noun``: the cases, e.g. ``"images"``); the early-stopping
    line appears when it was early-stopped on validation cases (``validation_rows``); ``closing``
    lines follow the figures, then the notes."""
    origin = metadata["retrained_from"]
    counts = challenge.counts
    lines = [
        f"# {metadata['name']}",
        "",
        f"Challenger retrained from {origin['task']} v{origin['version']} ({origin['name']}) "
        f"with the same recipe ({challenge.sources['model']}).",
        "",
        f"- Training {noun}: {counts['training_rows']} ({counts['original_training_rows']} "
        f"original, {counts['feedback_used']} clinician feedback cases: "
        f"{counts['feedback_confirmed']} confirmed, {counts['feedback_corrected']} corrected)",
        *(
            [f"- Early stopping on {counts['validation_rows']} original validation {noun}"]
            if "validation_rows" in counts
            else []
        ),
        f"- Compared with the champion on {counts['holdout_rows']} held-out {noun}: "
        f"{challenge.sources['holdout']}",
        "",
        *closing,
    ]
    lines += [f"\nNote: {note}" for note in challenge.notes]
    return "\n".join(lines) + "\n"


def copy_scored_bundle(
    source: Path,
    folder: Path,
    files: Sequence[str],
    metadata: dict[str, Any],
    *,
    task: str,
    bundle_format: int,
    model_card: str,
) -> Path:
    """Copy ``files`` of the scored challenger in ``source`` to ``folder`` (staged, so nothing is
    half-written) and write its ``bundle.json`` with checksums and model card."""
    full = {k: v for k, v in metadata.items() if k not in ("format", "task", "sha256")}
    folder = Path(folder)
    with staged_directory(folder) as staging:
        for name in files:
            shutil.copy2(source / name, staging / name)
        write_bundle_metadata(
            staging,
            full,
            task=task,
            bundle_format=bundle_format,
            checksummed=tuple(files),
            model_card=model_card,
        )
    return folder
