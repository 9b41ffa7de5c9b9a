"""ECG readers: WFDB (.dat/.mat), DICOM waveforms, CSV/NumPy arrays, resampling, CinC 2017 lists."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import wfdb
from pydicom.data import get_testdata_file

from medsight.errors import ConfigError, DataError
from medsight.io.ecg import (
    BeatAnnotations,
    EcgRecord,
    iter_challenge_records,
    read_challenge_reference,
    read_dicom_ecg,
    read_ecg,
    read_ecg_array,
    read_wfdb,
    resample_record,
)
from shared_helpers import shared_file

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture(scope="module")
def record100() -> EcgRecord:
    return read_wfdb(shared_file("mitbih", "100.hea"))


def _copy_record(tmp_path: Path, folder: str, name: str, suffixes: tuple[str, ...]) -> Path:
    for suffix in suffixes:
        shutil.copy(shared_file(folder, name + suffix), tmp_path / (name + suffix))
    return tmp_path / name


def _waveform_ds() -> pydicom.Dataset:
    return pydicom.dcmread(get_testdata_file("waveform_ecg.dcm"))


# ------------------------------------------------------------------------------------ WFDB


def test_mitbih_100_signal_annotations_and_header(record100: EcgRecord) -> None:
    r = record100
    assert r.signal.shape == (650000, 2) and r.signal.dtype == np.float32
    assert (r.n_samples, r.n_leads, r.fs) == (650000, 2, 360.0)
    assert r.duration_seconds == pytest.approx(650000 / 360)
    assert r.lead_names == ["MLII", "V5"] and r.units == ["mV", "mV"] and r.name == "100"
    # (995 - 1024) / 200 and (1011 - 1024) / 200: first samples from the header's checksum line
    np.testing.assert_allclose(r.signal[0], [-0.145, -0.065], atol=1e-6)
    assert "69 M 1085 1629 x1" in r.comments
    ann = r.annotations
    assert ann is not None and len(ann) == 2274
    assert (int(ann.sample[0]), ann.symbol[0], ann.aux_note[0]) == (18, "+", "(N")
    assert (int(ann.sample[1]), ann.symbol[1]) == (77, "N")
    assert len(ann.beats()) == 2273 and "+" not in ann.beats().symbol


@pytest.mark.parametrize("suffix", ["", ".hea", ".dat"])
def test_wfdb_path_with_or_without_extension(suffix: str, record100: EcgRecord) -> None:
    path = str(shared_file("mitbih", "100.hea"))[: -len(".hea")] + suffix
    r = read_wfdb(path, leads=["V5"])
    assert r.source == path and r.lead_names == ["V5"] and r.signal.shape == (650000, 1)
    np.testing.assert_array_equal(r.signal[:, 0], record100.lead("V5"))
    assert r.annotations is not None and len(r.annotations) == 2274


def test_wfdb_lead_selection_and_lookup(record100: EcgRecord) -> None:
    path = shared_file("mitbih", "100.hea")
    assert read_wfdb(path, leads=[1, "mlii"], annotation_extension=None).lead_names == [
        "V5",
        "MLII",
    ]
    assert read_wfdb(path, annotation_extension=None).annotations is None
    lead = record100.lead("MLII")
    assert lead.ndim == 1 and lead.dtype == np.float32
    np.testing.assert_array_equal(lead, record100.signal[:, 0])
    np.testing.assert_array_equal(record100.lead(-1), record100.signal[:, 1])
    with pytest.raises(DataError, match=r"no lead 'aVR'; available leads: MLII, V5"):
        record100.lead("aVR")
    with pytest.raises(DataError, match="available leads: MLII, V5"):
        record100.lead(2)
    with pytest.raises(DataError, match=r"100.hea: no lead 'V1'; available leads: MLII, V5"):
        read_wfdb(path, leads=["V1"])


def test_wfdb_without_annotation_file(tmp_path: Path) -> None:
    base = _copy_record(tmp_path, "mitbih", "100", (".hea", ".dat"))
    r = read_wfdb(base)
    assert r.annotations is None and r.signal.shape == (650000, 2)


@pytest.mark.parametrize(
    ("name", "shape", "fs", "leads"),
    [
        ("s0010_re", (38400, 15), 1000.0, ["i", "ii", "iii", "avr"]),  # PTB, .dat + .xyz files
        ("a103l", (82500, 3), 250.0, ["II", "V", "PLETH"]),  # .mat (format 16 + 24-byte offset)
        ("3000003_0003", (1028, 2), 125.0, ["II", "V"]),  # format 80
        ("p10143", (450000, 2), 500.0, ["FECG", "UC"]),  # format 61 (big-endian)
        ("test01_00s", (4000, 4), 500.0, ["ECG 1", "ECG 2"]),
    ],
)
def test_wfdb_sample_records(name: str, shape: tuple[int, int], fs: float, leads: list) -> None:
    r = read_ecg(shared_file("wfdb_samples", name + ".hea"))
    assert r.signal.shape == shape and r.fs == fs
    assert r.lead_names[: len(leads)] == leads
    expected = wfdb.rdrecord(str(shared_file("wfdb_samples", name + ".hea"))[:-4]).p_signal
    np.testing.assert_allclose(r.signal, expected, rtol=1e-6, atol=1e-6)


def test_wfdb_mat_units_and_comments() -> None:
    r = read_ecg(shared_file("wfdb_samples", "a103l.mat"))
    assert r.units == ["mV", "mV", "NU"] and r.comments == ["Asystole", "False alarm"]


def test_wfdb_multi_frequency_record_returned_at_fastest_rate() -> None:
    path = shared_file("wfdb_samples", "03700181.hea")
    r = read_wfdb(path, leads=["MCL1", "ABP"])  # MCL1 4 samples per frame, ABP 1, at 125 frames/s
    assert r.fs == 500.0 and r.signal.shape == (300000, 2)
    raw = wfdb.rdrecord(str(path)[:-4], smooth_frames=False)
    np.testing.assert_allclose(r.signal[:, 0], raw.e_p_signal[0], atol=1e-6)
    np.testing.assert_allclose(r.signal[::4, 1], raw.e_p_signal[1], rtol=1e-6)  # on the frames
    # in between, ABP is interpolated linearly
    mid = (raw.e_p_signal[1][:-1] + raw.e_p_signal[1][1:]) / 2
    np.testing.assert_allclose(r.signal[2:-4:4, 1], mid, rtol=1e-5)


def test_wfdb_real_nan_samples_rejected_unless_allowed() -> None:
    path = shared_file("wfdb_samples", "v102s.hea")
    with pytest.raises(DataError, match=r"v102s.*23 NaN.*II: 3, V: 2, PLETH: 17, RESP: 1"):
        read_wfdb(path)
    r = read_wfdb(path, allow_nan=True)
    assert int(np.isnan(r.signal).sum()) == 23
    with pytest.raises(DataError, match="allow_nan=True"):
        read_ecg(shared_file("wfdb_samples", "03700181.hea"))  # RESP has gaps


def test_wfdb_synthetic_nan_flat_and_short(tmp_path: Path) -> None:
    x = np.linspace(-1, 1, 200).reshape(100, 2)
    x[10, 1] = x[20, 1] = np.nan
    wfdb.wrsamp(
        "nan",
        fs=250,
        units=["mV", "mV"],
        sig_name=["I", "II"],
        p_signal=x,
        fmt=["16", "16"],
        write_dir=str(tmp_path),
    )
    with pytest.raises(DataError, match=r"nan.hea.*2 NaN.*II: 2; first at sample 10"):
        read_wfdb(tmp_path / "nan.hea")
    assert np.isnan(read_wfdb(tmp_path / "nan", allow_nan=True).lead("II")).sum() == 2
    # a flat, 5-sample recording is accepted: quality checks come later
    wfdb.wrsamp(
        "flat",
        fs=250,
        units=["mV"],
        sig_name=["I"],
        p_signal=np.zeros((5, 1)),
        fmt=["16"],
        write_dir=str(tmp_path),
    )
    flat = read_wfdb(tmp_path / "flat")
    assert flat.signal.shape == (5, 1) and not flat.signal.any()


def test_wfdb_header_pointing_to_missing_data_file(tmp_path: Path) -> None:
    base = _copy_record(tmp_path, "mitbih", "100", (".hea",))
    with pytest.raises(DataError, match=r"100.hea: the header refers to data file 100.dat, which"):
        read_wfdb(base)


def test_wfdb_truncated_data_file(tmp_path: Path) -> None:
    base = _copy_record(tmp_path, "mitbih", "100", (".hea",))
    (tmp_path / "100.dat").write_bytes(shared_file("mitbih", "100.dat").read_bytes()[:100_000])
    # format 212: 2 signals x 1.5 bytes per frame -> 100000 bytes hold 33333 frames
    with pytest.raises(
        DataError,
        match=r"100.dat: truncated: header 100.hea says 650000 samples, "
        r"file holds 33333",
    ):
        read_wfdb(base)


def test_wfdb_truncated_mat_file(tmp_path: Path) -> None:
    src = shared_file("physionet2017", "training", "A00001.mat")
    shutil.copy(src.with_suffix(".hea"), tmp_path / "A00001.hea")
    (tmp_path / "A00001.mat").write_bytes(src.read_bytes()[: 24 + 2 * 5000 + 1])
    with pytest.raises(
        DataError, match=r"truncated: header A00001.hea says 9000 samples, file holds 5000"
    ):
        read_ecg(tmp_path / "A00001.mat")


def test_wfdb_foreign_files(tmp_path: Path) -> None:
    base = _copy_record(tmp_path, "mitbih", "100", (".hea",))
    (tmp_path / "100.dat").write_bytes(PNG_BYTES)
    with pytest.raises(DataError, match=r"100.dat: not WFDB signal data: the file is a PNG image"):
        read_wfdb(base)
    (tmp_path / "lonely.dat").write_bytes(PNG_BYTES)
    with pytest.raises(DataError, match=r"lonely.dat: no WFDB header lonely.hea next to it"):
        read_ecg(tmp_path / "lonely.dat")
    (tmp_path / "junk.hea").write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(DataError, match=r"junk.hea: not a (valid )?WFDB header"):
        read_wfdb(tmp_path / "junk.hea")
    (tmp_path / "text.hea").write_text("hello world\nthis is not a header\n")
    with pytest.raises(DataError, match=r"text.hea: not a valid WFDB header \(HeaderSyntaxError"):
        read_ecg(tmp_path / "text")
    with pytest.raises(DataError, match="WFDB record not found"):
        read_wfdb(tmp_path / "absent")


def test_wfdb_zero_length(tmp_path: Path) -> None:
    (tmp_path / "z.hea").write_text("z 1 250 0\nz.dat 16 200 16 0 0 0 0 I\n")
    (tmp_path / "z.dat").write_bytes(b"")
    with pytest.raises(DataError, match=r"z.hea: zero-length signal \(the header says 0 samples"):
        read_wfdb(tmp_path / "z")
    (tmp_path / "y.hea").write_text("y 1 250\ny.dat 16 200 16 0 0 0 0 I\n")  # length from file
    (tmp_path / "y.dat").write_bytes(b"")
    with pytest.raises(DataError, match=r"y.dat: zero-length signal"):
        read_wfdb(tmp_path / "y")


# ------------------------------------------------------------------------------------ DICOM


def test_dicom_waveform_ecg() -> None:
    path = get_testdata_file("waveform_ecg.dcm")
    r = read_dicom_ecg(path)
    assert r.signal.shape == (10000, 12) and r.fs == 1000.0 and r.signal.dtype == np.float32
    assert r.lead_names == ["I", "II", "III", "aVR", "aVL", "aVF"] + [f"V{i}" for i in range(1, 7)]
    assert r.units == ["mV"] * 12 and r.annotations is None
    # pydicom gives microvolts (raw x 1.25 uV sensitivity); the reader divides by 1000
    np.testing.assert_allclose(r.signal, _waveform_ds().waveform_array(0) / 1000, atol=1e-7)
    np.testing.assert_allclose(r.signal[0, :3], [0.1, 0.1125, 0.0125], atol=1e-7)
    assert "RITMO SINUSALE" in r.comments and "QRS Duration: 75 ms" in r.comments
    assert read_ecg(path).signal.shape == (10000, 12)


def test_dicom_group_choice(tmp_path: Path) -> None:
    path = get_testdata_file("waveform_ecg.dcm")
    assert read_dicom_ecg(path, group=1).signal.shape == (1200, 12)  # the MEDIAN BEAT group
    ds = _waveform_ds()
    ds.WaveformSequence[0].MultiplexGroupLabel = "LEADS"  # no RHYTHM label left
    ds.WaveformSequence[1].SamplingFrequency = 2000
    ds.save_as(tmp_path / "relabelled.dcm")
    r = read_dicom_ecg(tmp_path / "relabelled.dcm")
    assert r.n_samples == 1200 and r.fs == 2000.0  # highest sampling rate wins
    with pytest.raises(ConfigError, match="group 5 requested but the file has 2"):
        read_dicom_ecg(path, group=5)


def test_dicom_millivolt_units_and_preamble_dispatch(tmp_path: Path) -> None:
    ds = _waveform_ds()
    for channel in ds.WaveformSequence[0].ChannelDefinitionSequence:
        channel.ChannelSensitivityUnitsSequence[0].CodeValue = "mV"
    target = tmp_path / "ecg_without_suffix"
    ds.save_as(target)
    r = read_ecg(target)  # recognised by the DICM preamble
    np.testing.assert_allclose(r.signal, ds.waveform_array(0), rtol=1e-6)
    with pytest.raises(ConfigError, match="says 1000 Hz but fs=500"):
        read_ecg(target, fs=500)


def test_dicom_without_waveform_and_truncated(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"CT_small.dcm: DICOM file has no waveform"):
        read_dicom_ecg(get_testdata_file("CT_small.dcm"))
    ds = _waveform_ds()
    ds.WaveformSequence[0].WaveformData = ds.WaveformSequence[0].WaveformData[: 12 * 2 * 4000]
    ds.save_as(tmp_path / "cut.dcm")
    with pytest.raises(DataError, match="truncated: header says 10000 samples, file holds 4000"):
        read_ecg(tmp_path / "cut.dcm")
    (tmp_path / "fake.dcm").write_bytes(PNG_BYTES)
    with pytest.raises(DataError, match=r"fake.dcm: not a DICOM file"):
        read_ecg(tmp_path / "fake.dcm")


# ------------------------------------------------------------------------------------ arrays


def test_csv_round_trip_with_time_column(tmp_path: Path, record100: EcgRecord) -> None:
    part = record100.signal[:2000]
    table = pd.DataFrame({"time": np.arange(2000) / 360, "MLII": part[:, 0], "V5": part[:, 1]})
    table.to_csv(tmp_path / "x.csv", index=False)
    r = read_ecg(tmp_path / "x.csv", fs=360)
    assert r.lead_names == ["MLII", "V5"] and r.fs == 360.0 and r.name == "x"
    np.testing.assert_array_equal(r.signal, part)
    # no header row: default names, or the ones given
    np.savetxt(tmp_path / "bare.csv", part, delimiter=",")
    assert read_ecg_array(tmp_path / "bare.csv", fs=360).lead_names == ["lead1", "lead2"]
    named = read_ecg_array(tmp_path / "bare.csv", fs=360, lead_names=["MLII", "V5"])
    np.testing.assert_allclose(named.lead("V5"), part[:, 1], atol=1e-7)
    with pytest.raises(ConfigError, match="3 lead name"):
        read_ecg_array(tmp_path / "bare.csv", fs=360, lead_names=["a", "b", "c"])


def test_csv_physionet_export_with_units_row(tmp_path: Path) -> None:
    text = "'Elapsed time','MLII','V5'\n'hh:mm:ss.mmm','uV','uV'\n'0:00.000',-145,-65\n"
    text += "'0:00.003',-150,-70\n"
    (tmp_path / "samples.csv").write_text(text)
    r = read_ecg(tmp_path / "samples.csv", fs=360)
    assert r.lead_names == ["MLII", "V5"] and r.units == ["mV", "mV"]
    np.testing.assert_allclose(r.signal, [[-0.145, -0.065], [-0.150, -0.070]], atol=1e-7)


def test_csv_bad_input(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match=r"empty.csv: the file is empty"):
        read_ecg(tmp_path / "empty.csv", fs=250)
    (tmp_path / "blank.csv").write_text("\n\n")
    with pytest.raises(DataError, match=r"blank.csv: the CSV is empty"):
        read_ecg(tmp_path / "blank.csv", fs=250)
    (tmp_path / "header.csv").write_text("I,II\n")
    with pytest.raises(DataError, match="header but no data rows"):
        read_ecg(tmp_path / "header.csv", fs=250)
    (tmp_path / "text.csv").write_text("I,II\n1,2\n3,oops\n")
    with pytest.raises(DataError, match=r"text.csv: line 3, column 'II': 'oops' is not a number"):
        read_ecg(tmp_path / "text.csv", fs=250)
    (tmp_path / "gap.csv").write_text("I,II\n1,2\n3,\n5,NaN\n")
    with pytest.raises(DataError, match=r"gap.csv: .*2 NaN.*II: 2; first at sample 1"):
        read_ecg(tmp_path / "gap.csv", fs=250)
    assert np.isnan(read_ecg(tmp_path / "gap.csv", fs=250, allow_nan=True).lead("II")).sum() == 2
    (tmp_path / "image.csv").write_bytes(PNG_BYTES)
    with pytest.raises(DataError, match="not a CSV text file"):
        read_ecg(tmp_path / "image.csv", fs=250)


@pytest.mark.parametrize("fs", [None, 0, -5, float("nan")])
def test_array_needs_sampling_rate(tmp_path: Path, fs: float | None) -> None:
    np.save(tmp_path / "x.npy", np.zeros(100))
    with pytest.raises(ConfigError, match=r"x.npy: no sampling rate: pass --fs / fs=\.\.\."):
        read_ecg(tmp_path / "x.npy", fs=fs)


def test_numpy_layouts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    leads_first = rng.normal(size=(12, 5000))
    np.save(tmp_path / "t.npy", leads_first)
    r = read_ecg(tmp_path / "t.npy", fs=500)
    assert r.signal.shape == (5000, 12) and r.lead_names[0] == "lead1"
    np.testing.assert_allclose(r.signal, leads_first.T.astype(np.float32))
    np.save(tmp_path / "one.npy", np.arange(300, dtype=np.int16))
    assert read_ecg(tmp_path / "one.npy", fs=100).signal.shape == (300, 1)
    np.save(tmp_path / "tall.npy", rng.normal(size=(5000, 2)))
    assert read_ecg_array(tmp_path / "tall.npy", fs=500).signal.shape == (5000, 2)
    np.savez(tmp_path / "named.npz", signal=leads_first, other=np.zeros(3))
    assert read_ecg(tmp_path / "named.npz", fs=500, leads=["lead3"]).signal.shape == (5000, 1)


def test_numpy_bad_input(tmp_path: Path) -> None:
    np.savez(tmp_path / "two.npz", a=np.zeros(10), b=np.zeros(10))
    with pytest.raises(DataError, match="holds arrays a, b; expected one array"):
        read_ecg(tmp_path / "two.npz", fs=250)
    np.save(tmp_path / "cube.npy", np.zeros((2, 3, 4)))
    with pytest.raises(DataError, match=r"cube.npy: expected a 1-D or 2-D"):
        read_ecg(tmp_path / "cube.npy", fs=250)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match=r"obj.npy: not a readable NumPy file"):
        read_ecg(tmp_path / "obj.npy", fs=250)
    np.save(tmp_path / "none.npy", np.zeros((0, 2)))
    with pytest.raises(DataError, match=r"none.npy: zero-length signal"):
        read_ecg(tmp_path / "none.npy", fs=250)
    (tmp_path / "fake.npy").write_bytes(PNG_BYTES)
    with pytest.raises(DataError, match=r"fake.npy: not a readable NumPy file"):
        read_ecg(tmp_path / "fake.npy", fs=250)


def test_read_ecg_dispatch_errors(tmp_path: Path) -> None:
    (tmp_path / "scan.png").write_bytes(PNG_BYTES)
    with pytest.raises(
        DataError, match=r"scan.png: cannot tell the ECG format \(the file is a PNG"
    ):
        read_ecg(tmp_path / "scan.png")
    with pytest.raises(DataError, match="file not found"):
        read_ecg(tmp_path / "nothing.csv", fs=100)
    np.save(tmp_path / "x.npy", np.zeros(10))
    with pytest.raises(ConfigError, match="annotation_extension do not apply to array files"):
        read_ecg(tmp_path / "x.npy", fs=100, annotation_extension="atr")


# ------------------------------------------------------------------------------------ resampling


def test_resample_record_100_to_500_hz(record100: EcgRecord) -> None:
    assert resample_record(record100, 360) is record100
    r = resample_record(record100, 500)  # ratio 25/18
    assert r.fs == 500.0 and r.signal.shape == (902778, 2) and r.signal.dtype == np.float32
    assert r.annotations is not None and len(r.annotations) == 2274
    assert r.annotations.sample[:3].tolist() == [25, 107, 514]  # 18, 77, 370 x 25/18, rounded
    assert r.annotations.symbol == record100.annotations.symbol
    assert record100.annotations.sample[0] == 18  # the original is untouched


def test_resample_preserves_a_sine() -> None:
    t = np.arange(2500) / 250
    rec = EcgRecord(signal=np.sin(2 * np.pi * 5 * t)[:, None], fs=250, lead_names=["I"])
    down = resample_record(rec, 100)
    assert down.n_samples == 1000 and down.fs == 100.0
    expected = np.sin(2 * np.pi * 5 * np.arange(1000) / 100)
    np.testing.assert_allclose(down.signal[50:-50, 0], expected[50:-50], atol=1e-2)
    ann = BeatAnnotations(sample=[0, 125, 2499], symbol=["N", "N", "V"])
    up = resample_record(EcgRecord(rec.signal, 250, ["I"], annotations=ann), 360)
    assert up.n_samples == 3600 and up.annotations.sample.tolist() == [0, 180, 3599]


def test_resample_bad_input() -> None:
    rec = EcgRecord(signal=np.array([[0.0], [np.nan], [1.0]]), fs=100, lead_names=["I"])
    with pytest.raises(DataError, match="cannot resample a signal with 1 NaN"):
        resample_record(rec, 50)
    with pytest.raises(ConfigError, match="target rate must be > 0"):
        resample_record(rec, 0)
    tiny = EcgRecord(signal=np.zeros((8, 1)), fs=1e-300, lead_names=["I"])
    with pytest.raises(ConfigError, match="the ratio is too extreme"):
        resample_record(tiny, 300)


# ------------------------------------------------------------------------------------ CinC 2017


def test_challenge_reference_and_records() -> None:
    folder = shared_file("physionet2017", "training", "REFERENCE.csv").parent
    ref = read_challenge_reference(folder)
    assert list(ref.columns) == ["record", "label"] and len(ref) == 5000
    assert ref.iloc[0].tolist() == ["A00001", "N"]
    assert ref["label"].value_counts().to_dict() == {"N": 3029, "O": 1350, "A": 446, "~": 175}
    records = iter_challenge_records(folder)
    name, label, path = next(records)
    assert (name, label, path.name) == ("A00001", "N", "A00001.hea")
    r = read_ecg(path)
    assert r.signal.shape == (9000, 1) and r.fs == 300.0 and r.lead_names == ["ECG"]
    assert sum(1 for _ in records) == 4999


def test_challenge_reference_formats_and_errors(tmp_path: Path) -> None:
    (tmp_path / "REFERENCE.csv").write_text("A00001,N\nA00002,A\nA00003,X\n")
    with pytest.raises(DataError, match=r"line 3: label 'X' for record A00003 is not one of"):
        read_challenge_reference(tmp_path)
    ref = read_challenge_reference(tmp_path / "REFERENCE.csv", allowed={"N", "A", "X"})
    assert ref["record"].tolist() == ["A00001", "A00002", "A00003"]  # no header row
    (tmp_path / "REFERENCE.csv").write_text("")
    with pytest.raises(DataError, match="reference file is empty"):
        read_challenge_reference(tmp_path)
    (tmp_path / "REFERENCE.csv").write_text("record,label\nA00001,N\nA00001,A\n")
    with pytest.raises(DataError, match="listed more than once: A00001"):
        read_challenge_reference(tmp_path)


def test_challenge_missing_records(tmp_path: Path) -> None:
    src = shared_file("physionet2017", "training", "A00001.hea").parent
    for suffix in (".hea", ".mat"):
        shutil.copy(src / f"A00001{suffix}", tmp_path)
    (tmp_path / "A00002.hea").write_text("")  # header without its .mat
    rows = "\n".join(f"A0000{i},N" for i in range(1, 9))
    (tmp_path / "REFERENCE.csv").write_text(rows + "\n")
    with pytest.raises(
        DataError,
        match=r"7 of 8 record\(s\).*A00002, A00003, A00004, A00005, "
        r"A00006 and 2 more",
    ):
        list(iter_challenge_records(tmp_path))
    with pytest.warns(UserWarning, match="skipped"):
        found = list(iter_challenge_records(tmp_path, on_missing="skip"))
    assert [name for name, _, _ in found] == ["A00001"]
