"""Typed dependencies, so every route reads the same way.

Every dependency is `async def`, also those that only parse: FastAPI runs a plain `def` dependency
in a worker thread, a thread hop that cost more than a whole cached tile."""
from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, cast

from fastapi import Depends, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis.footage import check_lon_lat, parse_at
from app.analysis.hotspot_data import HotspotFilter
from app.auth import SESSION_COOKIE, Principal
from app.catalog import Catalog, Layer
from app.db import LazySession
from app.domain_errors import InvalidValue
from app.errors import BadRequest, NotFound, Unauthorized
from app.live_state import LiveState
from app.params import MAX_VALUES, Period, parse_categories, parse_month_or_date, parse_period, parse_values
from app.settings import Settings
from app.tiles import grid
from app.tiles.pipeline import TilePipeline
from app.tiles.sql import TileFilters
from app.writer import after_answer

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session for the request: autocommit for safe methods (no transaction round trips),
    a transaction for writes (committed by the handler, rolled back otherwise). Made on first use
    (LazySession), so a request answered from memory (a cached tile, a 304) never makes one."""
    state = request.app.state
    session = LazySession(state.read_sessionmaker if request.method in SAFE_METHODS else state.sessionmaker)
    try:
        yield cast(AsyncSession, session)
    finally:
        await session.aclose()


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_catalog(request: Request) -> Catalog:
    return request.app.state.catalog


CatalogDep = Annotated[Catalog, Depends(get_catalog)]


async def get_principal(request: Request, session: SessionDep) -> Principal:
    """The caller: a bearer token, else the signed session cookie. Nothing anonymous. Known callers
    come from the process's memory (app/live_state.py: exact, or else the database is asked)."""
    live: LiveState = request.app.state.live
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Use 'Authorization: Bearer <token>'.")
        principal = await live.principal_for_token(session, token.strip())
        if (touched := live.touch(principal)) is not None:
            after_answer(request.scope, touched)  # "last used", written after the answer
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await live.principal_for_session(session, request.app.state.sessions.decode(cookie))
    raise Unauthorized("Sign in, or send 'Authorization: Bearer <token>'.")


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def least_role(role: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits `role` and every role above it."""

    async def dep(principal: CurrentPrincipal) -> Principal:
        principal.require(role)
        return principal

    dep.least_role = role  # type: ignore[attr-defined]  # read by the route/role table test
    return dep


Viewer = Annotated[Principal, Depends(least_role("viewer"))]
Pcso = Annotated[Principal, Depends(least_role("pcso"))]
Operator = Annotated[Principal, Depends(least_role("operator"))]
Analyst = Annotated[Principal, Depends(least_role("analyst"))]
Admin = Annotated[Principal, Depends(least_role("admin"))]


# -- tiles: which tile, of which layer, filtered how; and the pipeline that draws it ----------------

async def get_tiles(request: Request) -> TilePipeline:
    return request.app.state.tiles


TilesDep = Annotated[TilePipeline, Depends(get_tiles)]


async def tile_params(z: Annotated[int, Path(description=f"zoom, 0..{grid.MAX_ZOOM}")],
                x: Annotated[int, Path(description="column, 0..2^z - 1 from the west")],
                y: Annotated[int, Path(description="row, 0..2^z - 1 from the north")]) -> grid.Tile:
    """A tile of the Web Mercator grid (WebMercatorQuad), or a 400 that says what exists."""
    if not 0 <= z <= grid.MAX_ZOOM:
        raise BadRequest(f"Zoom {z} is outside 0..{grid.MAX_ZOOM}.")
    if not grid.is_tile(z, x, y):
        raise BadRequest(f"Tile {z}/{x}/{y} does not exist: at zoom {z}, x and y run from 0 to "
                         f"{grid.tiles_across(z) - 1}.")
    return grid.Tile(x, y, z)


TileDep = Annotated[grid.Tile, Depends(tile_params)]


async def visible_layer(layer_id: Annotated[str, Path(description="a layer id (GET /tiles lists them)")],
                        principal: Viewer, catalog: CatalogDep) -> Layer:
    """The catalog layer, if the caller's role may see it (404 for no such layer, 403 for a role
    below the layer's least role)."""
    layer = catalog.get(layer_id)
    if layer is None:
        raise NotFound(f"There is no tile layer '{layer_id[:100]}'. GET /tiles lists the layers you can see.")
    principal.require(layer.least_role)
    return layer


VisibleLayer = Annotated[Layer, Depends(visible_layer)]

MAX_CATEGORIES = 50
FromQuery = Annotated[str | None, Query(alias="from", description="ISO month or date, YYYY-MM or YYYY-MM-DD")]
ToQuery = Annotated[str | None, Query(alias="to", description="ISO month or date; a month includes all its days")]
CategoryQuery = Annotated[list[str] | None, Query(
    description=f"repeatable or comma-separated; at most {MAX_CATEGORIES}")]


async def layer_filters(layer: VisibleLayer, date_from: FromQuery = None, date_to: ToQuery = None,
                  category: CategoryQuery = None) -> TileFilters:
    """The filters this layer honours; others are ignored (and so not part of the ETag)."""
    start = parse_month_or_date(date_from, "from")
    end = parse_month_or_date(date_to, "to", end=True)
    if start and end and start > end:
        raise BadRequest("from must not be after to.")
    cats = sorted({c.strip() for item in category or [] for c in item.split(",") if c.strip()})
    if len(cats) > MAX_CATEGORIES:
        raise BadRequest(f"At most {MAX_CATEGORIES} categories may be given.")
    if any(len(c) > 200 for c in cats):
        raise BadRequest("A category name is longer than 200 characters.")
    filters = TileFilters()
    if layer.filters.date:
        filters = replace(filters, date_from=start, date_to=end)
    if layer.filters.category:
        filters = replace(filters, categories=tuple(cats))
    return filters


LayerFilters = Annotated[TileFilters, Depends(layer_filters)]


# -- request values several routers read: a period, categories, data sets, a place and a time --------
# Parsed once here into typed values (app/params.py holds the rules, shared with the CLI), so a bad
# value is the same 400 problem on every route. Declare these after the caller's principal, so a
# caller who may not ask is refused before their values are judged.

async def get_period(
    from_: Annotated[str | None, Query(alias="from", description="start: YYYY-MM or YYYY-MM-DD")] = None,
    to: Annotated[str | None, Query(description="end, inclusive: YYYY-MM (to its last day) or YYYY-MM-DD")] = None,
) -> Period:
    return parse_period(from_, to)


PeriodDep = Annotated[Period, Depends(get_period)]


async def get_categories(category: Annotated[list[str] | None, Query(description=(
        f"repeat or comma-separate; names or police.uk slugs (anti-social-behaviour); at most {MAX_VALUES}"))]
        = None) -> tuple[str, ...]:
    return parse_categories(category)


CategoriesDep = Annotated[tuple[str, ...], Depends(get_categories)]


async def get_datasets(dataset: Annotated[list[str] | None, Query(description=(
        f"data set keys (e.g. police-uk:greater-manchester); repeat or comma-separate; at most {MAX_VALUES}"))]
        = None) -> tuple[str, ...]:
    return parse_values(dataset, "dataset")


DatasetsDep = Annotated[tuple[str, ...], Depends(get_datasets)]


async def get_hotspot_filter(period: PeriodDep, categories: CategoriesDep, datasets: DatasetsDep) -> HotspotFilter:
    return HotspotFilter.of(period, categories, datasets)


HotspotFilterDep = Annotated[HotspotFilter, Depends(get_hotspot_filter)]

LonQuery = Annotated[str | None, Query(max_length=40, description="longitude, WGS84 degrees")]
LatQuery = Annotated[str | None, Query(max_length=40, description="latitude, WGS84 degrees")]
AtQuery = Annotated[str | None, Query(max_length=40, description="ISO 8601 date-time; no offset means "
                                                                 "Europe/London; default now")]


@dataclass(frozen=True)
class PointAt:
    lon: float
    lat: float
    at: datetime


def parse_coordinate(value: str | None, name: str) -> float:
    if value is None or not value.strip():
        raise InvalidValue(f"{name} is missing.")
    try:
        number = float(value)
    except ValueError as e:
        raise InvalidValue(f"{name} must be a number (WGS84 degrees).") from e
    if not math.isfinite(number):
        raise InvalidValue(f"{name} must be a finite number.")
    return number


def parse_point_at(lon: str | None, lat: str | None, at: str | None) -> PointAt:
    """A place (WGS84) and a time (default now) for a footage lookup."""
    x, y = parse_coordinate(lon, "lon"), parse_coordinate(lat, "lat")
    check_lon_lat(x, y)
    return PointAt(x, y, parse_at(at) if at else datetime.now(UTC))


async def get_point_at(lon: LonQuery = None, lat: LatQuery = None, at: AtQuery = None) -> PointAt:
    return parse_point_at(lon, lat, at)


PointAtDep = Annotated[PointAt, Depends(get_point_at)]
