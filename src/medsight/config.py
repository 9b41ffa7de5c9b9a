"""Typed run configuration, loadable from YAML and overridable by CLI flags.

Every model is ``extra="forbid"``: an unknown or misspelt key is an error naming the key, never a
silently ignored setting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medsight.data.schema import ColumnSpec, SubgroupSpec
from medsight.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Where the table is and what its columns mean; ``columns`` overrides inferred roles."""

    path: Path | None = None
    target: str | None = None
    patient_id: str | None = None
    positive_class: str | None = None
    exclude: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    numeric: list[str] = Field(default_factory=list)
    missing_values: dict[str, list[float | str]] = Field(default_factory=dict)
    columns: dict[str, ColumnSpec] = Field(default_factory=dict)
    subgroups: list[SubgroupSpec] = Field(default_factory=list)


class CleaningConfig(_Strict):
    """Row and column cleaning, and the per-fold preprocessing of features."""

    drop_duplicate_rows: bool = True
    drop_constant_columns: bool = True
    max_missing_fraction: float = Field(0.6, ge=0.0, le=1.0)
    impute: Literal["median", "mean"] = "median"
    missing_indicators: bool = True
    clip: Literal["none", "range", "quantile"] = "range"
    scaling: Literal["standard", "power", "none"] = "power"


class ModelConfig(_Strict):
    """Which registered model, its fixed parameters, and how it is tuned and calibrated."""

    name: str = "default"
    params: dict[str, Any] = Field(default_factory=dict)
    tune: bool = True
    class_weight: Literal["auto", "balanced", "none"] = "auto"
    calibration: Literal["auto", "sigmoid", "isotonic", "none"] = "auto"


class EvaluationConfig(_Strict):
    """Cross-validation, bootstrap and operating-threshold settings."""

    folds: int = Field(5, ge=2)
    repeats: int = Field(3, ge=1)
    inner_folds: int = Field(3, ge=2)
    n_bootstrap: int = Field(1000, ge=100)
    threshold: Literal["fixed", "youden", "sensitivity"] = "fixed"
    fixed_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    target_sensitivity: float = Field(0.95, gt=0.0, le=1.0)
    explain_rows: int = Field(200, ge=10)


class TrainConfig(_Strict):
    """A whole training run: data, cleaning, model, evaluation, seed and output folder."""

    task: Literal["tabular-classification"] = "tabular-classification"
    name: str | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    cleaning: CleaningConfig = Field(default_factory=CleaningConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    seed: int = 0
    output_dir: Path = Path("runs")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c in value for c in "/\\:")):
            raise ValueError("must be a non-empty name without '/', '\\' or ':'")
        return value


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML config; errors name the file and the offending key."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}."
        )
    config = parse_config(raw, source=str(path))
    if config.data.path is not None and not config.data.path.is_absolute():
        config.data.path = (path.parent / config.data.path).resolve()
    return config


def parse_config(raw: dict[str, Any], *, source: str = "config") -> TrainConfig:
    """Validate a mapping into a :class:`TrainConfig`, reporting the first problem in one line."""
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc)}") from exc


def format_validation_error(exc: ValidationError) -> str:
    """One line per pydantic error: ``key.path: message``; unknown keys said plainly."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown key '{where}'")
        else:
            parts.append(f"'{where}': {error['msg']}")
    return "; ".join(parts)


def dump_config(config: TrainConfig) -> str:
    """The resolved config as YAML, as written into every run folder."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
