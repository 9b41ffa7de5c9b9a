"""medsight: local-first diagnosis support with honest evaluation and explanations."""

from medsight.errors import (
    BundleError,
    ConfigError,
    DataError,
    MedsightError,
    SchemaError,
)

__version__ = "0.1.0"

__all__ = [
    "BundleError",
    "ConfigError",
    "DataError",
    "MedsightError",
    "SchemaError",
    "__version__",
]
