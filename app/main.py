"""create_app(): routers, middleware, static files. The engine lives in the lifespan, on app.state."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from app import errors
from app.api import auth, cameras, health, incidents, maps, tiles
from app.auth import Sessions
from app.catalog import Catalog
from app.db import make_engine, make_sessionmaker
from app.settings import Settings, get_settings

API_DESCRIPTION = """
SaferMap serves CCTV cameras, their coverage and partner incidents for a community safety
partnership. Every request needs `Authorization: Bearer <token>` (or the session cookie that
`POST /auth/session` sets) and sees only its own partnership. Errors are RFC 9457
`application/problem+json`. List endpoints take `limit` (documented maximum per endpoint) and
`bbox=minlon,minlat,maxlon,maxlat`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        try:
            yield
        finally:
            await engine.dispose()

    app = FastAPI(title="SaferMap", version="0.1.0", description=API_DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.catalog = Catalog.load(settings.layers_dir)
    app.state.sessions = Sessions(settings.resolved_secret_key(), settings.session_max_age_s)
    errors.install(app)
    for module in (health, auth, cameras, incidents, tiles, maps):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=settings.static_dir, check_dir=False), name="static")
    logging.basicConfig(level=logging.INFO)
    return app
