"""``medsight ecg beats-train`` and ``medsight ecg stream --beat-bundle``: table, bundle, alerts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from beat_synth import SynthRecord, synth_record, write_ds_folder, write_record
from medsight.bundle.ecg_beats import BeatBundle
from medsight.cli.main import app
from medsight.stream.ecg import StreamingEcgDetector, StreamSettings, replay

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A bundle from ``beats-train`` on the synthetic DS folder, and the command's output."""
    root = tmp_path_factory.mktemp("beats")
    data = write_ds_folder(root / "ds")
    result = runner.invoke(
        app, ["ecg", "beats-train", "--data", str(data), "--output", str(root / "bundle")]
    )
    assert result.exit_code == 0, result.output
    return root / "bundle", result.output


@pytest.fixture(scope="module")
def ectopic() -> SynthRecord:
    return synth_record(11)  # isolated V and S beats, never two ectopic beats in a row


@pytest.fixture(scope="module")
def with_runs() -> SynthRecord:
    return synth_record(12, p_v=0.0, p_s=0.0, runs_at=(30.0, 70.0, 110.0))


def run_starts(record: SynthRecord) -> list[float]:
    """Times (s) of the first beat of each run of three or more V beats."""
    symbols = "".join(record.symbols)
    starts, at = [], symbols.find("VVV")
    while at >= 0:
        starts.append(float(record.samples[at] / record.fs))
        at = symbols.find("VVV", at + 3)
    return starts


def alert_lines(output: str, kind: str) -> list[str]:
    """The printed alerts of ``kind`` (``<time> s  <kind> <message>``)."""
    return [line for line in output.splitlines() if line.split()[1:3] == ["s", kind]]


# ------------------------------------------------------------------------------------ train


def test_beats_train_prints_the_table_and_writes_the_bundle(trained: tuple[Path, str]) -> None:
    bundle, output = trained
    assert "train records (2): 101, 106" in output
    assert "test records (2): 100, 103" in output
    assert "Held-out test beats, ecg_beat_lightgbm, lead MLII" in output
    rows = {line.split()[1]: line.split() for line in output.splitlines() if line[:1] in "│|"}
    assert {"N", "S", "V", "F", "Q", "macro", "gross"} <= set(rows)
    support = {c: int(rows[c][3]) for c in "NSV"}
    assert support == {"N": 314, "S": 15, "V": 35}
    assert float(rows["V"][7]) >= 0.9  # V sensitivity
    assert rows["F"][7] == "-"  # undefined without F beats
    assert f"bundle: {bundle}" in output
    assert sorted(p.name for p in bundle.iterdir()) == ["bundle.json", "model.txt", "model_card.md"]
    assert BeatBundle.load(bundle).classes == ["N", "S", "V"]


def test_beats_train_refuses_bad_options(trained: tuple[Path, str], tmp_path: Path) -> None:
    bundle, _ = trained
    data = bundle.parent / "ds"
    exists = runner.invoke(
        app, ["ecg", "beats-train", "--data", str(data), "--output", str(bundle)]
    )
    assert exists.exit_code == 2 and "already exists" in exists.output
    assert "Traceback" not in exists.output
    split = runner.invoke(
        app,
        ["ecg", "beats-train", "--data", str(data), "--output", str(tmp_path / "b"),
         "--split", "kfold"],
    )  # fmt: skip
    assert split.exit_code == 2 and "--split must be 'ds' or 'records'" in split.output
    empty = runner.invoke(
        app, ["ecg", "beats-train", "--data", str(tmp_path), "--output", str(tmp_path / "b")]
    )
    assert empty.exit_code == 2
    assert "no WFDB records with reference beat annotations" in empty.output
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------------------------ stream


def test_stream_prints_ventricular_ectopy(
    trained: tuple[Path, str], ectopic: SynthRecord, tmp_path: Path
) -> None:
    bundle, _ = trained
    header = write_record(tmp_path, "ect01", ectopic)
    result = runner.invoke(app, ["ecg", "stream", str(header), "--beat-bundle", str(bundle)])
    assert result.exit_code == 0, result.output
    assert "beat bundle bundle" in result.output.splitlines()[0]
    ventricular = alert_lines(result.output, "ventricular_ectopy")
    assert len(ventricular) >= 5 and "ventricular ectopic beat" in ventricular[0]
    assert "V beats since" in " ".join(ventricular[1:])
    assert alert_lines(result.output, "supraventricular_ectopy")
    assert not alert_lines(result.output, "ventricular_run")  # no two V beats in a row
    summary = next(line for line in result.output.splitlines() if "beats classified" in line)
    n_v = int(summary.split("V ")[1].split(",")[0])
    assert abs(n_v - ectopic.symbols.count("V")) <= 2


def test_stream_prints_a_ventricular_run_alert(
    trained: tuple[Path, str], with_runs: SynthRecord, tmp_path: Path
) -> None:
    bundle, _ = trained
    header = write_record(tmp_path, "run01", with_runs)
    result = runner.invoke(app, ["ecg", "stream", str(header), "--beat-bundle", str(bundle)])
    assert result.exit_code == 0, result.output
    runs = alert_lines(result.output, "ventricular_run")
    starts = run_starts(with_runs)
    assert len(starts) == 3 and len(runs) >= 2
    for line in runs:
        t = float(line.split()[0])  # the third V beat of a run, within 3 RR of its start
        assert any(0 < t - s < 3.0 for s in starts), line
        assert "3 consecutive ventricular beats" in line


def test_stream_monitors_the_beat_bundles_lead(trained: tuple[Path, str], tmp_path: Path) -> None:
    import wfdb

    bundle, _ = trained
    x = synth_record(11, seconds=20).signal
    wfdb.wrsamp(
        "two01",
        fs=360,
        units=["mV", "mV"],
        sig_name=["V1", "MLII"],
        p_signal=np.column_stack([np.zeros_like(x), x]),
        fmt=["16", "16"],
        write_dir=str(tmp_path),
    )
    result = runner.invoke(
        app, ["ecg", "stream", str(tmp_path / "two01.hea"), "--beat-bundle", str(bundle)]
    )
    assert result.exit_code == 0, result.output
    assert "lead MLII" in result.output.splitlines()[0]
    assert "beats classified" in result.output


# ------------------------------------------------------------------------------------ detector


def test_streamed_classes_equal_the_bundle_on_the_same_beats(
    trained: tuple[Path, str], ectopic: SynthRecord
) -> None:
    """Causal stream features equal whole-record features: the same label for every beat."""
    bundle = BeatBundle.load(trained[0])
    detector = StreamingEcgDetector(ectopic.fs, beat_bundle=bundle)
    for _ in replay(ectopic.signal, ectopic.fs, chunk_s=0.37, detector=detector):
        pass
    peaks, labels = detector.beat_classes
    batch = bundle.classify(ectopic.signal, ectopic.fs, detector.rpeaks)
    assert labels.size == batch.labels.size - 1  # the last beat never got its next beat
    np.testing.assert_array_equal(labels, batch.labels[:-1])
    assert np.all(np.abs(peaks - batch.rpeaks[:-1]) <= round(0.05 * ectopic.fs))


def test_ectopy_alerts_are_rate_limited_and_prompt(
    trained: tuple[Path, str], ectopic: SynthRecord
) -> None:
    bundle = BeatBundle.load(trained[0])
    settings = StreamSettings(ectopy_every_s=10.0)
    detector = StreamingEcgDetector(ectopic.fs, settings=settings, beat_bundle=bundle)
    alerts = [a for a in replay(ectopic.signal, ectopic.fs, detector=detector)]
    peaks, labels = detector.beat_classes
    for kind, label in (("ventricular_ectopy", "V"), ("supraventricular_ectopy", "S")):
        mine = [a for a in alerts if a.kind == kind]
        times = np.array([a.event_time_s for a in mine])
        assert len(mine) >= 3 and np.all(np.diff(times) >= 10.0)
        # every ectopic beat up to the last alert is counted in exactly one alert
        upto = (labels == label) & (peaks / ectopic.fs <= times[-1] + 1e-9)
        assert sum(a.details["beats"] for a in mine) == int(upto.sum())
        # after the first template (8 beats), an alert comes within 3 s of its beat
        late = [a.latency_s for a in mine if a.event_time_s > 10.0]
        assert late and max(late) < 3.0
