"""Read CSV and Parquet tables into pandas, with clear errors for files that are not tables."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd

from medsight.errors import DataError

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
_SNIFF_BYTES = 8192


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (optionally gzipped) or Parquet file into a DataFrame.

    Raises :class:`DataError` naming the file when it is missing, empty, binary, unparseable or has
    a header but no rows.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found. Check the path (relative to {Path.cwd()}).")
    if path.is_dir():
        raise DataError(f"{path}: is a folder; give a CSV or Parquet file.")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes); give a CSV or Parquet table.")

    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in PARQUET_SUFFIXES:
        frame = _read_parquet(path)
    elif suffixes and (suffixes[-1] in CSV_SUFFIXES or (suffixes[-2:-1] and suffixes[-1] == ".gz")):
        frame = _read_csv(path)
    elif _looks_like_parquet(path):
        frame = _read_parquet(path)
    else:
        frame = _read_csv(path)

    if frame.shape[1] == 0:
        raise DataError(f"{path}: no columns found; is this a table with a header row?")
    if frame.shape[0] == 0:
        raise DataError(f"{path}: the table has a header but no rows.")
    _check_column_names(path, frame)
    return frame


def _looks_like_parquet(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == b"PAR1"


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
        raise DataError(f"{path}: cannot be read as Parquet ({exc}).") from exc


def _read_csv(path: Path) -> pd.DataFrame:
    head = _first_bytes(path)
    if b"\x00" in head:
        raise DataError(
            f"{path}: looks like a binary file, not a CSV (it contains NUL bytes). "
            "Give a comma-separated text file or a .parquet file."
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        encoding = "latin-1"
    else:
        encoding = "utf-8"
    separator = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        return pd.read_csv(path, sep=separator, encoding=encoding, skipinitialspace=True)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file has no data (only blank lines?).") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: cannot be parsed as CSV ({exc}).") from exc


def _first_bytes(path: Path) -> bytes:
    if path.suffix.lower() == ".gz":
        try:
            with gzip.open(path, "rb") as handle:
                return handle.read(_SNIFF_BYTES)
        except OSError as exc:
            raise DataError(f"{path}: has a .gz name but is not gzip data ({exc}).") from exc
    with path.open("rb") as handle:
        return handle.read(_SNIFF_BYTES)


def _check_column_names(path: Path, frame: pd.DataFrame) -> None:
    unnamed = [str(c) for c in frame.columns if str(c).startswith("Unnamed:")]
    if len(unnamed) == frame.shape[1]:
        raise DataError(f"{path}: no header row found; the first row must name the columns.")
