"""Synthetic single-lead ECG with annotated normal, ventricular and supraventricular beats.

Each beat is a sum of Gaussians (P, Q, R, S, T; after McSharry et al.'s ECGSYN shapes):

* N: P wave, narrow QRS (R sigma 10 ms), upright T; RR varies slowly (+-3%) and at random (2%);
* V: premature (55-68% of the RR), no P wave, wide QRS (sigma 35 ms) of the record's polarity,
  discordant T, then a compensatory pause (pre + post = two normal RR);
* S: premature (60-75%), the normal narrow QRS with a small inverted P, no compensatory pause.

Records differ in rate, amplitude, wave shapes, V polarity and noise (white noise plus baseline
wander). :func:`write_record` writes one as WFDB (``MLII``, 360 Hz, format 16) with a ``.atr``
annotation file whose first entry is a rhythm label (``+``, not a beat).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

FS = 360.0


@dataclass(frozen=True)
class SynthRecord:
    signal: np.ndarray
    samples: np.ndarray
    symbols: list[str]
    fs: float

    def times(self, symbol: str) -> np.ndarray:
        return self.samples[np.array(self.symbols) == symbol] / self.fs


def _waves(rng: np.random.Generator, v_sign: float) -> dict[str, list[tuple[float, float, float]]]:
    """(amplitude mV, centre s, sigma s) of each beat type's waves for one record."""
    j = lambda lo, hi: float(rng.uniform(lo, hi))  # noqa: E731
    qrs = [(j(-0.12, -0.05), -0.028, 0.008), (1.0, 0.0, j(0.009, 0.012)),
           (j(-0.3, -0.15), 0.03, 0.010)]  # fmt: skip
    t_wave = (j(0.2, 0.35), j(0.22, 0.27), j(0.04, 0.05))
    return {
        "N": [(j(0.1, 0.18), j(-0.2, -0.16), 0.022), *qrs, t_wave],
        "S": [(-j(0.05, 0.1), -0.14, 0.02), *qrs, t_wave],
        "V": [
            (v_sign * j(1.1, 1.5), 0.0, j(0.03, 0.04)),
            (-v_sign * j(0.3, 0.5), 0.07, 0.03),
            (-v_sign * j(0.35, 0.5), j(0.28, 0.32), 0.06),
        ],
    }


def beat_sequence(
    rng: np.random.Generator,
    seconds: float,
    rr0: float,
    p_v: float,
    p_s: float,
    pattern: str = "",
    runs_at: tuple[float, ...] = (),
) -> tuple[np.ndarray, list[str]]:
    """Beat times (s) and symbols. ``pattern="bigeminy"`` alternates N and V; ``runs_at``
    inserts a run of three V beats at those times."""
    times, symbols = [], []
    t, previous, previous_pre = 0.6, "N", rr0
    pending_runs = sorted(runs_at)
    run_left = 0  # V beats still to come in the current run
    while t < seconds - 0.6:
        rr = rr0 * (1 + 0.03 * np.sin(2 * np.pi * t / 4.5) + 0.02 * rng.normal())
        if run_left == 0 and pending_runs and t >= pending_runs[0] and previous == "N":
            pending_runs.pop(0)
            run_left = 3
        if run_left > 0:
            kind = "V"
            run_left -= 1
        elif pattern == "bigeminy":
            kind = "V" if previous == "N" else "N"
        else:
            u = rng.uniform()
            kind = "V" if u < p_v else "S" if u < p_v + p_s else "N"
            if kind != "N" and previous != "N":
                kind = "N"
        if kind == "V":
            pre = rr * rng.uniform(0.55, 0.68)
        elif kind == "S":
            pre = rr * rng.uniform(0.6, 0.75)
        elif previous == "V":
            pre = max(2 * rr - previous_pre, rr)
        elif previous == "S":
            pre = rr * rng.uniform(0.95, 1.05)
        else:
            pre = rr
        t += pre if times else 0.0
        if t >= seconds - 0.6:
            break
        times.append(t)
        symbols.append(kind)
        previous, previous_pre = kind, pre
    return np.array(times), symbols


def synth_record(
    seed: int,
    seconds: float = 150.0,
    *,
    p_v: float = 0.12,
    p_s: float = 0.08,
    v_sign: float = 1.0,
    pattern: str = "",
    runs_at: tuple[float, ...] = (),
    noise_mv: float = 0.03,
    fs: float = FS,
) -> SynthRecord:
    rng = np.random.default_rng(seed)
    rr0 = float(rng.uniform(0.7, 1.0))
    scale = float(rng.uniform(0.7, 1.4))
    waves = _waves(rng, v_sign)
    times, symbols = beat_sequence(rng, seconds, rr0, p_v, p_s, pattern, runs_at)
    n = round(seconds * fs)
    t_axis = np.arange(n) / fs
    x = np.zeros(n)
    reach = round(0.5 * fs)
    for t0, kind in zip(times, symbols, strict=True):
        centre = round(t0 * fs)
        lo, hi = max(0, centre - reach), min(n, centre + reach)
        local = t_axis[lo:hi] - centre / fs
        for amp, mu, sigma in waves[kind]:
            x[lo:hi] += amp * np.exp(-0.5 * ((local - mu) / sigma) ** 2)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    wander = 0.12 * np.sin(2 * np.pi * 0.25 * t_axis + phase[0])
    wander += 0.08 * np.sin(2 * np.pi * 0.04 * t_axis + phase[1])
    x = scale * x + wander + noise_mv * rng.normal(size=n)
    samples = np.round(times * fs).astype(np.int64)
    return SynthRecord(x, samples, symbols, fs)


def write_record(folder: Path, name: str, record: SynthRecord) -> Path:
    """Write ``record`` as WFDB ``folder/name`` (lead MLII) with ``name.atr``; the header path."""
    import wfdb

    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        name,
        fs=record.fs,
        units=["mV"],
        sig_name=["MLII"],
        p_signal=record.signal[:, None],
        fmt=["16"],
        write_dir=str(folder),
    )
    samples = np.concatenate([[1], record.samples])
    symbols = ["+", *record.symbols]
    aux = ["(N", *[""] * len(record.symbols)]
    wfdb.wrann(
        name, "atr", samples, symbol=symbols, aux_note=aux, write_dir=str(folder), fs=record.fs
    )
    return folder / f"{name}.hea"


# name: (seed, V polarity, starts of runs of three V beats (s)); DS1 records train, DS2 records
# test under the inter-patient split. Every record has a run, so that V beats after V beats (with
# their different RR context) are seen in training and in testing.
DS_RECORDS: dict[str, tuple[int, float, tuple[float, ...]]] = {
    "101": (1, 1.0, (50.0,)),
    "106": (2, -1.0, (100.0,)),
    "100": (3, 1.0, (75.0,)),
    "103": (4, -1.0, (30.0,)),
}


def write_ds_folder(folder: Path, names: tuple[str, ...] = tuple(DS_RECORDS)) -> Path:
    """Synthetic records named after MIT-BIH records (DS1: 101, 106; DS2: 100, 103)."""
    for name in names:
        seed, sign, runs = DS_RECORDS[name]
        write_record(folder, name, synth_record(seed, v_sign=sign, runs_at=runs))
    return folder
