"""Shared fixtures: synthetic tables, and the location of ../shared/data for real-data tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medsight.data.synthetic import make_risk_table


@pytest.fixture
def risk_table() -> pd.DataFrame:
    return make_risk_table(160, seed=1)


@pytest.fixture
def risk_csv(tmp_path: Path, risk_table: pd.DataFrame) -> Path:
    path = tmp_path / "risk.csv"
    risk_table.to_csv(path, index=False)
    return path
