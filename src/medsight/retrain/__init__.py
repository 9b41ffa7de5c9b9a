"""The feedback loop: retrain a production model with clinician feedback, promote only if not worse.

- :mod:`~medsight.retrain.cases`: the latest verdict per prediction of a task, usable or not.
- :mod:`~medsight.retrain.holdout`: the fixed-seed stratified held-out split of the original data.
- :mod:`~medsight.retrain.tabular`: the tabular :class:`Retrainer` (original table + feedback rows).
- :mod:`~medsight.retrain.image`: the image :class:`Retrainer` (original train split + feedback
  images, early-stopped on the original val split, compared on the original test split).
- :mod:`~medsight.retrain.ecg`: the ECG rhythm :class:`Retrainer` (original train split + feedback
  records; one class against the rest, decided by the most probable class).
- :mod:`~medsight.retrain.recipe`: the champion's training config and original data, found again.
- :mod:`~medsight.retrain.gate`: the decision (DeLong non-inferiority of AUROC, sensitivity margin).
- :mod:`~medsight.retrain.report`: ``report.html`` and ``comparison.json``.
- :mod:`~medsight.retrain.run`: :func:`retrain`, the whole loop with the registry and audit log.
"""

from __future__ import annotations

from medsight.retrain.base import (
    Challenge,
    Champion,
    FeedbackCase,
    HeldOut,
    Retrainer,
    RetrainOptions,
    RetrainOutcome,
    UnusableCase,
)
from medsight.retrain.gate import GateDecision, GateSettings, decide
from medsight.retrain.run import retrain, retrainer_for

__all__ = [
    "Challenge",
    "Champion",
    "FeedbackCase",
    "GateDecision",
    "GateSettings",
    "HeldOut",
    "RetrainOptions",
    "RetrainOutcome",
    "Retrainer",
    "UnusableCase",
    "decide",
    "retrain",
    "retrainer_for",
]
