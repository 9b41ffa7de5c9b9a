"""What retraining passes around, and the :class:`Retrainer` protocol each bundle kind implements.

The orchestration (:mod:`medsight.retrain.run`) is the same for every modality: read feedback,
train a challenger, score both models on the same held-out cases, gate, register, report. Only
reading the champion, turning feedback inputs into training cases, training and saving depend on
the bundle kind; that is the :class:`Retrainer`. Tabular, image and ECG rhythm bundles are
implemented (:mod:`medsight.retrain.tabular`, :mod:`medsight.retrain.image`,
:mod:`medsight.retrain.ecg`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from medsight.errors import ConfigError
from medsight.evaluate.bootstrap import Estimate
from medsight.retrain.gate import GateDecision, GateSettings

DEFAULT_HOLDOUT_FRACTION = 0.3


@dataclass(frozen=True)
class FeedbackCase:
    """One prediction with the latest clinician verdict on it: the label to train on."""

    prediction_id: int
    feedback_id: int
    verdict: str
    label: str
    raw_input: bytes
    input_type: str = ""


@dataclass(frozen=True)
class UnusableCase:
    """Feedback that cannot become a training case, and why (counted and reported, never hidden)."""

    prediction_id: int
    feedback_id: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "prediction_id": self.prediction_id,
            "feedback_id": self.feedback_id,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Champion:
    """The production model being challenged: its registry entry and verified bundle folder."""

    task: str
    version: int
    version_id: int
    name: str
    kind: str
    folder: Path
    registered_from: Path | None = None


@dataclass(frozen=True)
class RetrainOptions:
    """Where the data comes from and how strict the gate is (CLI flags map one to one)."""

    data: Path | None = None
    config: Path | None = None
    holdout: Path | None = None
    holdout_fraction: float = DEFAULT_HOLDOUT_FRACTION
    holdout_seed: int = 0
    gate: GateSettings = field(default_factory=GateSettings)
    n_bootstrap: int = 1000

    def __post_init__(self) -> None:
        if not 0.05 <= self.holdout_fraction <= 0.8:
            raise ConfigError(
                f"holdout fraction {self.holdout_fraction}: choose between 0.05 and 0.8 "
                "(default 0.3), or pass a held-out table with --holdout."
            )
        if self.n_bootstrap < 100:
            raise ConfigError(f"n_bootstrap {self.n_bootstrap}: use at least 100 resamples.")


@dataclass
class HeldOut:
    """Both models' probabilities of the positive class on the same held-out cases.

    A threshold is a number, or one per case when a model's decision is not a fixed cut-off of
    the positive probability (a multi-class model's argmax: the largest other probability).

    Multi-label models name their ``findings``: ``y`` and the probabilities are then
    ``(cases, findings)`` and each threshold is one per finding.
    """

    y: np.ndarray
    champion_probability: np.ndarray
    challenger_probability: np.ndarray
    champion_threshold: float | np.ndarray
    challenger_threshold: float | np.ndarray
    groups: np.ndarray | None = None
    findings: list[str] | None = None


@dataclass
class Challenge:
    """A trained, not yet saved challenger with its held-out scores and how it was built.

    ``counts`` holds the data figures shown to people; every retrainer gives at least
    ``original_rows``, ``original_training_rows``, ``feedback_used``, ``feedback_confirmed``,
    ``feedback_corrected``, ``training_rows`` and ``holdout_rows`` (the CLI prints them).
    ``notes`` are caveats the report must state; ``payload`` is the kind-specific state its
    :class:`Retrainer` needs to save the bundle.
    """

    held_out: HeldOut
    used: list[FeedbackCase]
    unusable: list[UnusableCase]
    counts: dict[str, int]
    sources: dict[str, str]
    notes: list[str]
    payload: Any = field(repr=False, default=None)


class Retrainer(Protocol):
    """Retraining for one bundle kind (``bundle.json`` ``task``, e.g. tabular-classification)."""

    kind: str

    def train(
        self, champion: Champion, cases: Sequence[FeedbackCase], options: RetrainOptions
    ) -> Challenge:
        """Build the training set (original data + usable cases), fit the challenger with the
        champion's own configuration, and score both models on held-out cases it never saw."""
        ...

    def save(self, challenge: Challenge, folder: Path, metadata: dict[str, Any]) -> Path:
        """Write the challenger as a bundle of this kind at ``folder`` (``metadata`` added)."""
        ...


@dataclass
class RetrainOutcome:
    """Everything a retraining run decided and measured; rendered by :mod:`.report` and the CLI.

    ``metrics`` maps ``"champion"`` and ``"challenger"`` to held-out metrics with bootstrap CIs.
    ``registry_note`` explains anything the registry step changed or could not do.
    """

    task: str
    champion: Champion
    decision: GateDecision
    metrics: dict[str, dict[str, Estimate]]
    held_out: HeldOut
    counts: dict[str, int]
    sources: dict[str, str]
    notes: list[str]
    unusable: list[UnusableCase]
    feedback_rows: int
    superseded: int
    run_dir: Path
    challenger_version: int | None = None
    promoted: bool = False
    registry_note: str = ""

    @property
    def report_path(self) -> Path:
        return self.run_dir / "report.html"

    @property
    def json_path(self) -> Path:
        return self.run_dir / "comparison.json"
