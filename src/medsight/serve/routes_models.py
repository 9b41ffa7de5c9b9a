"""Registered models: list them, promote a version to production, roll back (audited).

Permission checks and audit lines come from :class:`~medsight.registry.ModelRegistry`: every role
may list; only data scientists and admins may promote or roll back (403 for clinicians).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from medsight.serve.auth import Caller, caller, user_of
from medsight.serve.schemas import TASK_NAME_REGEX, ModelList, ModelVersionInfo, PromoteRequest
from medsight.serve.state import ServiceState
from medsight.store.models import ModelVersion
from medsight.store.permissions import Action, require

router = APIRouter(prefix="/v1/models", tags=["models"])
Who = Annotated[Caller, Depends(caller)]
TaskName = Annotated[str, Path(pattern=TASK_NAME_REGEX)]
_ERRORS = {
    401: {"description": "No or invalid API token."},
    403: {"description": "The role may not change models."},
    404: {"description": "No such task or version."},
    409: {"description": "Already in production, or nothing to roll back to."},
}


@router.get("", response_model=ModelList, responses={401: _ERRORS[401]})
def list_models(request: Request, who: Who) -> ModelList:
    """Every registered version with its stage."""
    state: ServiceState = request.app.state.medsight
    with state.write() as session:
        require(user_of(session, who), Action.MODEL_READ)
        return ModelList(models=[_info(v) for v in state.registry.list_versions(session)])


@router.post("/{task}/promote", response_model=ModelVersionInfo, responses=_ERRORS)
def promote(request: Request, who: Who, task: TaskName, body: PromoteRequest) -> ModelVersionInfo:
    """Put a version in production; the previous production version is archived."""
    state: ServiceState = request.app.state.medsight
    with state.write() as session:
        row = state.registry.promote(
            session, task, body.version, actor=user_of(session, who), source=who.source
        )
        info = _info(row)
    state.forget_production()
    return info


@router.post("/{task}/rollback", response_model=ModelVersionInfo, responses=_ERRORS)
def rollback(request: Request, who: Who, task: TaskName) -> ModelVersionInfo:
    """Put the previous production version back; the current one is archived."""
    state: ServiceState = request.app.state.medsight
    with state.write() as session:
        row = state.registry.rollback(session, task, actor=user_of(session, who), source=who.source)
        info = _info(row)
    state.forget_production()
    return info


def _info(row: ModelVersion) -> ModelVersionInfo:
    return ModelVersionInfo(
        task=row.task,
        version=row.version,
        stage=str(row.stage),
        name=row.name,
        created_at=row.created_at,
        promoted_at=row.promoted_at,
        archived_reason=str(row.archived_reason) if row.archived_reason is not None else None,
    )
