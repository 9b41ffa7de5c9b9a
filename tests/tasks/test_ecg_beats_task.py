"""AAMI beat classification: inter-patient split, EC57 figures, bundle, bad input, MIT-BIH 100."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from beat_synth import DS_RECORDS, synth_record, write_ds_folder, write_record
from medsight.bundle.ecg_beats import BeatBundle
from medsight.errors import BundleError, ConfigError, DataError
from medsight.io.ecg import read_wfdb
from medsight.models.ecg_beats import BeatBoostingClassifier
from medsight.models.registry import create_model, get_model_entry
from medsight.signal.beat_features import FEATURE_NAMES
from medsight.tasks.ecg_beats import (
    BeatTrainResult,
    load_beat_folder,
    record_beats,
    save_beat_bundle,
    train_beat_model,
)
from shared_helpers import shared_file

# Held-out floors on the synthetic DS2 records (measured: N Se 0.997 / PPV 1.0, S 1.0 / 0.94,
# V 1.0 / 1.0 on 314 N, 15 S, 35 V beats). Other draws of the generator gave S Se 0.46 and S PPV
# 0.55, so the S floors are not free; a classifier that ignores RR or morphology fails them.
FLOORS = {"N": (0.97, 0.97), "S": (0.8, 0.75), "V": (0.9, 0.9)}


@pytest.fixture(scope="module")
def ds_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_ds_folder(tmp_path_factory.mktemp("ds"))


@pytest.fixture(scope="module")
def trained(ds_folder: Path) -> BeatTrainResult:
    return train_beat_model(ds_folder)


@pytest.fixture(scope="module")
def bundle_path(trained: BeatTrainResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundles") / "beats"
    save_beat_bundle(trained, path)
    return path


def one_class_record(folder: Path, name: str) -> None:
    write_record(folder, name, synth_record(9, seconds=40, p_v=0.0, p_s=0.0))


# ------------------------------------------------------------------------------------ split


def test_ds_split_trains_on_ds1_and_tests_on_ds2(ds_folder: Path, trained: BeatTrainResult) -> None:
    assert trained.split == "ds"
    assert trained.train_records == ["101", "106"] and trained.test_records == ["100", "103"]
    data = load_beat_folder(ds_folder)
    ds1 = data.subset(np.isin(data.records, ["101", "106"]))
    assert trained.train_counts == ds1.class_counts()
    assert set(trained.test_predictions["record"]) == {"100", "103"}
    assert len(trained.test_predictions) == sum(trained.test_counts.values())
    assert int(trained.table.loc["gross", "support"]) == len(trained.test_predictions)
    assert trained.lead == "MLII" and trained.fs == 360.0


def test_test_records_do_not_touch_the_model(
    ds_folder: Path, trained: BeatTrainResult, tmp_path: Path
) -> None:
    """Other DS2 recordings, same DS1 recordings: the very same booster."""
    for item in ds_folder.iterdir():
        if item.stem in ("101", "106"):
            shutil.copy(item, tmp_path / item.name)
    write_record(tmp_path, "100", synth_record(21, v_sign=-1.0))
    write_record(tmp_path, "113", synth_record(22, p_s=0.2))
    other = train_beat_model(tmp_path)
    assert other.test_records == ["100", "113"]
    assert other.model.booster.model_to_string() == trained.model.booster.model_to_string()
    assert other.test_counts != trained.test_counts


def test_held_out_sensitivity_and_ppv_above_floors(trained: BeatTrainResult) -> None:
    table = trained.table
    assert trained.test_counts["S"] >= 10 and trained.test_counts["V"] >= 20
    for name, (se, ppv) in FLOORS.items():
        row = table.loc[name]
        assert row["sensitivity"] >= se and row["ppv"] >= ppv, (name, row.to_dict())
    assert table.loc[["F", "Q"], "support"].sum() == 0
    assert table.loc["gross", "sensitivity"] >= 0.97
    confusion = trained.confusion
    assert int(np.trace(confusion.to_numpy())) == round(table.loc["gross", "tp"])


def test_records_split_keeps_each_record_on_one_side(ds_folder: Path) -> None:
    result = train_beat_model(ds_folder, split="records", seed=3)
    assert result.split == "records"
    assert set(result.train_records).isdisjoint(result.test_records)
    assert sorted(result.train_records + result.test_records) == sorted(DS_RECORDS)
    assert len(result.test_records) == 1  # test_fraction 0.25 of 4 records
    again = train_beat_model(ds_folder, split="records", seed=3)
    assert again.test_records == result.test_records


# ------------------------------------------------------------------------------------ model


def test_model_maps_all_five_aami_classes() -> None:
    """Labels in AAMI order (N, S, V, F, Q: not alphabetical) train and predict as themselves."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.array(["Q", "F", "V", "S", "N"]), [30, 30, 30, 30, 60])
    centres = {"N": 0.0, "S": 3.0, "V": 6.0, "F": 9.0, "Q": 12.0}
    x = rng.normal(size=(labels.size, len(FEATURE_NAMES)))
    x[:, 0] += [centres[c] for c in labels]
    model = create_model("ecg_beat_lightgbm", num_iterations=30, min_data_in_leaf=5)
    model.fit(x, labels, FEATURE_NAMES)
    assert model.classes == ["N", "S", "V", "F", "Q"]
    assert np.mean(model.predict(x) == labels) > 0.95
    assert model.predict_proba(x).shape == (labels.size, 5)
    assert next(iter(model.feature_importance())) == FEATURE_NAMES[0]
    weights = model.class_weights(np.array([0, 0, 0, 0, 1, 2]))
    np.testing.assert_allclose(weights, [1, 1, 1, 1, 4, 4])
    assert get_model_entry("ecg_beat_lightgbm").family == "beat-features"


def test_model_refuses_bad_labels() -> None:
    x = np.zeros((40, len(FEATURE_NAMES)))
    with pytest.raises(DataError, match="at least two AAMI classes"):
        BeatBoostingClassifier().fit(x, ["N"] * 40, FEATURE_NAMES)
    with pytest.raises(DataError, match="not AAMI classes"):
        BeatBoostingClassifier().fit(x, ["N"] * 39 + ["A"], FEATURE_NAMES)
    with pytest.raises(DataError, match="39 beat labels"):
        BeatBoostingClassifier().fit(x, ["N", "V"] * 19 + ["N"], FEATURE_NAMES)


# ------------------------------------------------------------------------------------ bundle


def test_bundle_round_trip_predicts_the_same(
    trained: BeatTrainResult, bundle_path: Path, ds_folder: Path
) -> None:
    bundle = BeatBundle.load(bundle_path)
    assert bundle.classes == ["N", "S", "V"] and bundle.feature_names == list(FEATURE_NAMES)
    assert bundle.fs == 360.0 and bundle.metadata["lead"] == "MLII"
    data = load_beat_folder(ds_folder)
    test = data.subset(np.isin(data.records, trained.test_records))
    loaded = bundle.predict_rows(test.rows)
    np.testing.assert_allclose(loaded, trained.model.predict_proba(test.rows), rtol=0, atol=1e-12)

    record = read_wfdb(ds_folder / "103.hea")
    classified = bundle.classify_record(record)
    expected = trained.test_predictions.query("record == '103'")
    np.testing.assert_array_equal(classified.rpeaks, expected["sample"].to_numpy())
    np.testing.assert_array_equal(classified.labels, expected["predicted"].to_numpy())
    assert classified.counts()["V"] == int((expected["predicted"] == "V").sum())


def test_bundle_metadata_and_model_card(trained: BeatTrainResult, bundle_path: Path) -> None:
    metadata = json.loads((bundle_path / "bundle.json").read_text())
    assert metadata["task"] == "ecg-beats" and metadata["split"] == "ds"
    assert metadata["train_records"] == ["101", "106"]
    assert metadata["test_records"] == ["100", "103"]
    assert metadata["metrics"]["V"]["sensitivity"] == pytest.approx(
        trained.table.loc["V", "sensitivity"], abs=1e-6
    )
    assert metadata["metrics"]["F"]["sensitivity"] is None  # no F beats: undefined, not 0
    assert metadata["confusion"]["V"]["V"] == int(trained.confusion.loc["V", "V"])
    card = (bundle_path / "model_card.md").read_text()
    assert card.startswith("# Beat classifier (ecg_beat_lightgbm)")
    assert "DS1 train, DS2 test" in card and "test records: 100, 103" in card
    n_row = next(line for line in card.splitlines() if line.startswith("| N |"))
    assert f"{trained.table.loc['N', 'sensitivity']:.3f}" in n_row


def test_bundle_refuses_overwrite_tampering_and_other_features(
    trained: BeatTrainResult, bundle_path: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="already exists"):
        save_beat_bundle(trained, bundle_path)
    tampered = tmp_path / "tampered"
    shutil.copytree(bundle_path, tampered)
    with (tampered / "model.txt").open("a") as handle:
        handle.write("\n")
    with pytest.raises(BundleError, match="checksum"):
        BeatBundle.load(tampered)
    older = tmp_path / "older"
    shutil.copytree(bundle_path, older)
    metadata = json.loads((older / "bundle.json").read_text())
    metadata["features_version"] = 1
    (older / "bundle.json").write_text(json.dumps(metadata))
    with pytest.raises(BundleError, match="other beat features"):
        BeatBundle.load(older)


# ------------------------------------------------------------------------------------ errors


def test_bad_folders_and_options(ds_folder: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a folder"):
        train_beat_model(tmp_path / "absent")
    unannotated = tmp_path / "unannotated"
    unannotated.mkdir()
    for item in ds_folder.glob("10[01].*"):
        if item.suffix != ".atr":
            shutil.copy(item, unannotated / item.name)
    with pytest.raises(DataError, match=r"no WFDB records with reference beat annotations"):
        train_beat_model(unannotated)
    with pytest.raises(DataError, match=r"no lead 'V5'; available leads: MLII"):
        train_beat_model(ds_folder, lead="V5")
    with pytest.raises(ConfigError, match="unknown split 'kfold'"):
        train_beat_model(tmp_path / "absent", split="kfold")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a beat classifier"):
        train_beat_model(ds_folder, model="logistic")


def test_ds_split_needs_both_lists_and_mitbih_names(ds_folder: Path, tmp_path: Path) -> None:
    only_ds1 = tmp_path / "ds1"
    only_ds1.mkdir()
    for item in ds_folder.glob("10[16].*"):
        shutil.copy(item, only_ds1 / item.name)
    with pytest.raises(DataError, match=r"DS2: none.*--split records"):
        train_beat_model(only_ds1)
    renamed = tmp_path / "renamed"
    write_record(renamed, "patient7", synth_record(1, seconds=30))
    write_record(renamed, "100", synth_record(3, seconds=30))
    with pytest.raises(DataError, match=r"\['patient7'\] are not MIT-BIH"):
        train_beat_model(renamed)
    single = tmp_path / "single"
    write_record(single, "101", synth_record(1, seconds=30))
    with pytest.raises(DataError, match="at least two records"):
        train_beat_model(single, split="records")


def test_training_beats_of_one_class_are_refused(tmp_path: Path) -> None:
    one_class_record(tmp_path, "101")
    write_record(tmp_path, "100", synth_record(3, seconds=40))
    with pytest.raises(DataError, match=r"all of class \['N'\].*at least two AAMI classes"):
        train_beat_model(tmp_path)


def test_annotations_without_beats_are_refused(tmp_path: Path) -> None:
    import wfdb

    write_record(tmp_path, "100", synth_record(3, seconds=20))
    (tmp_path / "100.atr").unlink()
    wfdb.wrann("100", "atr", np.array([5, 900]), symbol=["+", "~"], write_dir=str(tmp_path))
    with pytest.raises(DataError, match="marks no beats"):
        record_beats(tmp_path / "100.hea")


# ------------------------------------------------------------------------------------ MIT-BIH


@pytest.mark.shared_data
def test_mitbih_100_beats_load_with_their_aami_classes() -> None:
    name, rows, labels, peaks, fs, lead = record_beats(shared_file("mitbih", "100.hea"))
    assert (name, fs, lead) == ("100", 360.0, "MLII")
    classes, counts = np.unique(labels, return_counts=True)
    # 2239 N, 33 A (S), 1 V annotated; the first (sample 18) and last beats' windows do not fit
    assert dict(zip(classes.tolist(), counts.tolist(), strict=True)) == {"N": 2237, "S": 33, "V": 1}
    assert rows.shape == (2271, len(FEATURE_NAMES)) and np.all(np.diff(peaks) > 0)
    assert np.isfinite(rows[1:-1]).all()


@pytest.mark.shared_data
def test_synthetic_ds1_model_on_mitbih_100_keeps_normal_beats_normal(bundle_path: Path) -> None:
    """A domain-shift check, not a performance figure: trained on two synthetic patients, the
    classifier must still call record 100's normal beats normal. (Its S and V figures on one
    record with 33 S and 1 V beats say nothing; they are reported, not asserted.)"""
    from medsight.evaluate.ec57 import beat_class_table

    record = read_wfdb(shared_file("mitbih", "100.hea"))
    _, _, labels, _, _, _ = record_beats(shared_file("mitbih", "100.hea"))
    predicted = BeatBundle.load(bundle_path).classify_record(record)
    assert predicted.labels.size == labels.size
    table = beat_class_table(labels, predicted.labels)
    assert table.loc["N", "sensitivity"] >= 0.97 and table.loc["N", "ppv"] >= 0.97
    assert np.mean(predicted.labels == "N") >= 0.95
