"""A real-time ECG monitor: samples in, in chunks of any size, alerts out as the evidence arrives.

:class:`StreamingEcgDetector` takes one lead (mV) in order, in chunks of any length, and returns
the alerts each chunk triggers:

* beats, from :class:`CausalQrsDetector`, a causal Pan-Tompkins detector (band-pass 5-15 Hz,
  derivative, squaring, 150 ms moving integration, adaptive signal/noise thresholds, 200 ms
  refractory period, T-wave and search-back rules). A beat is final about 0.3 s after its R peak.
  Every filter keeps its state between chunks, and every decision depends only on samples up to a
  fixed look-ahead, so the beats are the same whatever the chunk sizes. On MIT-BIH record 100
  (lead MLII) it finds 2272 of the 2273 annotated beats (the missed one is 25 ms before the end
  of the record) with no false detection, within 150 ms;
* ``bradycardia`` / ``tachycardia`` when each of the last 8 beats is below 40 / above 150 bpm,
  ``pause`` when no beat follows the last one for 2.5 s (also on a flat line, which may be
  asystole; not across missing samples, after which the detector relearns for 2 s);
* ``atrial_fibrillation`` / ``af_ended`` from rhythm updates: every 5 s of signal the last window
  of the bundle's length is classified by the :class:`~medsight.bundle.ecg.EcgBundle`; AF is
  announced after 2 consecutive updates with P(AF) >= 0.5 and ended after 2 below. Updates skip
  lost signal: their window starts after it and needs the bundle's ``min_seconds``;
* ``signal_quality`` when the signal is lost (at the first NaN sample, or when the last 1 s,
  judged every 0.25 s, is a flat line), noisy (the bundle's "~" class) or restored;
* with a beat bundle (:class:`~medsight.bundle.ecg_beats.BeatBundle`), every detected beat is
  classified (AAMI N, S, V, F, Q) once the next beat is found (or a pause announced), from the
  features of :class:`~medsight.signal.beat_features.BeatFeatureStream`:
  ``ventricular_ectopy`` / ``supraventricular_ectopy`` on a V / S beat, at most one of each per
  ``ectopy_every_s`` (the next one counts the beats since), and ``ventricular_run`` once per run
  of ``run_beats`` or more consecutive V beats.

Each :class:`Alert` carries ``event_time_s`` (signal time of its evidence) and ``emitted_time_s``
(signal time of the end of the chunk whose :meth:`~StreamingEcgDetector.push` returned it); their
difference is the alert latency. :func:`replay` feeds a recording chunk by chunk (optionally at
``speed`` x real time) and :func:`stream_benchmark` measures speed, latency and beat accuracy.
"""

from __future__ import annotations

import math
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import signal as sps
from scipy.ndimage import maximum_filter1d

from medsight.errors import ConfigError, DataError

if TYPE_CHECKING:
    from medsight.bundle.ecg import EcgBundle
    from medsight.bundle.ecg_beats import BeatBundle
    from medsight.io.ecg import EcgRecord

AF_CLASS = "A"
NOISY_CLASS = "~"


# ------------------------------------------------------------------------------------ records


@dataclass
class Alert:
    """Something the monitor noticed: what, when it happened and when it was known."""

    kind: str
    message: str
    event_time_s: float
    emitted_time_s: float = math.nan
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def latency_s(self) -> float:
        """Signal seconds between the evidence and the end of the chunk that revealed it."""
        return self.emitted_time_s - self.event_time_s

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RhythmUpdate:
    """One rhythm classification of the window ending at ``time_s``."""

    time_s: float
    window_s: float
    probabilities: dict[str, float]

    @property
    def label(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)


@dataclass(frozen=True)
class StreamSettings:
    """Alert thresholds and cadences of :class:`StreamingEcgDetector` (seconds, bpm, mV)."""

    rhythm_every_s: float = 5.0
    af_probability: float = 0.5
    af_updates: int = 2
    brady_bpm: float = 40.0
    tachy_bpm: float = 150.0
    rate_beats: int = 8
    pause_s: float = 2.5
    quality_window_s: float = 1.0
    flat_mv: float = 0.01
    beat_alerts: bool = False
    ectopy_every_s: float = 10.0
    run_beats: int = 3

    def __post_init__(self) -> None:
        positive = (
            "rhythm_every_s",
            "pause_s",
            "quality_window_s",
            "tachy_bpm",
            "brady_bpm",
            "ectopy_every_s",
        )
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"StreamSettings.{name} must be a number > 0; got {value!r}.")
        if not 0 < self.af_probability <= 1:
            raise ConfigError(
                f"StreamSettings.af_probability must be in (0, 1]; got {self.af_probability!r}."
            )
        if self.af_updates < 1 or self.rate_beats < 1:
            raise ConfigError("StreamSettings.af_updates and rate_beats must be at least 1.")
        if self.run_beats < 2:
            raise ConfigError(f"StreamSettings.run_beats must be at least 2; got {self.run_beats}.")
        if self.brady_bpm >= self.tachy_bpm:
            raise ConfigError("StreamSettings.brady_bpm must be below tachy_bpm.")


# ------------------------------------------------------------------------------------ QRS


@dataclass(frozen=True)
class _Candidate:
    index: int  # the integrated signal's local maximum (absolute sample)
    value: float
    rpeak: int
    slope: float


class CausalQrsDetector:
    """Pan-Tompkins (1985) R-peak detection on a sample stream, one chunk at a time.

    Written by hand because the library detectors (NeuroKit2's ``ecg_findpeaks``, wfdb's XQRS,
    ``medsight.signal.peaks``) take a whole recording: they filter forwards and backwards, pick
    peaks with global distance rules and set thresholds from the full signal, so they can neither
    run on a stream nor give the same answer for a prefix as for the whole. Here every stage is
    causal: ``sosfilt``/``lfilter`` carry their state (``zi``) from chunk to chunk, a peak of the
    integrated signal is a candidate once it is the largest within +-200 ms (decided 200 ms after
    it), and candidates are classified in signal order, so the R peaks do not depend on how the
    stream is cut. Thresholds are learnt on the first 2 s (beats there are found once it ends).
    The R peak is the largest deflection of the 0.5 Hz high-passed lead in the 200 ms before the
    integrated signal's peak. :meth:`push` returns events in signal order: ``("beat", r_peak)``
    and ``("pause", last_r_peak)`` when no beat can follow ``last_r_peak`` within ``pause_s``.
    """

    def __init__(
        self,
        fs: float,
        *,
        pause_s: float = 2.5,
        refractory_s: float = 0.2,
        integration_s: float = 0.15,
        learn_s: float = 2.0,
    ) -> None:
        fs = _check_fs(fs)
        if fs <= 32:
            raise ConfigError(f"streaming QRS detection needs fs above 32 Hz; got {fs:g} Hz.")
        self.fs = fs
        self._bp_sos = sps.butter(2, [5.0, 15.0], btype="bandpass", fs=fs, output="sos")
        self._hp_sos = sps.butter(1, 0.5, btype="highpass", fs=fs, output="sos")
        self._deriv = np.array([2.0, 1.0, 0.0, -1.0, -2.0]) * (fs / 8.0)
        n_int = max(1, round(integration_s * fs))
        self._integrator = np.full(n_int, 1.0 / n_int)
        self._w = max(1, round(refractory_s * fs))  # refractory period and candidate half-window
        self._locate = self._w  # the R peak lies within this many samples before its candidate
        self._t_wave = round(0.36 * fs)
        self._n_learn = max(1, round(learn_s * fs))
        self._pause = max(1, round(pause_s * fs))
        self._keep = 2 * self._w + n_int
        self.rpeaks: list[int] = []
        self.samples_seen = 0
        self._restart()

    # ------------------------------------------------------------------------------ state

    def _restart(self) -> None:
        """Forget the filters and thresholds: learning starts again at the next sample."""
        n = self.samples_seen
        self._zi: list[np.ndarray] | None = None
        self._hp = np.empty(0)
        self._slope = np.empty(0)
        self._mwi = np.empty(0)
        self._base = n  # absolute index of the buffers' first sample
        self._learn_start = n
        self._learned = False
        self._scan = n  # candidates below this index have been decided
        self._spki = self._npki = 0.0
        self._last_qrs: int | None = None
        self._last_r: int | None = None
        self._last_slope = 0.0
        self._rr: deque[int] = deque(maxlen=8)
        self._pending: list[_Candidate] = []
        self._deadline: int | None = None
        self._pause_at: int | None = None

    @property
    def threshold(self) -> float:
        """The current primary threshold on the integrated signal (THR I1 of Pan-Tompkins)."""
        return self._npki + 0.25 * (self._spki - self._npki)

    # ------------------------------------------------------------------------------ input

    def gap(self, n: int) -> None:
        """``n`` missing samples (NaN): the detector restarts after them."""
        self.samples_seen += int(n)
        self._restart()

    def push(self, x: np.ndarray) -> list[tuple[str, int]]:
        """Feed finite samples; returns ``("beat", r)`` and ``("pause", last_r)`` events."""
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return []
        self._filter(x)
        self.samples_seen += x.size
        events: list[tuple[str, int]] = []
        if not self._learned:
            if self.samples_seen < self._learn_start + self._n_learn:
                return events
            self._learn()
        end = self.samples_seen - self._w  # a candidate needs w samples after it
        for candidate in self._candidates(self._scan, end):
            self._advance(candidate.index - 1, events)
            self._classify(candidate, events)
        self._scan = max(self._scan, end)
        self._advance(self._scan - 1, events)
        self._trim()
        return events

    def _filter(self, x: np.ndarray) -> None:
        if self._zi is None:
            self._zi = [
                sps.sosfilt_zi(self._bp_sos) * x[0],
                sps.sosfilt_zi(self._hp_sos) * x[0],
                np.zeros(len(self._deriv) - 1),
                np.zeros(len(self._integrator) - 1),
            ]
        bp, self._zi[0] = sps.sosfilt(self._bp_sos, x, zi=self._zi[0])
        hp, self._zi[1] = sps.sosfilt(self._hp_sos, x, zi=self._zi[1])
        slope, self._zi[2] = sps.lfilter(self._deriv, 1.0, bp, zi=self._zi[2])
        mwi, self._zi[3] = sps.lfilter(self._integrator, 1.0, slope * slope, zi=self._zi[3])
        self._hp = np.concatenate([self._hp, hp])
        self._slope = np.concatenate([self._slope, np.abs(slope)])
        self._mwi = np.concatenate([self._mwi, mwi])

    def _learn(self) -> None:
        start = self._learn_start - self._base
        first = self._mwi[start : start + self._n_learn]
        self._spki = 0.5 * float(first.max())
        self._npki = 0.5 * float(first.mean())
        self._learned = True
        self._deadline = self._learn_start + round(1.66 * self.fs)

    def _trim(self) -> None:
        keep_from = max(self._base, self._scan - self._keep)
        if keep_from - self._base > 4 * self._keep:
            cut = keep_from - self._base
            self._hp, self._slope, self._mwi = self._hp[cut:], self._slope[cut:], self._mwi[cut:]
            self._base = keep_from

    # ------------------------------------------------------------------------------ peaks

    def _candidates(self, start: int, end: int) -> list[_Candidate]:
        """Local maxima of the integrated signal in ``[start, end)``, each the largest in +-w."""
        if end <= start:
            return []
        w = self._w
        lo = max(start - w, self._base)
        seg = self._mwi[lo - self._base : end + w - self._base]
        if lo > start - w:
            seg = np.concatenate([np.full(lo - (start - w), -np.inf), seg])
        ahead = maximum_filter1d(seg, w, origin=-(w // 2), mode="constant", cval=-np.inf)
        k = np.arange(w, w + end - start)  # seg[k] is sample start + k - w
        value = seg[k]
        is_peak = (value > ahead[k - w]) & (value >= ahead[k + 1]) & (value > 0)
        return [self._candidate(int(i)) for i in np.flatnonzero(is_peak) + start]

    def _candidate(self, index: int) -> _Candidate:
        lo = max(index - self._locate, self._base, self._learn_start)
        window = self._hp[lo - self._base : index + 1 - self._base]
        rpeak = lo + int(np.argmax(np.abs(window)))
        n_int = len(self._integrator)
        s_lo = max(index - n_int, self._base) - self._base
        slope = float(self._slope[s_lo : index + 1 - self._base].max())
        return _Candidate(index, float(self._mwi[index - self._base]), rpeak, slope)

    def _classify(self, c: _Candidate, events: list[tuple[str, int]]) -> None:
        if c.value > self.threshold and not self._is_t_wave(c):
            self._accept(c, 0.125, events)
        else:
            self._npki = 0.125 * c.value + 0.875 * self._npki
            self._pending.append(c)

    def _is_t_wave(self, c: _Candidate) -> bool:
        """Within 360 ms of the last QRS with less than half its slope (or the same R peak)."""
        if self._last_r is not None and c.rpeak <= self._last_r:
            return True
        if self._last_qrs is None or c.index - self._last_qrs >= self._t_wave:
            return False
        return c.slope < 0.5 * self._last_slope

    def _accept(self, c: _Candidate, weight: float, events: list[tuple[str, int]]) -> None:
        self._spki = weight * c.value + (1 - weight) * self._spki
        if self._last_r is not None:
            self._rr.append(c.rpeak - self._last_r)
        self._last_qrs, self._last_r, self._last_slope = c.index, c.rpeak, c.slope
        self._pending = [p for p in self._pending if p.index > c.index]
        self._deadline = c.index + round(1.66 * self._rr_mean())
        self._pause_at = c.rpeak + self._pause + self._locate
        self.rpeaks.append(c.rpeak)
        events.append(("beat", c.rpeak))

    def _rr_mean(self) -> float:
        return float(np.mean(self._rr)) if self._rr else self.fs

    def _advance(self, t: int, events: list[tuple[str, int]]) -> None:
        """Run the search-backs and pause checks due at or before sample ``t``, in order."""
        while True:
            due = [d for d in (self._deadline, self._pause_at) if d is not None and d <= t]
            if not due:
                return
            if self._deadline is not None and self._deadline == min(due):
                self._search_back(events)
            else:
                events.append(("pause", int(self._last_r)))  # type: ignore[arg-type]
                self._pause_at = None

    def _search_back(self, events: list[tuple[str, int]]) -> None:
        """No beat for 1.66 mean RR: take the largest candidate above half the threshold."""
        deadline = int(self._deadline)  # type: ignore[arg-type]
        limit = 0.5 * self.threshold
        eligible = [
            c
            for c in self._pending
            if c.index <= deadline and c.value > limit and not self._is_t_wave(c)
        ]
        if eligible:
            self._accept(max(eligible, key=lambda c: c.value), 0.25, events)
            return
        # Nothing there: let the signal level decay so that a smaller QRS can be found again.
        self._spki = self._npki + 0.5 * (self._spki - self._npki)
        self._pending = [c for c in self._pending if c.index > deadline]
        self._deadline = deadline + max(1, round(1.66 * self._rr_mean()))


# ------------------------------------------------------------------------------------ monitors


class _BeatMonitor:
    """Heart-rate and pause alerts from the beat events."""

    def __init__(self, fs: float, settings: StreamSettings) -> None:
        self.fs = fs
        self.settings = settings
        self.reset()

    def reset(self) -> None:
        self._last_r: int | None = None
        self._rates: deque[float] = deque(maxlen=self.settings.rate_beats)
        self._paused_since: int | None = None
        self._state = {"tachycardia": False, "bradycardia": False}

    def on_events(self, events: list[tuple[str, int]]) -> list[Alert]:
        alerts: list[Alert] = []
        for kind, sample in events:
            if kind == "restart":
                self.reset()
            elif kind == "pause":
                alerts.append(self._pause_alert(sample, None))
            else:
                alerts.extend(self._on_beat(sample))
        return alerts

    def _on_beat(self, r: int) -> list[Alert]:
        s = self.settings
        alerts: list[Alert] = []
        previous, self._last_r = self._last_r, r
        if previous is None:
            return alerts
        rr = (r - previous) / self.fs
        if rr > s.pause_s and self._paused_since != previous:
            alerts.append(self._pause_alert(previous, rr))
        self._paused_since = None
        rate = 60.0 / rr
        self._rates.append(rate)
        if s.beat_alerts:
            alerts.append(
                Alert("beat", f"beat, {rate:.0f} bpm", r / self.fs, details=_rate_details(rr))
            )
        if len(self._rates) == self._rates.maxlen:
            alerts.extend(self._rate_alerts(r))
        return alerts

    def _rate_alerts(self, r: int) -> list[Alert]:
        """Onset when every one of the last beats is beyond the limit; re-armed by the median."""
        s = self.settings
        rates = np.array(self._rates)
        median = float(np.median(rates))
        rules = {
            "tachycardia": (bool((rates > s.tachy_bpm).all()), median <= s.tachy_bpm),
            "bradycardia": (bool((rates < s.brady_bpm).all()), median >= s.brady_bpm),
        }
        alerts = []
        for kind, (onset, over) in rules.items():
            if onset and not self._state[kind]:
                mean = float(rates.mean())
                limit = f"> {s.tachy_bpm:g}" if kind == "tachycardia" else f"< {s.brady_bpm:g}"
                message = f"{kind}: {mean:.0f} bpm over the last {len(rates)} beats ({limit} bpm)"
                details = {"heart_rate_bpm": round(mean, 1), "beats": len(rates)}
                alerts.append(Alert(kind, message, r / self.fs, details=details))
                self._state[kind] = True
            elif over and self._state[kind]:
                self._state[kind] = False
        return alerts

    def _pause_alert(self, since: int, length_s: float | None) -> Alert:
        s = self.settings
        self._paused_since = since
        start = since / self.fs
        if length_s is None:
            message = f"pause: no beat for {s.pause_s:g} s since {start:.2f} s"
        else:
            message = f"pause: {length_s:.2f} s without a beat after {start:.2f} s"
        details = {"last_beat_s": round(start, 3), "pause_s": length_s}
        return Alert("pause", message, start + s.pause_s, details=details)


class _QualityMonitor:
    """Signal lost (NaN samples, or a flat line for ``quality_window_s``) and restored.

    NaN is announced at the first missing sample. Flatness is judged every quarter of
    ``quality_window_s`` on the window that ends there: flat when its range is at most
    ``flat_mv``; restored when a whole window is finite and not flat.
    """

    def __init__(self, fs: float, settings: StreamSettings) -> None:
        self.fs = fs
        self.flat_mv = settings.flat_mv
        self.sub = max(1, round(settings.quality_window_s * fs / 4))
        self.window_s = settings.quality_window_s
        self.state = "ok"  # ok, nan or flat
        self.bad_until = 0  # end of the last lost stretch (sample index)
        self._window: deque[tuple[float, float, bool]] = deque(maxlen=4)
        self._start = 0
        self._count = 0
        self._lo, self._hi, self._nan = math.inf, -math.inf, False

    def push(self, x: np.ndarray, start: int) -> list[Alert]:
        alerts: list[Alert] = []
        pos = 0
        while pos < x.size:
            piece = x[pos : pos + self.sub - self._count]
            self._add(piece, start + pos, alerts)
            pos += piece.size
            if self._count == self.sub:
                self._judge(alerts)
        return alerts

    def _add(self, piece: np.ndarray, at: int, alerts: list[Alert]) -> None:
        finite = np.isfinite(piece)
        self._count += piece.size
        if not finite.all():
            missing = np.flatnonzero(~finite)
            self.bad_until = max(self.bad_until, at + int(missing[-1]) + 1)
            self._nan = True
            if self.state != "nan":
                first = (at + int(missing[0])) / self.fs
                message = "signal lost: no data (NaN samples)"
                alerts.append(Alert("signal_quality", message, first, details={"state": "nan"}))
                self.state = "nan"
            piece = piece[finite]
        if piece.size:
            self._lo = min(self._lo, float(piece.min()))
            self._hi = max(self._hi, float(piece.max()))

    def _judge(self, alerts: list[Alert]) -> None:
        end = self._start + self.sub
        self._window.append((self._lo, self._hi, self._nan))
        self._start, self._count = end, 0
        self._lo, self._hi, self._nan = math.inf, -math.inf, False
        if len(self._window) < self._window.maxlen or any(nan for _, _, nan in self._window):
            return
        spread = max(hi for _, hi, _ in self._window) - min(lo for lo, _, _ in self._window)
        t = end / self.fs
        if spread <= self.flat_mv:
            self.bad_until = max(self.bad_until, end)
            if self.state == "ok":
                message = (
                    f"signal lost: flat line for {self.window_s:g} s "
                    "(lead off, or asystole: check the patient)"
                )
                alerts.append(Alert("signal_quality", message, t, details={"state": "flat"}))
            self.state = "flat"
        elif self.state != "ok":
            details = {"state": "restored", "was": self.state}
            alerts.append(Alert("signal_quality", "signal restored", t, details=details))
            self.state = "ok"


class _RhythmMonitor:
    """Rhythm updates every ``rhythm_every_s`` from the bundle; AF and noisy-signal alerts."""

    def __init__(
        self, fs: float, bundle: EcgBundle, settings: StreamSettings, threads: int | None
    ) -> None:
        self.fs = fs
        self.bundle = bundle
        self.settings = settings
        self.names = bundle.class_names
        self.window_s = bundle.window[0] / bundle.fs
        self.win = max(1, round(self.window_s * fs))
        self.every = max(1, round(settings.rhythm_every_s * fs))
        self.min_n = math.ceil(float(bundle.metadata.get("min_seconds", 5.0)) * fs)
        self.next_end = max(1, math.ceil(self.min_n / self.every)) * self.every
        ratio = (_fraction(bundle.fs) / _fraction(fs)).limit_denominator(1000)
        self.up, self.down = ratio.numerator, ratio.denominator
        self.updates: list[RhythmUpdate] = []
        self._buffer = np.empty(0, dtype=np.float32)
        self._base = 0
        self._af_run = self._normal_run = 0
        self.in_af = False
        self._noisy = False
        self._runner = _window_runner(bundle, threads)

    def push(self, x: np.ndarray, start: int, bad_until: int) -> list[Alert]:
        """Buffer ``x``; classify the window ending at each update time it reaches.

        ``bad_until`` ends the last lost stretch; updates start after it.
        """
        self._buffer = np.concatenate([self._buffer, x.astype(np.float32, copy=False)])
        end = start + x.size
        alerts: list[Alert] = []
        while self.next_end <= end:
            alerts.extend(self._update(self.next_end, bad_until))
            self.next_end += self.every
        keep_from = max(self._base, end - self.win)
        self._buffer = self._buffer[keep_from - self._base :]
        self._base = keep_from
        return alerts

    def _update(self, e: int, bad_until: int) -> list[Alert]:
        begin = max(e - self.win, min(bad_until, e), 0)
        if e - begin < self.min_n:
            self._af_run = self._normal_run = 0
            return []
        window = self._buffer[begin - self._base : e - self._base]
        if self.up != self.down:
            window = sps.resample_poly(window, self.up, self.down)
        row = self._runner(np.ascontiguousarray(window[None, :], dtype=np.float32))
        probabilities = {n: float(p) for n, p in zip(self.names, row, strict=True)}
        update = RhythmUpdate(e / self.fs, (e - begin) / self.fs, probabilities)
        self.updates.append(update)
        return self._af_alerts(update) + self._noise_alerts(update)

    def _af_alerts(self, update: RhythmUpdate) -> list[Alert]:
        if AF_CLASS not in update.probabilities:
            return []
        s = self.settings
        p = update.probabilities[AF_CLASS]
        if p >= s.af_probability:
            self._af_run, self._normal_run = self._af_run + 1, 0
        else:
            self._af_run, self._normal_run = 0, self._normal_run + 1
        details = {"probability": round(p, 4), "window_s": round(update.window_s, 2)}
        if not self.in_af and self._af_run >= s.af_updates:
            self.in_af = True
            message = f"atrial fibrillation: P(AF) {p:.2f} in {self._af_run} consecutive updates"
            return [Alert("atrial_fibrillation", message, update.time_s, details=details)]
        if self.in_af and self._normal_run >= s.af_updates:
            self.in_af = False
            message = (
                f"AF ended: P(AF) {p:.2f}, below {s.af_probability:g} in {self._normal_run} updates"
            )
            return [Alert("af_ended", message, update.time_s, details=details)]
        return []

    def _noise_alerts(self, update: RhythmUpdate) -> list[Alert]:
        p = update.probabilities.get(NOISY_CLASS)
        if p is None:
            return []
        noisy = p >= self.settings.af_probability
        alerts = []
        if noisy and not self._noisy:
            message = f"signal noisy: the rhythm model says too noisy to classify (P {p:.2f})"
            details = {"state": "noisy", "probability": round(p, 4)}
            alerts.append(Alert("signal_quality", message, update.time_s, details=details))
        self._noisy = noisy
        return alerts


_ECTOPY = {"V": ("ventricular_ectopy", "ventricular"), "S": ("supraventricular_ectopy",
                                                         "supraventricular")}  # fmt: skip


class _BeatClassMonitor:
    """AAMI classes of the beats, one beat late, and rate-limited ectopy alerts."""

    def __init__(self, fs: float, bundle: BeatBundle, settings: StreamSettings) -> None:
        from medsight.signal.beat_features import BeatFeatureStream

        self.fs = fs
        self.bundle = bundle
        self.settings = settings
        self.features = BeatFeatureStream(fs)
        self.classes = list(bundle.classes)
        self.pause = max(1, round(settings.pause_s * fs))
        self.every = round(settings.ectopy_every_s * fs)
        self.rpeaks: list[int] = []
        self.labels: list[str] = []
        self._run: list[int] = []  # R peaks of the current run of V beats
        self._last_alert: dict[str, int | None] = {"V": None, "S": None}
        self._since = {"V": 0, "S": 0}  # ectopic beats since the last alert of that kind

    def push(self, x: np.ndarray, events: list[tuple[str, int]]) -> list[Alert]:
        """Buffer ``x``, take the detector's events; classify the beats now complete."""
        features = self.features
        features.push_samples(x)
        for kind, sample in events:
            if kind == "beat":
                features.add_beat(sample)
            elif kind == "pause":
                features.pause(sample, self.pause)
            elif kind == "restart":
                features.reset(sample)
                self._run = []
        peaks, rows = features.ready()
        if peaks.size == 0:
            return []
        probabilities = self.bundle.predict_rows(rows, threads=1)
        alerts: list[Alert] = []
        for r, row in zip(peaks.tolist(), probabilities, strict=True):
            best = int(row.argmax())
            label = self.classes[best]
            self.rpeaks.append(r)
            self.labels.append(label)
            alerts.extend(self._on_beat(r, label, float(row[best])))
        return alerts

    def _on_beat(self, r: int, label: str, p: float) -> list[Alert]:
        alerts: list[Alert] = []
        self._run = [*self._run, r] if label == "V" else []
        n_run = len(self._run)
        if n_run == self.settings.run_beats:
            start = self._run[0] / self.fs
            message = f"ventricular run: {n_run} consecutive ventricular beats from {start:.2f} s"
            details = {"beats": n_run, "start_s": round(start, 3)}
            alerts.append(Alert("ventricular_run", message, r / self.fs, details=details))
        if label not in _ECTOPY:
            return alerts
        kind, name = _ECTOPY[label]
        self._since[label] += 1
        last = self._last_alert[label]
        if last is not None and r - last < self.every:
            return alerts
        count, self._since[label], self._last_alert[label] = self._since[label], 0, r
        details: dict[str, Any] = {"probability": round(p, 4), "beats": count}
        if last is None or count == 1:
            message = f"{name} ectopic beat (P {p:.2f})"
        else:
            message = f"{name} ectopy: {count} {label} beats since {last / self.fs:.2f} s"
            details["since_s"] = round(last / self.fs, 3)
        alerts.append(Alert(kind, message, r / self.fs, details=details))
        return alerts


def _window_runner(bundle: EcgBundle, threads: int | None) -> Any:
    """``(1, samples) -> (K,)`` probabilities: the bundle's, or its ONNX model on ``threads``."""
    if threads is None or not bundle.is_network or bundle.path is None:
        return lambda signal: bundle.predict_signals([signal])[0]
    from medsight.deploy.onnx import OnnxClassifier
    from medsight.transforms.ecg import EcgWindowDataset, average_by_record

    classifier = OnnxClassifier(bundle.path / "model.onnx", threads=threads)
    length, hop = bundle.window

    def run(signal: np.ndarray) -> np.ndarray:
        # the windowing of EcgBundle.predict_signals, on a session with its own thread count
        windows = EcgWindowDataset([signal], length, hop)
        batch = np.stack([windows[i].numpy() for i in range(len(windows))])
        return average_by_record(classifier.predict_proba(batch), windows.owner, 1)[0]

    return run


# ------------------------------------------------------------------------------------ detector


class StreamingEcgDetector:
    """Beats, rate, pause, signal-quality and (with bundles) AF and ectopy alerts on a live lead.

    ``fs`` is the stream's rate. ``bundle`` (optional) adds rhythm updates every
    ``settings.rhythm_every_s`` on the last window of the bundle's length, resampled to its rate;
    ``onnx_threads`` runs a network bundle's ONNX model on its own session with that many threads.
    ``beat_bundle`` (optional) classifies each detected beat, one beat late, on one thread.
    """

    def __init__(
        self,
        fs: float,
        bundle: EcgBundle | None = None,
        settings: StreamSettings | None = None,
        *,
        onnx_threads: int | None = None,
        beat_bundle: BeatBundle | None = None,
    ) -> None:
        self.fs = _check_fs(fs)
        self.settings = settings or StreamSettings()
        self.bundle = bundle
        self.beat_bundle = beat_bundle
        self._qrs = CausalQrsDetector(self.fs, pause_s=self.settings.pause_s)
        self._beats = _BeatMonitor(self.fs, self.settings)
        self._quality = _QualityMonitor(self.fs, self.settings)
        self._rhythm = (
            None if bundle is None else _RhythmMonitor(self.fs, bundle, self.settings, onnx_threads)
        )
        self._classes = (
            None if beat_bundle is None else _BeatClassMonitor(self.fs, beat_bundle, self.settings)
        )

    @property
    def samples_seen(self) -> int:
        return self._qrs.samples_seen

    @property
    def rpeaks(self) -> np.ndarray:
        """Sample indices of the R peaks found so far (int64, increasing)."""
        return np.asarray(self._qrs.rpeaks, dtype=np.int64)

    @property
    def beat_classes(self) -> tuple[np.ndarray, np.ndarray]:
        """R peaks (re-aligned, samples) and AAMI labels of the beats classified so far."""
        if self._classes is None:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype="<U1")
        labels = np.array(self._classes.labels, dtype="<U1")
        return np.asarray(self._classes.rpeaks, dtype=np.int64), labels

    @property
    def rhythm_updates(self) -> list[RhythmUpdate]:
        return [] if self._rhythm is None else list(self._rhythm.updates)

    @property
    def signal_state(self) -> str:
        """``ok``, ``nan`` (no data) or ``flat``, as of the last judged quality block."""
        return self._quality.state

    def push(self, chunk: np.ndarray) -> list[Alert]:
        """Feed the next samples (1-D, mV, in order); returns the alerts they trigger."""
        alerts: list[Alert] = []
        for piece in self._pieces(_as_chunk(chunk)):
            start = self.samples_seen
            alerts += self._quality.push(piece, start)
            events = self._detect(piece)
            alerts += self._beats.on_events(events)
            if self._classes is not None:
                alerts += self._classes.push(piece, events)
            if self._rhythm is not None:
                alerts += self._rhythm.push(piece, start, self._quality.bad_until)
        now = self.samples_seen / self.fs
        for alert in alerts:
            alert.emitted_time_s = now
        return sorted(alerts, key=lambda a: a.event_time_s)

    def _pieces(self, x: np.ndarray) -> list[np.ndarray]:
        """``x`` cut at the rhythm update times, so each update sees exactly what precedes it."""
        if self._rhythm is None:
            return [x]
        first = self._rhythm.next_end - self.samples_seen  # >= 1: reached updates are done
        return np.split(x, list(range(first, x.size, self._rhythm.every)))

    def _detect(self, x: np.ndarray) -> list[tuple[str, int]]:
        finite = np.isfinite(x)
        if finite.all():
            return self._qrs.push(x)
        events: list[tuple[str, int]] = []
        edges = np.flatnonzero(np.diff(finite.astype(np.int8))) + 1
        for run in np.split(x, edges):
            if np.isfinite(run[0]):
                events += self._qrs.push(run)
            else:
                self._qrs.gap(run.size)  # the detector relearns after missing data
                events.append(("restart", self._qrs.samples_seen))
        return events


# ------------------------------------------------------------------------------------ replay


@dataclass
class StreamStats:
    """What a replay measured: signal and processing time, alert latencies, beats."""

    signal_seconds: float = 0.0
    wall_seconds: float = 0.0
    beats: int = 0
    latencies: list[float] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def alerts(self) -> int:
        return len(self.latencies)

    @property
    def realtime_factor(self) -> float:
        """Signal seconds per second of processing (``push`` time only, no sleeping)."""
        return self.signal_seconds / self.wall_seconds if self.wall_seconds > 0 else math.inf

    @property
    def latency_p50_s(self) -> float:
        return _percentile(self.latencies, 50)

    @property
    def latency_p95_s(self) -> float:
        return _percentile(self.latencies, 95)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal_seconds": round(self.signal_seconds, 3),
            "wall_seconds": round(self.wall_seconds, 4),
            "realtime_factor": round(self.realtime_factor, 1),
            "beats": self.beats,
            "alerts": self.alerts,
            "alerts_by_kind": dict(self.kinds),
            "alert_latency_p50_s": _round(self.latency_p50_s),
            "alert_latency_p95_s": _round(self.latency_p95_s),
        }


class ReplayRun(Iterator[Alert]):
    """Iterates over a replay's alerts as they are emitted; :attr:`stats` grows as it goes."""

    def __init__(
        self,
        signal: np.ndarray,
        detector: StreamingEcgDetector,
        chunk_s: float,
        speed: float | None,
    ) -> None:
        self.detector = detector
        self.stats = StreamStats()
        self._alerts = self._run(signal, max(1, round(chunk_s * detector.fs)), speed)

    def __next__(self) -> Alert:
        return next(self._alerts)

    def _run(self, signal: np.ndarray, chunk: int, speed: float | None) -> Iterator[Alert]:
        fs = self.detector.fs
        started = time.perf_counter()
        for start in range(0, signal.size, chunk):
            piece = signal[start : start + chunk]
            if speed is not None:
                due = started + (start + piece.size) / fs / speed
                time.sleep(max(0.0, due - time.perf_counter()))
            tic = time.perf_counter()
            alerts = self.detector.push(piece)
            self.stats.wall_seconds += time.perf_counter() - tic
            self.stats.signal_seconds = self.detector.samples_seen / fs
            self.stats.beats = len(self.detector.rpeaks)
            for alert in alerts:
                self.stats.latencies.append(alert.latency_s)
                self.stats.kinds[alert.kind] += 1
            yield from alerts


def replay(
    record_or_signal: EcgRecord | np.ndarray,
    fs: float | None = None,
    *,
    chunk_s: float = 0.5,
    speed: float | None = None,
    detector: StreamingEcgDetector | None = None,
    lead: str | int | None = None,
) -> ReplayRun:
    """Feed a recording to ``detector`` in ``chunk_s`` chunks; iterate to get the alerts.

    ``record_or_signal`` is an :class:`~medsight.io.ecg.EcgRecord` (its ``fs``; ``lead`` picks
    the lead, default the first) or a 1-D array at ``fs``. ``speed`` emulates ``speed`` x real
    time by sleeping between chunks; ``None`` runs as fast as possible. ``detector`` defaults to
    a new :class:`StreamingEcgDetector` without bundle. The returned run's ``stats`` hold the
    summary once iteration ends.
    """
    signal, fs = _signal_of(record_or_signal, fs, lead)
    if not (isinstance(chunk_s, int | float) and chunk_s > 0):
        raise ConfigError(f"chunk_s must be a number of seconds > 0; got {chunk_s!r}.")
    if speed is not None and not (isinstance(speed, int | float) and speed > 0):
        raise ConfigError(f"speed must be > 0 (x real time) or None; got {speed!r}.")
    detector = detector or StreamingEcgDetector(fs)
    if not math.isclose(detector.fs, fs, rel_tol=1e-9):
        raise ConfigError(f"the detector runs at {detector.fs:g} Hz but the signal is {fs:g} Hz.")
    return ReplayRun(signal, detector, float(chunk_s), speed)


def stream_benchmark(
    signal: EcgRecord | np.ndarray,
    fs: float | None = None,
    bundle: EcgBundle | None = None,
    chunk_s: float = 0.5,
    *,
    lead: str | int | None = None,
    reference: np.ndarray | None = None,
    tolerance_s: float = 0.15,
    beat_bundle: BeatBundle | None = None,
) -> dict[str, Any]:
    """Replay ``signal`` as fast as possible on one core; JSON-ready speed, latency and accuracy.

    ``realtime_factor`` is signal seconds per processing second, with torch, ONNX Runtime and
    LightGBM held to one thread. R-peak sensitivity and PPV (``tolerance_s``) are reported
    against ``reference`` beat samples, or the record's beat annotations when it has them.
    ``beat_bundle`` adds beat classification (and its counts per class) to the replay.
    """
    import torch

    if reference is None and getattr(signal, "annotations", None) is not None:
        reference = signal.annotations.beats().sample  # type: ignore[union-attr]
    lead_signal, fs = _signal_of(signal, fs, lead)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        detector = StreamingEcgDetector(fs, bundle, onnx_threads=1, beat_bundle=beat_bundle)
        run = replay(lead_signal, fs, chunk_s=chunk_s, detector=detector)
        for _ in run:
            pass
    finally:
        torch.set_num_threads(threads)
    figures: dict[str, Any] = {
        "fs": fs,
        "chunk_s": chunk_s,
        "threads": 1,
        "bundle": None if bundle is None else str(bundle.metadata.get("name", bundle.path)),
        "rhythm_updates": len(detector.rhythm_updates),
        **run.stats.to_dict(),
    }
    if beat_bundle is not None:
        _, labels = detector.beat_classes
        figures["beat_bundle"] = str(beat_bundle.metadata.get("name", beat_bundle.path))
        figures["beat_classes"] = {c: int(np.sum(labels == c)) for c in beat_bundle.classes}
    if reference is not None:
        from medsight.signal.peaks import match_peaks

        match = match_peaks(reference, detector.rpeaks, fs, tolerance_s=tolerance_s)
        figures.update(
            reference_beats=int(match.tp + match.fn),
            rpeak_sensitivity=_round(match.sensitivity),
            rpeak_ppv=_round(match.ppv),
            rpeak_tolerance_s=tolerance_s,
        )
    return figures


def alert_scenario(
    fs: float = 360.0, *, seed: int = 0, noise_mv: float = 0.01
) -> tuple[np.ndarray, list[tuple[str, float, float]]]:
    """A synthetic 2.5-minute lead that should raise each beat-level alert once, and when.

    Spliced NeuroKit2 ``ecg_simulate`` stretches (cut half-way between beats): sinus rhythm at
    70 bpm, a 3.5 s pause, 180 bpm for 20 s, 2 s of NaN, 3 s of flat line, 35 bpm for 25 s.
    Returns the signal (mV, with ``noise_mv`` white noise except on the flat line) and the
    expected ``(kind, earliest_s, latest_s)`` event times, to measure alert latency without a
    recording that happens to hold every event.
    """
    import neurokit2 as nk

    fs = _check_fs(fs)
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    expected: list[tuple[str, float, float]] = []

    def now() -> float:
        return sum(p.size for p in parts) / fs

    def beats(seconds: float, rate: float) -> None:
        parts.append(_ecg_stretch(nk, seconds, rate, fs, int(rng.integers(1 << 30)), parts))

    def hold(seconds: float, value: float, noise: float) -> None:
        n = round(seconds * fs)
        parts.append(np.full(n, value) + noise * rng.normal(size=n))

    beats(25, 70)
    expected.append(("pause", now() - 0.8, now() + 2.5))
    hold(3.5, parts[-1][-1], noise_mv)
    beats(20, 70)
    expected.append(("tachycardia", now(), now() + 4.0))
    beats(20, 180)
    beats(15, 70)
    expected.append(("signal_quality", now(), now()))  # lost: NaN
    hold(2, math.nan, 0.0)
    expected.append(("signal_quality", now() + 1.0, now() + 1.5))  # restored: 1 s of data
    beats(15, 70)
    flat_at = now()
    hold(3, parts[-1][-1], 0.0)
    expected.append(("signal_quality", flat_at + 1.0, flat_at + 1.5))  # lost: 1 s flat
    expected.append(("pause", flat_at, flat_at + 2.5))
    expected.append(("signal_quality", now(), now() + 0.5))  # restored
    beats(15, 70)
    expected.append(("bradycardia", now(), now() + 8 * 60 / 35 + 3.0))
    beats(25, 35)
    signal = np.concatenate(parts)
    finite = np.isfinite(signal)
    lively = finite.copy()
    lively[round(flat_at * fs) : round((flat_at + 3) * fs)] = False
    signal[lively] += noise_mv * rng.normal(size=int(lively.sum()))
    return signal.astype(np.float32), expected


def _ecg_stretch(
    nk: Any, seconds: float, rate: float, fs: float, seed: int, parts: list[np.ndarray]
) -> np.ndarray:
    """About ``seconds`` of simulated ECG cut half-way between beats, joined to ``parts``."""
    rr = 60.0 / rate
    raw = nk.ecg_simulate(
        duration=seconds + 3 * rr, sampling_rate=fs, heart_rate=rate, random_state=seed
    )
    peaks = np.asarray(nk.ecg_peaks(raw, sampling_rate=fs)[1]["ECG_R_Peaks"])
    cuts = peaks[:-1] + (0.6 * np.diff(peaks)).astype(int)
    start = int(cuts[0])
    end = int(cuts[np.searchsorted(cuts, start + seconds * fs) - 1]) if len(cuts) > 1 else raw.size
    stretch = np.asarray(raw[start:end], dtype=np.float64)
    previous = next((p[-1] for p in reversed(parts) if p.size and np.isfinite(p[-1])), stretch[0])
    return stretch - stretch[0] + previous


# ------------------------------------------------------------------------------------ helpers


def _signal_of(
    source: EcgRecord | np.ndarray, fs: float | None, lead: str | int | None
) -> tuple[np.ndarray, float]:
    """One lead as a 1-D float32 array, and its rate."""
    if hasattr(source, "signal") and hasattr(source, "lead_names"):
        record = source
        if fs is not None and not math.isclose(float(fs), record.fs, rel_tol=1e-9):
            raise ConfigError(f"the record is at {record.fs:g} Hz but fs={fs} was given.")
        return np.ascontiguousarray(record.lead(0 if lead is None else lead)), record.fs
    if fs is None:
        raise ConfigError("a bare signal needs its sampling rate: pass fs (Hz).")
    array = np.asarray(source, dtype=np.float32)
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1:
        raise DataError(f"expected one lead as a 1-D array; got shape {array.shape}.")
    return array, _check_fs(fs)


def _as_chunk(chunk: np.ndarray) -> np.ndarray:
    try:
        x = np.asarray(chunk, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"an ECG chunk must hold numbers: {exc}") from None
    if x.ndim == 2 and 1 in x.shape:
        x = x.reshape(-1)
    if x.ndim != 1:
        raise DataError(f"push one lead as a 1-D chunk of samples; got shape {x.shape}.")
    return x


def _check_fs(fs: float) -> float:
    try:
        value = float(fs)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(fs, bool) or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"fs must be a sampling rate in Hz above 0; got {fs!r}.")
    return value


def _fraction(value: float) -> Fraction:
    return Fraction(repr(float(value)))


def _rate_details(rr_s: float) -> dict[str, float]:
    return {"rr_s": round(rr_s, 4), "heart_rate_bpm": round(60.0 / rr_s, 1)}


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def _round(value: float, digits: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


__all__ = [
    "Alert",
    "CausalQrsDetector",
    "ReplayRun",
    "RhythmUpdate",
    "StreamSettings",
    "StreamStats",
    "StreamingEcgDetector",
    "alert_scenario",
    "replay",
    "stream_benchmark",
]
