"""A fingerprint of the training data: content hash, rows and columns, without the data itself."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pandas as pd


def frame_fingerprint(frame: pd.DataFrame, source: str | Path | None = None) -> dict[str, Any]:
    """SHA-256 of the table's values and column names, with its shape and source file name."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return {
        "sha256": digest.hexdigest(),
        "rows": int(frame.shape[0]),
        "columns": int(frame.shape[1]),
        "source": Path(source).name if source is not None else None,
    }


def package_versions(names: tuple[str, ...] = ()) -> dict[str, str]:
    """Installed versions of the packages a bundle depends on."""
    from importlib.metadata import PackageNotFoundError, version

    wanted = names or (
        "medsight",
        "numpy",
        "pandas",
        "scikit-learn",
        "lightgbm",
        "shap",
        "torch",
        "scipy",
    )
    versions = {}
    for name in wanted:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions
