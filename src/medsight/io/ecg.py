"""ECG recordings from WFDB, DICOM waveform, CSV and NumPy files as one :class:`EcgRecord`.

Decoding is delegated to the libraries: wfdb (``.hea`` + ``.dat``/``.mat``, annotations through
``wfdb.rdann``), pydicom (``Dataset.waveform_array``) and pandas/NumPy for plain arrays. This module
adds what they leave to the caller: one layout (``signal[sample, lead]``, float32), voltages in
millivolts wherever the file states a voltage unit, and a :class:`~medsight.errors.DataError`
naming the file and the problem for damaged or foreign input (missing or truncated data files,
NaN samples, a PNG renamed ``.dat`` ...) instead of a traceback from inside a library.

Readers reject NaN (and infinite) samples unless ``allow_nan=True``. Flat lines and very short
recordings are accepted: judging signal quality is not a reader's job.

``require_deidentified=True`` (see :mod:`medsight.privacy.gate`) refuses a DICOM waveform that is
not de-identified, and a WFDB record whose header comments look like identifiers (WFDB has no
de-identification marker: its comments are the only free text); CSV and NumPy files hold numbers
only and are not checked.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from medsight.errors import ConfigError, DataError
from medsight.privacy.gate import require_deidentified_dicom, require_deidentified_text

if TYPE_CHECKING:
    from pydicom.dataset import Dataset
    from wfdb import MultiRecord, Record

WFDB_SUFFIXES = frozenset({".hea", ".dat", ".mat"})
DICOM_SUFFIXES = frozenset({".dcm", ".dicom"})
ARRAY_SUFFIXES = frozenset({".csv", ".npy", ".npz"})
CHALLENGE_LABELS = frozenset({"N", "A", "O", "~"})

# Annotation symbols that mark a beat (WFDB ``ann_label_table`` / the PhysioNet "beat" codes).
BEAT_SYMBOLS = frozenset("NLRBAaJSVrFejnE/fQ?")

# Bytes one sample occupies per WFDB storage format (PhysioNet "signal" format spec). The
# compressed FLAC formats 508/516/524 have no fixed size and are not size-checked.
_BYTES_PER_SAMPLE: dict[str, Fraction] = {
    "8": Fraction(1),
    "16": Fraction(2),
    "24": Fraction(3),
    "32": Fraction(4),
    "61": Fraction(2),
    "80": Fraction(1),
    "160": Fraction(2),
    "212": Fraction(3, 2),
    "310": Fraction(4, 3),
    "311": Fraction(4, 3),
}

# Leading bytes of common files that are not signal data, to name them in the error.
_FOREIGN_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (or .npz/.xlsx)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x93NUMPY", "a NumPy .npy file"),
    (b"MATLAB 5.0 MAT-file", "a MATLAB v5 .mat file (WFDB reads v4 files written by wfdb2mat)"),
)

_VOLT_TO_MV = {"nv": 1e-6, "uv": 1e-3, "µv": 1e-3, "μv": 1e-3, "mv": 1.0, "v": 1e3}

# CSV columns that index the samples rather than hold a lead (matched on the lower-cased name).
_TIME_COLUMN = re.compile(
    r"^(t|times?|timestamp|elapsed time|samples?|sample ?#|index|time[\W_].*)$"
)


# ------------------------------------------------------------------------------------ records


@dataclass
class BeatAnnotations:
    """Annotations of one record: sample indices, WFDB symbols and optional auxiliary notes.

    Despite the name this holds every annotation of the file, including non-beat ones (rhythm
    changes ``+``, noise ``~`` ...); :meth:`beats` keeps only the beat symbols.
    """

    sample: np.ndarray
    symbol: list[str]
    aux_note: list[str] | None = None

    def __post_init__(self) -> None:
        self.sample = np.asarray(self.sample, dtype=np.int64).reshape(-1)
        self.symbol = [str(s) for s in self.symbol]
        if len(self.symbol) != len(self.sample):
            raise DataError(
                f"annotations: {len(self.sample)} sample indices but {len(self.symbol)} symbols."
            )
        if self.aux_note is not None:
            self.aux_note = [str(a) for a in self.aux_note]
            if len(self.aux_note) != len(self.sample):
                raise DataError(
                    f"annotations: {len(self.sample)} sample indices but "
                    f"{len(self.aux_note)} aux notes."
                )

    def __len__(self) -> int:
        return len(self.sample)

    def beats(self) -> BeatAnnotations:
        """Only the annotations whose symbol marks a beat (:data:`BEAT_SYMBOLS`)."""
        keep = [i for i, s in enumerate(self.symbol) if s in BEAT_SYMBOLS]
        return self._take(keep)

    def _take(self, index: Sequence[int]) -> BeatAnnotations:
        return BeatAnnotations(
            sample=self.sample[list(index)],
            symbol=[self.symbol[i] for i in index],
            aux_note=None if self.aux_note is None else [self.aux_note[i] for i in index],
        )


@dataclass
class EcgRecord:
    """One recording: ``signal[sample, lead]`` float32 at ``fs`` Hz.

    Voltages are in millivolts wherever the source stated a voltage unit; ``units[i]`` is the unit
    of lead ``i`` (``"mV"``, or e.g. ``"mmHg"`` for a non-ECG channel, ``""`` where the file does
    not say). ``comments`` are the header comments (WFDB) or text annotations (DICOM).
    """

    signal: np.ndarray
    fs: float
    lead_names: list[str]
    name: str = ""
    source: str = ""
    annotations: BeatAnnotations | None = None
    comments: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        signal = np.asarray(self.signal, dtype=np.float32)
        if signal.ndim == 1:
            signal = signal[:, None]
        if signal.ndim != 2:
            raise DataError(
                f"{self.source or self.name}: signal must be (samples, leads); "
                f"got shape {signal.shape}."
            )
        if signal.shape[1] == 0:
            raise DataError(f"{self.source or self.name}: the signal has no leads.")
        self.signal = np.ascontiguousarray(signal)
        self.fs = float(self.fs)
        if not (math.isfinite(self.fs) and self.fs > 0):
            raise ConfigError(
                f"{self.source or self.name}: sampling rate must be > 0 Hz; got {self.fs}."
            )
        self.lead_names = [str(n) for n in self.lead_names]
        if len(self.lead_names) != self.n_leads:
            raise DataError(
                f"{self.source or self.name}: {self.n_leads} lead(s) in the signal but "
                f"{len(self.lead_names)} lead name(s) ({', '.join(self.lead_names)})."
            )
        if not self.units:
            self.units = [""] * self.n_leads
        if len(self.units) != self.n_leads:
            raise DataError(
                f"{self.source or self.name}: {self.n_leads} lead(s) but {len(self.units)} units."
            )

    @property
    def n_samples(self) -> int:
        return int(self.signal.shape[0])

    @property
    def n_leads(self) -> int:
        return int(self.signal.shape[1])

    @property
    def duration_seconds(self) -> float:
        return self.n_samples / self.fs

    def lead(self, name_or_index: str | int) -> np.ndarray:
        """One lead as a 1-D float32 array, by name (exact, else case-insensitive) or index."""
        return self.signal[:, self._lead_index(name_or_index)]

    def select(self, leads: Sequence[str | int]) -> EcgRecord:
        """A record with only ``leads`` (names or indices), in the order given."""
        index = [self._lead_index(lead) for lead in leads]
        if not index:
            raise ConfigError(f"{self.source or self.name}: select at least one lead.")
        return replace(
            self,
            signal=self.signal[:, index],
            lead_names=[self.lead_names[i] for i in index],
            units=[self.units[i] for i in index],
        )

    def _lead_index(self, key: str | int) -> int:
        if isinstance(key, int | np.integer) and not isinstance(key, bool):
            if -self.n_leads <= key < self.n_leads:
                return int(key) % self.n_leads
        else:
            text = str(key)
            if text in self.lead_names:
                return self.lead_names.index(text)
            folded = [i for i, n in enumerate(self.lead_names) if n.casefold() == text.casefold()]
            if len(folded) == 1:
                return folded[0]
        raise DataError(
            f"{self.source or self.name}: no lead {key!r}; available leads: "
            f"{', '.join(self.lead_names)} (or an index 0..{self.n_leads - 1})."
        )


# ------------------------------------------------------------------------------------ WFDB


def read_wfdb(
    path: str | Path,
    *,
    annotation_extension: str | None = "atr",
    leads: Sequence[str | int] | None = None,
    allow_nan: bool = False,
    require_deidentified: bool = False,
) -> EcgRecord:
    """Read a WFDB record (``x``, ``x.hea``, ``x.dat`` or ``x.mat``) in physical units.

    The annotation file ``x.<annotation_extension>`` is read when it exists (``None`` skips it).
    ``leads`` selects signals by name or index. Multi-frequency records (signals with several
    samples per frame) come back at the highest rate; slower signals are linearly interpolated
    onto it and annotation indices are scaled to it. ``require_deidentified`` refuses a header
    whose comments look like identifiers, before the signal is read.
    """
    source = str(path)
    header_path = _wfdb_header_path(Path(path))
    base = str(header_path)[: -len(".hea")]
    header = _read_wfdb_header(header_path)
    if require_deidentified:
        comments = getattr(header, "comments", None) or []
        require_deidentified_text(comments, f"{header_path}: header comments")
    names = list(getattr(header, "sig_name", None) or [])
    if not int(getattr(header, "n_sig", 0) or 0):
        raise DataError(f"{header_path}: the header lists no signals; nothing to read.")
    if getattr(header, "sig_len", None) == 0:
        raise DataError(f"{header_path}: zero-length signal (the header says 0 samples).")
    if hasattr(header, "file_name"):  # single-segment record; multi-segment ones are left to wfdb
        _check_wfdb_data_files(header, header_path)
    channels = None if leads is None else _wfdb_channels(leads, names, header_path)
    record = _rdrecord(base, channels, header_path)

    signal, fs = _wfdb_signal(record)
    record_names = [str(n) for n in record.sig_name]
    if signal.shape[0] == 0:
        raise DataError(f"{header_path}: zero-length signal (the data file holds 0 samples).")
    units, signal = _to_millivolts(signal, [str(u or "") for u in record.units])
    _check_finite(signal, record_names, source, allow_nan)

    annotations = None
    if annotation_extension:
        ann_path = Path(f"{base}.{annotation_extension}")
        if ann_path.is_file():
            annotations, ann_fs = _read_wfdb_annotations(ann_path, base, annotation_extension)
            # Annotation times count frames (or the file's own rate); rescale to the output rate.
            annotations = _scale_annotations(annotations, fs / (ann_fs or record.fs), len(signal))
    return EcgRecord(
        signal=signal,
        fs=fs,
        lead_names=record_names,
        name=str(record.record_name),
        source=source,
        annotations=annotations,
        comments=[str(c) for c in (record.comments or [])],
        units=units,
    )


def _wfdb_header_path(path: Path) -> Path:
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give a WFDB record (x, x.hea, x.dat or x.mat).")
    candidates = [Path(f"{path}.hea")]
    if path.suffix:
        candidates.insert(
            0 if path.suffix.lower() in WFDB_SUFFIXES else 1, path.with_suffix(".hea")
        )
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    if path.is_file():
        raise DataError(
            f"{path}: no WFDB header {candidates[0].name} next to it; a signal file cannot be "
            "read without its .hea header (keep the .hea and data files together)."
        )
    raise DataError(f"{path}: WFDB record not found (looked for {candidates[0]}).")


def _read_wfdb_header(header_path: Path) -> Record | MultiRecord:
    import wfdb

    head = header_path.read_bytes()[:4096]
    kind = _foreign_kind(head)
    if kind or b"\x00" in head:
        raise DataError(
            f"{header_path}: not a WFDB header: the file is {kind or 'binary'}, a header is text "
            "whose first line reads '<record> <n_signals> <fs> <n_samples>'."
        )
    try:
        return wfdb.rdheader(str(header_path)[: -len(".hea")])
    except Exception as exc:
        raise DataError(
            f"{header_path}: not a valid WFDB header ({type(exc).__name__}: {exc}); the first "
            "line should read '<record> <n_signals> <fs> <n_samples>'."
        ) from exc


def _check_wfdb_data_files(header: Record, header_path: Path) -> None:
    """Each data file exists, is not some other kind of file and holds ``sig_len`` samples.

    wfdb itself fails on a short file with an unrelated-looking ``ValueError`` (broadcast shapes,
    "Samples were not loaded correctly"), so the sizes are checked here first.
    """
    per_file: dict[str, list[int]] = {}
    for i, file_name in enumerate(header.file_name):
        per_file.setdefault(str(file_name), []).append(i)
    sig_len = header.sig_len
    for file_name, signals in per_file.items():
        data_path = header_path.parent / file_name
        if not data_path.is_file():
            raise DataError(
                f"{header_path}: the header refers to data file {file_name}, which does not "
                f"exist in {header_path.parent.resolve()}; copy it next to the header."
            )
        with data_path.open("rb") as handle:
            head = handle.read(256)
        kind = _foreign_kind(head)
        if kind:
            raise DataError(
                f"{data_path}: not WFDB signal data: the file is {kind} (named in header "
                f"{header_path.name})."
            )
        fmt = str((header.fmt or [""] * len(header.file_name))[signals[0]])
        if fmt not in _BYTES_PER_SAMPLE:
            continue  # compressed (FLAC) formats have no fixed size
        spf = header.samps_per_frame or [1] * len(header.file_name)
        per_frame = sum(int(spf[i] or 1) for i in signals)
        offset = int((header.byte_offset or [None] * len(header.file_name))[signals[0]] or 0)
        held = (data_path.stat().st_size - offset) / (_BYTES_PER_SAMPLE[fmt] * per_frame)
        held_frames = max(0, math.floor(held))
        if sig_len is None and held_frames == 0:
            raise DataError(f"{data_path}: zero-length signal (the data file holds no samples).")
        if sig_len is not None and held_frames < sig_len:
            raise DataError(
                f"{data_path}: truncated: header {header_path.name} says {sig_len} samples, "
                f"file holds {held_frames}. Re-copy the record or correct the header."
            )


def _wfdb_channels(leads: Sequence[str | int], names: list[str], header_path: Path) -> list[int]:
    if isinstance(leads, str | int):
        leads = [leads]
    if not leads:
        raise ConfigError(f"{header_path}: leads=[] selects nothing; give lead names or indices.")
    channels = []
    for lead in leads:
        if isinstance(lead, int | np.integer) and -len(names) <= lead < len(names):
            channels.append(int(lead) % len(names))
            continue
        folded = [i for i, n in enumerate(names) if str(n).casefold() == str(lead).casefold()]
        if str(lead) in names:
            channels.append(names.index(str(lead)))
        elif len(folded) == 1:
            channels.append(folded[0])
        else:
            raise DataError(
                f"{header_path}: no lead {lead!r}; available leads: {', '.join(map(str, names))}."
            )
    return channels


def _rdrecord(base: str, channels: list[int] | None, header_path: Path) -> Record:
    import wfdb

    try:
        return wfdb.rdrecord(base, channels=channels, physical=True, smooth_frames=False)
    except Exception as exc:
        raise DataError(
            f"{header_path}: wfdb could not read the record; the header and data file may not "
            f"match or the data may be damaged ({type(exc).__name__}: {exc})."
        ) from exc


def _wfdb_signal(record: Record) -> tuple[np.ndarray, float]:
    """``(signal, fs)`` at the fastest signal's rate; slower signals linearly interpolated."""
    columns = [np.asarray(c, dtype=np.float64).reshape(-1) for c in record.e_p_signal]
    spf = [int(s or 1) for s in (record.samps_per_frame or [1] * len(columns))]
    top = max(spf)
    frame_fs = float(record.fs)
    n_frames = min(len(c) // s for c, s in zip(columns, spf, strict=True))
    out = np.empty((n_frames * top, len(columns)), dtype=np.float32)
    target_t = np.arange(n_frames * top) / top  # in frames
    for j, (column, rate) in enumerate(zip(columns, spf, strict=True)):
        column = column[: n_frames * rate]
        if rate == top:
            out[:, j] = column
        else:
            out[:, j] = np.interp(target_t, np.arange(len(column)) / rate, column)
    return out, frame_fs * top


def _read_wfdb_annotations(
    ann_path: Path, base: str, extension: str
) -> tuple[BeatAnnotations, float | None]:
    """The annotations and the rate their sample numbers count in (None: the frame rate)."""
    import wfdb

    try:
        ann = wfdb.rdann(base, extension)
    except Exception as exc:
        raise DataError(
            f"{ann_path}: wfdb could not read the annotation file; it may be damaged or not a "
            f"WFDB annotation file ({type(exc).__name__}: {exc}). Pass annotation_extension=None "
            "to read the signal without it."
        ) from exc
    aux = [str(a).rstrip("\x00") for a in (ann.aux_note or [""] * len(ann.sample))]
    fs = float(ann.fs) if ann.fs else None
    return BeatAnnotations(sample=ann.sample, symbol=list(ann.symbol), aux_note=aux), fs


# ------------------------------------------------------------------------------------ DICOM


def read_dicom_ecg(
    path: str | Path,
    *,
    group: int | None = None,
    allow_nan: bool = False,
    require_deidentified: bool = False,
) -> EcgRecord:
    """Read a DICOM ECG (any Waveform IOD) multiplex group through ``pydicom``.

    By default the group is the first one labelled ``RHYTHM``; without such a label, the group
    with the highest sampling rate (ties: the most samples, then the first), so a short "MEDIAN
    BEAT" template is not taken for the recording. ``group`` picks an index instead.
    ``Dataset.waveform_array`` applies Channel Sensitivity, its Correction Factor and Channel
    Baseline; the result is in each channel's Channel Sensitivity Units, converted here to mV.
    ``require_deidentified`` refuses a file that is not de-identified before decoding it.
    """
    from medsight.io.dicom import _read_dataset

    path = Path(path)
    ds = _read_dataset(path)
    if require_deidentified:
        require_deidentified_dicom(ds, str(path))
    waves = ds.get("WaveformSequence")
    if not waves:
        modality = ds.get("Modality", "") or "unknown modality"
        sop = ds.get("SOPClassUID")
        kind = f"{modality}, {getattr(sop, 'name', sop)}" if sop else modality
        raise DataError(
            f"{path}: DICOM file has no waveform (no Waveform Sequence; {kind}); it is not a "
            "DICOM ECG."
        )
    index = _pick_group(waves, path) if group is None else group
    if not 0 <= index < len(waves):
        raise ConfigError(
            f"{path}: group {index} requested but the file has {len(waves)} group(s)."
        )
    item = waves[index]
    try:
        n_channels = int(item.NumberOfWaveformChannels)
        n_samples = int(item.NumberOfWaveformSamples)
        fs = float(item.SamplingFrequency)
        width = int(item.WaveformBitsAllocated) // 8
        held = len(item.WaveformData) // max(1, width * n_channels)
    except Exception as exc:
        raise DataError(
            f"{path}: waveform group {index} lacks a required element ({type(exc).__name__}: "
            f"{exc}); need channels, samples, sampling frequency, bits and waveform data."
        ) from exc
    if n_samples == 0 or n_channels == 0:
        raise DataError(f"{path}: zero-length signal (waveform group {index} holds no samples).")
    if held < n_samples:
        raise DataError(
            f"{path}: truncated: header says {n_samples} samples, file holds {held} "
            f"(waveform group {index})."
        )
    try:
        values = ds.waveform_array(index)
    except Exception as exc:
        raise DataError(
            f"{path}: pydicom could not decode waveform group {index} "
            f"({type(exc).__name__}: {exc})."
        ) from exc
    channels = list(item.get("ChannelDefinitionSequence") or [])
    names = [_channel_name(ch, i) for i, ch in enumerate(channels)]
    names += [f"ch{i + 1}" for i in range(len(names), n_channels)]
    units = [_channel_unit(ch) for ch in channels] + [""] * (n_channels - len(channels))
    units, signal = _to_millivolts(values, units)
    _check_finite(signal, names, str(path), allow_nan)
    return EcgRecord(
        signal=signal,
        fs=fs,
        lead_names=names[:n_channels],
        name=path.stem,
        source=str(path),
        annotations=None,
        comments=_dicom_comments(ds),
        units=units,
    )


def _pick_group(waves: Sequence[Dataset], path: Path) -> int:
    usable = [i for i, g in enumerate(waves) if int(g.get("NumberOfWaveformChannels", 0) or 0)]
    if not usable:
        raise DataError(f"{path}: no waveform group has any channel.")
    for i in usable:
        if str(waves[i].get("MultiplexGroupLabel", "") or "").strip().upper() == "RHYTHM":
            return i

    def key(i: int) -> tuple[float, int, int]:
        g = waves[i]
        return (
            float(g.get("SamplingFrequency", 0) or 0),
            int(g.get("NumberOfWaveformSamples", 0) or 0),
            -i,
        )

    return max(usable, key=key)


def _channel_name(channel: Dataset, index: int) -> str:
    """``Lead I (Einthoven)`` -> ``I``, ``Lead aVR`` -> ``aVR``; else the label or ``ch<n>``."""
    source = channel.get("ChannelSourceSequence")
    meaning = str(source[0].get("CodeMeaning", "") or "") if source else ""
    if meaning:
        name = re.sub(r"\s*\(.*\)\s*$", "", meaning.strip())
        name = re.sub(r"^(ECG\s+)?lead\s+", "", name, flags=re.IGNORECASE).strip()
        if name:
            return name
    label = str(channel.get("ChannelLabel", "") or "").strip()
    return label or f"ch{index + 1}"


def _channel_unit(channel: Dataset) -> str:
    if "ChannelSensitivity" not in channel:
        return ""  # pydicom then returns the stored integers
    units = channel.get("ChannelSensitivityUnitsSequence")
    return str(units[0].get("CodeValue", "") or "") if units else ""


def _dicom_comments(ds: Dataset) -> list[str]:
    """Text and numeric waveform annotations (interpretation statements, intervals, axes)."""
    comments = []
    for item in ds.get("WaveformAnnotationSequence") or []:
        text = item.get("UnformattedTextValue")
        if text:
            comments.append(str(text))
            continue
        concept = item.get("ConceptNameCodeSequence")
        value = item.get("NumericValue")
        if concept and value is not None and "ReferencedSamplePositions" not in item:
            unit_seq = item.get("MeasurementUnitsCodeSequence")
            unit = f" {unit_seq[0].get('CodeValue', '')}" if unit_seq else ""
            comments.append(f"{concept[0].get('CodeMeaning', '')}: {value}{unit}".rstrip())
    return comments


# ------------------------------------------------------------------------------------ arrays


def read_ecg_array(
    path: str | Path,
    *,
    fs: float | None,
    lead_names: Sequence[str] | None = None,
    allow_nan: bool = False,
) -> EcgRecord:
    """Read a CSV (columns = leads) or NumPy ``.npy``/``.npz`` signal sampled at ``fs`` Hz.

    CSV: the header row is optional (lead names come from it); a time/sample-index column is
    dropped; a second row of units (``mV``, ``uV`` ...) right under the header is honoured.
    NumPy: 1-D, or 2-D samples x leads, transposed when clearly leads x samples (at most 16 rows
    and more than 4x as many columns); an ``.npz`` must hold one array or one named ``signal``
    or ``ecg``. Without stated units the values are kept as they are (``units`` ``""``).
    """
    path = Path(path)
    fs = _require_fs(fs, path)
    if not path.is_file():
        raise DataError(f"{path}: file not found." if not path.exists() else f"{path}: not a file.")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes); no signal to read.")
    suffix = path.suffix.lower()
    if suffix in {".npy", ".npz"}:
        signal = _load_numpy(path)
        names, units = [f"lead{i + 1}" for i in range(signal.shape[1])], [""] * signal.shape[1]
    else:
        names, units, signal = _load_csv(path)
    if signal.shape[0] == 0:
        raise DataError(f"{path}: zero-length signal (no samples).")
    if lead_names is not None:
        lead_names = [str(n) for n in lead_names]
        if len(lead_names) != signal.shape[1]:
            raise ConfigError(
                f"{path}: {len(lead_names)} lead name(s) given ({', '.join(lead_names)}) but the "
                f"file holds {signal.shape[1]} lead(s)."
            )
        names = lead_names
    units, signal = _to_millivolts(signal, units)
    _check_finite(signal, names, str(path), allow_nan)
    return EcgRecord(
        signal=signal, fs=fs, lead_names=names, name=path.stem, source=str(path), units=units
    )


def _require_fs(fs: float | None, path: Path) -> float:
    try:
        value = float(fs) if fs is not None else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        shown = "missing" if fs is None else repr(fs)
        raise ConfigError(
            f"{path}: no sampling rate: pass --fs / fs=... (Hz; got {shown}); a CSV or NumPy "
            "file does not record it."
        )
    return value


def _load_numpy(path: Path) -> np.ndarray:
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DataError(
            f"{path}: not a readable NumPy file ({type(exc).__name__}: {exc}); object arrays "
            "(pickles) are refused."
        ) from exc
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            keys = list(loaded.files)
            key = next(
                (k for k in ("signal", "ecg") if k in keys), keys[0] if len(keys) == 1 else None
            )
            if key is None:
                raise DataError(
                    f"{path}: holds arrays {', '.join(keys) or '(none)'}; expected one array, or "
                    "one named 'signal' or 'ecg'."
                )
            array = loaded[key]
    else:
        array = loaded
    if array.dtype.kind not in "biuf":
        raise DataError(f"{path}: the array holds {array.dtype} values, not numbers.")
    if array.size == 0:
        raise DataError(f"{path}: zero-length signal (the array has shape {array.shape}).")
    if array.ndim == 1:
        array = array[:, None]
    elif array.ndim != 2:
        raise DataError(
            f"{path}: expected a 1-D or 2-D (samples x leads) array; got shape {array.shape}."
        )
    rows, cols = array.shape
    if rows <= 16 and cols > 4 * rows:
        array = array.T  # leads x samples
    return array.astype(np.float32)


def _load_csv(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    text_head = path.read_bytes()[:4096]
    kind = _foreign_kind(text_head)
    if kind or b"\x00" in text_head:
        raise DataError(f"{path}: not a CSV text file (it is {kind or 'binary'}).")
    first = next((ln for ln in text_head.decode("utf-8", "replace").splitlines() if ln.strip()), "")
    if not first:
        raise DataError(f"{path}: the CSV is empty (no rows); no signal to read.")
    counts = {sep: first.count(sep) for sep in (",", ";", "\t")}
    sep = max(counts, key=counts.get) if max(counts.values()) else r"\s+"
    try:
        table = pd.read_csv(
            path,
            sep=sep,
            header=None,
            dtype=str,
            skip_blank_lines=True,
            keep_default_na=False,
            engine="c" if sep != r"\s+" else "python",
        )
    except Exception as exc:
        raise DataError(f"{path}: not a readable CSV ({type(exc).__name__}: {exc}).") from exc
    table = table.apply(lambda col: col.str.strip().str.strip("'\""))
    if table.empty:
        raise DataError(f"{path}: the CSV is empty (no rows); no signal to read.")

    header = [str(v) for v in table.iloc[0]]
    has_header = any(v and not _is_number(v) for v in header)
    names = header if has_header else [f"lead{i + 1}" for i in range(table.shape[1])]
    body = table.iloc[1:] if has_header else table
    keep = [i for i, n in enumerate(names) if not (has_header and _TIME_COLUMN.match(n.lower()))]
    if not keep:
        raise DataError(f"{path}: the CSV holds only a time/index column, no lead.")
    units = [""] * len(names)
    has_units = bool(has_header and len(body)) and all(
        not _is_number(str(body.iloc[0, i])) and str(body.iloc[0, i]) for i in keep
    )
    if has_units:
        units = [str(v).strip("()[] ") for v in body.iloc[0]]
        body = body.iloc[1:]
    if body.empty:
        raise DataError(f"{path}: the CSV has a header but no data rows; no signal to read.")
    body = body.iloc[:, keep]
    values = body.apply(lambda col: pd.to_numeric(col.replace("", "nan"), errors="coerce"))
    bad = values.isna().to_numpy() & ~body.isin(["", "nan", "NaN", "NA", "NAN"]).to_numpy()
    if bad.any():
        r, c = (int(v[0]) for v in np.nonzero(bad))
        line = r + 1 + int(has_header) + int(has_units)
        raise DataError(
            f"{path}: line {line}, column {names[keep[c]]!r}: {body.iloc[r, c]!r} is not a "
            f"number ({int(bad.sum())} such cell(s))."
        )
    return (
        [names[i] or f"lead{i + 1}" for i in keep],
        [units[i] for i in keep],
        (values.to_numpy(dtype=np.float32)),
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------ dispatch


_WFDB_OPTIONS = frozenset({"annotation_extension", "leads", "allow_nan"})
_DICOM_OPTIONS = frozenset({"group", "leads", "allow_nan"})
_ARRAY_OPTIONS = frozenset({"lead_names", "leads", "allow_nan"})


def read_ecg(
    path: str | Path,
    *,
    fs: float | None = None,
    require_deidentified: bool = False,
    **kw: object,
) -> EcgRecord:
    """Read any supported ECG file, choosing the reader by extension or content.

    WFDB for ``.hea``/``.dat``/``.mat`` or a record name whose ``.hea`` exists; DICOM for
    ``.dcm``/``.dicom`` or a file with the DICOM preamble; CSV/NumPy for ``.csv``/``.npy``/
    ``.npz`` (these need ``fs``). For WFDB and DICOM the file's own rate is used and an ``fs``
    that disagrees with it is a :class:`ConfigError` (resample with :func:`resample_record`).
    ``leads`` selects leads for every format; other keywords go to the chosen reader.
    ``require_deidentified`` is passed to the WFDB and DICOM readers (CSV/NumPy hold no text).
    """
    path = Path(path)
    kind = _detect_format(path)
    allowed = {"wfdb": _WFDB_OPTIONS, "dicom": _DICOM_OPTIONS, "array": _ARRAY_OPTIONS}[kind]
    unknown = sorted(set(kw) - allowed)
    if unknown:
        raise ConfigError(
            f"{path}: option(s) {', '.join(unknown)} do not apply to {kind} files; "
            f"accepted: {', '.join(sorted(allowed))}."
        )
    leads = kw.pop("leads", None)
    if kind == "array":
        record = read_ecg_array(path, fs=fs, **kw)  # type: ignore[arg-type]
    else:
        if kind == "wfdb":
            record = read_wfdb(  # type: ignore[arg-type]
                path, leads=leads, require_deidentified=require_deidentified, **kw
            )
            leads = None
        else:
            record = read_dicom_ecg(  # type: ignore[arg-type]
                path, require_deidentified=require_deidentified, **kw
            )
        if fs is not None and not math.isclose(float(fs), record.fs, rel_tol=1e-6):
            raise ConfigError(
                f"{path}: the file says {record.fs:g} Hz but fs={fs} was given; leave fs out "
                "for this format, or resample with resample_record(record, fs)."
            )
    if leads is not None:
        record = record.select([leads] if isinstance(leads, str | int) else list(leads))
    return record


def _detect_format(path: Path) -> Literal["wfdb", "dicom", "array"]:
    suffix = path.suffix.lower()
    if suffix in WFDB_SUFFIXES or Path(f"{path}.hea").is_file():
        return "wfdb"
    if suffix in DICOM_SUFFIXES:
        return "dicom"
    if suffix in ARRAY_SUFFIXES:
        return "array"
    if path.is_file():
        with path.open("rb") as handle:
            head = handle.read(132)
        if head[128:132] == b"DICM":
            return "dicom"
        kind = _foreign_kind(head)
        if kind == "a NumPy .npy file":
            return "array"
        raise DataError(
            f"{path}: cannot tell the ECG format"
            + (f" (the file is {kind})" if kind else "")
            + "; supported: WFDB (.hea with .dat/.mat), DICOM (.dcm), .csv, .npy, .npz."
        )
    raise DataError(f"{path}: file not found (nor a WFDB record {path.name}.hea).")


# ------------------------------------------------------------------------------------ resampling


# Upsampling more than this is no ECG sampling rate but a unit mistake (e.g. kHz given as Hz).
MAX_RESAMPLE_FACTOR = 10_000


def resample_record(record: EcgRecord, fs: float) -> EcgRecord:
    """``record`` at ``fs`` Hz via ``scipy.signal.resample_poly``; annotations rescaled.

    The ratio is approximated by a fraction with denominator <= 1000; the returned ``fs`` is the
    rate actually reached (equal to ``fs`` whenever the ratio is exact, e.g. 360 -> 500 Hz).
    Returns ``record`` itself when the rates already match.
    """
    from scipy.signal import resample_poly

    try:
        target = float(fs)
    except (TypeError, ValueError):
        target = math.nan
    if not (math.isfinite(target) and target > 0):
        raise ConfigError(f"resample_record: target rate must be > 0 Hz; got {fs!r}.")
    if math.isclose(target, record.fs, rel_tol=1e-9):
        return record
    ratio = (_as_fraction(target) / _as_fraction(record.fs)).limit_denominator(1000)
    if ratio <= 0 or ratio.numerator > MAX_RESAMPLE_FACTOR:
        raise ConfigError(
            f"cannot resample from {record.fs:g} Hz to {target:g} Hz: the ratio is too extreme "
            f"(more than {MAX_RESAMPLE_FACTOR}x); check the sampling rate."
        )
    nan = int(np.count_nonzero(~np.isfinite(record.signal)))
    if nan:
        raise DataError(
            f"{record.source or record.name}: cannot resample a signal with {nan} NaN/infinite "
            "sample(s); fill or cut the gaps first."
        )
    up, down = ratio.numerator, ratio.denominator
    signal = resample_poly(record.signal, up, down, axis=0).astype(np.float32)
    annotations = None
    if record.annotations is not None:
        annotations = _scale_annotations(record.annotations, up / down, len(signal))
    return replace(record, signal=signal, fs=float(record.fs * up / down), annotations=annotations)


def _as_fraction(value: float) -> Fraction:
    return Fraction(repr(float(value)))


def _scale_annotations(ann: BeatAnnotations, factor: float, n_samples: int) -> BeatAnnotations:
    if factor == 1:
        return BeatAnnotations(sample=ann.sample, symbol=ann.symbol, aux_note=ann.aux_note)
    sample = np.rint(ann.sample * factor).astype(np.int64)
    if n_samples:
        sample = np.clip(sample, 0, n_samples - 1)
    return BeatAnnotations(sample=sample, symbol=ann.symbol, aux_note=ann.aux_note)


# ------------------------------------------------------------------------------------ challenge


def read_challenge_reference(
    folder: str | Path, *, allowed: Sequence[str] | frozenset[str] | None = CHALLENGE_LABELS
) -> pd.DataFrame:
    """``REFERENCE.csv`` of a PhysioNet/CinC 2017-style folder as a ``record,label`` DataFrame.

    ``folder`` is the folder or the CSV itself. A ``record,label`` header row is optional. Labels
    must be in ``allowed`` (default ``N, A, O, ~``; ``None`` accepts any); records must be unique.
    """
    path = Path(folder)
    csv_path = path / "REFERENCE.csv" if path.is_dir() else path
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: reference file not found (expected REFERENCE.csv).")
    try:
        table = pd.read_csv(
            csv_path, header=None, dtype=str, keep_default_na=False, skip_blank_lines=True
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError(
            f"{csv_path}: the reference file is empty; expected rows record,label."
        ) from exc
    except Exception as exc:
        raise DataError(f"{csv_path}: not a readable CSV ({type(exc).__name__}: {exc}).") from exc
    if table.shape[1] != 2:
        raise DataError(f"{csv_path}: expected 2 columns (record,label); found {table.shape[1]}.")
    table = table.apply(lambda col: col.str.strip())
    table.columns = ["record", "label"]
    first_line = 1
    if [v.lower() for v in table.iloc[0]] == ["record", "label"]:
        table = table.iloc[1:]
        first_line = 2
    table = table.reset_index(drop=True)
    if table.empty:
        raise DataError(f"{csv_path}: the reference file has no rows.")
    for i, (record, label) in enumerate(zip(table["record"], table["label"], strict=True)):
        if not record:
            raise DataError(f"{csv_path}: line {i + first_line}: empty record name.")
        if allowed is not None and label not in allowed:
            raise DataError(
                f"{csv_path}: line {i + first_line}: label {label!r} for record {record} is not "
                f"one of {', '.join(sorted(allowed))}."
            )
    dup = table["record"][table["record"].duplicated()].tolist()
    if dup:
        raise DataError(f"{csv_path}: record(s) listed more than once: {_examples(dup)}.")
    return table


def iter_challenge_records(
    folder: str | Path,
    *,
    allowed: Sequence[str] | frozenset[str] | None = CHALLENGE_LABELS,
    on_missing: Literal["raise", "skip"] = "raise",
) -> Iterator[tuple[str, str, Path]]:
    """``(record_name, label, header_path)`` for each row of the folder's ``REFERENCE.csv``.

    A record is present when ``<name>.hea`` and ``<name>.mat`` (or ``.dat``) are in the folder.
    With ``on_missing="raise"`` (default) any absent record is a :class:`DataError` listing the
    first few, raised before anything is yielded; ``"skip"`` yields the present ones and warns.
    """
    folder = Path(folder)
    table = read_challenge_reference(folder, allowed=allowed)
    base = folder if folder.is_dir() else folder.parent
    files = {p.name for p in base.iterdir()}
    present, missing = [], []
    for record, label in zip(table["record"], table["label"], strict=True):
        ok = f"{record}.hea" in files and ({f"{record}.mat", f"{record}.dat"} & files)
        (present if ok else missing).append((record, label))
    if missing:
        names = [m[0] for m in missing]
        message = (
            f"{base}: {len(missing)} of {len(table)} record(s) in REFERENCE.csv have no .hea + "
            f".mat/.dat files: {_examples(names, 5)}"
        )
        if on_missing == "raise":
            raise DataError(message + '; copy them or pass on_missing="skip".')
        warnings.warn(message + "; skipped.", UserWarning, stacklevel=2)
    for record, label in present:
        yield record, label, base / f"{record}.hea"


# ------------------------------------------------------------------------------------ helpers


def _foreign_kind(head: bytes) -> str | None:
    for magic, kind in _FOREIGN_MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "a DICOM file"
    return None


def _to_millivolts(signal: np.ndarray, units: list[str]) -> tuple[list[str], np.ndarray]:
    """Voltage channels scaled to mV (units become ``"mV"``); other units left as they are."""
    factors = [_VOLT_TO_MV.get(unit.strip().casefold()) for unit in units]
    out_units = [unit if f is None else "mV" for unit, f in zip(units, factors, strict=True)]
    scale = np.array([1.0 if f is None else f for f in factors], dtype=np.float32)
    signal = np.asarray(signal, dtype=np.float32)
    if np.any(scale != 1.0):
        signal = signal * scale  # a new array: the caller's is left alone
    return out_units, signal


def _check_finite(signal: np.ndarray, names: list[str], source: str, allow_nan: bool) -> None:
    bad = ~np.isfinite(signal)
    if allow_nan or not bad.any():
        return
    per_lead = bad.sum(axis=0)
    leads = ", ".join(f"{names[j]}: {int(n)}" for j, n in enumerate(per_lead) if n)
    first = int(np.nonzero(bad.any(axis=1))[0][0])
    raise DataError(
        f"{source}: the signal holds {int(bad.sum())} NaN/infinite sample(s) (per lead: {leads}; "
        f"first at sample {first}); fill the gaps, or pass allow_nan=True to keep them."
    )


def _examples(items: Sequence[object], limit: int = 3) -> str:
    shown = ", ".join(str(item) for item in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


__all__ = [
    "BEAT_SYMBOLS",
    "CHALLENGE_LABELS",
    "BeatAnnotations",
    "EcgRecord",
    "iter_challenge_records",
    "read_challenge_reference",
    "read_dicom_ecg",
    "read_ecg",
    "read_ecg_array",
    "read_wfdb",
    "resample_record",
]
