"""The model registry: versions per task, stages, and promotion/rollback in one transaction.

Registered bundles are copied to ``<registry root>/<task>/v<N>/`` (normally
``<data_dir>/registry``) after their checksums verify; the ``model_versions`` table is the source of
truth. A task has at most one ``production`` version: a partial unique index in the database and a
check in code inside the same transaction. Every state change runs inside a SAVEPOINT of the
caller's session, so a failure half-way leaves the rows as they were even if the caller goes on
to commit, and writes its audit line in that same transaction.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from medsight.bundle.checksum import verify_checksums
from medsight.errors import BundleError, ConfigError
from medsight.registry.bundles import (
    TASK_PATTERN,
    BundleInfo,
    check_manifest,
    file_manifest,
    inspect_bundle,
)
from medsight.runs import staged_directory
from medsight.store import audit
from medsight.store.audit import AuditAction
from medsight.store.errors import ConflictError, NotFoundError
from medsight.store.models import ArchiveReason, ModelVersion, Stage, User, utcnow
from medsight.store.permissions import Action, require
from medsight.store.settings import StoreSettings

log = logging.getLogger(__name__)


class ModelRegistry:
    """Registered model versions under ``root``; every method works in the caller's session."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> ModelRegistry:
        """The registry in ``settings.registry_dir`` (``<data_dir>/registry``)."""
        return cls(settings.registry_dir)

    # ------------------------------------------------------------------------------ reading

    def path_of(self, version: ModelVersion) -> Path:
        """The folder holding ``version``'s bundle."""
        return self.root / version.path

    def list_versions(self, session: Session, task: str | None = None) -> Sequence[ModelVersion]:
        """All versions (of ``task``), ordered by task then version."""
        query = select(ModelVersion).order_by(ModelVersion.task, ModelVersion.version)
        if task is not None:
            query = query.where(ModelVersion.task == task)
        return session.scalars(query).all()

    def get(self, session: Session, task: str, version: int) -> ModelVersion:
        """Version ``version`` of ``task``, or :class:`NotFoundError` listing the known ones."""
        row = session.scalar(
            select(ModelVersion).where(ModelVersion.task == task, ModelVersion.version == version)
        )
        if row is None:
            known = [v.version for v in self.list_versions(session, task)]
            hint = f"known versions: {known}" if known else "no versions are registered for it"
            raise NotFoundError(f"task {task!r} has no version {version}; {hint}.")
        return row

    def production(self, session: Session, task: str) -> ModelVersion | None:
        """The production version of ``task``, or ``None``."""
        return session.scalar(
            select(ModelVersion).where(
                ModelVersion.task == task, ModelVersion.stage == Stage.PRODUCTION
            )
        )

    def verify(self, version: ModelVersion) -> Path:
        """Check the registered copy against its manifest; return its folder."""
        folder = self.path_of(version)
        check_manifest(folder, version.files)
        return folder

    # ------------------------------------------------------------------------------ writing

    def register(
        self,
        session: Session,
        bundle: str | Path,
        *,
        actor: User,
        source: str,
        task: str | None = None,
    ) -> ModelVersion:
        """Verify ``bundle``, copy it into the registry and add it as the next candidate version.

        ``task`` is the service task name the version is filed under (e.g. ``heart-failure``),
        so one site can serve several models of the same kind; default: the bundle's kind as
        recorded in its ``bundle.json`` (``tabular-classification``, ...). The kind itself stays
        in the registered ``bundle.json`` and decides how the model is served.
        """
        require(actor, Action.MODEL_REGISTER)
        if task is not None and not TASK_PATTERN.fullmatch(task):
            raise ConfigError(
                f"task name {task!r} is not valid: use 1-64 lower-case letters, digits, '.', '_' "
                "or '-', starting with a letter or digit (e.g. 'heart-failure')."
            )
        try:
            info = inspect_bundle(bundle)
        except BundleError as exc:
            raise BundleError(f"refusing to register: {exc}") from exc
        name = task or info.task
        try:
            with session.begin_nested():
                return self._register(session, info, name, actor=actor, source=source)
        except IntegrityError as exc:
            raise ConflictError(
                f"another registration for task {name!r} happened at the same time; "
                "run the command again."
            ) from exc

    def _register(
        self, session: Session, info: BundleInfo, task: str, *, actor: User, source: str
    ) -> ModelVersion:
        latest = session.scalar(
            select(func.max(ModelVersion.version)).where(ModelVersion.task == task)
        )
        number = (latest or 0) + 1
        row = ModelVersion(
            task=task,
            version=number,
            stage=Stage.CANDIDATE,
            path=f"{task}/v{number}",
            name=info.name,
            bundle_sha256=info.bundle_sha256,
            files={},
            registered_from=str(info.path)[:1024],
            created_by_id=actor.id,
        )
        session.add(row)
        session.flush()  # claims (task, version) before any file is written
        folder = self.path_of(row)
        row.files = self._install(info, folder)
        try:
            session.flush()
            audit.record(
                session,
                AuditAction.REGISTER,
                actor=actor,
                source=source,
                target_type="model_version",
                target_id=row.id,
                detail={
                    "task": row.task,
                    "kind": info.task,
                    "version": number,
                    "bundle_sha256": info.bundle_sha256,
                },
            )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return row

    def _install(self, info: BundleInfo, folder: Path) -> dict[str, str]:
        """Copy the bundle to ``folder`` through a staging folder; return the copy's manifest."""
        if folder.exists():
            # left by a registration whose transaction was rolled back: no row refers to it
            log.warning("removing orphaned registry folder %s", folder)
            shutil.rmtree(folder)
        with staged_directory(folder) as staging:
            shutil.copytree(info.path, staging, dirs_exist_ok=True)
            verify_checksums(staging, {"sha256": info.digests})
            manifest = file_manifest(staging)
        return manifest

    def promote(
        self, session: Session, task: str, version: int, *, actor: User, source: str
    ) -> ModelVersion:
        """Make ``version`` the production model of ``task``, archiving the previous one."""
        require(actor, Action.MODEL_PROMOTE)
        with session.begin_nested():
            rows = self._lock_task(session, task)
            target = self.get(session, task, version)
            if target.stage is Stage.PRODUCTION:
                raise ConflictError(f"{task} v{version} is already the production model.")
            self.verify(target)
            previous = _production_of(rows)
            self._switch(session, task, previous, target, ArchiveReason.SUPERSEDED)
            audit.record(
                session,
                AuditAction.PROMOTE,
                actor=actor,
                source=source,
                target_type="model_version",
                target_id=target.id,
                detail={
                    "task": task,
                    "version": version,
                    "previous_version": previous.version if previous else None,
                },
            )
        return target

    def rollback(self, session: Session, task: str, *, actor: User, source: str) -> ModelVersion:
        """Restore the version that was production before the current one; return it.

        The current production version is archived as ``rolled_back`` and is not a rollback
        target later (promote it explicitly to bring it back), so repeated rollbacks walk back
        through the production history.
        """
        require(actor, Action.MODEL_ROLLBACK)
        with session.begin_nested():
            rows = self._lock_task(session, task)
            current = _production_of(rows)
            if current is None:
                raise ConflictError(f"task {task!r} has no production model to roll back.")
            earlier = [
                r
                for r in rows
                if r.stage is Stage.ARCHIVED
                and r.archived_reason is ArchiveReason.SUPERSEDED
                and r.promoted_at is not None
            ]
            if not earlier:
                raise ConflictError(
                    f"task {task!r}: no earlier production version to roll back to "
                    f"(v{current.version} is the first)."
                )
            target = max(earlier, key=lambda r: (r.archived_at, r.id))
            self.verify(target)
            self._switch(session, task, current, target, ArchiveReason.ROLLED_BACK)
            audit.record(
                session,
                AuditAction.ROLLBACK,
                actor=actor,
                source=source,
                target_type="model_version",
                target_id=target.id,
                detail={"task": task, "version": target.version, "from_version": current.version},
            )
        return target

    def _lock_task(self, session: Session, task: str) -> list[ModelVersion]:
        """All versions of ``task``, row-locked where the database supports it (PostgreSQL)."""
        query = select(ModelVersion).where(ModelVersion.task == task).with_for_update()
        rows = list(session.scalars(query.execution_options(populate_existing=True)))
        if not rows:
            raise NotFoundError(f"task {task!r} has no registered versions.")
        return rows

    def _switch(
        self,
        session: Session,
        task: str,
        old: ModelVersion | None,
        new: ModelVersion,
        reason: ArchiveReason,
    ) -> None:
        """Archive ``old`` (flushed first, for the unique index), then make ``new`` production."""
        now = utcnow()
        if old is not None:
            old.stage = Stage.ARCHIVED
            old.archived_at = now
            old.archived_reason = reason
            session.flush()
        new.stage = Stage.PRODUCTION
        new.promoted_at = now
        new.archived_at = None
        new.archived_reason = None
        session.flush()
        count = session.scalar(
            select(func.count())
            .select_from(ModelVersion)
            .where(ModelVersion.task == task, ModelVersion.stage == Stage.PRODUCTION)
        )
        if count != 1:
            raise ConflictError(
                f"task {task!r} would have {count} production models; nothing changed."
            )


def _production_of(rows: Sequence[ModelVersion]) -> ModelVersion | None:
    return next((r for r in rows if r.stage is Stage.PRODUCTION), None)
