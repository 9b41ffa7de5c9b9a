"""Checking a bundle folder before it enters the registry, and file manifests of registered copies.

A bundle records SHA-256 digests of its model files in ``bundle.json``: the ``sha256`` mapping
(image and ECG bundles) or ``model_sha256`` for ``model.joblib`` (tabular bundles). Registration
refuses a bundle whose recorded digests do not match, or which records none.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from medsight.bundle.checksum import check_complete, sha256_file, verify_checksums
from medsight.errors import BundleError

TASK_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class BundleInfo:
    """A verified bundle folder: its task, display name, metadata and digests."""

    path: Path
    task: str
    name: str
    bundle_sha256: str
    metadata: dict[str, Any] = field(repr=False)
    digests: dict[str, str] = field(repr=False)


def bundle_folder(path: str | Path) -> Path:
    """A bundle folder, given the bundle itself or the run folder holding ``bundle/``.

    Same rule as ``medsight.tasks.external.bundle_path``, without importing the modelling stack.
    """
    path = Path(path)
    for folder in (path, path / "bundle"):
        if (folder / "bundle.json").is_file():
            return folder
    raise BundleError(f"{path}: neither a bundle nor a run folder with a bundle/ inside.")


def recorded_digests(metadata: dict[str, Any]) -> dict[str, str]:
    """File name -> SHA-256 as recorded in a bundle's metadata (both layouts)."""
    digests = {str(k): str(v) for k, v in (metadata.get("sha256") or {}).items()}
    if metadata.get("model_sha256"):
        digests.setdefault("model.joblib", str(metadata["model_sha256"]))
    return digests


def inspect_bundle(path: str | Path) -> BundleInfo:
    """Read and verify the bundle at ``path`` (a bundle folder or a run folder holding one).

    Raises :class:`BundleError` naming the problem: no bundle.json, invalid JSON, no task, no
    recorded checksums, a missing file, or a file that differs from its recorded digest.
    """
    folder = bundle_folder(path).resolve()
    try:
        metadata = json.loads((folder / "bundle.json").read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{folder}/bundle.json is not valid JSON ({exc}).") from exc
    if not isinstance(metadata, dict):
        raise BundleError(f"{folder}/bundle.json must hold a JSON object.")
    task = str(metadata.get("task") or "")
    if not TASK_PATTERN.fullmatch(task):
        raise BundleError(
            f"{folder}/bundle.json: task {task!r} is missing or not a valid task name "
            "(lower-case letters, digits, '.', '_' or '-')."
        )
    digests = recorded_digests(metadata)
    if not digests:
        raise BundleError(
            f"{folder}: bundle.json records no checksums, so its files cannot be verified; "
            "re-create the bundle with a current medsight."
        )
    _check_names(folder, digests)
    check_complete(folder, tuple(digests))
    verify_checksums(folder, {"sha256": digests})
    name = str(
        metadata.get("name") or (folder.parent.name if folder.name == "bundle" else folder.name)
    )
    return BundleInfo(
        folder, task, name[:200], sha256_file(folder / "bundle.json"), metadata, digests
    )


def _check_names(folder: Path, digests: dict[str, str]) -> None:
    """Refuse recorded file names that point outside the bundle folder."""
    for name in digests:
        target = (folder / name).resolve()
        if not target.is_relative_to(folder):
            raise BundleError(
                f"{folder}/bundle.json: checksummed file {name!r} is outside the bundle."
            )


def file_manifest(folder: Path) -> dict[str, str]:
    """Relative POSIX path -> SHA-256 of every regular file under ``folder``."""
    return {
        item.relative_to(folder).as_posix(): sha256_file(item)
        for item in sorted(folder.rglob("*"))
        if item.is_file() and not item.is_symlink()
    }


def check_manifest(folder: Path, manifest: dict[str, str]) -> None:
    """Raise :class:`BundleError` naming files missing, added or changed since ``manifest``."""
    if not folder.is_dir():
        raise BundleError(f"{folder}: the registered bundle folder is missing.")
    current = file_manifest(folder)
    missing = sorted(set(manifest) - set(current))
    added = sorted(set(current) - set(manifest))
    changed = sorted(n for n in set(manifest) & set(current) if manifest[n] != current[n])
    if missing or added or changed:
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (("missing", missing), ("added", added), ("changed", changed))
            if names
        ]
        raise BundleError(
            f"{folder}: registered bundle was modified after registration ({'; '.join(parts)}); "
            "register the bundle again."
        )
