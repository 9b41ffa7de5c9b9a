"""One case's classification result, shared by every bundle kind (images, ECG)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def class_text(label: np.ndarray | int, names: Sequence[str]) -> str:
    """A class index as its name; a multi-label 0/1 row as its findings joined by ``|``
    (``none`` when there is none)."""
    row = np.asarray(label)
    if row.ndim == 0:
        return names[int(row)]
    return "|".join(name for name, on in zip(names, row, strict=True) if on) or "none"


@dataclass
class ClassPrediction:
    """A case's label, its probability, every class's probability, and warnings or reasons
    (odd input, poor signal quality) a clinician should see next to the label."""

    source: str
    label: str
    probability: float
    probabilities: dict[str, float]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "prediction": self.label,
            "probability": round(self.probability, 5),
            "probabilities": {k: round(v, 5) for k, v in self.probabilities.items()},
            "warnings": self.warnings,
        }
