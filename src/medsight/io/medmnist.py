"""Find or download MedMNIST subsets: ``--data medmnist:breastmnist``.

Files are looked up in the cache (``$MEDSIGHT_CACHE`` or ``~/.cache/medsight``) and in the project's
``../shared/data`` folder; when absent and a network exists they are downloaded from the official
release, checked against the published MD5, and cached. Without a network the error says where
to put the file. Tests never download.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from medsight.errors import ConfigError, DataError
from medsight.io.images import ImageSet, read_medmnist_npz
from medsight.io.medmnist_catalog import MEDMNIST_2D, MedMNISTSubset

PREFIX = "medmnist:"


def cache_dir() -> Path:
    """Where downloaded data sets are kept (``$MEDSIGHT_CACHE`` or ``~/.cache/medsight``)."""
    root = os.environ.get("MEDSIGHT_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "medsight"


def subset_info(name: str) -> MedMNISTSubset:
    """Catalogue entry for ``name`` (``breastmnist`` ...); a ConfigError listing the choices."""
    key = name.lower().removeprefix(PREFIX)
    if key not in MEDMNIST_2D:
        raise ConfigError(
            f"unknown MedMNIST subset '{name}'; 2D subsets: {', '.join(sorted(MEDMNIST_2D))}."
        )
    return MEDMNIST_2D[key]


def candidate_paths(name: str) -> list[Path]:
    """Where a subset's ``.npz`` is looked for, in order."""
    file = f"{name}.npz"
    shared = Path(__file__).resolve().parents[4] / "shared" / "data"
    return [cache_dir() / "medmnist" / file, shared / name / file, Path.cwd() / file]


def locate_medmnist(name: str, *, download: bool = True) -> Path:
    """The local ``.npz`` for ``name``, downloading it into the cache if allowed and needed."""
    info = subset_info(name)
    for path in candidate_paths(info.name):
        if path.is_file():
            return path
    target = candidate_paths(info.name)[0]
    if not download:
        raise DataError(_not_found_message(info, target))
    return download_medmnist(info, target)


def load_medmnist(name: str, *, download: bool = True) -> dict[str, ImageSet]:
    """The official train/val/test splits of a MedMNIST subset, with its class names."""
    info = subset_info(name)
    return read_medmnist_npz(
        locate_medmnist(info.name, download=download), class_names=info.class_names
    )


def download_medmnist(info: MedMNISTSubset, target: Path, *, timeout: float = 60.0) -> Path:
    """Download ``info.url`` to ``target`` (atomic), verifying the MD5; DataError when offline."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with (
            urllib.request.urlopen(info.url, timeout=timeout) as response,
            partial.open("wb") as out,
        ):
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise DataError(
            f"could not download {info.name} ({exc}). {_not_found_message(info, target)}"
        ) from exc
    if digest.hexdigest() != info.md5:
        partial.unlink(missing_ok=True)
        raise DataError(
            f"{info.name}: downloaded file has MD5 {digest.hexdigest()}, expected {info.md5}; "
            "nothing was kept. Try again, or fetch the file by hand."
        )
    os.replace(partial, target)
    return target


def _not_found_message(info: MedMNISTSubset, target: Path) -> str:
    return (
        f"MedMNIST '{info.name}' is not available offline. Download {info.url} "
        f"(MD5 {info.md5}) and save it as {target}, or pass the .npz path with --data."
    )
