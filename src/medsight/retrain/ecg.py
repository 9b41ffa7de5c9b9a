"""Retraining an ECG rhythm bundle: the original train split plus feedback records, same recipe.

The champion's training config is found as for images: ``--config``, else ``config`` in the
bundle's ``bundle.json`` (written by retraining), else ``config.yaml`` in the run folder the bundle
was registered from. Its ``data.path`` (or ``--data``), a PhysioNet/CinC 2017 folder, is read again
and split as the run split it (:func:`~medsight.tasks.ecg_run.split_records`, same seed and
fractions); the challenger is trained by :func:`~medsight.tasks.ecg_rhythm.train_rhythm_model`
(what ``medsight train`` runs) on the train split plus the feedback records and early-stopped on
the val split; both models are scored on the original test split (which neither trained nor
early-stopped on) or on every record of ``--holdout`` (a folder with ``REFERENCE.csv``).

A feedback input is what the service stored for the prediction: the JSON samples body, a single
uploaded file (a DICOM waveform, or a CSV or NumPy signal whose input type records the ``fs``
form field; one stored without it cannot be read again), or a WFDB pair kept as a ZIP. It is
decoded by the service's own functions and fitted to the bundle's lead and rate by
:meth:`~medsight.bundle.ecg.EcgBundle.signal_of`, exactly as at prediction. Records are matched by
their signal at the model's rate (to 1 microvolt): a held-out or validation record that is also a
feedback case leaves the comparison / early stopping, and an original training record with a
clinician's verdict is replaced by the feedback case.

Rhythm models are multi-class and the gate is binary: the positive class is the bundle's
``positive_class`` when it records one, else ``A`` (atrial fibrillation). AUROC is that class
against the rest from the probabilities; sensitivity uses what the models decide, their most
probable class, expressed as a per-case threshold (:func:`argmax_threshold`).
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import numpy as np

from medsight.bundle.ecg import BUNDLE_FORMAT, FEATURE_FILES, NETWORK_FILES, TASK, EcgBundle
from medsight.config import EcgTrainConfig
from medsight.errors import ConfigError, DataError, MedsightError
from medsight.io.ecg import EcgRecord
from medsight.retrain.base import (
    Challenge,
    Champion,
    FeedbackCase,
    HeldOut,
    RetrainOptions,
    UnusableCase,
)
from medsight.retrain.challenger import (
    challenger_model_card,
    class_of,
    copy_scored_bundle,
    feedback_counts,
    retraining_provenance,
)
from medsight.retrain.feedback_split import holdout_notes, split_out_feedback
from medsight.retrain.recipe import champion_config, locate_original
from medsight.tasks.ecg_data import RHYTHM_NAMES, EcgSet, EcgSplits, load_rhythm_folder
from medsight.tasks.ecg_report import save_rhythm_bundle
from medsight.tasks.ecg_rhythm import train_rhythm_model
from medsight.tasks.ecg_run import check_ecg_model, check_rhythm_folder, split_records

DEFAULT_POSITIVE: Final = "A"  # atrial fibrillation: what the rhythm models are for


@dataclass
class _Payload:
    """What saving needs: the scored challenger bundle (a temporary folder) and provenance."""

    scratch: tempfile.TemporaryDirectory[str]
    folder: Path
    metadata: dict[str, Any]
    config: EcgTrainConfig
    champion: Champion
    champion_metadata: dict[str, Any]
    positive_class: str


class EcgRetrainer:
    """The :class:`~medsight.retrain.base.Retrainer` of ``ecg-rhythm`` bundles."""

    kind = TASK

    def train(
        self, champion: Champion, cases: Sequence[FeedbackCase], options: RetrainOptions
    ) -> Challenge:
        bundle = EcgBundle.load(champion.folder)
        classes = bundle.class_names
        positive_name = positive_class(bundle.metadata)
        positive = classes.index(positive_name)
        config, config_source = champion_config(
            bundle.metadata, champion, options.config, EcgTrainConfig, "ECG rhythm"
        )
        folder = resolve_data_folder(options.data or config.data.path, config_source)
        config = config.model_copy(
            update={"data": config.data.model_copy(update={"path": str(folder)})}
        )
        _check_like_champion(config, bundle)
        deidentified = config.data.require_deidentified
        data = load_rhythm_folder(
            folder, fs=config.data.fs, classes=classes, require_deidentified=deidentified
        )
        splits = split_records(data, config, source=str(folder))
        feedback, used, unusable = feedback_records(
            cases, bundle, require_deidentified=deidentified
        )
        keys = {signal_key(signal) for signal in feedback.signals}
        notes = [
            f"The gate compares class {positive_name!r} "
            f"({RHYTHM_NAMES.get(positive_name, positive_name)}) with the other classes: AUROC "
            f"from each model's probability of {positive_name!r}, sensitivity from what each "
            "model decides (its most probable class, so no single threshold is shown)."
        ]

        if options.holdout is not None:
            held = load_rhythm_folder(
                check_rhythm_folder(options.holdout),
                fs=config.data.fs,
                classes=classes,
                require_deidentified=deidentified,
            )
            holdout_source = f"every record of {options.holdout}"
        else:
            held = splits.test
            holdout_source = (
                f"the original test split of {splits.source} (neither model trained or "
                "early-stopped on it)"
            )
        notes += holdout_notes(options, "ECG")
        split = split_out_feedback(
            splits.train,
            splits.val,
            held,
            keys,
            _signal_keys,
            noun="records",
            any_feedback=bool(used),
        )
        train, val, held = split.train, split.val, split.held
        notes += split.notes
        if len(val) < 2:
            raise DataError(
                f"only {len(val)} validation records of {splits.source} are left once feedback "
                "cases are taken out; early stopping needs more."
            )
        y_holdout = (held.labels == positive).astype(int)
        if min(int(y_holdout.sum()), int(len(y_holdout) - y_holdout.sum())) < 2:
            raise DataError(
                f"the held-out set ({holdout_source}) has fewer than 2 records of "
                f"{positive_name!r} or of the other classes; the comparison needs both. Pass a "
                "larger --holdout."
            )

        training = concat_sets([train, feedback], classes, config.data.fs)
        challenger_splits = EcgSplits(training, val, held, splits.source)
        trained = train_rhythm_model(config, challenger_splits, progress=False)
        scratch = tempfile.TemporaryDirectory(prefix="medsight-retrain-")
        challenger = save_rhythm_bundle(
            config, challenger_splits, trained, Path(scratch.name) / "bundle"
        )
        champion_p = _probabilities(bundle, held.signals)
        challenger_p = _probabilities(challenger, held.signals)
        held_out = HeldOut(
            y=y_holdout,
            champion_probability=champion_p[:, positive],
            challenger_probability=challenger_p[:, positive],
            champion_threshold=argmax_threshold(champion_p, positive),
            challenger_threshold=argmax_threshold(challenger_p, positive),
        )
        counts = {
            "original_rows": len(data),
            "original_training_rows": len(train),
            **feedback_counts(used),
            "training_rows": len(training),
            "validation_rows": len(val),
            "holdout_rows": len(y_holdout),
            "holdout_positive": int(y_holdout.sum()),
            **split.counts,
        }
        sources = {
            "config": config_source,
            "original_data": splits.source,
            "holdout": holdout_source,
            "model": f"{config.model.name} at {config.data.fs:g} Hz",
        }
        payload = _Payload(
            scratch,
            Path(scratch.name) / "bundle",
            challenger.metadata,
            config,
            champion,
            bundle.metadata,
            positive_name,
        )
        return Challenge(held_out, used, unusable, counts, sources, notes, payload)

    def save(self, challenge: Challenge, folder: Path, metadata: dict[str, Any]) -> Path:
        """Copy the scored challenger's model files and write its ``bundle.json``."""
        payload: _Payload = challenge.payload
        counts = challenge.counts
        full = {
            **payload.metadata,
            **retraining_provenance(payload.champion, payload.champion_metadata, counts),
            # the challenger's multi-class figures on the held-out records (challenge score...)
            "rhythm_metrics": payload.metadata["metrics"],
            "evaluation": (
                f"held-out comparison with the champion on {counts['holdout_rows']} records "
                f"({challenge.sources['holdout']}); metrics are class "
                f"{payload.positive_class!r} against the rest"
            ),
            "config": payload.config.model_dump(mode="json"),
            **metadata,
        }
        if "positive_class" in payload.champion_metadata:  # the next retraining gates the same
            full["positive_class"] = payload.positive_class
        files = NETWORK_FILES if full.get("kind") == "network" else FEATURE_FILES
        folder = copy_scored_bundle(
            payload.folder,
            folder,
            files[1:],
            full,
            task=TASK,
            bundle_format=BUNDLE_FORMAT,
            model_card=_model_card(full, challenge, payload.positive_class),
        )
        payload.scratch.cleanup()
        return folder


# ------------------------------------------------------------------------------ gate


def positive_class(metadata: dict[str, Any]) -> str:
    """The class the binary gate scores: the bundle's ``positive_class``, else ``A``."""
    classes = list(metadata.get("class_names", []))
    recorded = metadata.get("positive_class")
    if recorded is not None:
        if recorded not in classes:
            raise ConfigError(
                f"the champion's positive class {recorded!r} is not one of its classes {classes}."
            )
        return str(recorded)
    if DEFAULT_POSITIVE in classes:
        return DEFAULT_POSITIVE
    raise ConfigError(
        f"the champion has classes {classes}, no positive class and no {DEFAULT_POSITIVE!r} "
        "(atrial fibrillation); the retraining gate (AUROC and sensitivity) needs one class "
        "to score against the rest. Record 'positive_class' in its bundle.json."
    )


def argmax_threshold(probabilities: np.ndarray, positive: int) -> np.ndarray:
    """Per-case thresholds ``t`` with ``p[:, positive] >= t`` exactly when ``positive`` is the
    argmax: the largest other probability, just above it for a class listed earlier (argmax
    takes the first of tied maxima)."""
    p = np.asarray(probabilities, dtype=np.float64)
    lowest = np.full(len(p), -np.inf)
    before = p[:, :positive].max(axis=1) if positive > 0 else lowest
    after = p[:, positive + 1 :].max(axis=1) if positive + 1 < p.shape[1] else lowest
    return np.maximum(np.nextafter(before, np.inf), after)


def _probabilities(bundle: EcgBundle, signals: list[np.ndarray]) -> np.ndarray:
    """Class probabilities of the saved bundle (ONNX or LightGBM text), as at prediction."""
    return np.asarray(bundle.predict_signals(signals), dtype=np.float64)


# ------------------------------------------------------------------------------ config and data


def resolve_data_folder(spec: str | Path | None, config_source: str) -> Path:
    """The original records folder (WFDB records and ``REFERENCE.csv``)."""
    folder = locate_original(spec, config_source, what="ECG records folder", exists=Path.is_dir)
    return check_rhythm_folder(folder)


def _check_like_champion(config: EcgTrainConfig, bundle: EcgBundle) -> None:
    check_ecg_model(config.model.name)
    recorded = bundle.metadata.get("model", {}).get("name")
    if config.model.name != recorded or config.data.fs != bundle.fs:
        raise ConfigError(
            f"the config trains {config.model.name} at {config.data.fs:g} Hz but the champion is "
            f"{recorded} at {bundle.fs:g} Hz; is this the champion's config?"
        )


def concat_sets(sets: Sequence[EcgSet], class_names: list[str], fs: float) -> EcgSet:
    """One set of ``sets`` in order (all at ``fs`` Hz, labels indexing ``class_names``)."""
    parts = [s for s in sets if len(s)]
    if not parts:
        raise DataError("no records to train on.")
    return EcgSet(
        [signal for s in parts for signal in s.signals],
        np.concatenate([s.labels for s in parts]),
        [name for s in parts for name in s.names],
        float(fs),
        list(class_names),
    )


# ------------------------------------------------------------------------------ feedback


def feedback_records(
    cases: Sequence[FeedbackCase], bundle: EcgBundle, *, require_deidentified: bool = False
) -> tuple[EcgSet, list[FeedbackCase], list[UnusableCase]]:
    """The usable cases' signals (the bundle's lead at its rate, as at prediction) and labels,
    those cases, and the unusable ones with the reason."""
    classes = bundle.class_names
    signals: list[np.ndarray] = []
    labels: list[int] = []
    used: list[FeedbackCase] = []
    unusable: list[UnusableCase] = []
    for case in cases:
        try:
            label = class_of(case.label, classes)
            record = decode_input(
                case.raw_input, case.input_type, require_deidentified=require_deidentified
            )
            signal = bundle.signal_of(record)
        except MedsightError as exc:  # DataError, or ConfigError for a missing lead or rate
            unusable.append(UnusableCase(case.prediction_id, case.feedback_id, str(exc)))
            continue
        signals.append(signal)
        labels.append(classes.index(label))
        used.append(replace(case, label=label))
    names = [f"feedback on prediction {c.prediction_id}" for c in used]
    data = EcgSet(signals, np.array(labels, np.int64), names, bundle.fs, classes)
    return data, used, unusable


def decode_input(data: bytes, input_type: str, *, require_deidentified: bool = False) -> EcgRecord:
    """A stored ECG prediction input as the record the service predicted on.

    Uses the service's decoders (:mod:`medsight.serve.inputs`) on what
    :mod:`medsight.serve.routes_predict` stores: the JSON samples body, one uploaded file, or a
    ZIP of several (a WFDB ``.hea`` and its data file).
    """
    from pydantic import ValidationError

    from medsight.serve.inputs import (
        ECG_SAMPLES_INPUT,
        FILE_INPUT,
        ZIP_INPUT,
        Upload,
        ecg_from_files,
        ecg_from_samples,
        stored_rate,
    )
    from medsight.serve.schemas import EcgSamplesRequest

    if input_type == ECG_SAMPLES_INPUT:
        try:
            request = EcgSamplesRequest.model_validate_json(data)
        except ValidationError as exc:
            raise DataError(
                f"the stored JSON samples are not a valid request ({exc.error_count()} errors)."
            ) from None
        return ecg_from_samples(request.samples, request.fs, request.lead_names)
    if input_type == ZIP_INPUT:
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                files = [Upload(name, archive.read(name)) for name in archive.namelist()]
        except (zipfile.BadZipFile, OSError) as exc:  # zlib errors surface as OSError too
            raise DataError(f"the stored ZIP of uploaded files is damaged ({exc}).") from None
        return ecg_from_files(files, None, require_deidentified=require_deidentified)
    if input_type == FILE_INPUT or input_type.startswith(f"{FILE_INPUT};"):
        rate = stored_rate(input_type)
        if rate is None and not (len(data) >= 132 and data[128:132] == b"DICM"):
            raise DataError(
                "a CSV or NumPy upload stored without its sampling rate (the fs form field) "
                "cannot be read again as it was at prediction."
            )
        return ecg_from_files([Upload("", data)], rate, require_deidentified=require_deidentified)
    raise DataError(f"input type {input_type!r} is not an ECG input the service stores.")


def signal_key(signal: np.ndarray) -> str:
    """A digest of a ``(leads, samples)`` signal at the model's rate, to 1 microvolt: equal for a
    record read from the data set and the same record uploaded to the service."""
    microvolts = np.round(np.asarray(signal, dtype=np.float32) * 1000.0).astype(np.int64)
    return hashlib.sha256(repr(microvolts.shape).encode() + microvolts.tobytes()).hexdigest()


def _signal_keys(data: EcgSet) -> list[str]:
    return [signal_key(signal) for signal in data.signals]


# ------------------------------------------------------------------------------ reporting


def _model_card(metadata: dict[str, Any], challenge: Challenge, positive: str) -> str:
    return challenger_model_card(
        metadata,
        challenge,
        "records",
        [
            f"Metrics in bundle.json are from that held-out comparison, class {positive!r} "
            "against the rest; `rhythm_metrics` holds the challenger's multi-class figures on "
            "the same records.",
            "",
            "Decision support for single-lead ECG rhythm review: a second reader, never a "
            "replacement. Not validated for clinical use.",
        ],
    )
