"""One transaction on the configured store as the local CLI administrator, for CLI commands.

The CLI acts as ``cli:<OS user>`` (see :func:`medsight.store.users.local_cli_user`); the data
directory and database come from ``MEDSIGHT_DATA_DIR`` / ``MEDSIGHT_DATABASE_URL``, and the
database is migrated to the latest schema first. Errors a user can fix print as one line on stderr
with exit code 2 (:func:`~medsight.cli.user_errors.one_line_errors`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from medsight.cli.user_errors import one_line_errors

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from medsight.store.models import User
    from medsight.store.settings import StoreSettings


@contextmanager
def cli_store_session() -> Iterator[tuple[Session, StoreSettings, User]]:
    """A transaction on the configured store, its settings, and the local CLI admin."""
    from medsight.store.database import open_database
    from medsight.store.settings import StoreSettings
    from medsight.store.users import local_cli_user

    settings = StoreSettings.from_env()
    database = open_database(settings)
    try:
        with database.transaction() as session:
            yield session, settings, local_cli_user(session)
    finally:
        database.dispose()


def run_cli_action(action: Callable[[], None]) -> None:
    """Run ``action``; a :class:`MedsightError` becomes one line on stderr and its exit code."""
    with one_line_errors():
        action()
