"""``medsight registry``: list, register, promote and roll back model versions.

The CLI acts as a local administrator named after the operating-system user: ``cli:<user>``
(``cli:alice`` for ``alice``), created on first use with the ``admin`` role and no password, so it
cannot log in to the web service. Every change is written to the audit log with source ``cli``.
The data directory and database come from ``MEDSIGHT_DATA_DIR`` and ``MEDSIGHT_DATABASE_URL``
(see :mod:`medsight.store.settings`); the database is migrated to the latest schema first.

Registered on the main app as a sub-app. Errors a user can fix are printed as one line on stderr
with exit code 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from medsight.cli.store_session import cli_store_session, run_cli_action

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from medsight.registry import ModelRegistry
    from medsight.store.models import ModelVersion, User

registry_app = typer.Typer(
    help="Model registry: register bundles, promote a version to production, roll back.",
    no_args_is_help=True,
)
console = Console()

_STAGE_STYLES = {"production": "bold green", "candidate": "yellow", "archived": "dim"}


@contextmanager
def _registry_session() -> Iterator[tuple[Session, ModelRegistry, User]]:
    """One transaction on the configured store, the registry, and the local CLI admin."""
    from medsight.registry import ModelRegistry

    with cli_store_session() as (session, settings, user):
        yield session, ModelRegistry.from_settings(settings), user


_run = run_cli_action


@registry_app.command("list")
def list_versions(
    task: Annotated[str | None, typer.Option(help="Only this task.")] = None,
) -> None:
    """Registered versions with their stage, name and dates."""

    def action() -> None:
        with _registry_session() as (session, registry, _user):
            rows = registry.list_versions(session, task)
            if not rows:
                console.print("No model versions registered" + (f" for {task}." if task else "."))
                return
            console.print(_table(rows, registry))

    _run(action)


@registry_app.command("register")
def register(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (or a run folder with bundle/).")],
    task: Annotated[
        str | None,
        typer.Option(
            help="Task name to file it under, e.g. heart-failure (default: the bundle's kind, "
            "e.g. tabular-classification)."
        ),
    ] = None,
) -> None:
    """Verify a bundle's checksums, copy it into the registry as the next candidate version."""
    from medsight.store.audit import CLI_SOURCE

    def action() -> None:
        with _registry_session() as (session, registry, user):
            row = registry.register(session, bundle, actor=user, source=CLI_SOURCE, task=task)
            console.print(
                f"Registered [bold]{row.task} v{row.version}[/bold] ({row.name}) as candidate "
                f"in {registry.path_of(row)}",
                highlight=False,
                soft_wrap=True,
            )

    _run(action)


@registry_app.command("promote")
def promote(
    task: Annotated[str, typer.Argument(help="Task, e.g. image-classification.")],
    version: Annotated[int, typer.Argument(help="Version number to put in production.")],
) -> None:
    """Make a version the production model of its task; the previous one is archived."""
    from medsight.store.audit import CLI_SOURCE

    def action() -> None:
        with _registry_session() as (session, registry, user):
            row = registry.promote(session, task, version, actor=user, source=CLI_SOURCE)
            console.print(f"[bold green]{row.task} v{row.version}[/bold green] is in production.")

    _run(action)


@registry_app.command("rollback")
def rollback(
    task: Annotated[str, typer.Argument(help="Task whose production model to roll back.")],
) -> None:
    """Put the previous production version back in production; archive the current one."""
    from medsight.store.audit import CLI_SOURCE

    def action() -> None:
        with _registry_session() as (session, registry, user):
            current = registry.production(session, task)
            row = registry.rollback(session, task, actor=user, source=CLI_SOURCE)
            was = f" (was v{current.version})" if current is not None else ""
            console.print(
                f"Rolled back: [bold green]{row.task} v{row.version}[/bold green] "
                f"is in production{was}."
            )

    _run(action)


def _table(rows: list[ModelVersion] | tuple[ModelVersion, ...], registry: ModelRegistry) -> object:
    from rich.table import Table

    table = Table(title=f"Model registry ({registry.root})")
    for column in ("task", "version", "stage", "name", "registered", "by", "promoted"):
        table.add_column(column, justify="right" if column == "version" else "left")
    for row in rows:
        style = _STAGE_STYLES.get(str(row.stage), "")
        stage = str(row.stage)
        if row.archived_reason is not None:
            stage += f" ({row.archived_reason})"
        table.add_row(
            row.task,
            f"v{row.version}",
            f"[{style}]{stage}[/{style}]" if style else stage,
            row.name,
            _when(row.created_at),
            row.created_by.username if row.created_by else "-",
            _when(row.promoted_at),
        )
    return table


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment is not None else "-"
