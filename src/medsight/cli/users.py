"""``medsight users``: accounts and API tokens of the clinical service, for hospital IT.

Acts as the local CLI administrator (see :mod:`medsight.cli.store_session`); every change is
audited with source ``cli``. Passwords are read from a prompt (or stdin with
``--password-stdin``) or generated and printed once; API tokens are printed once and stored
hashed, so a lost token is revoked and replaced, never recovered.
"""

from __future__ import annotations

import secrets
import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from medsight.cli.store_session import cli_store_session, run_cli_action
from medsight.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from medsight.store.models import User

users_app = typer.Typer(
    help="Service accounts: add users with a role, API tokens, passwords, deactivation.",
    no_args_is_help=True,
)
console = Console()


def _read_password(from_stdin: bool, generate: bool) -> tuple[str, bool]:
    """The new password and whether it was generated (and so must be shown once)."""
    if generate:
        return secrets.token_urlsafe(15), True
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise ConfigError("--password-stdin: no password on standard input.")
        return password, False
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True), False


def _existing(session: Session, username: str) -> User:
    from medsight.store.errors import NotFoundError
    from medsight.store.users import get_user

    user = get_user(session, username)
    if user is None:
        raise NotFoundError(f"user {username!r} does not exist; see `medsight users list`.")
    return user


@users_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Login name, e.g. a.smith.")],
    role: Annotated[str, typer.Option(help="clinician, data_scientist or admin.")] = "clinician",
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from the first line of stdin.")
    ] = False,
    generate: Annotated[bool, typer.Option(help="Generate a password and print it once.")] = False,
    no_password: Annotated[
        bool, typer.Option(help="No password: the account uses API tokens only.")
    ] = False,
) -> None:
    """Create an account with a role (clinician, data_scientist, admin)."""
    from medsight.store.audit import CLI_SOURCE
    from medsight.store.users import create_user

    def action() -> None:
        password, shown = (None, False) if no_password else _read_password(password_stdin, generate)
        with cli_store_session() as (session, _settings, admin):
            user = create_user(
                session, username, role, password=password, actor=admin, source=CLI_SOURCE
            )
            console.print(f"Created [bold]{user.username}[/bold] ({user.role}).", highlight=False)
        if shown:
            console.print(f"Password (shown once): [bold]{password}[/bold]", highlight=False)

    run_cli_action(action)


@users_app.command("list")
def list_users() -> None:
    """Accounts with their role, state and number of live API tokens."""
    from sqlalchemy import select

    from medsight.store.models import User

    def action() -> None:
        with cli_store_session() as (session, _settings, _admin):
            rows = session.scalars(select(User).order_by(User.username)).all()
            table = Table(title="Accounts")
            for column in ("user", "role", "active", "web login", "live tokens", "created"):
                table.add_column(column)
            for user in rows:
                live = sum(1 for t in user.tokens if t.revoked_at is None)
                table.add_row(
                    user.username,
                    str(user.role),
                    "yes" if user.is_active else "[red]no[/red]",
                    "yes" if user.password_hash else "no",
                    str(live),
                    f"{user.created_at:%Y-%m-%d}",
                )
            console.print(table)

    run_cli_action(action)


@users_app.command("token")
def token(
    username: Annotated[str, typer.Argument(help="Account the token acts as.")],
    name: Annotated[str, typer.Option(help="What uses it, e.g. pacs-bridge.")],
    days: Annotated[
        int | None, typer.Option(min=1, help="Lifetime in days (default: until revoked).")
    ] = None,
) -> None:
    """Create an API token for an account and print it once (stored hashed)."""
    from medsight.store.audit import CLI_SOURCE
    from medsight.store.users import create_api_token

    def action() -> None:
        lifetime = timedelta(days=days) if days is not None else None
        with cli_store_session() as (session, _settings, admin):
            user = _existing(session, username)
            row, plain = create_api_token(
                session,
                user,
                name,
                actor=admin,
                source=CLI_SOURCE,
                expires_in=lifetime,
            )
            ends = f"expires {_when(row.expires_at)}" if row.expires_at else "no expiry"
            console.print(f"Token {row.id} for {username} ({name}, {ends}).", highlight=False)
        console.print(f"Token (shown once): [bold]{plain}[/bold]", highlight=False)

    run_cli_action(action)


@users_app.command("revoke-token")
def revoke_token(
    token_id: Annotated[int, typer.Argument(help="Token id (from `users tokens`).")],
) -> None:
    """Revoke an API token; it stops working at once."""
    from medsight.store.audit import CLI_SOURCE
    from medsight.store.users import revoke_api_token

    def action() -> None:
        with cli_store_session() as (session, _settings, admin):
            row = revoke_api_token(session, token_id, actor=admin, source=CLI_SOURCE)
            console.print(f"Token {row.id} ({row.name}) is revoked.", highlight=False)

    run_cli_action(action)


@users_app.command("tokens")
def tokens(username: Annotated[str, typer.Argument(help="Account.")]) -> None:
    """An account's API tokens: id, name, hint, dates (never the token)."""
    from medsight.store.users import list_api_tokens

    def action() -> None:
        with cli_store_session() as (session, _settings, admin):
            rows = list_api_tokens(session, _existing(session, username), actor=admin)
            table = Table(title=f"API tokens of {username}")
            for column in ("id", "name", "hint", "created", "expires", "revoked"):
                table.add_column(column)
            for row in rows:
                table.add_row(
                    str(row.id),
                    row.name,
                    row.hint,
                    _when(row.created_at),
                    _when(row.expires_at),
                    _when(row.revoked_at),
                )
            console.print(table)

    run_cli_action(action)


@users_app.command("password")
def password(
    username: Annotated[str, typer.Argument(help="Account.")],
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from the first line of stdin.")
    ] = False,
    generate: Annotated[bool, typer.Option(help="Generate a password and print it once.")] = False,
) -> None:
    """Set an account's password."""
    from medsight.store.audit import CLI_SOURCE
    from medsight.store.users import set_password

    def action() -> None:
        new, shown = _read_password(password_stdin, generate)
        with cli_store_session() as (session, _settings, admin):
            set_password(session, _existing(session, username), new, actor=admin, source=CLI_SOURCE)
            console.print(f"Password of {username} set.", highlight=False)
        if shown:
            console.print(f"Password (shown once): [bold]{new}[/bold]", highlight=False)

    run_cli_action(action)


@users_app.command("deactivate")
def deactivate(username: Annotated[str, typer.Argument(help="Account.")]) -> None:
    """Stop an account from signing in or using its tokens (kept for the audit log)."""
    _set_active(username, False)


@users_app.command("activate")
def activate(username: Annotated[str, typer.Argument(help="Account.")]) -> None:
    """Let a deactivated account sign in again."""
    _set_active(username, True)


def _set_active(username: str, active: bool) -> None:
    from medsight.store.audit import CLI_SOURCE
    from medsight.store.users import set_active

    def action() -> None:
        with cli_store_session() as (session, _settings, admin):
            set_active(
                session, _existing(session, username), active, actor=admin, source=CLI_SOURCE
            )
            console.print(
                f"{username} is {'active' if active else 'deactivated'}.", highlight=False
            )

    run_cli_action(action)


def _when(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment is not None else "-"
