"""The one torch training engine of medsight (images, ECG, and later autoencoders, GANs, text).

`Trainer` fits an ``nn.Module`` that maps a batch ``x`` to logits ``(N, n_classes)`` (binary tasks
use two logits and softmax) on map-style datasets yielding ``(x, label)``. With ``multi_label``
each item's label is a 0/1 vector with one entry per output (several findings may be present at
once, as in ChestMNIST): every output gets its own sigmoid and binary cross-entropy, and AUROC is
the mean over outputs.

It does AdamW with linear warm-up then cosine decay stepped per batch, class weights or a
weighted sampler, AMP on CUDA (bf16 on CPUs that have it, on request), an optional exponential
moving average (EMA) or stochastic weight average (SWA) of the weights, early stopping on
validation AUROC (or loss) with the best weights restored, an atomic checkpoint every epoch that
``fit(resume=True)`` continues from exactly, and DDP under torchrun.

Determinism: the global Python/NumPy/torch generators are reseeded at the start of every epoch
from ``(seed, epoch, rank)`` and the shuffling generator from the same key, and a dataset with a
``set_epoch(epoch)`` method is told the epoch, so a run resumed from the checkpoint of epoch k draws
exactly what an uninterrupted run draws in epoch k + 1 (bit for bit on the CPU with the same thread
count; CUDA kernels may add their own non-determinism).

Under DDP (torchrun, see `medsight.train.distributed`) the training set is split by a
``DistributedSampler``; every rank evaluates its shard of the validation set and the logits are
all-gathered, so all ranks compute the same metrics; rank 0's early-stopping decision is
broadcast, BatchNorm buffers are copied from rank 0 after every epoch, and only rank 0 writes
checkpoints, log lines and the progress bar.

Labels are read from a ``labels`` or ``targets`` attribute when the dataset has one of the right
length (also through ``torch.utils.data.Subset``); otherwise every item is loaded once to read them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    RandomSampler,
    Sampler,
    Subset,
    WeightedRandomSampler,
    default_collate,
)

from medsight.errors import ConfigError, DataError, MedsightError
from medsight.train.checkpoint import (
    FORMAT,
    capture_rng_state,
    check_compatible,
    load_checkpoint,
    model_signature,
    restore_rng_state,
    save_checkpoint,
)
from medsight.train.distributed import DistributedContext, ShardedSampler, current_context
from medsight.train.sam import sharpness_aware_point

__all__ = [
    "EngineConfig",
    "EpochRecord",
    "FitResult",
    "Trainer",
    "class_weights",
    "dataset_labels",
    "macro_auroc",
    "warmup_cosine",
]

logger = logging.getLogger(__name__)

LossFn = Callable[[Tensor, Tensor], Tensor]
# per batch (inputs, labels) -> (the network's input, the loss of its logits)
BatchObjective = Callable[[Tensor, Tensor], tuple[Tensor, Callable[[Tensor], Tensor]]]
BatchFn = Callable[[Tensor], Tensor]
CHECKPOINT_NAME = "last.pt"
PROGRESS_EVERY_S = 0.2
# Config fields that do not change the training trajectory and may differ on resume.
RUNTIME_FIELDS = frozenset({"amp", "device", "num_workers", "progress"})
ROLES = {"train_size": "training", "val_size": "validation"}


@dataclass
class EngineConfig:
    """Training settings; every field is checked on construction (`ConfigError`)."""

    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    # "adamw" (decoupled weight decay) or "sgd" (Nesterov momentum 0.9, L2 weight decay)
    optimizer: Literal["adamw", "sgd"] = "adamw"
    warmup_epochs: int = 3  # linear warm-up, then cosine decay to ~0, stepped per batch
    patience: int | None = 15  # epochs without improvement before stopping; None = never stop
    monitor: Literal["auroc", "loss"] = "auroc"  # -val_loss when AUROC is undefined
    class_balance: Literal["none", "weights", "sampler"] = "weights"
    label_smoothing: float = 0.0
    # mixup (Zhang et al. 2018): each batch is blended with a shuffled copy of itself with a weight
    # drawn from Beta(alpha, alpha), and the loss blended the same way; None or 0: off
    mixup_alpha: float | None = None
    grad_clip: float | None = None  # max global gradient norm
    # "auto": bf16 (or fp16 + GradScaler) autocast on CUDA; "native" also autocasts bf16 on a CPU
    # with native bf16 (AVX512-BF16/AMX; about 1.6x faster there) and stays float32 on other
    # CPUs; "on" is "native" that refuses a CPU without bf16; "off": float32 everywhere.
    amp: Literal["auto", "native", "on", "off"] = "auto"
    # Validate, early-stop on and keep an exponential moving average of the weights and BatchNorm
    # buffers, updated after every optimiser step (e.g. 0.98); None keeps the raw weights.
    ema_decay: float | None = None
    # Stochastic weight averaging (Izmailov et al. 2018): from the first epoch after this fraction
    # of the epochs, validate, early-stop on and keep the equal average of the end-of-epoch weights
    # and BatchNorm buffers; earlier epochs train but are not kept. None keeps the raw weights.
    swa_start: float | None = None
    # Sharpness-aware minimisation (Foret et al. 2021): each step takes the gradient at the
    # weights moved this far (L2) along their gradient, then steps from the weights themselves;
    # about twice the compute per step. None: plain steps.
    sam_rho: float | None = None
    # labels are (N, n_outputs) 0/1 vectors: a sigmoid and binary cross-entropy per output,
    # class_balance "weights" weighs each output's positives by its negatives / positives
    multi_label: bool = False
    device: str = "auto"  # "auto": cuda if available else cpu; ignored under DDP
    # image batches (N, C, H, W) and 2D convolution weights in channels-last memory: the same
    # model, but oneDNN and cuDNN convolutions run faster on it (1.2-1.6x for small_cnn on a
    # 2-core CPU); float rounding and the memory order of dropout masks differ; other inputs
    # are untouched
    channels_last: bool = True
    seed: int = 0
    num_workers: int = 0
    progress: bool = True  # Rich progress bar (main rank only)

    def __post_init__(self) -> None:
        def need(ok: bool, name: str, what: str) -> None:
            if not ok:
                raise ConfigError(f"EngineConfig.{name}={getattr(self, name)!r}: {what}")

        def is_int(value: object) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        need(is_int(self.epochs) and self.epochs >= 1, "epochs", "must be an integer >= 1")
        need(is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "must be >= 1")
        need(self.learning_rate > 0, "learning_rate", "must be > 0")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(self.optimizer in ("adamw", "sgd"), "optimizer", "must be 'adamw' or 'sgd'")
        need(
            is_int(self.warmup_epochs) and self.warmup_epochs >= 0, "warmup_epochs", "must be >= 0"
        )
        need(
            self.patience is None or (is_int(self.patience) and self.patience >= 1),
            "patience",
            "must be None or an integer >= 1",
        )
        need(self.monitor in ("auroc", "loss"), "monitor", "must be 'auroc' or 'loss'")
        need(
            self.class_balance in ("none", "weights", "sampler"),
            "class_balance",
            "must be 'none', 'weights' or 'sampler'",
        )
        need(0 <= self.label_smoothing < 1, "label_smoothing", "must be in [0, 1)")
        need(self.grad_clip is None or self.grad_clip > 0, "grad_clip", "must be None or > 0")
        need(
            self.mixup_alpha is None or 0 <= self.mixup_alpha <= 10,
            "mixup_alpha",
            "must be None or in [0, 10]",
        )
        need(
            self.amp in ("auto", "native", "on", "off"),
            "amp",
            "must be 'auto', 'native', 'on' or 'off'",
        )
        need(
            self.ema_decay is None or 0.0 < self.ema_decay < 1.0,
            "ema_decay",
            "must be None or in (0, 1)",
        )
        need(
            self.swa_start is None or 0.0 < self.swa_start < 1.0,
            "swa_start",
            "must be None or in (0, 1)",
        )
        need(
            self.swa_start is None or self.ema_decay is None,
            "swa_start",
            "cannot be combined with ema_decay: both replace the kept weights by an average",
        )
        need(self.sam_rho is None or self.sam_rho > 0, "sam_rho", "must be None or > 0")
        need(
            not (self.multi_label and self.class_balance == "sampler"),
            "class_balance",
            "'sampler' draws by one class per item; multi-label data use 'weights' or 'none'",
        )
        need(is_int(self.seed) and self.seed >= 0, "seed", "must be an integer >= 0")
        need(is_int(self.num_workers) and self.num_workers >= 0, "num_workers", "must be >= 0")

    def as_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (stored in checkpoints)."""
        return asdict(self)


@dataclass
class EpochRecord:
    """What happened in one epoch (epochs count from 1)."""

    epoch: int
    train_loss: float  # mean training loss over all ranks
    val_loss: float  # cross-entropy of the validation set (or loss_fn when one is given)
    val_auroc: float | None  # binary: class-1; multi-class: macro one-vs-rest; multi-label: mean
    score: float  # the monitored value, higher is better: val_auroc or -val_loss
    learning_rate: float  # learning rate of the epoch's last batch
    train_seconds: float  # wall time of the training pass only (no validation, no checkpoint)
    train_images: int  # images trained on in this epoch, all ranks together
    images_per_second: float  # train_images / train_seconds


@dataclass
class FitResult:
    """Outcome of `Trainer.fit`; the trainer's model then holds the weights of ``best_epoch``."""

    best_epoch: int
    best_score: float  # higher is better; see ``monitored``
    epochs_run: int  # epochs completed, including those before a resume
    stopped_early: bool
    history: list[EpochRecord] = field(default_factory=list)
    monitored: str = "val_auroc"  # "val_auroc" or "-val_loss"
    checkpoint: Path | None = None


def warmup_cosine(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate factor of batch ``step`` (from 0): linear warm-up to 1, then cosine to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = total_steps - warmup_steps
    if span <= 0:
        return 1.0
    progress = min(max((step - warmup_steps) / span, 0.0), 1.0)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def class_weights(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Balanced class weights ``n / (k * count_c)``; a class without examples gets weight 0."""
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    weights = np.zeros_like(counts)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def macro_auroc(labels: np.ndarray, probabilities: np.ndarray) -> float | None:
    """Binary: AUROC of the class-1 probability; multi-class: mean one-vs-rest AUROC;
    multi-label (``labels`` ``(N, L)`` of 0/1): mean AUROC over the labels.

    Classes absent from ``labels`` (or the only class present) are left out of the mean;
    ``None`` when no class has both positives and negatives.
    """
    labels = np.asarray(labels)
    n_classes = probabilities.shape[1]
    if labels.ndim == 2:
        scores = [
            roc_auc_score(labels[:, k], probabilities[:, k])
            for k in range(n_classes)
            if 0 < int(labels[:, k].sum()) < len(labels)
        ]
        return float(np.mean(scores)) if scores else None
    if n_classes == 2:
        if len(np.unique(labels)) < 2:
            return None
        return float(roc_auc_score(labels, probabilities[:, 1]))
    scores = [
        roc_auc_score(labels == c, probabilities[:, c])
        for c in range(n_classes)
        if 0 < int((labels == c).sum()) < len(labels)
    ]
    return float(np.mean(scores)) if scores else None


def dataset_labels(dataset: Dataset) -> np.ndarray:
    """Integer labels ``(N,)`` of a map-style dataset, or 0/1 label vectors ``(N, L)``, from a
    ``labels``/``targets`` attribute if any."""
    n = len(dataset)  # type: ignore[arg-type]
    if isinstance(dataset, Subset):
        return dataset_labels(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    for name in ("labels", "targets"):
        value = getattr(dataset, name, None)
        if value is None or callable(value):
            continue
        array = np.asarray(value.cpu() if isinstance(value, Tensor) else value)
        if array.ndim >= 1 and array.shape[0] == n and array.size == n:
            return _as_int_labels(array.reshape(-1), f"dataset.{name}")
        if array.ndim == 2 and array.shape[0] == n:
            return _as_int_labels(array, f"dataset.{name}")
    raw = []
    for i in range(n):
        item = dataset[i]
        if not isinstance(item, tuple | list) or len(item) < 2:
            raise DataError(
                f"dataset item {i} is a {type(item).__name__}, not an (x, label) pair; "
                "training datasets must yield (x, label)"
            )
        label = np.asarray(item[1].cpu() if isinstance(item[1], Tensor) else item[1])
        raw.append(label.reshape(()) if label.size == 1 else label)  # a (1,) label is a class
    return _as_int_labels(np.stack(raw), "dataset items")


def _as_int_labels(array: np.ndarray, where: str) -> np.ndarray:
    if array.dtype.kind in "iub":
        return array.astype(np.int64)
    if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
        return array.astype(np.int64)
    raise DataError(f"labels in {where} must be integer class indices 0..n_classes-1")


def epoch_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed derived from ``seed`` and keys such as (epoch, rank)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and all CUDA devices) global generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _Progress:
    """A throttled Rich progress bar, or nothing when disabled."""

    def __init__(self, enabled: bool, epochs: int) -> None:
        self.epochs = epochs
        self.bar: Any = None
        if enabled:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"),
                refresh_per_second=5,
            )
            self.task = self.bar.add_task("training", total=None, info="")
            self.bar.start()
        self.best = ""
        self.steps = 0

    @property
    def enabled(self) -> bool:
        return self.bar is not None

    def start_epoch(self, epoch: int, steps: int) -> None:
        self.steps = steps
        if self.bar is not None:
            self.bar.reset(self.task, total=steps, description=f"epoch {epoch}/{self.epochs}")

    def update(self, done: int, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, info=f"loss {loss:.4f}{self.best}")

    def end_epoch(self, record: EpochRecord, best_epoch: int, best_score: float) -> None:
        if self.bar is not None:
            auroc = "n/a" if record.val_auroc is None else f"{record.val_auroc:.4f}"
            self.best = f" | val auroc {auroc} loss {record.val_loss:.4f} | best {best_epoch}"
            self.bar.update(
                self.task, completed=self.steps, info=f"loss {record.train_loss:.4f}{self.best}"
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@dataclass
class _RunState:
    """Early-stopping bookkeeping carried across epochs and through checkpoints."""

    epoch: int = 0
    best_score: float = -math.inf
    best_val_loss: float = math.inf
    best_epoch: int = 0
    best_state: dict[str, Tensor] | None = None
    epochs_since_best: int = 0
    finished: bool = False
    stopped_early: bool = False
    history: list[EpochRecord] = field(default_factory=list)


class Trainer:
    """Fits a classifier with the settings of an `EngineConfig`; see the module docstring.

    ``loss_fn(logits, targets)`` replaces the cross-entropy (class weights and label smoothing
    then are its business; ``class_balance="sampler"`` still applies) and also gives the
    validation loss. ``distributed`` defaults to the process group already initialised, if any.
    Under DDP every rank evaluates a shard of the validation set and the logits are all-gathered,
    so every rank computes the same metrics; stop decisions are broadcast from rank 0, and only
    rank 0 writes checkpoints and shows progress.
    """

    def __init__(
        self,
        model: nn.Module,
        config: EngineConfig | None = None,
        *,
        checkpoint_dir: Path | str | None = None,
        loss_fn: LossFn | None = None,
        distributed: DistributedContext | None = None,
    ) -> None:
        self.config = config or EngineConfig()
        self.ctx = distributed or current_context()
        self.device = self.ctx.device if self.ctx.is_distributed else self._resolve_device()
        self.model = model.to(self.device)
        if self.config.channels_last:
            self.model.to(memory_format=torch.channels_last)  # 4D weights only
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.loss_fn = loss_fn
        self.amp_dtype = self._resolve_amp()
        self.class_weights: Tensor | None = None  # the cross-entropy weights of the last fit
        self.n_classes = 0  # number of model outputs, known once fit has started

    # ----------------------------------------------------------------------------- set-up
    def _resolve_device(self) -> torch.device:
        name = self.config.device
        if name == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise ConfigError(f"EngineConfig.device={name!r} is not a torch device") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"EngineConfig.device={name!r} but CUDA is not available; use 'auto'")
        return device

    def _resolve_amp(self) -> torch.dtype | None:
        amp = self.config.amp
        if amp == "off":
            return None
        if self.device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if amp == "native" and self.device.type == "cpu":
            return torch.bfloat16 if cpu_has_native_bf16() else None
        if amp == "on" and self.device.type == "cpu":
            if not cpu_has_native_bf16():
                raise ConfigError(
                    "EngineConfig.amp='on' on the CPU needs native bf16 (AVX512-BF16 or AMX), "
                    "which this CPU lacks; use 'auto' or 'off'"
                )
            return torch.bfloat16
        if amp == "on":
            raise ConfigError(f"EngineConfig.amp='on' is not supported on {self.device.type}")
        return None

    def _to_device(self, x: Tensor) -> Tensor:
        """A batch on the training device, image batches in channels-last memory if asked."""
        last = self.config.channels_last and x.dim() == 4
        memory_format = torch.channels_last if last else torch.preserve_format
        return x.to(
            self.device, non_blocking=self.device.type == "cuda", memory_format=memory_format
        )

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def _make_average(self) -> AveragedModel | None:
        """The averaged copy of the model that is validated and kept: an EMA updated after every
        optimiser step, an equal (SWA) average updated after every epoch, or None."""
        if self.config.ema_decay is not None:
            ema = get_ema_multi_avg_fn(self.config.ema_decay)
            return AveragedModel(self.model, multi_avg_fn=ema, use_buffers=True)
        if self.config.swa_start is not None:
            return AveragedModel(self.model, use_buffers=True)
        return None

    @property
    def first_kept_epoch(self) -> int:
        """The first epoch whose weights may be kept: SWA averages only from its start on."""
        if self.config.swa_start is None:
            return 1
        return min(self.config.epochs, math.floor(self.config.swa_start * self.config.epochs) + 1)

    def _check_dataset(self, dataset: Dataset, role: str) -> np.ndarray:
        try:
            n = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            raise ConfigError(
                f"the {role} dataset has no len(); the engine needs a map-style Dataset"
            ) from None
        if n == 0:
            raise DataError(f"the {role} dataset is empty; give it at least one (x, label) item")
        return dataset_labels(dataset)

    def _probe_classes(self, dataset: Dataset) -> int:
        """Number of logits the model outputs, from one training item."""
        batch = default_collate([dataset[0]])
        x = batch[0] if isinstance(batch, list | tuple) else batch
        was_training = self.model.training
        self.model.eval()
        try:
            # no_grad, not inference_mode: lazy modules may create their parameters here
            with torch.no_grad(), self._autocast():
                out = self.model(x.to(self.device))
        finally:
            self.model.train(was_training)
        if not isinstance(out, Tensor) or out.ndim != 2 or out.shape[1] < 2:
            shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ConfigError(
                f"the model must map a batch to logits of shape (N, n_classes) with n_classes >= 2 "
                f"(binary tasks use 2 logits); it returned {shape} for a batch of 1"
            )
        return int(out.shape[1])

    def _check_label_range(self, labels: np.ndarray, n_classes: int, role: str) -> None:
        if self.config.multi_label or labels.ndim == 2:
            self._check_label_vectors(labels, n_classes, role)
            return
        bad = np.unique(labels[(labels < 0) | (labels >= n_classes)])
        if bad.size:
            raise DataError(
                f"the {role} dataset has label(s) {bad[:5].tolist()} outside 0..{n_classes - 1}: "
                f"the model outputs {n_classes} logits. Relabel the data as 0..n_classes-1 or "
                "give the model one output per class."
            )

    def _check_label_vectors(self, labels: np.ndarray, n_classes: int, role: str) -> None:
        if not self.config.multi_label:
            raise DataError(
                f"the {role} dataset has label vectors {labels.shape[1:]}, not one class per "
                "item; multi-label data need EngineConfig(multi_label=True)."
            )
        if labels.ndim != 2 or labels.shape[1] != n_classes:
            raise DataError(
                f"a multi-label model with {n_classes} outputs needs {role} labels of shape "
                f"(N, {n_classes}); got {labels.shape}."
            )
        if not np.isin(labels, (0, 1)).all():
            raise DataError(f"multi-label {role} labels must be 0 or 1.")

    def _steps_per_epoch(self, n_train: int) -> tuple[int, bool]:
        """Batches per epoch on each rank, and whether the last (size-1) batch is dropped."""
        per_rank = math.ceil(n_train / self.ctx.world_size)
        batch = self.config.batch_size
        # A lone sample in the last batch breaks BatchNorm in training mode: drop it.
        drop_last = per_rank > 1 and per_rank % batch == 1
        steps = per_rank // batch if drop_last else math.ceil(per_rank / batch)
        return steps, drop_last

    def _train_loader(
        self, train: Dataset, sample_weights: np.ndarray | None, epoch: int, drop_last: bool
    ) -> DataLoader:
        cfg, ctx = self.config, self.ctx
        generator = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch, ctx.rank))
        sampler: Sampler[int]
        if sample_weights is not None:
            # The same draw on every rank (key without rank), then each rank takes its share.
            draw = torch.Generator().manual_seed(epoch_seed(cfg.seed, epoch))
            weighted = WeightedRandomSampler(
                torch.as_tensor(sample_weights, dtype=torch.double),
                num_samples=len(sample_weights),
                replacement=True,
                generator=draw,
            )
            sampler = (
                ShardedSampler(weighted, ctx.rank, ctx.world_size)
                if ctx.is_distributed
                else weighted
            )
        elif ctx.is_distributed:
            dist_sampler = DistributedSampler(
                train, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=cfg.seed
            )
            dist_sampler.set_epoch(epoch)
            sampler = dist_sampler
        else:
            sampler = RandomSampler(train, generator=generator)
        return DataLoader(
            train,
            batch_size=cfg.batch_size,
            sampler=sampler,
            num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda" and cfg.num_workers > 0,
            drop_last=drop_last,
            generator=generator,
            worker_init_fn=seed_worker if cfg.num_workers > 0 else None,
        )

    def _eval_loader(self, data: Dataset, batch_size: int | None = None) -> DataLoader:
        return DataLoader(
            data,
            batch_size=batch_size or self.config.batch_size,
            shuffle=False,
            num_workers=self.config.num_workers,
            pin_memory=self.device.type == "cuda" and self.config.num_workers > 0,
        )

    def _make_optimizer(self) -> torch.optim.Optimizer:
        """AdamW or SGD with Nesterov momentum over the model's parameters."""
        cfg = self.config
        fused = True if self.device.type == "cuda" else None
        if cfg.optimizer == "sgd":
            return torch.optim.SGD(
                self.model.parameters(),
                lr=cfg.learning_rate,
                momentum=0.9,
                nesterov=True,
                weight_decay=cfg.weight_decay,
                fused=fused,
            )
        return torch.optim.AdamW(
            self.model.parameters(),
            lr=cfg.learning_rate,
            weight_decay=cfg.weight_decay,
            fused=fused,
        )

    # ----------------------------------------------------------------------------- fit
    def fit(self, train: Dataset, val: Dataset, *, resume: bool = False) -> FitResult:
        """Train on ``train``, early-stop on ``val``, leave the best weights in ``self.model``.

        With ``resume=True`` training continues from ``checkpoint_dir/last.pt`` (a fresh run
        starts, with a log line, when there is none).
        """
        cfg, ctx = self.config, self.ctx
        if resume and self.checkpoint_dir is None:
            raise ConfigError("fit(resume=True) needs Trainer(checkpoint_dir=...) to resume from")
        train_labels = self._check_dataset(train, "training")
        val_labels = self._check_dataset(val, "validation")
        n_classes = self.n_classes = self._probe_classes(train)
        self._check_label_range(train_labels, n_classes, "training")
        self._check_label_range(val_labels, n_classes, "validation")

        criterion, sample_weights = self._criterion(train_labels, n_classes)

        steps, drop_last = self._steps_per_epoch(len(train_labels))
        total_steps = steps * cfg.epochs
        warmup_steps = min(steps * cfg.warmup_epochs, total_steps)
        optimizer = self._make_optimizer()
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, warmup_steps, total_steps)
        )
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        averaged = self._make_average()
        per_step_average = averaged if self.config.ema_decay is not None else None  # EMA
        per_epoch_average = averaged if self.config.swa_start is not None else None  # SWA

        monitored = "val_auroc"
        probe = val_labels.astype(float) if cfg.multi_label else np.eye(n_classes)[val_labels]
        if cfg.monitor == "loss" or macro_auroc(val_labels, probe) is None:
            monitored = "-val_loss"
            if cfg.monitor == "auroc" and ctx.is_main:
                logger.warning("val AUROC is undefined (one class in val): monitoring -val_loss")

        run = _RunState()
        sizes = {"train_size": len(train_labels), "val_size": len(val_labels)}
        loaded = self._load_for_resume(sizes) if resume else None
        earlier = self.checkpoint_dir / CHECKPOINT_NAME if self.checkpoint_dir else None
        if not resume and earlier is not None and earlier.exists() and ctx.is_main:
            logger.info("%s holds an earlier run; it will be overwritten", earlier)
        if loaded is not None:
            run = self._restore(loaded, optimizer, scheduler, scaler, averaged)
            if run.finished:
                return self._finish(run, monitored)
        else:
            seed_everything(cfg.seed)

        net: nn.Module = self.model
        if ctx.is_distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            net = DistributedDataParallel(self.model, device_ids=device_ids)
        progress = _Progress(cfg.progress and ctx.is_main, cfg.epochs)
        try:
            for epoch in range(run.epoch + 1, cfg.epochs + 1):
                seed_everything(epoch_seed(cfg.seed, epoch, ctx.rank))
                for dataset in (train, val):
                    set_epoch = getattr(dataset, "set_epoch", None)
                    if callable(set_epoch):
                        set_epoch(epoch)
                loader = self._train_loader(train, sample_weights, epoch, drop_last)
                progress.start_epoch(epoch, steps)
                train_loss, seconds, images = self._train_epoch(
                    net,
                    loader,
                    criterion,
                    optimizer,
                    scheduler,
                    scaler,
                    per_step_average,
                    epoch,
                    progress,
                )
                lr = cfg.learning_rate * warmup_cosine(
                    scheduler.last_epoch - 1, warmup_steps, total_steps
                )
                if per_epoch_average is not None and epoch >= self.first_kept_epoch:
                    per_epoch_average.update_parameters(self.model)  # the same on every rank
                kept = self._kept(averaged, epoch)  # the weights validated and kept
                record = self._validate(kept, val, val_labels, epoch, monitored)
                record.train_loss, record.learning_rate = train_loss, lr
                record.train_seconds, record.train_images = seconds, images
                record.images_per_second = images / seconds if seconds > 0 else 0.0
                self._update(run, record, kept)
                progress.end_epoch(record, run.best_epoch, run.best_score)
                if ctx.is_main:
                    self._log_epoch(record, run)
                    if self.checkpoint_dir is not None:
                        self._save(run, optimizer, scheduler, scaler, averaged, sizes)
                if run.finished:
                    break
        finally:
            progress.close()
        return self._finish(run, monitored)

    def _criterion(
        self, train_labels: np.ndarray, n_classes: int
    ) -> tuple[LossFn, np.ndarray | None]:
        """The training loss (with class weights when asked) and the sampler's item weights."""
        cfg = self.config
        self.class_weights = None
        if cfg.multi_label:
            positives = train_labels.sum(axis=0).astype(np.float64)
            if self.ctx.is_main and (positives == 0).any():
                logger.warning(
                    "labels %s have no positive training examples", np.flatnonzero(positives == 0)
                )
            if self.loss_fn is None and cfg.class_balance == "weights":
                ratio = (len(train_labels) - positives) / np.maximum(positives, 1.0)
                self.class_weights = torch.as_tensor(ratio, dtype=torch.float32, device=self.device)
            return self.loss_fn or _MultiLabelLoss(self.class_weights, cfg.label_smoothing), None
        counts = np.bincount(train_labels, minlength=n_classes)
        if self.ctx.is_main and (counts == 0).any():
            logger.warning("classes %s have no training examples", np.flatnonzero(counts == 0))
        weights = class_weights(counts)
        if self.loss_fn is None and cfg.class_balance == "weights":
            self.class_weights = torch.as_tensor(weights, dtype=torch.float32, device=self.device)
        criterion: LossFn = self.loss_fn or nn.CrossEntropyLoss(
            weight=self.class_weights, label_smoothing=cfg.label_smoothing
        )
        return criterion, weights[train_labels] if cfg.class_balance == "sampler" else None

    def _probabilities(self, logits: Tensor) -> Tensor:
        """Softmax over the classes, or a sigmoid per output for multi-label models."""
        return torch.sigmoid(logits) if self.config.multi_label else torch.softmax(logits, dim=1)

    def _kept(self, averaged: AveragedModel | None, epoch: int) -> nn.Module:
        """The weights validated after ``epoch``: the EMA or SWA average once it may be kept,
        else the model itself."""
        if averaged is None or epoch < self.first_kept_epoch:
            return self.model
        return averaged.module

    def _batch_objective(self, epoch: int, criterion: LossFn) -> BatchObjective:
        """Per batch, the network's input and the loss of its logits: the batch itself, or with
        mixup a blend of it with a shuffled copy and the loss blended the same way. Mixup's
        draws come from a generator keyed by (seed, epoch, rank), so a resumed run mixes the
        same way; each batch draws once, so SAM's two passes see the same blend."""
        alpha = self.config.mixup_alpha
        if not alpha:
            return lambda x, y: (x, lambda logits: criterion(logits, y))
        rng = np.random.default_rng(epoch_seed(self.config.seed, epoch, self.ctx.rank, 1))

        def mixed(x: Tensor, y: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
            lam = float(rng.beta(alpha, alpha))
            order = torch.as_tensor(rng.permutation(x.shape[0]), device=x.device)

            def loss_of(logits: Tensor) -> Tensor:
                return lam * criterion(logits, y) + (1.0 - lam) * criterion(logits, y[order])

            return lam * x + (1.0 - lam) * x[order], loss_of

        return mixed

    def _train_epoch(
        self,
        net: nn.Module,
        loader: DataLoader,
        criterion: LossFn,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
        ema: AveragedModel | None,
        epoch: int,
        progress: _Progress,
    ) -> tuple[float, float, int]:
        """One pass over the training data: mean loss (all ranks), seconds, images (all ranks)."""
        device, clip = self.device, self.config.grad_clip
        non_blocking = device.type == "cuda"
        use_scaler = scaler.is_enabled()
        net.train()
        loss_sum = torch.zeros((), dtype=torch.float32, device=device)
        seen = 0
        last_update = time.monotonic()
        start = time.perf_counter()
        objective = self._batch_objective(epoch, criterion)
        rho = self.config.sam_rho

        def backward(loss: Tensor) -> None:
            (scaler.scale(loss) if use_scaler else loss).backward()

        for step, (x, y) in enumerate(loader, start=1):
            x = self._to_device(x)
            y = y.to(device, dtype=torch.long, non_blocking=non_blocking)
            inputs, loss_of = objective(x, y)
            with self._autocast():
                loss = loss_of(net(inputs))
            optimizer.zero_grad(set_to_none=True)
            backward(loss)
            if rho is not None:  # the step's gradient is taken again at the perturbed weights
                with sharpness_aware_point(self.model, rho) as moved:
                    if moved:
                        optimizer.zero_grad(set_to_none=True)
                        with self._autocast():
                            backward(loss_of(net(inputs)))
            if use_scaler:
                if clip is not None:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(net.parameters(), clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                if clip is not None:
                    nn.utils.clip_grad_norm_(net.parameters(), clip)
                optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(self.model)
            n = y.shape[0]
            loss_sum.add_(loss.detach(), alpha=n)  # stays on the device: no sync per batch
            seen += n
            if progress.enabled and time.monotonic() - last_update >= PROGRESS_EVERY_S:
                last_update = time.monotonic()
                progress.update(step, loss_sum.item() / seen)  # one sync
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        # DDP syncs buffers (BatchNorm statistics) from rank 0 before each forward, so after the
        # last batch they differ by rank; copy rank 0's so that every rank holds the same model.
        self.ctx.broadcast_tensors(list(self.model.buffers()))
        if ema is not None:  # its BatchNorm averages came from each rank's own statistics
            self.ctx.broadcast_tensors(list(ema.module.buffers()))
        count = torch.tensor(float(seen), dtype=torch.float64, device=device)
        totals = torch.stack([loss_sum.double(), count])
        totals = self.ctx.all_reduce_sum(totals).cpu()
        images = int(totals[1].item())
        mean_loss = float(totals[0] / max(images, 1))
        if not math.isfinite(mean_loss):
            raise MedsightError(
                f"training loss became {mean_loss} in epoch {epoch}: check the inputs for NaN or "
                f"infinite values, or lower learning_rate (now {self.config.learning_rate}) "
                "or set grad_clip"
            )
        return mean_loss, seconds, images

    @torch.inference_mode()
    def _logits(self, model: nn.Module, data: Dataset | Tensor) -> Tensor:
        """Float32 CPU logits of ``model`` for every item of ``data`` (identity transform only)."""
        parts = list(self._batch_outputs(model, data, (), None, probabilities=False, autocast=True))
        # A DDP rank's validation shard is empty when there are fewer items than ranks.
        return torch.cat(parts) if parts else torch.empty(0, self.n_classes)

    def _batch_outputs(
        self,
        model: nn.Module,
        data: Dataset | Tensor,
        tta: Sequence[BatchFn],
        batch_size: int | None,
        *,
        probabilities: bool,
        autocast: bool,
    ) -> Iterator[Tensor]:
        """Per batch: logits, or probabilities averaged over identity + ``tta``; float32 on the
        CPU.

        ``autocast`` runs the model under the mixed precision of training (validation, for speed);
        without it the model runs in float32, as the exported ONNX model does.
        """
        model.eval()
        batch_size = batch_size or self.config.batch_size
        if isinstance(data, Tensor):
            batches: Any = (data[i : i + batch_size] for i in range(0, len(data), batch_size))
        else:
            batches = self._eval_loader(data, batch_size)
        outputs = []
        for batch in batches:
            x = batch[0] if isinstance(batch, list | tuple) else batch
            x = self._to_device(x)
            with self._autocast() if autocast else contextlib.nullcontext():
                if probabilities:
                    out = sum(
                        self._probabilities(model(fn(x)).float()) for fn in (_identity, *tta)
                    ) / (1 + len(tta))
                else:
                    out = model(x).float()
            outputs.append(out)
        for out in outputs:  # one transfer at the end instead of a sync per batch
            yield out.cpu()

    def _validate(
        self,
        model: nn.Module,
        val: Dataset,
        val_labels: np.ndarray,
        epoch: int,
        monitored: str,
    ) -> EpochRecord:
        """Validation loss, AUROC and monitored score; every rank gets the same numbers."""
        ctx = self.ctx
        if ctx.is_distributed:
            shard = Subset(val, range(ctx.rank, len(val_labels), ctx.world_size))
            parts = ctx.all_gather_object(self._logits(model, shard))
            logits = torch.empty(len(val_labels), self.n_classes)
            for rank, part in enumerate(parts):
                logits[rank :: ctx.world_size] = part
        else:
            logits = self._logits(model, val)
        targets = torch.as_tensor(val_labels, dtype=torch.long)
        if self.loss_fn is not None:  # on the training device, where its own tensors live
            val_loss = float(self.loss_fn(logits.to(self.device), targets.to(self.device)))
        elif self.config.multi_label:
            val_loss = float(F.binary_cross_entropy_with_logits(logits, targets.float()))
        else:
            val_loss = float(F.cross_entropy(logits, targets))
        if not math.isfinite(val_loss):
            raise MedsightError(
                f"validation loss became {val_loss} in epoch {epoch}: the model outputs non-finite "
                "logits; check the validation inputs for NaN/inf values or lower learning_rate"
            )
        auroc = macro_auroc(val_labels, self._probabilities(logits).numpy())
        score = auroc if monitored == "val_auroc" and auroc is not None else -val_loss
        return EpochRecord(epoch, math.nan, val_loss, auroc, score, math.nan, 0.0, 0, 0.0)

    def _update(self, run: _RunState, record: EpochRecord, kept: nn.Module) -> None:
        """Early-stopping bookkeeping; the decision is rank 0's, broadcast to all ranks.

        Ties of the score (e.g. AUROC saturated at 1.0) go to the lower validation loss.
        """
        improved = record.epoch >= self.first_kept_epoch and (
            record.score > run.best_score
            or (record.score == run.best_score and record.val_loss < run.best_val_loss)
        )
        improved = bool(self.ctx.broadcast_object(improved))
        run.epoch = record.epoch
        run.history.append(record)
        if improved:
            run.best_score, run.best_val_loss = record.score, record.val_loss
            run.best_epoch, run.epochs_since_best = record.epoch, 0
            run.best_state = {
                k: v.detach().to("cpu", copy=True) for k, v in kept.state_dict().items()
            }
        elif record.epoch >= self.first_kept_epoch:
            run.epochs_since_best += 1
        patience = self.config.patience
        run.stopped_early = (
            patience is not None
            and run.epochs_since_best >= patience
            and record.epoch < self.config.epochs
        )
        run.finished = run.stopped_early or record.epoch >= self.config.epochs

    def _finish(self, run: _RunState, monitored: str) -> FitResult:
        if run.best_state is not None:
            self.model.load_state_dict(run.best_state)
        self.model.eval()
        path = self.checkpoint_dir / CHECKPOINT_NAME if self.checkpoint_dir else None
        return FitResult(
            best_epoch=run.best_epoch,
            best_score=run.best_score,
            epochs_run=run.epoch,
            stopped_early=run.stopped_early,
            history=list(run.history),
            monitored=monitored,
            checkpoint=path,
        )

    def _log_epoch(self, record: EpochRecord, run: _RunState) -> None:
        auroc = "n/a" if record.val_auroc is None else f"{record.val_auroc:.4f}"
        logger.info(
            "epoch %d/%d train_loss=%.4f val_loss=%.4f val_auroc=%s lr=%.3g %.0f img/s%s%s",
            record.epoch,
            self.config.epochs,
            record.train_loss,
            record.val_loss,
            auroc,
            record.learning_rate,
            record.images_per_second,
            " (best)" if run.best_epoch == record.epoch else "",
            f"; early stop, best epoch {run.best_epoch}" if run.stopped_early else "",
        )

    # ----------------------------------------------------------------------------- checkpoints
    def _save(
        self,
        run: _RunState,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
        averaged: AveragedModel | None,
        sizes: dict[str, int],
    ) -> None:
        assert self.checkpoint_dir is not None
        state = {
            "format": FORMAT,
            "config": self.config.as_dict(),
            "model_signature": model_signature(self.model),
            "epoch": run.epoch,
            "model": self.model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            # the averaged model (EMA or SWA), under its first name so old checkpoints resume
            "ema": None if averaged is None else averaged.state_dict(),
            "best_state": run.best_state,
            "best_score": run.best_score,
            "best_val_loss": run.best_val_loss,
            "best_epoch": run.best_epoch,
            "epochs_since_best": run.epochs_since_best,
            "finished": run.finished,
            "stopped_early": run.stopped_early,
            "history": [asdict(r) for r in run.history],
            "rng": capture_rng_state(),
            "world_size": self.ctx.world_size,
            **sizes,
        }
        save_checkpoint(self.checkpoint_dir / CHECKPOINT_NAME, state)

    def _load_for_resume(self, sizes: dict[str, int]) -> dict[str, Any] | None:
        """The checkpoint to resume from (rank 0 reads it, every rank gets it), or None."""
        assert self.checkpoint_dir is not None
        ctx = self.ctx
        path = self.checkpoint_dir / CHECKPOINT_NAME
        state: dict[str, Any] | None = None
        error: MedsightError | None = None
        if ctx.is_main and path.exists():
            try:
                state = load_checkpoint(path)
            except MedsightError as exc:  # hand it to every rank so that none waits forever
                error = exc
        state, error = ctx.broadcast_object((state, error))
        if error is not None:
            raise error
        if state is None:
            if ctx.is_main:
                logger.info("no checkpoint at %s: starting a fresh run", path)
            return None
        trajectory = {k: v for k, v in self.config.as_dict().items() if k not in RUNTIME_FIELDS}
        check_compatible(state, path, config=trajectory, signature=model_signature(self.model))
        for key, value in sizes.items():
            if state[key] != value:
                raise ConfigError(
                    f"{path} was written for a {ROLES[key]} set of "
                    f"{state[key]} items, this one has {value}; resume with the same data or "
                    "fit without resume"
                )
        if state["world_size"] != ctx.world_size and ctx.is_main:
            logger.warning(
                "resuming with %d processes, the checkpoint was written by %d: the data order "
                "differs from an uninterrupted run",
                ctx.world_size,
                state["world_size"],
            )
        if ctx.is_main:
            logger.info("resuming from %s after epoch %d", path, state["epoch"])
        return state

    def _restore(
        self,
        state: dict[str, Any],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
        averaged: AveragedModel | None,
    ) -> _RunState:
        self.model.load_state_dict(state["model"])
        if averaged is not None:
            averaged.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler.is_enabled() and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        names = {f.name for f in fields(EpochRecord)}
        history = [
            EpochRecord(**{k: v for k, v in r.items() if k in names}) for r in state["history"]
        ]
        return _RunState(
            epoch=int(state["epoch"]),
            best_score=float(state["best_score"]),
            best_val_loss=float(state["best_val_loss"]),
            best_epoch=int(state["best_epoch"]),
            best_state=state["best_state"],
            epochs_since_best=int(state["epochs_since_best"]),
            finished=bool(state["finished"]),
            stopped_early=bool(state["stopped_early"]),
            history=history,
        )

    # ----------------------------------------------------------------------------- inference
    def predict_proba(
        self,
        data: Dataset | Tensor,
        *,
        tta: Sequence[BatchFn] = (),
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Probabilities ``(n, n_classes)``: softmax (a sigmoid per output for multi-label
        models) averaged over identity + each TTA function.

        Always in float32, even when training used mixed precision, so that reported test figures
        are those of the deployed (exported) model.

        ``data`` is a dataset (items ``x`` or ``(x, label)``) or a batch tensor; TTA functions map
        a batch tensor to a batch tensor (e.g. a flip). Runs on this process only (no sharding).
        """
        if not isinstance(data, Tensor) and len(data) == 0:  # type: ignore[arg-type]
            raise DataError("predict_proba got an empty dataset")
        was_training = self.model.training
        try:
            with torch.inference_mode():
                parts = list(
                    self._batch_outputs(
                        self.model, data, tta, batch_size, probabilities=True, autocast=False
                    )
                )
        finally:
            self.model.train(was_training)
        probabilities = torch.cat(parts).double()
        if self.config.multi_label:
            return probabilities.numpy()
        return (probabilities / probabilities.sum(dim=1, keepdim=True)).numpy()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), so that autocast pays."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def seed_worker(worker_id: int) -> None:
    """Give each DataLoader worker its own augmentation stream.

    Workers start from copies of the dataset, so transforms with their own random state would
    repeat each other; a dataset with ``seed_worker(worker_id)`` is reseeded per worker here.
    """
    info = torch.utils.data.get_worker_info()
    reseed = getattr(info.dataset if info is not None else None, "seed_worker", None)
    if reseed is not None:
        reseed(worker_id)


def _identity(x: Tensor) -> Tensor:
    return x


class _MultiLabelLoss:
    """Binary cross-entropy of each output's logit against its 0/1 label; positives weighted by
    ``pos_weight`` (per output); label smoothing moves targets ``smoothing / 2`` toward 0.5."""

    def __init__(self, pos_weight: Tensor | None, smoothing: float) -> None:
        self.pos_weight, self.smoothing = pos_weight, smoothing

    def __call__(self, logits: Tensor, labels: Tensor) -> Tensor:
        targets = labels.float() * (1.0 - self.smoothing) + self.smoothing / 2
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight)
