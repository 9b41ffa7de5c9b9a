"""AAMI beat classification: read MIT-BIH style records, split by patient, train, score, bundle.

A folder holds WFDB records (``x.hea`` + data) with reference beat annotations ``x.atr``. Beats
are the annotations whose symbol maps to an AAMI class (:func:`medsight.signal.beats.beat_labels`;
rhythm, noise and artefact annotations are skipped) and sit at the annotated R peaks, so the
figures measure beat *classification*, not detection, as in de Chazal et al. 2004.

Splits keep each record (patient) on one side:

* ``"ds"``: the de Chazal inter-patient split, DS1 records train and DS2 records test (paced
  records are left out). The honest MIT-BIH figure needs the whole database;
* ``"records"``: for other databases, records are divided by ``StratifiedGroupKFold`` (grouped by
  record, class proportions kept as far as records allow, fixed seed); about ``test_fraction``
  of the records are tested.

The test beats are scored once with :func:`medsight.evaluate.ec57.beat_class_table` (Se, PPV,
F1 per AAMI class, macro and gross rows).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from medsight.errors import ConfigError, DataError

Split = Literal["ds", "records"]
SPLITS: tuple[str, ...] = ("ds", "records")
DEFAULT_MODEL = "ecg_beat_lightgbm"
PREFERRED_LEAD = "MLII"


@dataclass
class BeatSet:
    """Feature rows of the beats of several records, with their labels and record names."""

    rows: np.ndarray
    labels: np.ndarray
    records: np.ndarray
    rpeaks: np.ndarray
    fs: dict[str, float]
    leads: dict[str, str]

    def __len__(self) -> int:
        return int(self.labels.size)

    def subset(self, mask: np.ndarray) -> BeatSet:
        names = set(self.records[mask])
        return BeatSet(
            self.rows[mask],
            self.labels[mask],
            self.records[mask],
            self.rpeaks[mask],
            {k: v for k, v in self.fs.items() if k in names},
            {k: v for k, v in self.leads.items() if k in names},
        )

    def record_names(self) -> list[str]:
        return list(dict.fromkeys(self.records.tolist()))

    def class_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.labels.tolist()).items()))


@dataclass
class BeatTrainResult:
    """A trained beat model with its held-out test table and what it was trained on."""

    model: Any
    model_name: str
    table: pd.DataFrame  # ec57.beat_class_table on the test beats
    confusion: pd.DataFrame
    split: str
    train_records: list[str]
    test_records: list[str]
    train_counts: dict[str, int]
    test_counts: dict[str, int]
    fs: float
    lead: str
    seconds: float
    test_predictions: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)


# ------------------------------------------------------------------------------------ data


def annotated_records(folder: str | Path) -> list[Path]:
    """Headers of the records in ``folder`` that have a ``.atr`` annotation file, by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of WFDB records.")
    headers = sorted(p for p in folder.glob("*.hea") if p.with_suffix(".atr").is_file())
    if not headers:
        raise DataError(
            f"{folder}: no WFDB records with reference beat annotations (x.hea with x.atr)."
        )
    return headers


def record_beats(
    header: Path, lead: str | int | None = None
) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, float, str]:
    """One record's ``(name, feature rows, labels, R peaks, fs, lead name)``.

    ``lead`` defaults to MLII when the record has it, else the first lead.
    """
    from medsight.io.ecg import read_wfdb
    from medsight.signal.beat_features import beat_features
    from medsight.signal.beats import beat_labels

    record = read_wfdb(header, annotation_extension="atr")
    chosen: str | int = lead if lead is not None else 0
    if lead is None and PREFERRED_LEAD in record.lead_names:
        chosen = PREFERRED_LEAD
    x = record.lead(chosen)
    name = record.name or header.stem
    labels, mask = beat_labels(record.annotations.symbol if record.annotations else [])
    if labels.size == 0:
        raise DataError(f"{header}: the annotation file marks no beats.")
    peaks = record.annotations.sample[mask]  # type: ignore[union-attr]
    order = np.argsort(peaks, kind="stable")
    peaks, labels = peaks[order], labels[order]
    features = beat_features(x, record.fs, peaks)
    lead_name = record.select([chosen]).lead_names[0]
    return (
        name,
        features.rows,
        labels[features.kept],
        peaks[features.kept],
        record.fs,
        lead_name,
    )


def load_beat_folder(folder: str | Path, lead: str | int | None = None) -> BeatSet:
    """Beat feature rows and AAMI labels of every annotated record in ``folder``."""
    parts = [record_beats(header, lead) for header in annotated_records(folder)]
    return BeatSet(
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        np.concatenate([np.full(p[2].size, p[0]) for p in parts]),
        np.concatenate([p[3] for p in parts]),
        {p[0]: p[4] for p in parts},
        {p[0]: p[5] for p in parts},
    )


# ------------------------------------------------------------------------------------ split


def split_records(
    data: BeatSet, split: Split = "ds", *, seed: int = 0, test_fraction: float = 0.25
) -> tuple[list[str], list[str]]:
    """Train and test record names; DataError when either side would be empty."""
    check_split(split)
    names = data.record_names()
    if split == "ds":
        from medsight.signal.beats import DS1, DS2, PACED_RECORDS, inter_patient_split

        train, test = inter_patient_split(names)
        if not train or not test:
            found = {
                "DS1": [n for n in names if n in DS1],
                "DS2": [n for n in names if n in DS2],
                "paced (left out)": [n for n in names if n in PACED_RECORDS],
            }
            listed = "; ".join(f"{k}: {v or 'none'}" for k, v in found.items())
            raise DataError(
                "the inter-patient split (de Chazal DS1 trains, DS2 tests) needs records of both "
                f"lists; the folder has {listed}. Add the other list's records, or use "
                "split='records' (--split records) for a database other than MIT-BIH."
            )
        return train, test
    return _stratified_record_split(data, names, seed, test_fraction)


def check_split(split: str) -> None:
    """ConfigError unless ``split`` is ``"ds"`` or ``"records"``."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose 'ds' (MIT-BIH DS1/DS2) or 'records'.")


def _stratified_record_split(
    data: BeatSet, names: list[str], seed: int, test_fraction: float
) -> tuple[list[str], list[str]]:
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1); got {test_fraction!r}.")
    if len(names) < 2:
        raise DataError(
            f"a split by records needs at least two records; the folder has {names} "
            "(one record cannot be both trained and tested on without leaking the patient)."
        )
    folds = min(len(names), max(2, round(1 / test_fraction)))
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    _, test_index = next(splitter.split(data.rows, data.labels, groups=data.records))
    test_names = set(data.records[test_index].tolist())
    return [n for n in names if n not in test_names], [n for n in names if n in test_names]


# ------------------------------------------------------------------------------------ train


def train_beat_model(
    folder: str | Path,
    *,
    split: Split = "ds",
    model: str = DEFAULT_MODEL,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    lead: str | int | None = None,
    test_fraction: float = 0.25,
) -> BeatTrainResult:
    """Read ``folder``, split by patient, train ``model`` on train, score the test beats once."""
    from medsight.evaluate.ec57 import beat_class_table, beat_confusion
    from medsight.models.registry import create_model, get_model_entry
    from medsight.signal.beat_features import FEATURE_NAMES

    if get_model_entry(model).family != "beat-features":
        raise ConfigError(f"model {model!r} is not a beat classifier (family 'beat-features').")
    check_split(split)  # before reading a whole database
    start = time.perf_counter()
    data = load_beat_folder(folder, lead)
    train_names, test_names = split_records(data, split, seed=seed, test_fraction=test_fraction)
    train = data.subset(np.isin(data.records, train_names))
    test = data.subset(np.isin(data.records, test_names))
    classifier = create_model(model, seed=seed, **(params or {}))
    classifier.fit(train.rows, train.labels, FEATURE_NAMES)
    probabilities = classifier.predict_proba(test.rows)
    predicted = np.array(classifier.classes)[probabilities.argmax(axis=1)]
    predictions = pd.DataFrame(
        {"record": test.records, "sample": test.rpeaks, "label": test.labels,
         "predicted": predicted}
    )  # fmt: skip
    for j, name in enumerate(classifier.classes):
        predictions[f"p_{name}"] = probabilities[:, j]
    rates = Counter(data.fs.values())
    leads = Counter(data.leads.values())
    return BeatTrainResult(
        model=classifier,
        model_name=model,
        table=beat_class_table(test.labels, predicted),
        confusion=beat_confusion(test.labels, predicted),
        split=split,
        train_records=train_names,
        test_records=test_names,
        train_counts=train.class_counts(),
        test_counts=test.class_counts(),
        fs=float(rates.most_common(1)[0][0]),
        lead=str(leads.most_common(1)[0][0]),
        seconds=time.perf_counter() - start,
        test_predictions=predictions,
    )


# ------------------------------------------------------------------------------------ bundle


def table_metrics(table: pd.DataFrame) -> dict[str, dict[str, float | None]]:
    """The EC57 table as JSON-ready ``{row: {column: value}}`` (NaN as None)."""
    return {
        str(row): {
            col: (None if not math.isfinite(float(v)) else round(float(v), 6))
            for col, v in values.items()
        }
        for row, values in table.to_dict(orient="index").items()
    }


def save_beat_bundle(result: BeatTrainResult, output: str | Path, name: str = "") -> Any:
    """Write the model, its metadata, the test figures and a model card as a bundle folder."""
    from medsight.bundle.ecg_beats import BeatBundle
    from medsight.signal import beat_features as bf

    metadata = {
        "name": name or Path(output).name,
        "model": {"name": result.model_name, "params": result.model.params},
        "fs": result.fs,
        "lead": result.lead,
        "window": {"before_s": bf.BEFORE_S, "after_s": bf.AFTER_S, "align_s": bf.ALIGN_S},
        "template": {"block": bf.TEMPLATE_BLOCK, "history": bf.TEMPLATE_HISTORY},
        "rr": {"local_beats": bf.LOCAL_BEATS, "mean_beats": bf.MEAN_BEATS},
        "split": result.split,
        "train_records": result.train_records,
        "test_records": result.test_records,
        "train_counts": result.train_counts,
        "test_counts": result.test_counts,
        "metrics": table_metrics(result.table),
        "confusion": {
            str(r): {str(c): int(v) for c, v in row.items()}
            for r, row in result.confusion.to_dict(orient="index").items()
        },
    }
    return BeatBundle.save(result.model, output, metadata, model_card=model_card(result))


def model_card(result: BeatTrainResult) -> str:
    """A short Markdown model card: data, split, held-out figures, limits."""
    rows = ["| class | support | Se | PPV | F1 |", "|---|---:|---:|---:|---:|"]
    for label, r in result.table.iterrows():
        cells = [_fmt(r[c]) for c in ("sensitivity", "ppv", "f1")]
        rows.append(f"| {label} | {int(r['support'])} | " + " | ".join(cells) + " |")
    split = (
        "de Chazal inter-patient split (DS1 train, DS2 test)"
        if result.split == "ds"
        else "records split by patient (stratified group folds)"
    )
    return "\n".join(
        [
            f"# Beat classifier ({result.model_name})",
            "",
            "AAMI beat classes (N, S, V, F, Q) from RR-interval and beat-morphology features, "
            f"lead {result.lead}, {result.fs:g} Hz.",
            "",
            f"- Split: {split}. Train records: {', '.join(result.train_records)}; test records: "
            f"{', '.join(result.test_records)}.",
            f"- Train beats: {result.train_counts}; test beats: {result.test_counts}.",
            "- Beats are placed at the reference annotations: the figures measure "
            "classification, not detection.",
            "",
            "## Held-out test beats (ANSI/AAMI EC57-style, plain confusion-matrix statistics)",
            "",
            *rows,
            "",
            "## Limits",
            "",
            "Decision support only. Figures from few records do not say how the model does on "
            "other patients; only the full MIT-BIH DS2 (or another database's held-out "
            "patients) gives a comparable figure. Paced rhythms are out of scope.",
            "",
        ]
    )


def _fmt(value: float) -> str:
    return "-" if not math.isfinite(float(value)) else f"{float(value):.3f}"
