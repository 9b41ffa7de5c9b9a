"""Per-beat RR and morphology features: values on synthetic beats, stream equals batch."""

from __future__ import annotations

import numpy as np
import pytest

from beat_synth import FS, SynthRecord, synth_record
from medsight.errors import ConfigError, DataError
from medsight.signal.beat_features import (
    AFTER_S,
    ALIGN_S,
    FEATURE_NAMES,
    LOCAL_BEATS,
    MAX_LOOKBACK_S,
    TEMPLATE_BLOCK,
    BeatFeatureStream,
    beat_features,
    rr_columns,
)

COL = {name: i for i, name in enumerate(FEATURE_NAMES)}
DETECTION_DELAY = round(0.3 * FS)  # a causal detector reports a beat about 0.3 s after its R peak


@pytest.fixture(scope="module")
def record() -> SynthRecord:
    return synth_record(1)  # 150 s, N with S and V beats and their annotations


def column(rows: np.ndarray, name: str) -> np.ndarray:
    return rows[:, COL[name]]


def run_stream(
    x: np.ndarray,
    peaks: np.ndarray,
    chunks: list[int] | int,
    *,
    delay: int = DETECTION_DELAY,
    reset_at: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feed ``x`` in chunks, each peak once ``delay`` samples after it have arrived.

    Returns the aligned R peaks, the rows, and the sample count at which each row came out.
    """
    stream = BeatFeatureStream(FS)
    sizes = chunks if isinstance(chunks, list) else [chunks] * (x.size // chunks + 1)
    todo = list(peaks)
    out_peaks, out_rows, out_at = [], [], []
    start = 0
    for size in sizes:
        if start >= x.size:
            break
        piece = x[start : start + size]
        end = start + piece.size
        if reset_at is not None and start <= reset_at < end:
            stream.push_samples(piece[: reset_at - start])
            stream.reset(reset_at)
            piece = piece[reset_at - start :]
        stream.push_samples(piece)
        while todo and todo[0] + delay <= end:
            stream.add_beat(todo.pop(0))
        got, rows = stream.ready()
        out_peaks.append(got)
        out_rows.append(rows)
        out_at.append(np.full(got.size, end))
        start = end
    return np.concatenate(out_peaks), np.concatenate(out_rows), np.concatenate(out_at)


# ------------------------------------------------------------------------------------ batch


def test_rows_cover_the_beats_whose_window_fits(record: SynthRecord) -> None:
    x = record.signal
    extra = np.array([round(0.1 * FS), x.size - round(0.2 * FS)])  # too close to either end
    peaks = np.sort(np.concatenate([record.samples, extra]))
    features = beat_features(x, FS, peaks)
    assert features.rows.shape == (peaks.size - 2, len(FEATURE_NAMES)) == (features.kept.size, 38)
    assert 0 not in features.kept and peaks.size - 1 not in features.kept
    # re-aligned to the R wave within +-50 ms: the synthetic R peak is the annotated sample
    shift = features.aligned - peaks[features.kept]
    assert np.abs(shift).max() <= round(ALIGN_S * FS)
    assert np.mean(np.abs(shift) <= 2) > 0.95
    empty = beat_features(x, FS, [])
    assert empty.rows.shape == (0, 38) and empty.kept.size == 0


def test_rr_columns_follow_their_definitions() -> None:
    rng = np.random.default_rng(0)
    peaks = np.cumsum(rng.integers(200, 400, size=25))
    rr = np.diff(peaks)
    columns = rr_columns(peaks)
    assert np.isnan(columns["pre"][0]) and np.isnan(columns["post"][-1])
    np.testing.assert_array_equal(columns["pre"][1:], rr)
    np.testing.assert_array_equal(columns["post"][:-1], rr)
    for i in range(1, peaks.size):
        before = rr[:i]  # the intervals up to and including this beat's pre_rr
        assert columns["local"][i] == pytest.approx(before[-LOCAL_BEATS:].mean(), rel=1e-12)
        assert columns["mean"][i] == pytest.approx(before.mean(), rel=1e-12)
    assert np.isnan(columns["local"][0]) and np.isnan(columns["mean"][0])


def test_rr_features_in_seconds_and_ratios(record: SynthRecord) -> None:
    features = beat_features(record.signal, FS, record.samples)
    rows, kept = features.rows, features.kept
    rr = np.diff(record.samples) / FS
    np.testing.assert_allclose(column(rows, "pre_rr")[1:], rr[kept[1:] - 1])
    np.testing.assert_allclose(column(rows, "post_rr")[:-1], rr[kept[:-1]])
    pre, local = column(rows, "pre_rr"), column(rows, "local_rr")
    np.testing.assert_allclose(column(rows, "pre_local"), pre / local)
    np.testing.assert_allclose(column(rows, "post_pre"), column(rows, "post_rr") / pre)

    labels = np.array(record.symbols)[kept]
    median = {c: np.nanmedian(rows[labels == c], axis=0) for c in "NSV"}
    # premature S and V beats; the V beat's compensatory pause
    assert 0.9 < median["N"][COL["pre_local"]] < 1.1
    assert median["S"][COL["pre_local"]] < 0.8 and median["V"][COL["pre_local"]] < 0.75
    assert median["V"][COL["post_pre"]] > 1.8 > median["N"][COL["post_pre"]]


def test_qrs_is_wider_and_unlike_the_template_for_v_beats(record: SynthRecord) -> None:
    features = beat_features(record.signal, FS, record.samples)
    labels = np.array(record.symbols)[features.kept]
    width = column(features.rows, "qrs_width")
    n_width, v_width = np.median(width[labels == "N"]), np.median(width[labels == "V"])
    assert 0.03 < n_width < 0.10  # R wave sigma 10 ms
    assert v_width > 0.15 and v_width > 2 * n_width  # sigma 35 ms
    assert np.all(width[labels == "V"] > np.max(width[labels == "N"]))
    corr = column(features.rows, "qrs_corr")
    assert np.median(corr[labels == "N"]) > 0.95 > np.max(corr[labels == "V"])
    # amplitudes are in units of the template's QRS peak-to-peak: N beats are about 1
    assert 0.9 < np.median(column(features.rows, "qrs_ptp_ratio")[labels == "N"]) < 1.1


def test_rows_do_not_depend_on_where_the_peak_is_marked(record: SynthRecord) -> None:
    """Peaks marked 20 ms late give the same beats: windows are re-aligned to the R wave."""
    peaks = record.samples
    exact = beat_features(record.signal, FS, peaks)
    late = beat_features(record.signal, FS, peaks + round(0.02 * FS))
    np.testing.assert_array_equal(exact.aligned, late.aligned)
    np.testing.assert_array_equal(exact.rows, late.rows)


def test_bad_input() -> None:
    x = np.zeros(1000)
    with pytest.raises(ConfigError, match="at least 100 Hz"):
        beat_features(x, 50, [500])
    with pytest.raises(DataError, match="increasing order"):
        beat_features(x, 360, [600, 400])
    with pytest.raises(DataError, match="whole sample indices"):
        beat_features(x, 360, [400.5])
    with pytest.raises(ConfigError):
        BeatFeatureStream(80)


# ------------------------------------------------------------------------------------ stream


@pytest.mark.parametrize("chunks", [37, 180, 1000, "ragged"])
def test_stream_rows_equal_the_batch_rows(record: SynthRecord, chunks: int | str) -> None:
    x, peaks = record.signal, record.samples
    sizes = (
        [int(s) for s in np.random.default_rng(1).integers(1, 700, size=x.size)]
        if chunks == "ragged"
        else int(chunks)
    )
    batch = beat_features(x, FS, peaks)
    got, rows, _ = run_stream(x, peaks, sizes)
    # every beat but the last (whose post_rr never comes) is classified, in order
    assert got.size == batch.kept.size - 1
    np.testing.assert_array_equal(got, batch.aligned[:-1])
    np.testing.assert_array_equal(rows, batch.rows[:-1])


def test_stream_rows_come_out_only_after_their_evidence(record: SynthRecord) -> None:
    """A row needs its window and the next beat, and never changes with later samples."""
    x, peaks = record.signal, record.samples
    got, rows, at = run_stream(x, peaks, 50)
    nxt = peaks[np.searchsorted(peaks, got, side="right")]
    window_end = got + round((AFTER_S + ALIGN_S) * FS)
    assert np.all(at >= window_end) and np.all(at >= nxt + DETECTION_DELAY)
    # the first beats wait for the first template of TEMPLATE_BLOCK windows
    assert np.all(at[:TEMPLATE_BLOCK] >= got[TEMPLATE_BLOCK - 1])

    cut = x.size // 2
    other = x.copy()
    other[cut:] = synth_record(7, seconds=x.size / FS).signal[cut:]  # a different future
    got2, rows2, at2 = run_stream(other, peaks, 50)
    early = at <= cut
    assert early.sum() > 50
    np.testing.assert_array_equal(got2[: early.sum()], got[early])
    np.testing.assert_array_equal(rows2[: early.sum()], rows[early])
    assert np.all(at2[: early.sum()] == at[early])


def test_batch_rows_use_nothing_after_the_next_beat(record: SynthRecord) -> None:
    """Training rows (batch, whole record) equal rows computed on a prefix of the record."""
    x, peaks = record.signal, record.samples
    full = beat_features(x, FS, peaks)
    end = x.size // 3
    prefix = beat_features(x[:end], FS, peaks[peaks < end])
    n = prefix.kept.size - 1  # beats with their next beat in the prefix
    np.testing.assert_array_equal(prefix.kept[:n], full.kept[:n])
    np.testing.assert_array_equal(prefix.rows[:n], full.rows[:n])


def test_stream_reset_starts_afresh(record: SynthRecord) -> None:
    x, peaks = record.signal, record.samples
    at = round(60.3 * FS)
    got, rows, _ = run_stream(x, peaks, 90, reset_at=at)
    after = got >= at
    segment = beat_features(x[at:], FS, peaks[peaks >= at] - at)
    np.testing.assert_array_equal(got[after], segment.aligned[:-1] + at)
    np.testing.assert_array_equal(rows[after], segment.rows[:-1])
    assert np.isnan(column(rows[after], "pre_rr")[0])  # the RR history restarted too
    assert got[~after].size > 0 and got[~after].max() < at


def test_stream_pause_gives_post_rr_as_the_pause_length(record: SynthRecord) -> None:
    x, peaks = record.signal, record.samples
    stream = BeatFeatureStream(FS)
    last = int(peaks[20])
    stream.push_samples(x[: last + round(FS)])
    for r in peaks[:21]:
        stream.add_beat(int(r))
    got, rows = stream.ready()
    assert got.size == 20  # beat 20 waits for its next beat ...
    stream.pause(last, 900)
    got, rows = stream.ready()  # ... or a pause
    assert got.size == 1 and column(rows, "post_rr")[0] == pytest.approx(900 / FS)


def test_stream_gives_no_row_to_a_beat_reported_too_late(record: SynthRecord) -> None:
    x, peaks = record.signal, record.samples
    stream = BeatFeatureStream(FS)
    for start in range(0, round(30 * FS), 500):
        stream.push_samples(x[start : start + 500])
        stream.ready()  # lets the stream forget old samples
    stream.add_beat(int(peaks[2]))  # older than MAX_LOOKBACK_S: its samples are gone
    later = peaks[(peaks > 31 * FS - MAX_LOOKBACK_S * FS) & (peaks < 29 * FS)]
    for r in later:
        stream.add_beat(int(r))
    stream.push_samples(x[round(30 * FS) : round(40 * FS)])
    got, _ = stream.ready()
    assert got.size == later.size - 1  # all but the last, which waits for its next beat
    assert np.all(got > 20 * FS)
