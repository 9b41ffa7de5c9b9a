"""One rule for every CLI command: an error the user can fix (a :class:`MedsightError`) is printed
as one line on stderr and ends the command with its exit code (2), under ``medsight`` and under a
test runner alike; anything else is a bug and keeps its traceback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from medsight.errors import MedsightError

errors = Console(stderr=True)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn a :class:`MedsightError` raised inside into one stderr line and ``typer.Exit``."""
    try:
        yield
    except MedsightError as exc:
        errors.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
