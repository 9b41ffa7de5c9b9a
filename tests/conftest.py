"""Shared fixtures: synthetic tables, and the location of ../shared/data for real-data tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medsight.data.synthetic import make_risk_table

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def risk_table() -> pd.DataFrame:
    return make_risk_table(160, seed=1)


@pytest.fixture
def risk_csv(tmp_path: Path, risk_table: pd.DataFrame) -> Path:
    path = tmp_path / "risk.csv"
    risk_table.to_csv(path, index=False)
    return path


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"needs {path} (../shared/data is not available on this machine)")
    return path


def small_densenet() -> object:
    """A test-sized MONAI DenseNet (the same layer types as DenseNet-121, far fewer of them)."""
    from monai.networks.nets import DenseNet

    return DenseNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=2,
        init_features=8,
        growth_rate=8,
        block_config=(2, 2, 2, 2),
    )
