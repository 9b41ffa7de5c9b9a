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
    check_complete(path, files)
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


def check_complete(path: Path, files: tuple[str, ...]) -> None:
    """Raise a :class:`BundleError` naming the files a bundle folder lacks."""
    missing = [name for name in files if not (path / name).exists()]
    if missing:
        raise BundleError(f"{path}: incomplete bundle, missing {', '.join(missing)}.")


def verify_checksums(path: Path, metadata: dict[str, Any]) -> None:
    """Refuse a bundle whose files differ from the SHA-256 digests in ``metadata["sha256"]``."""
    for name, digest in metadata.get("sha256", {}).items():
        if sha256_file(path / name) != digest:
            raise BundleError(f"{path}: {name} does not match its recorded checksum.")


def write_bundle_metadata(
    staging: Path,
    metadata: dict[str, Any],
    *,
    task: str,
    bundle_format: int,
    checksummed: tuple[str, ...],
    model_card: str = "",
) -> dict[str, Any]:
    """Write ``bundle.json`` (with task, format and the files' digests) and the model card."""
    full = {
        **metadata,
        "format": bundle_format,
        "task": task,
        "sha256": {name: sha256_file(staging / name) for name in checksummed},
    }
    (staging / "bundle.json").write_text(json.dumps(full, indent=2, default=str))
    if model_card:
        (staging / "model_card.md").write_text(model_card)
    return full


def read_model_card(path: Path) -> str:
    """The bundle's ``model_card.md``, or ``""`` when it has none."""
    card = path / "model_card.md"
    return card.read_text() if card.exists() else ""
