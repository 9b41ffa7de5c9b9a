"""Per-beat features for AAMI beat classification, the same for a whole record and for a stream.

In the spirit of de Chazal et al. 2004 (RR intervals and samples of the beat's morphology), each
beat at an R peak gets:

* RR features: ``pre_rr`` and ``post_rr`` (s), ``local_rr`` (mean of the last
  :data:`LOCAL_BEATS` RR intervals, up to and including ``pre_rr``), ``mean_rr`` (the same over
  the last :data:`MEAN_BEATS`, about 4 minutes), and their ratios;
* morphology of the beat window ``[-0.25 s, +0.45 s]`` around the R peak, re-aligned to the
  largest deflection within +-50 ms and with its median subtracted: 20 bin means (10 of 20 ms
  over the QRS, 50 ms over the P and T waves) in units of the template's QRS amplitude, QRS width
  (from the slope), QRS area, amplitudes, and Pearson r with the template over the whole window
  and over the QRS.

The *template* of a beat is a causal running median: beats (those whose window fits) are
numbered in order and taken in blocks of :data:`TEMPLATE_BLOCK`; block ``j`` is compared with the
median of the :data:`TEMPLATE_HISTORY` windows before it (block 0 with the median of the first
block). Everything depends only on the past plus the next beat (``post_rr``), so
:class:`BeatFeatureStream` computes exactly the rows of :func:`beat_features` as beats arrive,
one beat late (the first :data:`TEMPLATE_BLOCK` beats after a (re)start wait for the first
template). Windows are binned in seconds, so features do not depend much on the sampling rate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from medsight.errors import ConfigError, DataError
from medsight.signal._checks import as_indices, as_lead, check_fs

BEFORE_S = 0.25
AFTER_S = 0.45
ALIGN_S = 0.05
QRS_S = (-0.10, 0.10)  # the QRS part of the window (template correlation, amplitude)
WIDTH_S = (-0.15, 0.20)  # where the QRS width is measured
LOCAL_BEATS = 10
MEAN_BEATS = 300
TEMPLATE_BLOCK = 8
TEMPLATE_HISTORY = 32
MIN_FS = 100.0
FEATURES_VERSION = 2  # bumped when a feature's definition changes (bundles record it)
MAX_LOOKBACK_S = 10.0  # a stream keeps at most this much signal for beats reported late

# Bin edges in seconds from the R peak: P wave, QRS (20 ms), ST-T.
BIN_EDGES_S: tuple[float, ...] = (
    -0.25, -0.20, -0.15, -0.10, -0.08, -0.06, -0.04, -0.02, 0.0, 0.02, 0.04, 0.06, 0.08, 0.10,
    0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.45,
)  # fmt: skip

RR_FEATURES: tuple[str, ...] = (
    "pre_rr",
    "post_rr",
    "local_rr",
    "mean_rr",
    "pre_local",
    "post_local",
    "pre_mean",
    "post_pre",
    "local_mean",
)
SHAPE_FEATURES: tuple[str, ...] = (
    "template_corr",
    "qrs_corr",
    "qrs_width",
    "qrs_area",
    "qrs_ptp_ratio",
    "r_amplitude",
    "max_amplitude",
    "min_amplitude",
    "template_rmse",
)
BIN_FEATURES: tuple[str, ...] = tuple(f"m{i:02d}" for i in range(len(BIN_EDGES_S) - 1))
FEATURE_NAMES: tuple[str, ...] = (*RR_FEATURES, *SHAPE_FEATURES, *BIN_FEATURES)


@dataclass(frozen=True)
class BeatFeatures:
    """Feature rows of the beats whose window fits in the lead.

    ``rows`` is (n_kept, len(FEATURE_NAMES)) float64 with NaN where a value is undefined (no
    previous beat, flat template); ``kept`` indexes the input peaks; ``aligned`` are the kept
    beats' re-aligned R peaks (samples).
    """

    rows: np.ndarray
    kept: np.ndarray
    aligned: np.ndarray


class _Geometry:
    """Sample offsets of the window, its bins and regions at one sampling rate."""

    def __init__(self, fs: float) -> None:
        self.fs = check_fs(fs)
        if self.fs < MIN_FS:
            raise ConfigError(
                f"beat features need at least {MIN_FS:g} Hz (20 ms bins); got {self.fs:g} Hz."
            )
        self.before, self.after = round(BEFORE_S * fs), round(AFTER_S * fs)
        self.margin = round(ALIGN_S * fs)
        self.width = self.before + self.after
        edges = np.array([self.before + round(e * fs) for e in BIN_EDGES_S])
        self.edges = np.clip(edges, 0, self.width)
        self.counts = np.diff(self.edges).astype(float)
        self.qrs = slice(*(self.before + round(e * fs) for e in QRS_S))
        self.qrs_width = slice(*(self.before + round(e * fs) for e in WIDTH_S))
        self.smooth = max(1, round(0.008 * fs))

    def fits(self, peaks: np.ndarray, start: int, end: int) -> np.ndarray:
        """Whether each peak's window plus alignment margin lies within ``[start, end)``."""
        reach = self.margin
        return (peaks - self.before - reach >= start) & (peaks + self.after + reach <= end)


# ------------------------------------------------------------------------------------ batch


def beat_features(x: ArrayLike, fs: float, rpeaks: ArrayLike) -> BeatFeatures:
    """Feature rows (:data:`FEATURE_NAMES`) of the beats at ``rpeaks`` (increasing samples).

    All peaks count for the RR intervals; beats whose window (0.25 s before, 0.45 s after, plus
    50 ms to re-align) does not fit in the lead get no row.
    """
    lead = as_lead(x, allow_nan=True)
    geo = _Geometry(fs)
    peaks = as_indices(rpeaks)
    if np.any(np.diff(peaks) < 0):
        raise DataError("rpeaks must be in increasing order (sort the beats by sample first).")
    rr = rr_columns(peaks)
    kept = np.flatnonzero(geo.fits(peaks, 0, lead.size))
    windows, aligned = aligned_windows(lead, peaks[kept], geo)
    templates = block_templates(windows)
    rows = assemble(geo, {k: v[kept] for k, v in rr.items()}, windows, templates)
    return BeatFeatures(rows, kept, aligned)


def rr_columns(peaks: np.ndarray) -> dict[str, np.ndarray]:
    """``pre``, ``post``, ``local`` and ``mean`` RR in samples per peak (NaN where undefined).

    ``local`` and ``mean`` average the last :data:`LOCAL_BEATS` / :data:`MEAN_BEATS` intervals
    up to and including ``pre``; integer sums keep them exactly equal to the stream's.
    """
    n = peaks.size
    rr = np.diff(peaks)
    pre = np.full(n, np.nan)
    post = np.full(n, np.nan)
    pre[1:] = rr
    post[:-1] = rr
    cumulative = np.concatenate([[0], np.cumsum(rr)])  # cumulative[i] = sum of rr[:i]
    ends = np.arange(n)  # beat i has rr[:i] before it (i intervals)
    columns = {"pre": pre, "post": post}
    for name, span in (("local", LOCAL_BEATS), ("mean", MEAN_BEATS)):
        starts = np.maximum(ends - span, 0)
        count = ends - starts
        with np.errstate(invalid="ignore", divide="ignore"):
            columns[name] = np.where(
                count > 0, (cumulative[ends] - cumulative[starts]) / np.maximum(count, 1), np.nan
            )
    return columns


def block_templates(windows: np.ndarray) -> np.ndarray:
    """The running-median template of each window (see the module docstring), (n, width)."""
    n = windows.shape[0]
    templates = np.empty_like(windows)
    for block in range(0, math_ceil(n, TEMPLATE_BLOCK)):
        lo, hi = block * TEMPLATE_BLOCK, min((block + 1) * TEMPLATE_BLOCK, n)
        templates[lo:hi] = template_for_block(windows, block)
    return templates


def template_for_block(windows: np.ndarray, block: int) -> np.ndarray:
    """Median of the windows numbered ``[8j - 32, 8j)`` (block 0 and 1: the first 8)."""
    end = max(block * TEMPLATE_BLOCK, TEMPLATE_BLOCK)
    start = max(0, end - TEMPLATE_HISTORY)
    return np.median(windows[start:end], axis=0)


def math_ceil(n: int, d: int) -> int:
    return -(-n // d)


# ------------------------------------------------------------------------------------ shared


def aligned_windows(
    lead: np.ndarray, peaks: np.ndarray, geo: _Geometry, offset: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Windows re-aligned to the largest deflection within +-margin, minus their median.

    ``lead[i]`` is sample ``offset + i``; every peak's window plus margin must lie inside.
    Returns ``(windows (n, width), aligned peaks)``.
    """
    m, b = geo.margin, geo.before
    span = np.arange(-b - m, geo.after + m)
    extended = lead[(peaks - offset)[:, None] + span]
    base = np.median(extended, axis=1, keepdims=True)
    centre = np.abs(extended[:, b : b + 2 * m + 1] - base)
    shift = np.argmax(centre, axis=1)  # 0..2m, the R peak at index b + shift of `extended`
    index = shift[:, None] + np.arange(geo.width)
    windows = np.take_along_axis(extended, index, axis=1)
    # the aligned window's own median, so that a beat's row depends on its aligned R peak only,
    # not on where the (annotated or detected) peak was marked
    windows -= np.median(windows, axis=1, keepdims=True)
    return windows, peaks + shift - m


def assemble(
    geo: _Geometry, rr: dict[str, np.ndarray], windows: np.ndarray, templates: np.ndarray
) -> np.ndarray:
    """Feature rows from RR columns (samples) and windows with their templates."""
    fs = geo.fs
    pre, post, local, mean = (rr[k] / fs for k in ("pre", "post", "local", "mean"))
    with np.errstate(invalid="ignore", divide="ignore"):
        rr_part = [pre, post, local, mean, pre / local, post / local, pre / mean, post / pre]
        rr_part.append(local / mean)
    shape = morphology(geo, windows, templates)
    return np.column_stack([*rr_part, shape]) if len(pre) else np.empty((0, len(FEATURE_NAMES)))


def morphology(geo: _Geometry, w: np.ndarray, t: np.ndarray) -> np.ndarray:
    """:data:`SHAPE_FEATURES` and :data:`BIN_FEATURES` columns, (n, 9 + 20)."""
    n = w.shape[0]
    if n == 0:
        return np.empty((0, len(SHAPE_FEATURES) + len(BIN_FEATURES)))
    q = geo.qrs
    t_qrs_ptp = np.ptp(t[:, q], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(t_qrs_ptp > 1e-6, t_qrs_ptp, np.nan)[:, None]
        bins = np.add.reduceat(w, geo.edges[:-1], axis=1) / geo.counts / scale
        shape = [
            _row_corr(w, t),
            _row_corr(w[:, q], t[:, q]),
            _qrs_width(geo, w),
            np.abs(w[:, q]).sum(axis=1) / geo.fs / scale[:, 0],
            np.ptp(w[:, q], axis=1) / scale[:, 0],
            w[:, geo.before] / scale[:, 0],
            w.max(axis=1) / scale[:, 0],
            w.min(axis=1) / scale[:, 0],
            np.sqrt(np.mean((w - t) ** 2, axis=1)) / scale[:, 0],
        ]
    return np.column_stack([*shape, bins])


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``a`` with the same row of ``b``; NaN where one is flat."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denom = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (a * b).sum(axis=1) / denom, np.nan)


def _qrs_width(geo: _Geometry, w: np.ndarray) -> np.ndarray:
    """Seconds between the first and last sample whose slope is above 25% of the steepest."""
    region = w[:, geo.qrs_width]
    k = geo.smooth
    if k > 1:  # moving average over ~8 ms against noise
        c = np.cumsum(np.pad(region, ((0, 0), (1, 0))), axis=1)
        region = (c[:, k:] - c[:, :-k]) / k
    slope = np.abs(np.diff(region, axis=1))
    steep = slope >= 0.25 * slope.max(axis=1, keepdims=True)
    first = np.argmax(steep, axis=1)
    last = steep.shape[1] - 1 - np.argmax(steep[:, ::-1], axis=1)
    width = (last - first + 1) / geo.fs
    return np.where(slope.max(axis=1) > 0, width, np.nan)


# ------------------------------------------------------------------------------------ stream


class BeatFeatureStream:
    """:func:`beat_features` computed incrementally on a sample stream.

    Feed samples with :meth:`push_samples`, R peaks with :meth:`add_beat` (in order), and call
    :meth:`ready` for the rows that can now be computed: a beat needs its window (0.5 s after
    the R peak), the next beat (``post_rr``) or a :meth:`pause` (then ``post_rr`` is the pause
    length, a lower bound), and its template. The rows equal those of :func:`beat_features` on
    the same samples and peaks. :meth:`reset` starts afresh after missing samples. A beat added
    after its window's samples were let go (more than :data:`MAX_LOOKBACK_S` back) gets no row.
    """

    def __init__(self, fs: float) -> None:
        self.geo = _Geometry(fs)
        self._buffer = np.empty(0)
        self._base = 0  # absolute index of _buffer[0]
        self.reset(0)

    @property
    def end(self) -> int:
        """Samples seen so far (the absolute index of the next sample)."""
        return self._base + self._buffer.size

    def reset(self, at: int) -> None:
        """Forget the beats, RR history and template; windows start at sample ``at`` or later."""
        self._start = int(at)
        self._last_r: int | None = None
        self._rr: deque[int] = deque(maxlen=MEAN_BEATS)
        # pending beats: [r, pre, local, mean, post, window or None, kept index (-1 unknown)]
        self._pending: deque[list] = deque()
        self._history: deque[np.ndarray] = deque(maxlen=TEMPLATE_HISTORY)
        self._kept = 0
        self._templates: dict[int, np.ndarray] = {}

    def push_samples(self, x: np.ndarray) -> None:
        """Append samples (NaN allowed: a beat whose window holds NaN should follow a reset)."""
        self._buffer = np.concatenate([self._buffer, np.asarray(x, dtype=np.float64)])

    def add_beat(self, r: int) -> None:
        """The next R peak (absolute sample index)."""
        r = int(r)
        pre = local = mean = np.nan
        if self._last_r is not None:
            pre = r - self._last_r
            self._rr.append(r - self._last_r)
            if self._pending and np.isnan(self._pending[-1][4]):
                self._pending[-1][4] = pre
            history = list(self._rr)
            local = sum(history[-LOCAL_BEATS:]) / min(len(history), LOCAL_BEATS)
            mean = sum(history) / len(history)
        self._last_r = r
        self._pending.append([r, pre, local, mean, np.nan, None, -1])

    def pause(self, last_r: int, length: int) -> None:
        """No beat followed ``last_r`` for ``length`` samples: its ``post_rr`` is ``length``."""
        if self._pending and self._pending[-1][0] == last_r and np.isnan(self._pending[-1][4]):
            self._pending[-1][4] = float(length)

    def ready(self) -> tuple[np.ndarray, np.ndarray]:
        """``(aligned R peaks, feature rows)`` of the beats complete now, in order."""
        self._extract()
        done: list[list] = []
        while self._pending:
            beat = self._pending[0]
            if beat[6] == -1 or (beat[6] >= 0 and np.isnan(beat[4])):
                break  # window not yet seen, or the next beat not yet known
            if beat[6] >= 0 and beat[6] // TEMPLATE_BLOCK not in self._templates:
                break  # the first template needs the first block of windows
            self._pending.popleft()
            if beat[6] >= 0:
                done.append(beat)
        self._trim()
        if not done:
            return np.empty(0, dtype=np.int64), np.empty((0, len(FEATURE_NAMES)))
        windows = np.stack([b[5][1] for b in done])
        templates = np.stack([self._templates[b[6] // TEMPLATE_BLOCK] for b in done])
        names = ("pre", "local", "mean", "post")  # positions 1-4 of a pending beat
        rr = {name: np.array([b[i] for b in done], dtype=float) for i, name in enumerate(names, 1)}
        rows = assemble(self.geo, rr, windows, templates)
        for block in [b for b in self._templates if b < done[-1][6] // TEMPLATE_BLOCK]:
            del self._templates[block]
        return np.array([b[5][0] for b in done], dtype=np.int64), rows

    def _extract(self) -> None:
        """Cut the windows of pending beats whose samples have all arrived."""
        geo = self.geo
        for beat in self._pending:
            if beat[6] != -1 or beat[5] is not None:
                continue
            r = beat[0]
            if not geo.fits(np.array([r]), self._start, 1 << 62)[0]:
                beat[6] = -2  # never fits (too close to a (re)start): no row
                continue
            if r + geo.after + geo.margin > self.end:
                break
            if r - geo.before - geo.margin < self._base:
                beat[6] = -2  # reported later than the buffer reaches back: no row
                continue
            windows, aligned = aligned_windows(self._buffer, np.array([r]), geo, self._base)
            beat[5] = (int(aligned[0]), windows[0])
            beat[6] = self._kept
            self._kept += 1
            self._history.append(windows[0])
            if self._kept % TEMPLATE_BLOCK == 0:
                block = self._kept // TEMPLATE_BLOCK
                template = np.median(np.stack(self._history), axis=0)
                self._templates[block] = template
                if block == 1:
                    self._templates[0] = template

    def _trim(self) -> None:
        """Keep the samples that a window still to be cut may need, at most ``MAX_LOOKBACK_S``.

        That is from the first beat without a window, and from the last beat (a later one,
        found by a detector's search-back, can lie up to about 1.66 RR before the newest sample)
        or, before the first beat, from the (re)start (a detector learning its thresholds reports
        the first beats seconds late); never less than one window plus margins.
        """
        geo = self.geo
        reach = geo.before + geo.margin
        keep_from = self.end - (geo.width + 2 * geo.margin)
        waiting = [b[0] for b in self._pending if b[6] == -1]
        last = self._start + reach if self._last_r is None else self._last_r
        for r in [*waiting[:1], last]:
            keep_from = min(keep_from, r - reach)
        keep_from = max(keep_from, self.end - round(MAX_LOOKBACK_S * geo.fs))
        cut = keep_from - self._base
        if cut > 4 * geo.width:
            self._buffer = self._buffer[cut:]
            self._base = keep_from
