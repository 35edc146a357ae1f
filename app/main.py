"""create_app(): routers, middleware, static files. The engine lives in the lifespan, on app.state,
with the process's live state (app/live_state.py: its listening connection) and background writer."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Scope

from app import errors
from app.api import (
    admin_users,
    audit,
    auth,
    camera_photos,
    cameras,
    coverage_gaps,
    embeds,
    footage,
    health,
    hotspot_pages,
    hotspot_stats,
    hotspots,
    incidents,
    maps,
    routes,
    sharing,
    tiles,
)
from app.api.hot_tiles import HotTiles
from app.audit import ExactViews
from app.auth import Sessions
from app.catalog import Catalog
from app.db import make_engine, make_read_sessionmaker, make_sessionmaker, plan_pool, server_limits
from app.exports import api as exports_api
from app.exports.slots import ExportSlots
from app.live_state import LiveState
from app.ogc import routes as ogc_routes
from app.ogc.prefetch import Prefetcher
from app.pages.base import csp
from app.security import Csrf, RateLimiter, SecurityMiddleware
from app.settings import Settings, SettingsError, get_settings
from app.tiles.pipeline import TilePipeline
from app.writer import SettleWrites, Writer

log = logging.getLogger("safermap")

API_DESCRIPTION = """
SaferMap serves CCTV cameras, their coverage and partner incidents for a community safety
partnership. Every request needs `Authorization: Bearer <token>` (or the session cookie that
`POST /auth/session` sets) and sees only its own partnership. Errors are RFC 9457
`application/problem+json`. List endpoints take `limit` (documented maximum per endpoint) and
`bbox=minlon,minlat,maxlon,maxlat`.
"""


class VersionedStaticFiles(StaticFiles):
    """Static files; a URL carrying `?v=<content hash>` never changes, so it is cached for a year."""

    async def get_response(self, path: str, scope: Scope):
        response = await super().get_response(path, scope)
        if response.status_code == 200 and b"v=" in scope.get("query_string", b""):
            response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def create_app(settings: Settings | None = None) -> FastAPI:
    try:
        settings = settings or get_settings()
    except SettingsError as exc:  # uvicorn --factory would print a traceback; say what to fix instead
        raise SystemExit(f"SaferMap cannot start: {exc}") from None

    writer = Writer()
    live = LiveState(settings, writer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The pool is sized from the server's max_connections, shared by every worker (app/db.py).
        limits = await server_limits(settings)
        plan = plan_pool(settings, *limits) if limits else plan_pool(settings, None)
        if plan.why:
            log.warning("database pool shrunk to fit: %s", plan.why)
        engine = make_engine(settings, plan)
        app.state.engine = engine
        app.state.pool_plan = plan
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.read_sessionmaker = make_read_sessionmaker(engine)
        writer.start(engine)
        await live.start()
        try:
            yield
        finally:
            await live.stop()
            await app.state.ogc_ahead.close()
            await app.state.tiles.cell_builds.close()
            await writer.close()  # the queued audit of exact views and "last used" are written first
            await engine.dispose()

    # /docs is served below from static/vendor: FastAPI's default page loads Swagger UI from a CDN.
    app = FastAPI(title="SaferMap", version="0.1.0", description=API_DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.settings = settings
    app.state.catalog = Catalog.load(settings.layers_dir)
    app.state.writer = writer
    app.state.live = live
    app.state.tiles = TilePipeline.from_settings(settings, lambda: app.state.catalog.fingerprint, live,
                                                 ExactViews(writer, lambda: live.generation))
    app.state.ogc_ahead = Prefetcher()  # OGC pages read ahead for clients that page (app/ogc/prefetch.py)
    app.state.sessions = Sessions(settings.resolved_secret_key(), settings.session_max_age_s)
    app.state.csrf = Csrf(settings.resolved_secret_key())
    app.state.sign_in_limiter = RateLimiter(settings.sign_in_per_ip_per_minute)
    app.state.export_slots = ExportSlots(settings.resolved_export_concurrency())
    errors.install(app)
    app.include_router(hotspots.router)  # before tiles: /tiles/{layer_id}/... would take /tiles/hotspot-cells/...
    for module in (health, auth, cameras, camera_photos, incidents, tiles, maps, embeds, admin_users, sharing, audit,
                   footage):
        app.include_router(module.router)
    app.include_router(maps.capture_router)
    app.include_router(hotspot_stats.router)
    app.include_router(hotspot_pages.router)
    app.include_router(coverage_gaps.router)
    app.include_router(routes.router)
    app.include_router(auth.tokens_router)
    app.include_router(admin_users.api_router)
    app.include_router(exports_api.router)
    app.include_router(ogc_routes.router)
    # Innermost: cached tiles and 304s answered from memory without FastAPI's dependency solving
    # (app/api/hot_tiles.py); everything else goes on to the routes.
    app.add_middleware(HotTiles, state=app.state)
    # Around every route: a request's background writes (audit of exact views, "last used") are
    # waited for once it has been answered, whatever the answer (app/writer.py).
    app.add_middleware(SettleWrites)
    # CORS only for configured origins; the security middleware is outermost, so its headers and
    # limits apply to everything (add_middleware puts the last added outside).
    if settings.cors_origin_list:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list, allow_credentials=False,
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "If-Match", "If-None-Match",
                                          "Idempotency-Key", "X-Device-Position"],
                           expose_headers=["ETag", "Location", "Retry-After", "Idempotent-Replayed"], max_age=600)
    app.add_middleware(SecurityMiddleware, settings=settings, secret=settings.resolved_secret_key())
    app.mount("/static", VersionedStaticFiles(directory=settings.static_dir, check_dir=False), name="static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=cast(str, app.openapi_url), title="SaferMap API",
            swagger_js_url="/static/vendor/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url="/static/vendor/swagger-ui/swagger-ui.css", swagger_favicon_url="data:,")
        # Its own policy (this origin, its inline script by hash), not the middleware's default-src 'none'.
        page.headers["Content-Security-Policy"] = csp(bytes(page.body).decode())
        return page

    logging.basicConfig(level=logging.INFO)
    return app
