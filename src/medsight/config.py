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
    # refuse a table whose text or whole-number cells look like identifiers (privacy.gate)
    require_deidentified: bool = False


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


class OperatingPointConfig(_Strict):
    """How a binary model's threshold on the positive probability is chosen: ``fixed``, or on
    validation data by Youden's J, for a target sensitivity, or for the highest accuracy."""

    threshold: Literal["fixed", "youden", "sensitivity", "accuracy"] = "fixed"
    fixed_threshold: float = Field(0.5, gt=0.0, lt=1.0)
    target_sensitivity: float = Field(0.95, gt=0.0, le=1.0)


class EvaluationConfig(OperatingPointConfig):
    """Cross-validation, bootstrap and operating-threshold settings."""

    folds: int = Field(5, ge=2)
    repeats: int = Field(3, ge=1)
    inner_folds: int = Field(3, ge=2)
    n_bootstrap: int = Field(1000, ge=100)
    explain_rows: int = Field(200, ge=10)


class _RunConfig(_Strict):
    """Fields every task's run has: a task name, a run name, the seed and the output folder."""

    task: str
    name: str | None = None
    seed: int = 0
    output_dir: Path = Path("runs")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c in value for c in "/\\:")):
            raise ValueError("must be a non-empty name without '/', '\\' or ':'")
        return value


class TrainConfig(_RunConfig):
    """A whole tabular training run: data, cleaning, model and evaluation."""

    task: Literal["tabular-classification"] = "tabular-classification"
    data: DataConfig = Field(default_factory=DataConfig)
    cleaning: CleaningConfig = Field(default_factory=CleaningConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)


class ImageDataConfig(_Strict):
    """Where the images are: a ``.npz``, ``medmnist:NAME``, a class-folder tree or a CSV."""

    path: str | None = None
    image_size: int | None = Field(None, ge=8, le=1024)
    positive_class: str | None = None
    val_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    # refuse DICOM files that are not de-identified (marker, burned-in flag, deid verify)
    require_deidentified: bool = False
    # data without official splits: images whose pixels correlate at least this much (frames of
    # one scene, medsight.data.image_audit) stay on one side of every split, as one patient's
    # images do; the run's near-duplicate audit uses it too. None: split images independently.
    near_duplicate_threshold: float | None = Field(0.97, gt=0.0, lt=1.0)
    # a CSV of sop_instance_uid,label[,patient_id]: the folder searched (recursively) for the
    # DICOM files; None: the CSV's own folder
    dicom_folder: str | None = None
    # images whose DICOM Patient ID is the same stay on one side of every split, as a CSV's
    # patient_id column does (which takes precedence); False: only that column groups images
    dicom_patient_groups: bool = True


class AugmentConfig(_Strict):
    """Random training augmentation (MONAI); flips are reused for test-time augmentation."""

    flip_horizontal: bool = True
    flip_vertical: bool = False
    rotate_degrees: float = Field(15.0, ge=0.0, le=180.0)
    zoom: float = Field(0.1, ge=0.0, lt=1.0)
    translate: float = Field(0.1, ge=0.0, lt=0.5)
    affine_probability: float = Field(1.0, ge=0.0, le=1.0)
    gamma: float = Field(1.2, ge=1.0, le=3.0)
    noise_std: float = Field(0.0, ge=0.0)
    # random erasing (cutout): with this probability a square of erase_size x the image side is
    # filled with uniform noise in the image's own range (MONAI RandCoarseDropout's default fill)
    erase_probability: float = Field(0.0, ge=0.0, le=1.0)
    erase_size: float = Field(0.25, gt=0.0, le=1.0)
    # the same draws per image, made for a whole batch at once (medsight.transforms.batch_augment):
    # 5-fold CV on BreastMNIST train+val against a rule fixed first, ensemble AUROC 0.896 -> 0.895,
    # accuracy 0.859 -> 0.856 (non-inferior), 164 -> 67 s per network (docs/architecture.md)
    batched: bool = True


class EngineSettings(_Strict):
    """Optimiser, schedule, early stopping and hardware settings of the torch training engine.

    ``epochs`` is capped so that training makes at most ``max_steps`` optimiser steps: small data
    sets get many epochs, large ones few, and training time stays bounded on a CPU.
    """

    epochs: int = Field(100, ge=1)
    max_steps: int | None = Field(3000, ge=1)
    batch_size: int = Field(64, ge=1)
    learning_rate: float = Field(3e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    optimizer: Literal["adamw", "sgd"] = "adamw"  # sgd: Nesterov momentum 0.9
    warmup_fraction: float = Field(0.05, ge=0.0, lt=1.0)
    patience: int | None = Field(50, ge=1)
    # what early stopping and the kept epoch follow: val AUROC (ranking), or val loss (ranking
    # and calibration: the kept model's probabilities fit the 0.5 decision better)
    monitor: Literal["auroc", "loss"] = "auroc"
    # auto: "weights" for one label per image (5-fold CV on BreastMNIST train+val, test untouched,
    # against a rule fixed first: ensemble accuracy 0.845 -> 0.859, AUROC 0.887 -> 0.896; see
    # docs/architecture.md), "none" for multi-label findings (weighting a rare finding's positives
    # by its negatives would call it present in most images at the 0.5 cut; unweighted BCE keeps
    # each probability on the finding's prevalence, as MedMNIST's reference training does)
    class_balance: Literal["auto", "none", "weights", "sampler"] = "auto"
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    mixup_alpha: float | None = Field(None, ge=0.0, le=10.0)  # None or 0: no mixup
    grad_clip: float | None = Field(None, gt=0.0)
    # auto: autocast on CUDA only; native: also bf16 on a CPU with native bf16 (fp32 elsewhere);
    # on: bf16 on the CPU or an error where the CPU lacks it; off: fp32 everywhere
    amp: Literal["auto", "native", "on", "off"] = "auto"
    ema_decay: float | None = Field(None, gt=0.0, lt=1.0)  # validate and keep an EMA of weights
    # stochastic weight averaging: from this fraction of the epochs on, validate and keep the equal
    # average of the end-of-epoch weights (not with ema_decay)
    swa_start: float | None = Field(None, gt=0.0, lt=1.0)
    # sharpness-aware minimisation: each step's gradient taken at the weights moved this far
    # along their gradient (Foret et al. 2021; about 2x the compute per step); None: off
    sam_rho: float | None = Field(None, gt=0.0)
    device: str = "auto"
    channels_last: bool = True  # image batches in channels-last memory: faster convolutions
    num_workers: int = Field(0, ge=0)
    tta: bool = True


class _MemberShareConfig(_Strict):
    """A member's share of the averaged probability: a number, or ``"val"`` for the share in
    ``weight_grid`` whose mixture has the lowest log-loss on the val split (0 leaves it out)."""

    weight: float | Literal["val"] = "val"
    weight_grid: list[float] = Field(default_factory=lambda: [0.0, 0.25, 0.5], min_length=1)
    # leave the member out where mixing it in at its share raises the val log-loss by more than
    # 1.645 standard errors of the paired per-image rises (one-sided 5%): on a few dozen val
    # images only a clearly harmful member goes, on thousands any that hurts
    leave_out_if_worse_on_val: bool = False

    @field_validator("weight_grid")
    @classmethod
    def _shares(cls, values: list[float]) -> list[float]:
        if any(not 0.0 <= value < 1.0 for value in values):
            raise ValueError("every weight share must be in [0, 1)")
        return values

    @field_validator("weight")
    @classmethod
    def _share(cls, value: float | str) -> float | str:
        if isinstance(value, float) and not 0.0 < value < 1.0:
            raise ValueError('weight must be in (0, 1) or "val"')
        return value


class SvmMemberConfig(_MemberShareConfig):
    """An RBF SVM averaged with the networks as one more member (medsight.models.pixel_svm):
    wavelet scattering coefficients (or the pixels), standardised, PCA, C by grouped CV AUROC."""

    # auto: on for one label per image (skipped, with a warning, where it cannot be fitted), off
    # for multi-label data; true: on, and an error where it cannot be. Adopted in session 15 by
    # CV on ten fresh BreastMNIST train+val folds (test untouched), against a rule fixed first:
    # ensemble AUROC 0.892 -> 0.909, accuracy 0.862 -> 0.877 (docs/architecture.md)
    enabled: bool | Literal["auto"] = "auto"
    # scattering: log wavelet scattering coefficients (medsight.models.scattering), stable to small
    # shifts and deformations; pixels: the (average-pooled) pixels themselves
    features: Literal["scattering", "pixels"] = "scattering"
    scattering_scale: int = Field(3, ge=1, le=4)  # J: coefficients average over 2**J pixels
    orientations: int = Field(8, ge=2, le=16)  # L: wavelet orientations per scale
    components: int | None = Field(None, ge=1)  # PCA components; None: 100 scattering, 50 pixels
    # its share (weight, weight_grid: _MemberShareConfig) is chosen on val from 0, 0.25 and 0.5;
    # the networks share the rest equally
    c_grid: list[float] = Field(default_factory=lambda: [0.3, 1.0, 3.0, 10.0], min_length=1)
    folds: int = Field(3, ge=2)  # grouped CV folds for C and for Platt scaling
    max_train: int = Field(2000, ge=10)  # a stratified sample of at most this many images

    def active(self, multi_label: bool) -> bool:
        """Whether a run on one-label (or multi-label) data gets the member."""
        return self.enabled is True or (self.enabled == "auto" and not multi_label)

    def n_components(self) -> int:
        """PCA components: the setting, else 100 for scattering and 50 for pixels."""
        if self.components is not None:
            return self.components
        return 100 if self.features == "scattering" else 50

    @field_validator("c_grid")
    @classmethod
    def _positive(cls, values: list[float]) -> list[float]:
        if any(value <= 0 for value in values):
            raise ValueError("every C must be > 0")
        return values


class TreeMemberConfig(_MemberShareConfig):
    """LightGBM on wavelet scattering coefficients, averaged with the networks (and the SVM) as
    one more member (medsight.models.tree_member)."""

    # auto: on for one label per image (skipped, with a warning, where it cannot be fitted), off
    # for multi-label data; true: on, and an error where it cannot be. Adopted in session 16 by
    # CV on ten fresh BreastMNIST train+val folds (test untouched), against a rule fixed first:
    # ensemble AUROC 0.897 -> 0.906, accuracy 0.863 -> 0.871 (docs/architecture.md)
    enabled: bool | Literal["auto"] = "auto"
    # its share of the averaged probability; the networks and the SVM share the rest in the
    # proportions they had without it (the judged recipe: 0.75 * ensemble + 0.25 * trees).
    # "val": the share in weight_grid with the lowest val log-loss (0 leaves the trees out)
    weight: float | Literal["val"] = 0.25
    weight_grid: list[float] = Field(default_factory=lambda: [0.0, 0.25], min_length=1)
    # on by default from session 17 (a safeguard for data where the trees are much weaker than
    # the networks): judged non-inferior on ten fresh BreastMNIST folds, AUROC 0.908 -> 0.907,
    # accuracy 0.873 -> 0.873, the trees kept on 9 of 10 (docs/architecture.md). A val-chosen
    # share (weight: val) was not: 78 val images dropped the trees on 5 of 10 folds
    leave_out_if_worse_on_val: bool = True
    scattering_scale: int = Field(3, ge=1, le=4)  # J
    orientations: int = Field(8, ge=2, le=16)  # L
    trees: int = Field(300, ge=1)
    learning_rate: float = Field(0.03, gt=0.0)
    leaves: int = Field(15, ge=2)  # at most this many leaves per tree
    row_fraction: float = Field(0.8, gt=0.0, le=1.0)  # rows sampled per tree
    feature_fraction: float = Field(0.3, gt=0.0, le=1.0)  # coefficients sampled per tree
    # a stratified sample of at most this many images (memory: 1.6 GB for 2,000 3-channel
    # images and their mirrors; the fit time grows with classes x coefficients, not images)
    max_train: int = Field(2000, ge=10)

    def active(self, multi_label: bool) -> bool:
        """Whether a run on one-label (or multi-label) data gets the member."""
        return self.enabled is True or (self.enabled == "auto" and not multi_label)


class ImageModelConfig(_Strict):
    """A registered image model, its parameters and optional local pretrained weights."""

    name: str = "small_cnn"
    params: dict[str, Any] = Field(default_factory=dict)
    weights: Path | None = None
    ensemble: int = Field(5, ge=1, le=20)  # members from different seeds, probabilities averaged
    svm_member: SvmMemberConfig = Field(default_factory=SvmMemberConfig)
    tree_member: TreeMemberConfig = Field(default_factory=TreeMemberConfig)


class ImageEvaluationConfig(OperatingPointConfig):
    """Operating threshold (binary tasks; chosen on the val split), bootstrap and explanation
    settings for the held-out test evaluation."""

    n_bootstrap: int = Field(1000, ge=100)
    gradcam_cases: int = Field(8, ge=0, le=64)


class ImageTrainConfig(_RunConfig):
    """An image-classification run: data, augmentation, model, engine and evaluation."""

    task: Literal["image-classification"] = "image-classification"
    data: ImageDataConfig = Field(default_factory=ImageDataConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    model: ImageModelConfig = Field(default_factory=ImageModelConfig)
    engine: EngineSettings = Field(default_factory=EngineSettings)
    evaluation: ImageEvaluationConfig = Field(default_factory=ImageEvaluationConfig)


class EcgDataConfig(_Strict):
    """A folder of WFDB records with ``REFERENCE.csv``, the model's rate and its input windows."""

    path: str | None = None
    fs: float = Field(150.0, gt=0.0)  # records are resampled to this rate when read
    lead: str | int = 0
    val_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.5)
    crop_seconds: float = Field(30.0, gt=1.0)  # training crop and prediction window
    hop_seconds: float = Field(15.0, gt=0.0)  # step between prediction windows
    # refuse records whose header comments look like identifiers (WFDB has no de-id marker)
    require_deidentified: bool = False


class EcgModelConfig(_Strict):
    """A registered ECG model: a network (``ecg_resnet1d``, ``ecg_cnn_bilstm``) or features."""

    name: str = "ecg_resnet1d"
    params: dict[str, Any] = Field(default_factory=dict)


class EcgEngineSettings(EngineSettings):
    """The engine's ECG defaults, kept for every key a config's ``engine`` section leaves out."""

    epochs: int = Field(40, ge=1)
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(32, ge=1)
    weight_decay: float = Field(1e-3, ge=0.0)
    patience: int | None = Field(10, ge=1)
    class_balance: Literal["none", "weights", "sampler"] = "weights"
    amp: Literal["auto", "native", "on", "off"] = "native"
    tta: bool = False


class EcgEvaluationConfig(_Strict):
    n_bootstrap: int = Field(1000, ge=100)


class EcgTrainConfig(_RunConfig):
    """An ECG rhythm-classification run (PhysioNet/CinC 2017 layout)."""

    task: Literal["ecg-rhythm"] = "ecg-rhythm"
    data: EcgDataConfig = Field(default_factory=EcgDataConfig)
    model: EcgModelConfig = Field(default_factory=EcgModelConfig)
    engine: EcgEngineSettings = Field(default_factory=EcgEngineSettings)
    evaluation: EcgEvaluationConfig = Field(default_factory=EcgEvaluationConfig)


AnyConfig = TrainConfig | ImageTrainConfig | EcgTrainConfig
TASK_CONFIGS: dict[str, type[_Strict]] = {
    "tabular-classification": TrainConfig,
    "image-classification": ImageTrainConfig,
    "ecg-rhythm": EcgTrainConfig,
}


def read_config_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML config file; a ``ConfigError`` naming the file otherwise."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found.")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}).") from exc
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of keys, got {type(raw).__name__}."
        )
    return raw


def load_config(path: str | Path) -> AnyConfig:
    """Read a YAML config; errors name the file and the offending key."""
    path = Path(path)
    config = parse_config(read_config_mapping(path), source=str(path))
    config.data.path = _relative_to_file(path, config.data.path)
    if isinstance(config.data, ImageDataConfig):
        config.data.dicom_folder = _relative_to_file(path, config.data.dicom_folder)
    return config


def _relative_to_file(config_path: Path, value: str | Path | None) -> str | Path | None:
    """A relative file path in a config, resolved against the config file's folder (values with
    a scheme such as ``medmnist:NAME``, absolute paths and None unchanged)."""
    if value is None or ":" in str(value) or Path(value).is_absolute():
        return value
    resolved = (config_path.parent / value).resolve()
    return resolved if isinstance(value, Path) else str(resolved)


def parse_config(raw: dict[str, Any], *, source: str = "config") -> AnyConfig:
    """Validate a mapping into the config class of its ``task``, reporting problems in one line."""
    task = raw.get("task", "tabular-classification")
    if task not in TASK_CONFIGS:
        raise ConfigError(f"{source}: unknown task '{task}'; choose one of {sorted(TASK_CONFIGS)}.")
    try:
        return TASK_CONFIGS[task].model_validate(raw)  # type: ignore[return-value]
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


def dump_config(config: AnyConfig) -> str:
    """The resolved config as YAML, as written into every run folder."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
