"""The champion's recipe found again: its training config and the original data that config names.

Every retrainer looks in the same places: ``--config``, else ``config`` in the bundle's
``bundle.json`` (written by retraining), else ``config.yaml`` in the run folder the bundle was
registered from. A run folder's ``config.yaml`` keeps ``data.path`` as it was given, relative to
where training ran, so the path is tried as given and relative to the config's folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from medsight.config import AnyConfig, parse_config, read_config_mapping
from medsight.errors import ConfigError
from medsight.retrain.base import Champion

Config = TypeVar("Config", bound=AnyConfig)


def champion_config(
    metadata: dict[str, Any],
    champion: Champion,
    override: Path | None,
    config_type: type[Config],
    kind: str,
) -> tuple[Config, str]:
    """The champion's config of ``config_type`` and where it was found; ``kind`` names the
    data in the error for a config of another task (e.g. ``"a table"``)."""
    if override is not None:
        return _config_file(Path(override), config_type, kind), str(override)
    recorded = metadata.get("config")
    if isinstance(recorded, dict):
        config = parse_config(recorded, source="bundle.json config")
        where = f"bundle.json of {champion.task} v{champion.version}"
        return _checked(config, config_type, kind), where
    if champion.registered_from is not None:
        origin = Path(champion.registered_from)
        for candidate in (origin.parent / "config.yaml", origin / "config.yaml"):
            if candidate.is_file():
                return _config_file(candidate, config_type, kind), str(candidate)
    raise ConfigError(
        f"cannot find the training config of {champion.task} v{champion.version}: its bundle "
        "records none and the run folder it was registered from has no config.yaml; pass "
        "--config with the run's config.yaml."
    )


def _config_file(path: Path, config_type: type[Config], kind: str) -> Config:
    # read without load_config's path resolution (see the module docstring)
    raw = read_config_mapping(path)
    return _checked(parse_config(raw, source=str(path)), config_type, kind)


def _checked(config: object, config_type: type[Config], kind: str) -> Config:
    if not isinstance(config, config_type):
        raise ConfigError(
            f"the champion's config is for task {getattr(config, 'task', '?')!r}, not {kind}."
        )
    return config


def locate_original(
    spec: str | Path | None,
    config_source: str,
    *,
    what: str,
    exists: Callable[[Path], bool] = Path.exists,
    missing_hint: str = "",
) -> Path:
    """The original data ``spec`` names (absolute, or relative to the working folder or the
    config's folder), resolved; ``what`` names it in errors (e.g. ``"training table"``)."""
    if spec is None:
        raise ConfigError(
            f"the champion's config ({config_source}) records no {what}{missing_hint}; pass it "
            "with --data."
        )
    path = Path(spec).expanduser()
    candidates = [path] if path.is_absolute() else [path, Path(config_source).parent / path]
    for candidate in candidates:
        if exists(candidate):
            return candidate.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"the original {what} {path} was not found (tried {tried}); pass its current location "
        "with --data."
    )
