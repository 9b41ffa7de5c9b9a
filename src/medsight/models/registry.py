"""Model registry: a name maps to a factory, its tuning grid and a description.

Modelled on timm's ``register_model`` / ``create_model``: code elsewhere asks for a model by name,
so adding a model touches one registry entry and one file, not the training engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medsight.errors import ConfigError

Factory = Callable[..., Any]


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it and which hyperparameters inner CV may search."""

    name: str
    factory: Factory
    family: str
    description: str
    param_grid: dict[str, list[Any]] = field(default_factory=dict)


_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register_model(
    name: str,
    *,
    family: str,
    description: str,
    param_grid: dict[str, list[Any]] | None = None,
    aliases: tuple[str, ...] = (),
) -> Callable[[Factory], Factory]:
    """Decorator that registers ``factory`` under ``name`` (and optional aliases)."""

    def decorate(factory: Factory) -> Factory:
        if name in _REGISTRY or name in _ALIASES:
            raise ValueError(f"model '{name}' is already registered")
        _REGISTRY[name] = ModelEntry(name, factory, family, description, dict(param_grid or {}))
        for alias in aliases:
            _ALIASES[alias] = name
        return factory

    return decorate


def get_model_entry(name: str) -> ModelEntry:
    """The entry for ``name`` or an alias; a :class:`ConfigError` listing the choices otherwise."""
    _load_builtin_models()
    key = _ALIASES.get(name, name)
    if key not in _REGISTRY:
        choices = ", ".join(sorted([*_REGISTRY, *_ALIASES]))
        raise ConfigError(f"unknown model '{name}'; registered models: {choices}.")
    return _REGISTRY[key]


def create_model(name: str, **params: Any) -> Any:
    """Build a fresh, unfitted model by registered name."""
    entry = get_model_entry(name)
    try:
        return entry.factory(**params)
    except TypeError as exc:
        raise ConfigError(
            f"model '{entry.name}': invalid parameters {sorted(params)} ({exc})."
        ) from exc


def list_models(family: str | None = None) -> list[ModelEntry]:
    """All registered models, optionally of one family (``tabular``, ``image`` ...)."""
    _load_builtin_models()
    return [e for e in _REGISTRY.values() if family is None or e.family == family]


def _load_builtin_models() -> None:
    # Importing the model modules runs their @register_model decorators.
    from medsight.models import ecg_beats, ecg_features, imaging, signal, tabular  # noqa: F401
