"""``medsight serve``: the HTTP service with uvicorn, on SQLite in the data directory by default.

At start the database is created or migrated. When no administrator can log in yet, an account
``admin`` is created with the password from ``MEDSIGHT_ADMIN_PASSWORD``, or a generated one that
is printed once (change it, or keep it somewhere safe: it is not shown again). Registered on the
main app by the lead as ``app.command("serve")(serve_command)``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer
from rich.console import Console

from medsight.cli.user_errors import one_line_errors
from medsight.errors import MedsightError

if TYPE_CHECKING:
    from medsight.store.database import Database

ADMIN_USERNAME: Final = "admin"
ADMIN_PASSWORD_ENV: Final = "MEDSIGHT_ADMIN_PASSWORD"
console = Console()


def bootstrap_admin(database: Database, password: str | None = None) -> str | None:
    """Create ``admin`` when no active admin has a password; return the generated password.

    With ``password`` (e.g. from ``MEDSIGHT_ADMIN_PASSWORD``) it is used and ``None`` returned;
    without, a random one is made and returned for printing. Nothing happens (``None``) when an
    administrator who can log in exists already.
    """
    from sqlalchemy import select

    from medsight.store.audit import CLI_SOURCE
    from medsight.store.models import User
    from medsight.store.permissions import Role
    from medsight.store.users import create_user, get_user, local_cli_user

    # immediate: two servers starting at once on one SQLite file take turns; otherwise the
    # second, having read "no admin", would fail on its insert instead of waiting
    with database.transaction(immediate=True) as session:
        admins = select(User.id).where(
            User.role == Role.ADMIN, User.is_active, User.password_hash.is_not(None)
        )
        if session.scalar(admins.limit(1)) is not None:
            return None
        if get_user(session, ADMIN_USERNAME) is not None:
            raise MedsightError(
                f"user {ADMIN_USERNAME!r} exists but cannot log in (no password or inactive); "
                "fix it with the user administration before serving."
            )
        generated = None if password else secrets.token_urlsafe(18)
        anyone = session.scalar(select(User.id).limit(1)) is not None
        actor = local_cli_user(session) if anyone else None
        create_user(
            session,
            ADMIN_USERNAME,
            Role.ADMIN,
            password=password or generated,
            actor=actor,
            source=CLI_SOURCE,
        )
    return generated


def serve_command(
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option(help="Port [8000].")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Data directory: database and model registry [$MEDSIGHT_DATA_DIR]."),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    access_log: Annotated[
        bool, typer.Option(help="Log every request line (costs time under load).")
    ] = True,
    require_deidentified: Annotated[
        bool,
        typer.Option(
            "--require-deidentified",
            help="Refuse DICOM and WFDB uploads that are not de-identified "
            "[$MEDSIGHT_REQUIRE_DEIDENTIFIED].",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Worker processes (each loads the models it serves; SQLite writers wait "
            "for each other). About one per CPU core under load.",
        ),
    ] = 1,
) -> None:
    """Run the diagnosis-support API (OpenAPI docs at /docs).

    One worker process by default; ``--workers N`` starts N, each building the app from the
    environment (the data directory and flags are passed to them there). uvicorn picks httptools
    and uvloop when they are installed (``pip install uvicorn[standard]``), which roughly halves
    its share of each request's time.
    """
    with one_line_errors():
        app, settings = _build(host, port, data_dir, require_deidentified)
    import uvicorn

    if workers > 1:  # each worker builds its own app: pass it the settings the flags chose
        app.state.medsight.close()
        os.environ["MEDSIGHT_DATA_DIR"] = str(settings.store.data_dir)
        if settings.require_deidentified:
            os.environ["MEDSIGHT_REQUIRE_DEIDENTIFIED"] = "true"
        app = "medsight.serve.app:create_app"

    console.print(
        f"medsight serving on http://{settings.host}:{settings.port} "
        f"(data in {settings.store.data_dir}; API docs at /docs)",
        highlight=False,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=access_log,
        workers=workers,
        factory=workers > 1,
    )


def _build(
    host: str | None,
    port: int | None,
    data_dir: Path | None,
    require_deidentified: bool = False,
) -> tuple[object, object]:
    from medsight.serve.app import create_app
    from medsight.serve.settings import ServeSettings
    from medsight.store.settings import StoreSettings

    settings = ServeSettings.from_env(
        host=host, port=port, require_deidentified=True if require_deidentified else None
    )
    if data_dir is not None:
        store = StoreSettings.from_env()
        store = store.model_copy(update={"data_dir": data_dir.expanduser()})
        settings = settings.model_copy(update={"store": store})
    app = create_app(settings)
    generated = bootstrap_admin(app.state.medsight.database, os.environ.get(ADMIN_PASSWORD_ENV))
    if generated is not None:
        console.print(
            f"Created administrator [bold]{ADMIN_USERNAME}[/bold] with password "
            f"[bold]{generated}[/bold]\nIt is shown only this once: keep it safe, or set "
            f"{ADMIN_PASSWORD_ENV} before the first start.",
            highlight=False,
        )
    return app, settings
