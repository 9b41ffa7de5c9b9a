from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medsight.errors import DataError
from medsight.io.tabular import read_table


def test_reads_csv_and_parquet_identically(tmp_path: Path, risk_table: pd.DataFrame) -> None:
    risk_table.to_csv(tmp_path / "t.csv", index=False)
    risk_table.to_parquet(tmp_path / "t.parquet")
    from_csv = read_table(tmp_path / "t.csv")
    from_parquet = read_table(tmp_path / "t.parquet")
    assert from_csv.shape == risk_table.shape
    pd.testing.assert_frame_equal(from_csv, from_parquet, check_dtype=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
        (b"a,b\n", "no rows"),
        (b"\n\n\n", "no data"),
    ],
)
def test_bad_files_raise_data_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_table(path)


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        read_table(tmp_path / "nope.csv")


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(DataError, match="Parquet"):
        read_table(path)
