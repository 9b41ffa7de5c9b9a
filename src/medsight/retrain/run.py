"""``retrain``: feedback -> challenger -> gate on held-out cases -> registry -> comparison report.

Three steps with the database touched only at the ends, so no transaction stays open while a
model trains:

1. one transaction: permission check (data scientists and admins), the task's production model
   (the champion, verified against its registry manifest), the feedback cases;
2. no transaction: train the challenger, score both models on the same held-out cases, gate,
   write the challenger bundle into the run folder;
3. one transaction: register the challenger as a candidate of the task, promote it when the gate
   passed and the champion is still in production, and audit the retraining.

The comparison report is written last, whatever was decided, and also when step 3 fails.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np
from sqlalchemy.orm import Session

from medsight.errors import BundleError, ConfigError, MedsightError
from medsight.evaluate.bootstrap import (
    Estimate,
    binary_metrics_with_ci,
    multilabel_metrics_with_ci,
)
from medsight.registry import ModelRegistry
from medsight.retrain.base import (
    Champion,
    HeldOut,
    Retrainer,
    RetrainOptions,
    RetrainOutcome,
)
from medsight.retrain.cases import collect_cases
from medsight.retrain.gate import GateDecision, GateSettings, decide, decide_findings
from medsight.retrain.report import write_comparison
from medsight.retrain.tabular import TabularRetrainer
from medsight.runs import run_name, staged_directory
from medsight.store import audit
from medsight.store.audit import CLI_SOURCE, AuditAction
from medsight.store.database import Database
from medsight.store.errors import ConflictError
from medsight.store.models import ModelVersion, User
from medsight.store.permissions import Action, require

log = logging.getLogger(__name__)


def _image_retrainer() -> Retrainer:
    from medsight.retrain.image import ImageRetrainer  # torch and MONAI only when retraining

    return ImageRetrainer()


def _ecg_retrainer() -> Retrainer:
    from medsight.retrain.ecg import EcgRetrainer  # torch only when retraining

    return EcgRetrainer()


RETRAINERS: Final[dict[str, Callable[[], Retrainer]]] = {
    TabularRetrainer.kind: TabularRetrainer,
    "image-classification": _image_retrainer,  # medsight.bundle.image.TASK (imports torch)
    "ecg-rhythm": _ecg_retrainer,  # medsight.bundle.ecg.TASK (imports torch)
}
Stage = Callable[[str], None]


def retrainer_for(kind: str) -> Retrainer:
    """The retrainer of a bundle kind, or a :class:`ConfigError` naming the kinds supported."""
    factory = RETRAINERS.get(kind)
    if factory is None:
        raise ConfigError(
            f"retraining {kind!r} bundles is not implemented yet; supported: {sorted(RETRAINERS)}."
        )
    return factory()


def retrain(
    database: Database,
    registry: ModelRegistry,
    task: str,
    *,
    actor: User,
    options: RetrainOptions,
    output_dir: str | Path,
    source: str = CLI_SOURCE,
    stage: Stage | None = None,
) -> RetrainOutcome:
    """Retrain ``task``'s production model with feedback and promote the challenger if it passes.

    ``actor`` must be a data scientist or an administrator. The run folder
    ``<output_dir>/retrain-<task>-<time>`` holds ``bundle/`` (the challenger), ``report.html``
    and ``comparison.json``.
    """
    say = stage or log.info
    with database.transaction() as session:
        user = _user(session, actor)
        require(user, Action.MODEL_RETRAIN)
        champion = _champion(session, registry, task)
        say(f"reading feedback on {task} predictions")
        cases = collect_cases(session, user, task, source=source)
    retrainer = retrainer_for(champion.kind)
    say(
        f"training a challenger to {task} v{champion.version} with {len(cases.usable)} "
        "feedback cases"
    )
    challenge = retrainer.train(champion, cases.usable, options)
    held = challenge.held_out
    say(f"comparing both models on {len(held.y)} held-out cases")
    decision = gate_decision(held, options.gate)
    metrics = {
        name: held_out_metrics(held, probability, threshold, options.n_bootstrap)
        for name, probability, threshold in (
            ("champion", held.champion_probability, held.champion_threshold),
            ("challenger", held.challenger_probability, held.challenger_threshold),
        )
    }
    outcome = RetrainOutcome(
        task=task,
        champion=champion,
        decision=decision,
        metrics=metrics,
        held_out=held,
        counts=challenge.counts,
        sources=challenge.sources,
        notes=challenge.notes,
        unusable=[*cases.unusable, *challenge.unusable],
        feedback_rows=cases.feedback_rows,
        superseded=cases.superseded,
        run_dir=_new_run_dir(Path(output_dir).expanduser(), task),
    )
    with staged_directory(outcome.run_dir) as staging:
        retrainer.save(
            challenge,
            staging / "bundle",
            {
                "metrics": {k: e.to_dict() for k, e in metrics["challenger"].items()},
                "gate": decision.to_dict(),
            },
        )
    say("registering the challenger" + (" and promoting it" if decision.passed else ""))
    try:
        with database.transaction() as session:
            _register(session, registry, outcome, actor=actor, source=source)
    except MedsightError as exc:
        outcome.challenger_version, outcome.promoted = None, False
        outcome.registry_note = f"Registration failed, nothing changed in the registry: {exc}"
        write_comparison(outcome)
        raise
    write_comparison(outcome)
    return outcome


def gate_decision(held: HeldOut, settings: GateSettings) -> GateDecision:
    """The gate on the held-out cases: one positive class, or each finding of a multi-label
    model."""
    if held.findings is not None:
        return decide_findings(
            held.y,
            held.champion_probability,
            held.challenger_probability,
            champion_threshold=np.asarray(held.champion_threshold, dtype=float),
            challenger_threshold=np.asarray(held.challenger_threshold, dtype=float),
            names=held.findings,
            settings=settings,
        )
    return decide(
        held.y,
        held.champion_probability,
        held.challenger_probability,
        champion_threshold=held.champion_threshold,
        challenger_threshold=held.challenger_threshold,
        settings=settings,
    )


def held_out_metrics(
    held: HeldOut, probability: np.ndarray, threshold: float | np.ndarray, n_boot: int
) -> dict[str, Estimate]:
    """One model's held-out metrics with bootstrap intervals (multi-label: over findings)."""
    if held.findings is not None:
        return multilabel_metrics_with_ci(
            held.y,
            probability,
            held.findings,
            threshold=np.asarray(threshold, dtype=float).tolist(),
            groups=held.groups,
            n_boot=n_boot,
        )
    return binary_metrics_with_ci(held.y, probability, threshold, groups=held.groups, n_boot=n_boot)


def _new_run_dir(output_dir: Path, task: str) -> Path:
    """``retrain-<task>-<time>``, with a counter when a run of the same second exists."""
    base = output_dir / run_name(f"retrain-{task}")
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _user(session: Session, actor: User) -> User:
    """``actor`` as a row of this session (the caller's object may come from another one)."""
    user = session.get(User, actor.id)
    if user is None:
        raise ConflictError(f"user {actor.username!r} does not exist in this database.")
    return user


def _champion(session: Session, registry: ModelRegistry, task: str) -> Champion:
    row = registry.production(session, task)
    if row is None:
        raise ConflictError(
            f"task {task!r} has no production model to retrain; register and promote one first "
            "(medsight registry register / promote)."
        )
    folder = registry.verify(row)
    try:
        kind = str(json.loads((folder / "bundle.json").read_text()).get("task", ""))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{folder}/bundle.json is not valid JSON ({exc}).") from exc
    return Champion(
        task=task,
        version=row.version,
        version_id=row.id,
        name=row.name,
        kind=kind,
        folder=folder,
        registered_from=Path(row.registered_from) if row.registered_from else None,
    )


def _register(
    session: Session,
    registry: ModelRegistry,
    outcome: RetrainOutcome,
    *,
    actor: User,
    source: str,
) -> None:
    """Register the challenger, promote it if the gate passed, and audit the retraining."""
    user = _user(session, actor)
    require(user, Action.MODEL_RETRAIN)
    row = _register_under_task(session, registry, outcome, user, source)
    outcome.challenger_version = row.version
    current = registry.production(session, outcome.task)
    if outcome.decision.passed:
        if current is not None and current.id == outcome.champion.version_id:
            registry.promote(session, outcome.task, row.version, actor=user, source=source)
            outcome.promoted = True
        else:
            now = f"v{current.version}" if current is not None else "none"
            outcome.registry_note = (
                f"The gate passed, but the production model changed during retraining (now "
                f"{now}, was v{outcome.champion.version}); not promoted. Retrain again."
            )
    decision = outcome.decision
    audit.record(
        session,
        AuditAction.RETRAIN,
        actor=user,
        source=source,
        target_type="model_version",
        target_id=row.id,
        detail={
            "task": outcome.task,
            "champion_version": outcome.champion.version,
            "challenger_version": row.version,
            "promoted": outcome.promoted,
            "gate_passed": decision.passed,
            "auroc_difference": round(decision.auroc_difference, 6),
            "auroc_lower_bound": round(decision.auroc_lower_bound, 6),
            "delong_p_value": decision.delong_p_value,
            "sensitivity_champion": round(decision.sensitivity_champion, 6),
            "sensitivity_challenger": round(decision.sensitivity_challenger, 6),
            "feedback_used": outcome.counts.get("feedback_used", 0),
            "feedback_unusable": len(outcome.unusable),
            "holdout_rows": outcome.counts.get("holdout_rows", 0),
            "run": outcome.run_dir.name,
        },
    )


def _register_under_task(
    session: Session, registry: ModelRegistry, outcome: RetrainOutcome, user: User, source: str
) -> ModelVersion:
    """Register the run's bundle as a candidate of ``outcome.task``.

    The registry keys versions by the bundle kind unless ``register`` takes a ``task`` name (being
    added for the service); pass it when it exists, and refuse to register under another task.
    """
    bundle = outcome.run_dir / "bundle"
    if "task" in inspect.signature(registry.register).parameters:
        row = registry.register(session, bundle, actor=user, source=source, task=outcome.task)
    elif outcome.task == outcome.champion.kind:
        row = registry.register(session, bundle, actor=user, source=source)
    else:
        raise ConflictError(
            f"this registry registers bundles under their kind ({outcome.champion.kind!r}), "
            f"not under the task name {outcome.task!r}; update medsight."
        )
    if row.task != outcome.task:
        raise ConflictError(
            f"the challenger was registered under {row.task!r}, not {outcome.task!r}."
        )
    return row
