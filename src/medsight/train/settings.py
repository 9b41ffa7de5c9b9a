"""From a run config's engine section to the training engine's :class:`EngineConfig`.

Shared by every task that trains a torch model (images, ECG), so the step cap and warm-up mean
the same thing everywhere.
"""

from __future__ import annotations

import math

from medsight.config import EngineSettings
from medsight.train.engine import EngineConfig


def engine_config(
    settings: EngineSettings,
    seed: int,
    *,
    n_train: int,
    progress: bool = True,
    multi_label: bool = False,
) -> EngineConfig:
    """The engine's settings for ``n_train`` examples: epochs capped by ``max_steps``, warm-up as
    a fraction of them (``tta`` is applied at prediction, not here); ``multi_label`` comes from
    the data and resolves ``class_balance: auto`` (weights for one label, none for findings)."""
    epochs = settings.epochs
    if settings.max_steps is not None:
        steps_per_epoch = max(1, math.ceil(n_train / settings.batch_size))
        epochs = max(1, min(epochs, math.ceil(settings.max_steps / steps_per_epoch)))
    values = settings.model_dump(exclude={"tta", "max_steps", "warmup_fraction", "epochs"})
    if values["class_balance"] == "auto":
        values["class_balance"] = "none" if multi_label else "weights"
    warmup = round(settings.warmup_fraction * epochs)
    return EngineConfig(
        **values,
        epochs=epochs,
        warmup_epochs=warmup,
        seed=seed,
        progress=progress,
        multi_label=multi_label,
    )
