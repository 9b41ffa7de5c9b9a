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


NO_FINDING = "none"


def findings_row(text: str, names: Sequence[str]) -> np.ndarray:
    """The 0/1 row of a findings text as :func:`class_text` writes it (``a|b``, ``none``).

    Findings may come in any order and any case; ``ValueError`` names an unknown or repeated
    finding, or ``none`` given with findings.
    """
    folded = {name.strip().casefold(): index for index, name in enumerate(names)}
    parts = [part.strip() for part in str(text).split("|") if part.strip()]
    row = np.zeros(len(names), dtype=np.int64)
    if [part.casefold() for part in parts] in ([], [NO_FINDING]):
        return row
    for part in parts:
        index = folded.get(part.casefold())
        if index is None:
            raise ValueError(
                f"{part!r} is not one of the findings {list(names)} "
                f"(write present findings joined by '|', or '{NO_FINDING}')"
            )
        if row[index]:
            raise ValueError(f"finding {names[index]!r} is named twice in {text!r}")
        row[index] = 1
    return row


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
