"""Where the clinical store keeps its data: data directory, database URL, raw-input policy.

Read from the environment by :meth:`StoreSettings.from_env`:

==========================  ===============================================  =====================
variable                    meaning                                          default
==========================  ===============================================  =====================
``MEDSIGHT_DATA_DIR``       data directory (database file, model registry)   ``~/.medsight``
``MEDSIGHT_DATABASE_URL``   SQLAlchemy URL (``postgresql://...`` for PG)     ``sqlite:///<dir>/medsight.db``
``MEDSIGHT_STORE_INPUTS``   keep the raw input bytes of each prediction      ``false``
``MEDSIGHT_SQLITE_SYNC``    SQLite ``synchronous``: ``normal`` or ``full``   ``normal``
==========================  ===============================================  =====================

By default a prediction keeps only the SHA-256 of its input, so the database holds no images or
recordings; set ``MEDSIGHT_STORE_INPUTS=true`` only where local policy allows it.

SQLite durability: under WAL, ``synchronous=NORMAL`` syncs the log at checkpoints, not at every
commit. A committed transaction survives the process being killed (even ``SIGKILL``: the log is
in the operating system's page cache, and the service's durability test kills it mid-burst), but
the last commits before a power loss or an operating-system crash can be lost; the database itself
stays consistent. ``full`` syncs at every commit (durable against power loss too) and costs a disk
flush per request. PostgreSQL ignores the setting (it has its own ``synchronous_commit``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medsight.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class StoreSettings(BaseModel):
    """Store configuration; ``database_url`` ``None`` means the SQLite file in ``data_dir``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Field(default_factory=lambda: Path("~/.medsight").expanduser())
    database_url: str | None = None
    store_raw_inputs: bool = False
    sqlite_synchronous: Literal["normal", "full"] = "normal"

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return Path(value).expanduser()

    @property
    def url(self) -> str:
        """The database URL in use (the SQLite file in the data directory unless set)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'medsight.db').resolve()}"

    @property
    def registry_dir(self) -> Path:
        """Folder that holds registered model bundles: ``<data_dir>/registry``."""
        return self.data_dir / "registry"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StoreSettings:
        """Settings from the ``MEDSIGHT_*`` variables of ``environ`` (default: ``os.environ``)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if env.get("MEDSIGHT_DATA_DIR"):
            values["data_dir"] = Path(env["MEDSIGHT_DATA_DIR"])
        if env.get("MEDSIGHT_DATABASE_URL"):
            values["database_url"] = env["MEDSIGHT_DATABASE_URL"]
        raw = env.get("MEDSIGHT_STORE_INPUTS")
        if raw is not None:
            values["store_raw_inputs"] = _flag("MEDSIGHT_STORE_INPUTS", raw)
        if env.get("MEDSIGHT_SQLITE_SYNC"):
            values["sqlite_synchronous"] = env["MEDSIGHT_SQLITE_SYNC"].strip().lower()
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(f"store settings from the environment are invalid: {exc}") from exc


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"environment variable {name}={raw!r}: use true or false.")
