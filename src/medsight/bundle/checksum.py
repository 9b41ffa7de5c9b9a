"""Bundle files: SHA-256 recorded at save and checked at load, and the bundle.json header check."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from medsight.errors import BundleError


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_bundle_metadata(
    path: Path, files: tuple[str, ...], task: str, bundle_format: int
) -> dict[str, Any]:
    """``bundle.json`` of a complete bundle folder of ``task`` and ``bundle_format``."""
    if not path.is_dir():
        raise BundleError(f"{path}: not a bundle folder (expected a folder with bundle.json).")
    missing = [name for name in files if not (path / name).exists()]
    if missing:
        raise BundleError(f"{path}: incomplete bundle, missing {', '.join(missing)}.")
    try:
        metadata = json.loads((path / "bundle.json").read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{path}/bundle.json is not valid JSON ({exc}).") from exc
    if metadata.get("task") != task or metadata.get("format") != bundle_format:
        raise BundleError(
            f"{path}: bundle is task {metadata.get('task')!r}, format "
            f"{metadata.get('format')!r}; this reader takes {task!r} format {bundle_format}."
        )
    return metadata
