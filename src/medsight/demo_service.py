"""The service part of ``medsight demo``: the demo's models in a ready-to-serve data directory.

:func:`prepare_demo_service` creates or upgrades the database in the data directory (default
``runs/demo-service``, or ``$MEDSIGHT_DATA_DIR``), registers and promotes the bundles the demo has
just written, sets up a clinician account ``clinician`` with a freshly generated password, and
prints how to start the service and log in. Running it again is safe: a bundle already in
production is left alone, a new one becomes the next version, and the account is reused with a
new password (the old one stops working).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from rich.console import Console
from sqlalchemy.orm import Session

from medsight.errors import MedsightError
from medsight.registry import ModelRegistry, inspect_bundle
from medsight.store.audit import CLI_SOURCE
from medsight.store.database import open_database
from medsight.store.models import ModelVersion, Stage, User
from medsight.store.permissions import Role
from medsight.store.settings import StoreSettings
from medsight.store.users import create_user, get_user, local_cli_user, set_active, set_password

DEMO_USERNAME: Final = "clinician"
DEFAULT_DATA_DIR: Final = Path("runs/demo-service")
DATA_DIR_ENV: Final = "MEDSIGHT_DATA_DIR"
TABULAR_TASK: Final = "wdbc-demo"
IMAGE_TASK: Final = "image-demo"
SERVICE_URL: Final = "http://127.0.0.1:8000/"


@dataclass(frozen=True)
class DemoLogin:
    """What the demo prints: where the data is, which models serve, and the login."""

    username: str
    password: str
    data_dir: Path
    models: dict[str, int]
    """Task -> production version."""

    @property
    def serve_command(self) -> str:
        return f"{DATA_DIR_ENV}={self.data_dir} medsight serve"


def demo_store_settings(data_dir: Path | None = None) -> StoreSettings:
    """The store of the demo: ``data_dir``, else ``$MEDSIGHT_DATA_DIR``, else ``runs/demo-service``
    (made absolute, so the printed command works from any folder)."""
    settings = StoreSettings.from_env()
    if data_dir is None and not os.environ.get(DATA_DIR_ENV):
        data_dir = DEFAULT_DATA_DIR
    if data_dir is not None:
        settings = settings.model_copy(update={"data_dir": Path(data_dir).expanduser()})
    return settings.model_copy(update={"data_dir": settings.data_dir.resolve()})


def prepare_demo_service(
    console: Console, data_dir: Path | None, bundles: Mapping[str, Path]
) -> DemoLogin:
    """Register and promote ``bundles`` (task -> bundle folder), set the demo login, print both."""
    settings = demo_store_settings(data_dir)
    registry = ModelRegistry.from_settings(settings)
    password = secrets.token_urlsafe(12)
    database = open_database(settings)
    try:
        with database.transaction() as session:
            actor = local_cli_user(session)
            models = {
                task: _serve_bundle(session, registry, task, Path(bundle), actor).version
                for task, bundle in bundles.items()
            }
            _set_demo_login(session, password, actor)
    finally:
        database.dispose()
    login = DemoLogin(DEMO_USERNAME, password, settings.data_dir, models)
    print_demo_login(console, login)
    return login


def _serve_bundle(
    session: Session, registry: ModelRegistry, task: str, bundle: Path, actor: User
) -> ModelVersion:
    """The production version of ``task`` holding ``bundle``: reused, promoted or registered."""
    digest = inspect_bundle(bundle).bundle_sha256
    same = [v for v in registry.list_versions(session, task) if v.bundle_sha256 == digest]
    row = same[-1] if same else None
    if row is None:
        row = registry.register(session, bundle, actor=actor, source=CLI_SOURCE, task=task)
    if row.stage is not Stage.PRODUCTION:
        row = registry.promote(session, task, row.version, actor=actor, source=CLI_SOURCE)
    return row


def _set_demo_login(session: Session, password: str, actor: User) -> None:
    """Create ``clinician`` with ``password``, or give the existing account that password."""
    user = get_user(session, DEMO_USERNAME)
    if user is None:
        create_user(
            session,
            DEMO_USERNAME,
            Role.CLINICIAN,
            password=password,
            actor=actor,
            source=CLI_SOURCE,
        )
        return
    if Role(user.role) != Role.CLINICIAN:
        raise MedsightError(
            f"user {DEMO_USERNAME!r} in this data directory has the role {user.role}; the demo "
            f"resets only a clinician's password. Point {DATA_DIR_ENV} at another folder."
        )
    set_password(session, user, password, actor=actor, source=CLI_SOURCE)
    if not user.is_active:
        set_active(session, user, True, actor=actor, source=CLI_SOURCE)


def print_demo_login(console: Console, login: DemoLogin) -> None:
    """The closing lines of the demo: models, start command, URLs and the login."""
    console.rule("[bold]Clinical service")
    for task, version in login.models.items():
        console.print(f"Serving [bold]{task}[/bold] v{version}")
    console.print(
        f"Start the service:  [bold]{login.serve_command}[/bold]\n"
        f"Web page:           {SERVICE_URL}\n"
        f"API (OpenAPI docs): {SERVICE_URL}docs\n"
        f"Demo login:         [bold]{login.username}[/bold] / [bold]{login.password}[/bold] "
        "(a new password is set at every demo run)",
        highlight=False,
        soft_wrap=True,
    )
