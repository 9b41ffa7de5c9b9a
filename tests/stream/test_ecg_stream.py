"""The streaming ECG monitor: causal beats (chunk-invariant), alerts and their latency, rhythm."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import neurokit2 as nk
import numpy as np
import pytest

from medsight.errors import ConfigError, DataError
from medsight.signal.peaks import match_peaks
from medsight.stream.ecg import (
    CausalQrsDetector,
    StreamingEcgDetector,
    StreamSettings,
    alert_scenario,
    replay,
    stream_benchmark,
)
from shared_helpers import shared_file, write_untrained_ecg_bundle


def simulated(fs: float, seconds: float = 60, rate: float = 75, seed: int = 1) -> np.ndarray:
    return nk.ecg_simulate(duration=seconds, sampling_rate=fs, heart_rate=rate, random_state=seed)


def reference_peaks(clean: np.ndarray, fs: float) -> np.ndarray:
    return np.asarray(nk.ecg_peaks(clean, sampling_rate=fs)[1]["ECG_R_Peaks"])


def stream_peaks(x: np.ndarray, fs: float, chunks: list[int] | int) -> np.ndarray:
    """R peaks found when ``x`` arrives in chunks of the given sizes (or one fixed size)."""
    detector = StreamingEcgDetector(fs)
    sizes = chunks if isinstance(chunks, list) else [chunks] * (x.size // chunks + 1)
    start = 0
    for size in sizes:
        if start >= x.size:
            break
        detector.push(x[start : start + size])
        start += size
    assert detector.samples_seen == x.size
    return detector.rpeaks


def interior(peaks: np.ndarray, n: int, fs: float) -> np.ndarray:
    """Peaks at least 0.5 s from either end (the simulation starts on an R peak; the stream
    cannot confirm a beat in its last 0.3 s)."""
    margin = 0.5 * fs
    return peaks[(peaks >= margin) & (peaks < n - margin)]


# ------------------------------------------------------------------------------------ beats


@pytest.mark.parametrize("fs", [250, 360, 500])
def test_causal_detector_finds_beats_the_same_whatever_the_chunks(fs: int) -> None:
    clean = simulated(fs, rate=80, seed=fs)
    noisy = clean + 0.02 * np.random.default_rng(fs).normal(size=clean.size)
    reference = interior(reference_peaks(clean, fs), clean.size, fs)

    whole = stream_peaks(noisy, fs, noisy.size)
    small = stream_peaks(noisy, fs, round(0.1 * fs))
    large = stream_peaks(noisy, fs, fs)
    ragged = list(np.random.default_rng(0).integers(1, fs, size=noisy.size))
    uneven = stream_peaks(noisy, fs, [int(s) for s in ragged])
    assert np.array_equal(whole, small)
    assert np.array_equal(whole, large)
    assert np.array_equal(whole, uneven)

    match = match_peaks(reference, interior(whole, clean.size, fs), fs, tolerance_s=0.15)
    assert reference.size >= 75
    assert match.sensitivity >= 0.98 and match.ppv >= 0.98, match.as_dict()
    assert np.all(np.diff(whole) > 0.2 * fs)  # refractory period


@pytest.mark.shared_data
def test_mitbih_100_first_ten_minutes() -> None:
    from medsight.io.ecg import read_ecg

    record = read_ecg(shared_file("mitbih", "100.hea"))
    fs = record.fs
    n = round(600 * fs)
    lead = record.lead("MLII")[:n]
    reference = record.annotations.beats().sample
    reference = reference[reference < n - 0.3 * fs]

    run = replay(lead, fs, chunk_s=0.5)
    alerts = list(run)
    match = match_peaks(reference, run.detector.rpeaks, fs, tolerance_s=0.15)
    # Measured on the whole record: 2272 of 2273 beats (the last, 25 ms before the end), no FP.
    assert match.sensitivity >= 0.995 and match.ppv >= 0.995, match.as_dict()
    assert alerts == []  # sinus rhythm: nothing to announce
    assert run.stats.realtime_factor > 50  # far above real time even on a busy machine


def test_qrs_detector_needs_a_usable_rate() -> None:
    with pytest.raises(ConfigError, match="32 Hz"):
        CausalQrsDetector(25)
    with pytest.raises(ConfigError, match="fs"):
        StreamingEcgDetector(0)


# ------------------------------------------------------------------------------------ alerts


@pytest.mark.parametrize("fs", [250, 360])
def test_every_scenario_event_raises_one_alert_within_a_second(fs: int) -> None:
    signal, expected = alert_scenario(fs, seed=3)
    alerts = list(replay(signal, fs, chunk_s=0.5))
    assert len(alerts) == len(expected), [(a.kind, round(a.event_time_s, 2)) for a in alerts]
    for kind, earliest, latest in expected:
        hits = [a for a in alerts if a.kind == kind and earliest <= a.event_time_s <= latest]
        assert len(hits) == 1, (kind, earliest, latest, alerts)
    chunk = round(0.5 * fs)
    chunk_ends = {min(end, signal.size) / fs for end in range(chunk, signal.size + chunk, chunk)}
    for alert in alerts:
        assert 0 <= alert.latency_s <= 1.0, alert
        assert alert.emitted_time_s in chunk_ends
    fine = list(replay(signal, fs, chunk_s=0.1))
    assert [(a.kind, a.event_time_s) for a in fine] == [(a.kind, a.event_time_s) for a in alerts]
    assert max(a.latency_s for a in fine) <= 0.6


def test_pause_alert_from_three_missing_beats() -> None:
    fs = 360
    x = simulated(fs, seconds=30, rate=70, seed=5) + 0.01 * np.random.default_rng(5).normal(
        size=30 * fs
    )
    beats = reference_peaks(x, fs)
    # drop three beats: hold the baseline (with its noise) from after one T wave to the next one
    rr = int(np.median(np.diff(beats)))
    k = int(np.searchsorted(beats, 12 * fs))
    lo, hi = beats[k] + int(0.6 * rr), beats[k + 3] + int(0.6 * rr)
    x[lo:hi] = x[lo] + 0.01 * np.random.default_rng(6).normal(size=hi - lo)
    alerts = list(replay(x, fs, chunk_s=0.5))
    assert [a.kind for a in alerts] == ["pause"]
    pause = alerts[0]
    assert pause.event_time_s == pytest.approx(beats[k] / fs + 2.5, abs=0.03)
    assert pause.latency_s <= 1.0


def test_tachycardia_at_180_bpm_and_none_at_rest() -> None:
    fs = 250
    fast = simulated(fs, seconds=20, rate=180, seed=7)
    alerts = list(replay(fast, fs, chunk_s=0.5))
    assert [a.kind for a in alerts] == ["tachycardia"]
    assert alerts[0].details["heart_rate_bpm"] == pytest.approx(180, abs=8)
    assert alerts[0].latency_s <= 1.0
    assert alerts[0].event_time_s < 4.0  # the ninth beat at 180 bpm comes about 2.7 s in
    rest = simulated(fs, seconds=60, rate=65, seed=8)
    assert list(replay(rest, fs)) == []


def test_flat_and_nan_chunks_are_reported_and_beats_resume() -> None:
    fs = 250
    x = simulated(fs, seconds=30, rate=70, seed=9)
    detector = StreamingEcgDetector(fs)
    alerts = detector.push(x[: 10 * fs])
    alerts += detector.push(np.full(fs, np.nan))  # one chunk of no data
    alerts += detector.push(np.full(2 * fs, 0.3))  # then a flat line
    alerts += detector.push(np.array([]))
    alerts += detector.push(x[10 * fs :][:, None])  # (n, 1) is accepted as one lead
    quality = [a for a in alerts if a.kind == "signal_quality"]
    assert [a.details["state"] for a in quality] == ["nan", "restored"]
    assert quality[0].event_time_s == pytest.approx(10.0)  # at once, with the first NaN
    assert quality[0].emitted_time_s == pytest.approx(11.0)
    assert 13.0 <= quality[1].event_time_s <= 13.3  # a finite, varying second after the line
    assert not [a for a in alerts if a.kind == "pause"]  # no RR interval spans missing data
    assert detector.samples_seen == 33 * fs
    late = detector.rpeaks[detector.rpeaks > 16 * fs]
    assert late.size >= 15  # relearned after the gap: about 70 bpm for 17 s

    nan_inside = x.copy()
    nan_inside[5 * fs : 5 * fs + 10] = np.nan
    run = replay(nan_inside, fs, chunk_s=1.0)
    kinds = [(a.kind, a.details.get("state")) for a in run]
    assert kinds[:2] == [("signal_quality", "nan"), ("signal_quality", "restored")]
    with pytest.raises(DataError, match="1-D"):
        detector.push(np.zeros((10, 2)))


def test_flat_line_alert() -> None:
    fs = 360
    x = simulated(fs, seconds=20, rate=70, seed=10)
    x[8 * fs : 12 * fs] = x[8 * fs]
    alerts = list(replay(x, fs, chunk_s=0.25))
    flat = [a for a in alerts if a.details.get("state") == "flat"]
    assert len(flat) == 1 and 9.0 <= flat[0].event_time_s <= 9.3
    assert {a.kind for a in alerts} == {"signal_quality", "pause"}


def test_beat_alerts_on_request() -> None:
    fs = 250
    x = simulated(fs, seconds=10, rate=60, seed=11)
    detector = StreamingEcgDetector(fs, settings=StreamSettings(beat_alerts=True))
    alerts = list(replay(x, fs, detector=detector))
    beats = [a for a in alerts if a.kind == "beat"]
    assert len(beats) == len(detector.rpeaks) - 1  # the first beat has no RR interval
    assert all(a.details["heart_rate_bpm"] == pytest.approx(60, abs=6) for a in beats)


@pytest.mark.parametrize(
    "settings",
    [{"pause_s": 0}, {"af_probability": 1.5}, {"brady_bpm": 160}, {"rate_beats": 0}],
)
def test_bad_settings(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        StreamSettings(**settings)


# ------------------------------------------------------------------------------------ rhythm


class ScriptedBundle:
    """Stands in for an EcgBundle: "A" when the window's mean is above 2 mV, else "N"."""

    fs = 150.0
    window = (750, 375)  # 5 s windows
    is_network = False
    path = None

    def __init__(self) -> None:
        self.class_names = ["N", "A", "O", "~"]
        self.metadata = {"min_seconds": 5.0, "name": "scripted"}
        self.calls: list[tuple[int, ...]] = []

    def predict_signals(self, signals: list[np.ndarray]) -> np.ndarray:
        (signal,) = signals
        self.calls.append(signal.shape)
        af = float(signal.mean()) > 2.0
        return np.array([[0.05, 0.9, 0.03, 0.02] if af else [0.9, 0.05, 0.03, 0.02]])


def test_af_alerts_after_two_updates_and_af_ended() -> None:
    fs = 360
    x = simulated(fs, seconds=90, rate=70, seed=12)
    x[30 * fs : 60 * fs] += 5.0
    x[75 * fs : 77 * fs] = np.nan
    bundle = ScriptedBundle()
    detector = StreamingEcgDetector(fs, bundle)  # type: ignore[arg-type]
    alerts = [a for a in replay(x, fs, chunk_s=0.7, detector=detector)]
    rhythm = [a for a in alerts if a.kind in ("atrial_fibrillation", "af_ended")]
    assert [(a.kind, a.event_time_s) for a in rhythm] == [
        ("atrial_fibrillation", 40.0),
        ("af_ended", 70.0),
    ]
    assert all(a.latency_s <= 0.7 for a in rhythm)
    assert set(bundle.calls) == {(1, 750)}  # 5 s resampled from 360 to 150 Hz
    times = [u.time_s for u in detector.rhythm_updates]
    assert times[0] == 5.0 and 80.0 not in times  # 77-80 s is too short after the gap
    assert detector.rhythm_updates[7].label == "A"
    whole = StreamingEcgDetector(fs, ScriptedBundle())  # type: ignore[arg-type]
    pushed = whole.push(x)  # one chunk: the same updates, the same alerts
    assert whole.rhythm_updates == detector.rhythm_updates
    assert [(a.kind, a.event_time_s) for a in pushed] == [(a.kind, a.event_time_s) for a in alerts]


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 1D ResNet saved as a real bundle (ONNX), 10 s windows at 150 Hz."""
    folder = tmp_path_factory.mktemp("stream")
    return write_untrained_ecg_bundle(folder / "bundle", "tiny-untrained")


def test_rhythm_updates_with_a_real_bundle(tiny_bundle: Path) -> None:
    from medsight.bundle.ecg import EcgBundle

    fs = 300
    x = simulated(fs, seconds=32, rate=70, seed=13).astype(np.float32)
    bundle = EcgBundle.load(tiny_bundle)
    own = StreamingEcgDetector(fs, bundle, onnx_threads=1)
    shared = StreamingEcgDetector(fs, EcgBundle.load(tiny_bundle))
    for detector in (own, shared):
        list(replay(x, fs, chunk_s=0.5, detector=detector))
    updates = own.rhythm_updates
    assert [u.time_s for u in updates] == [5.0 * k for k in range(1, 7)]
    assert updates[0].window_s == 5.0 and updates[-1].window_s == 10.0
    for mine, theirs in zip(updates, shared.rhythm_updates, strict=True):
        assert sum(mine.probabilities.values()) == pytest.approx(1.0)
        for name, p in mine.probabilities.items():
            assert p == pytest.approx(theirs.probabilities[name], abs=1e-5)

    figures = stream_benchmark(x, fs, bundle, reference=reference_peaks(x, fs))
    assert figures["rhythm_updates"] == 6 and figures["bundle"] == "tiny-untrained"
    assert figures["rpeak_sensitivity"] >= 0.95 and figures["rpeak_ppv"] >= 0.95
    assert figures["realtime_factor"] > 10 and figures["threads"] == 1


# ------------------------------------------------------------------------------------ replay


def test_replay_speed_and_stats() -> None:
    fs = 250
    x = simulated(fs, seconds=6, rate=70, seed=14)
    start = time.perf_counter()
    run = replay(x, fs, chunk_s=0.5, speed=40)
    assert list(run) == []
    elapsed = time.perf_counter() - start
    assert elapsed >= 6 / 40 * 0.9
    stats = run.stats
    assert stats.signal_seconds == pytest.approx(6.0)
    assert stats.wall_seconds < elapsed  # sleeping is not counted
    assert stats.beats == len(run.detector.rpeaks) >= 5
    assert stats.to_dict()["alert_latency_p95_s"] is None

    with pytest.raises(ConfigError, match="fs"):
        replay(x)
    with pytest.raises(ConfigError, match="speed"):
        replay(x, fs, speed=0)
    with pytest.raises(ConfigError, match="Hz"):
        replay(x, fs, detector=StreamingEcgDetector(360))


def test_stream_benchmark_reports_latency_and_accuracy() -> None:
    fs = 360
    signal, expected = alert_scenario(fs, seed=4)
    figures = stream_benchmark(signal, fs)
    assert figures["alerts"] == len(expected)
    assert figures["alert_latency_p95_s"] <= 1.0
    assert figures["realtime_factor"] > 50
    assert "rpeak_sensitivity" not in figures  # no reference given
