"""Retraining an ECG rhythm task: synthetic records whose rhythm the labels decide, tiny models.

Records are 12 s of single-lead ECG at 150 Hz built from Gaussian P-QRS-T waves: ``N`` regular at
70 bpm with P waves, ``O`` regular at about 110 bpm, ``~`` buried in noise, and atrial
fibrillation (label ``A``) with irregular RR intervals and no P waves, either slow (about 75 bpm)
or fast (about 110 bpm, the rate of ``O``). HRV features tell them apart at once, so LightGBM
learns them from a few dozen records; a model trained where fast AF was read as ``O`` misses it,
and one trained on swapped ``A``/``N`` labels ranks AF upside down. Feedback reaches the store as
the service stores it (a WFDB pair zipped by ``bundle_of``, or the JSON samples body).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from retrain_support import user
from rich.console import Console
from sqlalchemy import select

from medsight.bundle.ecg import EcgBundle
from medsight.cli.retrain import print_outcome
from medsight.config import dump_config, parse_config
from medsight.errors import ConfigError
from medsight.io.ecg import EcgRecord
from medsight.registry import ModelRegistry
from medsight.retrain import RetrainOptions, decide, retrain, retrainer_for
from medsight.retrain.ecg import (
    EcgRetrainer,
    argmax_threshold,
    decode_input,
    positive_class,
    signal_key,
)
from medsight.serve.inputs import Upload, bundle_of, ecg_from_files, ecg_from_samples
from medsight.store.database import Database
from medsight.store.models import AuditEvent, User
from medsight.store.records import add_feedback, record_prediction
from medsight.tasks.ecg_data import EcgSet, EcgSplits, load_rhythm_folder, read_record_signal
from medsight.tasks.ecg_report import save_rhythm_bundle
from medsight.tasks.ecg_rhythm import train_rhythm_model
from medsight.tasks.ecg_run import split_records
from shared_helpers import write_wfdb

TASK = "rhythm"
FS = 150
SECONDS = 12.0
# kind -> (mean RR in s, irregular, P waves, noise in mV); "F" is fast atrial fibrillation
KINDS = {
    "N": (0.85, False, True, 0.02),
    "A": (0.80, True, False, 0.02),
    "F": (0.55, True, False, 0.02),
    "O": (0.55, False, True, 0.02),
    "~": (0.85, False, True, 0.6),
}
COUNTS = {"N": 24, "A": 12, "F": 12, "O": 12, "~": 8}
P_WAVE = (0.12, -0.18, 0.022)  # amplitude mV, centre s, sigma s
QRS_T = [(-0.08, -0.028, 0.008), (1.0, 0.0, 0.010), (-0.22, 0.03, 0.010), (0.28, 0.25, 0.045)]
SAMPLES_INPUT = "application/json; ecg samples"  # what serve.routes_predict stores for JSON


def _signal(kind: str, seed: int) -> np.ndarray:
    rr, irregular, p_wave, noise = KINDS[kind]
    rng = np.random.default_rng(seed)
    t = np.arange(round(SECONDS * FS)) / FS
    beats, now = [], 0.4
    while now < SECONDS - 0.4:
        beats.append(now)
        now += rr * (rng.uniform(0.55, 1.45) if irregular else 1 + 0.02 * rng.normal())
    waves = [P_WAVE, *QRS_T] if p_wave else QRS_T
    x = np.zeros(t.size)
    for beat in beats:
        for amplitude, centre, sigma in waves:
            x += amplitude * np.exp(-0.5 * ((t - beat - centre) / sigma) ** 2)
    wander = 0.05 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6))
    return x + wander + noise * rng.normal(size=t.size)


def _write_records(
    folder: Path, counts: dict[str, int], *, seed: int, fast_af_label: str = "A"
) -> Path:
    """WFDB records and a REFERENCE.csv; fast AF is labelled ``fast_af_label``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["record,label"]
    for kind, n in counts.items():
        k = list(KINDS).index(kind)
        for i in range(n):
            name = f"{'NAFOX'[k]}{seed}_{i:02d}"  # the kind's letter first (X for noise)
            write_wfdb(folder, name, _signal(kind, seed * 1000 + k * 100 + i), fs=FS)
            label = {"F": fast_af_label}.get(kind, kind)
            rows.append(f"{name},{label}")
    (folder / "REFERENCE.csv").write_text("\n".join(rows) + "\n")
    return folder


def _train_run(folder: Path, data: Path, model: str = "ecg_hrv_lightgbm") -> tuple[Path, EcgSplits]:
    """The champion as `medsight train` makes it (bundle and config.yaml in a run folder; the
    slow report and explanations left out), and the run's splits."""
    params = {"width": 4} if model == "ecg_resnet1d" else {"n_estimators": 300}
    config = parse_config(
        {
            "task": "ecg-rhythm",
            "name": f"rhythm-{model}",
            "output_dir": str(folder),
            "data": {
                "path": str(data),
                "fs": FS,
                "crop_seconds": 8,
                "hop_seconds": 4,
                "val_fraction": 0.25,
                "test_fraction": 0.25,
            },
            "model": {"name": model, "params": params},
            "engine": {"epochs": 2, "batch_size": 16, "patience": None},
            "evaluation": {"n_bootstrap": 100},
        }
    )
    records = load_rhythm_folder(data, fs=FS)
    splits = split_records(records, config, source=str(data))
    trained = train_rhythm_model(config, splits, progress=False)
    run = folder / "run"
    save_rhythm_bundle(config, splits, trained, run / "bundle")
    (run / "config.yaml").write_text(dump_config(config))
    return run / "bundle", splits


def _promote(db: Database, registry: ModelRegistry, bundle: Path) -> int:
    with db.transaction() as session:
        sci = session.query(User).filter_by(username="sci").one()
        row = registry.register(session, bundle, actor=sci, source="test", task=TASK)
        registry.promote(session, TASK, row.version, actor=sci, source="test")
        return row.version


Upload3 = tuple[EcgRecord | None, bytes, str]  # the record the service read, stored bytes, type


def _wfdb_upload(folder: Path, name: str) -> Upload3:
    """A WFDB pair uploaded as two files: read by the service, stored as its ZIP."""
    files = [
        Upload(f"{name}{ext}", (folder / f"{name}{ext}").read_bytes()) for ext in (".hea", ".dat")
    ]
    data, input_type = bundle_of(files)
    return ecg_from_files(files, None), data, input_type


def _samples_upload(folder: Path, name: str) -> Upload3:
    """The record's values sent as JSON samples (the body is what the service stores)."""
    values = read_record_signal(folder / f"{name}.hea", FS)[0].astype(float).tolist()
    body = json.dumps({"samples": values, "fs": FS}).encode()
    return ecg_from_samples(values, FS), body, SAMPLES_INPUT


def _feedback(
    db: Database,
    registry: ModelRegistry,
    uploads: list[Upload3],
    labels: list[str | None],
    *,
    store_raw: bool = True,
) -> list[int]:
    """Clinician 'doc' asks the production model about each upload, then confirms (label
    ``None``: the model's answer, whatever it is) or gives ``label``."""
    ids = []
    with db.transaction() as session:
        doc = session.query(User).filter_by(username="doc").one()
        version = registry.production(session, TASK)
        bundle = EcgBundle.load(registry.verify(version))
        for (record, data, input_type), label in zip(uploads, labels, strict=True):
            answer = bundle.predict_record(record).label if record is not None else "N"
            prediction = record_prediction(
                session,
                doc,
                task=TASK,
                input_bytes=data,
                label=answer,
                output={"classes": bundle.class_names},
                model_version=version,
                input_type=input_type,
                store_raw=store_raw,
                source="test",
            )
            verdict = "confirmed" if label in (None, answer) else "corrected"
            add_feedback(session, doc, prediction.id, verdict=verdict, label=label, source="t")
            ids.append(prediction.id)
    return ids


def _retrain(db: Database, registry: ModelRegistry, tmp_path: Path, **options: object):
    return retrain(
        db,
        registry,
        TASK,
        actor=user(db, "sci"),
        options=RetrainOptions(n_bootstrap=200, **options),  # type: ignore[arg-type]
        output_dir=tmp_path / "retrain",
    )


def _names(folder: Path, prefix: str = "") -> list[str]:
    """The folder's record names starting with ``prefix`` (the kind's letter)."""
    rows = [line.split(",") for line in (folder / "REFERENCE.csv").read_text().split()[1:]]
    return [name for name, _ in rows if name.startswith(prefix)]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, EcgSplits]:
    """Correctly labelled records and a LightGBM champion trained on them (shared)."""
    root = tmp_path_factory.mktemp("clean")
    data = _write_records(root / "data", COUNTS, seed=1)
    bundle, splits = _train_run(root / "runs", data)
    return data, bundle, splits


# ------------------------------------------------------------------------------ the gate's view


def test_ecg_bundles_have_a_retrainer_and_a_positive_class() -> None:
    assert isinstance(retrainer_for("ecg-rhythm"), EcgRetrainer)
    assert positive_class({"class_names": ["N", "A", "O", "~"]}) == "A"
    assert positive_class({"class_names": ["N", "A", "O"], "positive_class": "O"}) == "O"
    with pytest.raises(ConfigError, match="no positive class"):
        positive_class({"class_names": ["N", "O", "~"]})
    with pytest.raises(ConfigError, match="not one of its classes"):
        positive_class({"class_names": ["N", "A"], "positive_class": "V"})


def test_argmax_thresholds_make_the_gate_judge_what_the_model_decides() -> None:
    p = np.array(
        [
            [0.5, 0.4, 0.1],  # N wins although p(A) is high
            [0.3, 0.35, 0.35],  # A ties with O, listed earlier: A
            [0.4, 0.4, 0.2],  # A ties with N, listed earlier: N
            [0.1, 0.3, 0.6],
            [0.2, 0.7, 0.1],
            [0.9, 0.05, 0.05],
        ]
    )
    threshold = argmax_threshold(p, positive=1)
    np.testing.assert_array_equal(p[:, 1] >= threshold, p.argmax(axis=1) == 1)
    y = np.array([1, 1, 1, 0, 1, 0])
    decision = decide(y, p[:, 1], p[:, 1], champion_threshold=threshold, challenger_threshold=0.38)
    assert decision.sensitivity_champion == pytest.approx(2 / 4)  # rows 1 and 4 predicted A
    assert decision.sensitivity_challenger == pytest.approx(3 / 4)  # p(A) >= 0.38: rows 0, 2, 4
    assert np.isnan(decision.threshold_champion) and decision.threshold_challenger == 0.38


def test_a_record_and_its_uploads_have_the_same_key(tmp_path: Path) -> None:
    write_wfdb(tmp_path, "r1", _signal("A", 5), fs=FS)
    original = read_record_signal(tmp_path / "r1.hea", FS)
    bundle = EcgBundle({"fs": FS, "lead": 0})
    for record, _, _ in (_wfdb_upload(tmp_path, "r1"), _samples_upload(tmp_path, "r1")):
        assert record is not None and signal_key(bundle.signal_of(record)) == signal_key(original)
    assert signal_key(original) != signal_key(original[:, ::-1])


# ------------------------------------------------------------------------------ retraining


def test_corrected_fast_af_labels_make_a_challenger_that_is_promoted(
    tmp_path: Path, db: Database, registry: ModelRegistry
) -> None:
    # the original readers took every fast AF for "other rhythm"
    data = _write_records(tmp_path / "data", COUNTS, seed=2, fast_af_label="O")
    bundle, splits = _train_run(tmp_path / "runs", data)
    champion = _promote(db, registry, bundle)
    holdout = _write_records(
        tmp_path / "holdout", {"N": 10, "A": 8, "F": 8, "O": 6, "~": 4}, seed=3
    )
    # clinicians see those records again, and new fast AF, and give the true label
    new = _write_records(tmp_path / "new", {"F": 8}, seed=4)
    uploads = [_wfdb_upload(data, n) for n in _names(data, prefix="F")]
    uploads += [_wfdb_upload(new, n) for n in _names(new)]
    ids = _feedback(db, registry, uploads, ["A"] * len(uploads))

    outcome = _retrain(db, registry, tmp_path, holdout=holdout)

    decision = outcome.decision
    assert decision.passed, decision.reasons
    # the champion learnt "irregular and fast = other rhythm": it misses half the AF
    assert decision.auroc_champion < 0.9 < 0.97 < decision.auroc_challenger
    assert decision.sensitivity_champion < 0.7 < 0.9 < decision.sensitivity_challenger
    assert outcome.promoted and outcome.challenger_version == champion + 1
    counts = outcome.counts
    assert counts["feedback_used"] == len(ids) == 20 and outcome.unusable == []
    assert counts["feedback_corrected"] >= 16  # the champion called them "O"
    in_train = sum(n.startswith("F") for n in splits.train.names)
    in_val = sum(n.startswith("F") for n in splits.val.names)
    assert counts["original_replaced_by_feedback"] == in_train > 0  # matched by signal via ZIP
    assert counts["validation_excluded_as_feedback"] == in_val > 0
    assert counts["training_rows"] == len(splits.train) - in_train + 20
    assert counts["holdout_rows"] == 36 and counts["holdout_positive"] == 16
    assert outcome.sources["holdout"] == f"every record of {holdout}"
    assert outcome.sources["config"].endswith("config.yaml")

    # the promoted bundle is an ECG bundle carrying its recipe for the next retraining
    with db.transaction() as session:
        folder = registry.verify(registry.production(session, TASK))
    promoted = EcgBundle.load(folder)
    assert promoted.metadata["retrained_from"]["version"] == champion
    assert promoted.metadata["name"] == "rhythm-ecg_hrv_lightgbm-retrained"
    assert promoted.metadata["config"]["data"]["path"] == str(data.resolve())
    assert promoted.metadata["feedback"]["feedback_used"] == 20
    assert promoted.metadata["metrics"]["auroc"]["value"] == pytest.approx(
        decision.auroc_challenger
    )
    assert "challenge_score" in promoted.metadata["rhythm_metrics"]
    assert "retrained from rhythm v1" in promoted.model_card


def test_poisoned_feedback_is_refused_with_the_reason_in_the_report(
    tmp_path: Path, db: Database, registry: ModelRegistry, clean: tuple[Path, Path, EcgSplits]
) -> None:
    data, bundle, splits = clean
    champion = _promote(db, registry, bundle)
    swap = {"A": "N", "N": "A"}
    train = [(n, swap[c]) for n, c in _pairs(splits.train) if c in swap]
    test = [(n, swap[c]) for n, c in _pairs(splits.test) if c in swap]
    new = _write_records(tmp_path / "new", {"N": 10, "A": 10}, seed=6)
    poisoned = [(data, n, label) for n, label in [*train, *test[:3]]]
    poisoned += [(new, n, swap[n[0]]) for n in _names(new)]
    uploads = [_wfdb_upload(folder, n) for folder, n, _ in poisoned]
    _feedback(db, registry, uploads, [label for _, _, label in poisoned])

    outcome = _retrain(db, registry, tmp_path)

    decision = outcome.decision
    assert not decision.passed and not decision.auroc_noninferior
    assert decision.auroc_champion > 0.9 and decision.auroc_challenger < 0.5
    assert not outcome.promoted and outcome.challenger_version == champion + 1
    counts = outcome.counts
    assert counts["feedback_used"] == len(poisoned)
    assert counts["feedback_corrected"] > counts["feedback_confirmed"]  # the champion disagreed
    assert counts["original_replaced_by_feedback"] == len(train)
    assert counts["holdout_excluded_as_feedback"] == 3  # never scored on what it trained on
    assert counts["holdout_rows"] == len(splits.test) - 3
    assert "original test split" in outcome.sources["holdout"]
    document = json.loads(outcome.json_path.read_text())
    assert document["promoted"] is False and document["gate"]["threshold_champion"] is None
    assert any("not shown non-inferior" in r for r in document["gate"]["reasons"])
    html = outcome.report_path.read_text()
    assert "NOT PROMOTED" in html and "not shown non-inferior" in html
    assert "compares class &#39;A&#39;" in html or "compares class 'A'" in html
    assert "Sensitivity challenger (most probable class)" in html and "threshold nan" not in html
    printed = io.StringIO()
    print_outcome(Console(file=printed, width=200), outcome)
    assert "most probable class" in printed.getvalue() and "nan" not in printed.getvalue()
    with db.transaction() as session:
        assert registry.production(session, TASK).version == champion


def test_unusable_ecg_cases_are_listed_not_fatal(
    tmp_path: Path, db: Database, registry: ModelRegistry, clean: tuple[Path, Path, EcgSplits]
) -> None:
    data, bundle, splits = clean
    _promote(db, registry, bundle)
    first = splits.train.names[:4]
    usable = _feedback(db, registry, [_wfdb_upload(data, n) for n in first], [None] * 4)
    not_stored = _feedback(db, registry, [_wfdb_upload(data, first[0])], [None], store_raw=False)
    csv = _feedback(db, registry, [(None, b"0.1\n0.2\n0.3\n" * 600, "file")], [None])
    zipped = _wfdb_upload(data, splits.train.names[5])
    damaged = _feedback(db, registry, [(None, zipped[1][:80], zipped[2])], [None])
    body = json.dumps({"samples": [0.0] * 900, "fs": FS}).encode()
    flat = _feedback(
        db, registry, [(ecg_from_samples([0.0] * 900, FS), body, SAMPLES_INPUT)], [None]
    )

    outcome = _retrain(db, registry, tmp_path)

    reasons = {u.prediction_id: u.reason for u in outcome.unusable}
    assert set(reasons) == {*not_stored, *csv, *damaged, *flat}
    assert "input was not stored" in reasons[not_stored[0]]
    assert "sampling rate" in reasons[csv[0]]
    assert "damaged" in reasons[damaged[0]]
    assert "'unreadable' is not one of the classes" in reasons[flat[0]]  # a confirmed 'unreadable'
    assert outcome.counts["feedback_used"] == len(usable) == 4
    assert outcome.counts["original_replaced_by_feedback"] == 4
    document = json.loads(outcome.json_path.read_text())
    assert {u["prediction_id"] for u in document["feedback"]["unusable"]} == set(reasons)
    with db.transaction() as session:
        (event,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "retrain"))
        assert event.detail["feedback_unusable"] == 4 and event.detail["feedback_used"] == 4


def test_network_challenger_excludes_held_out_feedback_and_its_bundle_predicts(
    tmp_path: Path, db: Database, registry: ModelRegistry, clean: tuple[Path, Path, EcgSplits]
) -> None:
    data, _, _ = clean
    bundle, splits = _train_run(tmp_path / "runs", data, model="ecg_resnet1d")
    champion = _promote(db, registry, bundle)
    # a test record sent as JSON samples, a validation and two training records as WFDB pairs
    uploads = [_samples_upload(data, splits.test.names[0]), _wfdb_upload(data, splits.val.names[0])]
    uploads += [_wfdb_upload(data, n) for n in splits.train.names[:2]]
    _feedback(db, registry, uploads, [_labels(splits.test)[0], None, None, None])

    outcome = _retrain(db, registry, tmp_path)

    counts = outcome.counts
    assert counts["feedback_used"] == 4 and outcome.unusable == []
    assert counts["holdout_excluded_as_feedback"] == 1
    assert counts["holdout_rows"] == len(splits.test) - 1
    assert counts["validation_excluded_as_feedback"] == 1
    assert counts["original_replaced_by_feedback"] == 2
    assert counts["training_rows"] == len(splits.train) + 2  # 2 replaced, 2 new
    saved = EcgBundle.load(outcome.run_dir / "bundle")
    assert saved.is_network and saved.class_names == ["N", "A", "O", "~"]
    assert saved.metadata["retrained_from"] == {
        "task": TASK,
        "version": champion,
        "name": "rhythm-ecg_resnet1d",
    }
    assert saved.metadata["feedback"] == {
        "feedback_used": 4,
        "feedback_confirmed": counts["feedback_confirmed"],
        "feedback_corrected": counts["feedback_corrected"],
    }
    assert saved.metadata["config"]["model"]["name"] == "ecg_resnet1d"
    assert "Training records" in saved.model_card
    # the held-out figures are the saved bundle's own (ONNX) probabilities of "A"
    held = splits.test.signals[1:]  # less the record that is feedback
    np.testing.assert_allclose(
        saved.predict_signals(held)[:, 1], outcome.held_out.challenger_probability, atol=1e-6
    )
    normal = next(n for n, label in _pairs(splits.test)[1:] if label == "N")
    record, _, _ = _wfdb_upload(data, normal)  # what the service would read and answer
    assert record is not None
    answer = saved.predict_record(record)
    assert answer.label in saved.class_names
    assert sum(answer.probabilities.values()) == pytest.approx(1, abs=1e-5)


def _labels(part: EcgSet) -> list[str]:
    return [part.class_names[i] for i in part.labels]


def _pairs(part: EcgSet) -> list[tuple[str, str]]:
    return list(zip(part.names, _labels(part), strict=True))


def test_a_single_csv_upload_is_read_again_with_its_stored_rate() -> None:
    csv = "".join(f"{np.sin(i / 10):.4f}\n" for i in range(1800)).encode()
    data, input_type = bundle_of([Upload("ecg.csv", csv)], 150.0)
    assert input_type == "file; fs=150.0"
    again = decode_input(data, input_type)
    first = ecg_from_files([Upload("ecg.csv", csv)], 150.0)
    assert again.fs == first.fs == 150.0
    np.testing.assert_array_equal(again.signal, first.signal)
