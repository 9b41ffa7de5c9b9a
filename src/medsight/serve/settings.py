"""Settings of the HTTP service: the store's settings plus address, limits, caches and privacy.

Read from the environment by :meth:`ServeSettings.from_env` (the store's ``MEDSIGHT_*`` variables,
see :mod:`medsight.store.settings`, plus):

=================================  ==========================================  ================
variable                           meaning                                     default
=================================  ==========================================  ================
``MEDSIGHT_HOST``                  address to listen on                        ``127.0.0.1``
``MEDSIGHT_PORT``                  port                                        ``8000``
``MEDSIGHT_MAX_UPLOAD_BYTES``      largest multipart request (image, ECG)      20 MiB
``MEDSIGHT_MAX_JSON_BYTES``        largest JSON or other request body          4 MiB
``MEDSIGHT_REQUIRE_DEIDENTIFIED``  refuse DICOM / WFDB uploads that are not    ``false``
                                   de-identified (422)
``MEDSIGHT_CACHE_SECONDS``         reuse of a checked token and of the         2
                                   production-version lookup (0: none)
``MEDSIGHT_GROUP_COMMIT``          on SQLite, store concurrent predictions in  ``false``
                                   shared transactions (worth it with
                                   ``MEDSIGHT_SQLITE_SYNCHRONOUS=full``)
=================================  ==========================================  ================
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medsight.errors import ConfigError
from medsight.store.settings import StoreSettings

MIB = 1024 * 1024


class ServeSettings(BaseModel):
    """Service configuration (frozen); ``store`` says where the database and registry live."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: StoreSettings = Field(default_factory=StoreSettings)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_upload_bytes: int = Field(default=20 * MIB, ge=1024)
    max_json_bytes: int = Field(default=4 * MIB, ge=1024)
    max_batch_rows: int = Field(default=100, ge=1, le=10_000)
    max_image_pixels: int = Field(default=50_000_000, ge=1)
    top_features: int = Field(default=5, ge=1, le=50)
    cache_size: int = Field(default=8, ge=1)
    require_deidentified: bool = False
    """Refuse image and ECG uploads that are not de-identified (see ``medsight.privacy.gate``)."""
    cache_seconds: float = Field(default=2.0, ge=0, le=300)
    """How long the service may reuse a checked API token and the production-version lookup
    (0: check the database on every request)"""
    group_commit: bool = False
    """On SQLite, store the predictions of concurrent requests in shared transactions, each
    answered after its commit (:mod:`medsight.serve.group_commit`): 2.4x the write throughput
    with ``synchronous=full``, but about 5% fewer requests/s end to end with the default
    ``normal``; ``False`` (the default), and always on PostgreSQL: one transaction per request"""
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    """Failed sign-ins for one username from one address, within 15 minutes, before a lockout"""
    login_lockout_seconds: float = Field(default=900.0, ge=0, le=86_400)
    """How long such a pair is refused without a password check (0: no lockout)"""

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> ServeSettings:
        """Settings from ``MEDSIGHT_*`` variables (default ``os.environ``), then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {"store": StoreSettings.from_env(env)}
        for name, key in (
            ("MEDSIGHT_HOST", "host"),
            ("MEDSIGHT_PORT", "port"),
            ("MEDSIGHT_MAX_UPLOAD_BYTES", "max_upload_bytes"),
            ("MEDSIGHT_MAX_JSON_BYTES", "max_json_bytes"),
            ("MEDSIGHT_REQUIRE_DEIDENTIFIED", "require_deidentified"),
            ("MEDSIGHT_CACHE_SECONDS", "cache_seconds"),
            ("MEDSIGHT_GROUP_COMMIT", "group_commit"),
            ("MEDSIGHT_LOGIN_MAX_FAILURES", "login_max_failures"),
            ("MEDSIGHT_LOGIN_LOCKOUT_SECONDS", "login_lockout_seconds"),
        ):
            if env.get(name):
                values[key] = env[name]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as exc:
            raise ConfigError(f"service settings are invalid: {exc}") from exc
