"""The HTTP service: FastAPI, versioned under ``/v1``, on the store and the model registry.

- :mod:`~medsight.serve.settings`: address, size limits (environment ``MEDSIGHT_*``).
- :mod:`~medsight.serve.app`: :func:`create_app`.
- :mod:`~medsight.serve.state`: database, registry, loaded models, transactions.
- :mod:`~medsight.serve.auth`: bearer tokens -> users.
- :mod:`~medsight.serve.predictors`: one adapter per bundle kind, cached per (task, version).
- :mod:`~medsight.serve.inputs`: uploads -> images and ECG records, told by content.
- :mod:`~medsight.serve.limits`: request size limits (413).
- :mod:`~medsight.serve.errors`: medsight errors -> HTTP statuses.
- ``routes_*``: predict, cases (predictions and feedback), models, auth and probes.
"""

from __future__ import annotations

from medsight.serve.app import create_app
from medsight.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
