"""One exception family for everything a user can get wrong.

Each message names the file, row, column or field at fault, what was wrong and what to do. The CLI
prints the message without a traceback and exits with code 2; the service will answer 4xx.
"""

from __future__ import annotations


class MedsightError(Exception):
    """Base class for errors caused by input, configuration or environment, not by a bug."""

    exit_code: int = 2


class DataError(MedsightError):
    """A data file cannot be read or its content is unusable (empty, binary, wrong format)."""


class SchemaError(DataError):
    """A table does not match its schema: a missing column, a wrong type, an unknown category."""


class ConfigError(MedsightError):
    """A configuration file or flag is invalid (unknown key, wrong type, contradictory values)."""


class BundleError(MedsightError):
    """A model bundle is missing, incomplete or was written by an incompatible version."""


class MissingDependencyError(MedsightError):
    """An optional package is needed for this feature; the message names the package to install."""
