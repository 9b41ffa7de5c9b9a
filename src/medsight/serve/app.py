"""The FastAPI application: ``create_app(settings)`` wires the store, registry, models and routes.

The database is opened and migrated when the app is created (unless one is passed in, e.g. by
tests); the registry lives in ``<data_dir>/registry``; production models are loaded on first use
and kept per (task, version). Interactive API documentation is served at ``/docs``, the OpenAPI
document at ``/openapi.json``, the clinician web page at ``/`` (:mod:`medsight.serve.web`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import medsight
from medsight.registry import ModelRegistry
from medsight.serve import routes_auth, routes_cases, routes_models, routes_predict, web
from medsight.serve.errors import install_error_handlers
from medsight.serve.limits import BodySizeLimit
from medsight.serve.predictors import PredictorCache
from medsight.serve.settings import ServeSettings
from medsight.serve.state import ServiceState
from medsight.store.database import Database, open_database

DESCRIPTION = """Diagnosis support from validated models: tables, images and ECGs.

Authenticate with `Authorization: Bearer <token>` (get one from `POST /v1/auth/token`). Every
prediction, view, feedback, promotion and login is written to an append-only audit log.
Predictions assist a clinician; they are not a diagnosis."""


def create_app(settings: ServeSettings | None = None, database: Database | None = None) -> FastAPI:
    """The service for ``settings`` (default: from the environment) on ``database`` (default:
    the settings' database, opened and migrated now and closed at shutdown)."""
    settings = settings or ServeSettings.from_env()
    owns = database is None
    state = ServiceState(
        settings=settings,
        database=open_database(settings.store) if database is None else database,
        registry=ModelRegistry.from_settings(settings.store),
        predictors=PredictorCache(settings.cache_size),
        owns_database=owns,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="medsight",
        version=medsight.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.medsight = state
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        upload_limit=settings.max_upload_bytes,
        body_limit=settings.max_json_bytes,
    )
    for module in (routes_auth, routes_predict, routes_cases, routes_models):
        app.include_router(module.router)
    web.install(app)  # the clinician web page and its stylesheet
    return app
