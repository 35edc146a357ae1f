"""Vector tiles (MVT), TileJSON 3.0.0 and the list of tile layers, all driven by the layer catalog.

A tile is one statement (app/tiles/sql.py). Its ETag is known before that statement runs, from
one cheap data_version lookup, so `If-None-Match` is answered with 304 and a repeated tile comes
from the in-process cache without drawing it again. Tiles are private: they belong to one
partnership and are only served behind its authentication.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Header, Query, Request, Response
from sqlalchemy import text

from app import audit, sharing
from app.api.deps import CatalogDep, SessionDep, Viewer
from app.auth import Principal
from app.catalog import Catalog, Layer
from app.errors import BadRequest, NotFound
from app.params import parse_month_or_date
from app.tiles.cache import TileCache, current_versions, etag, fill_versions, matches
from app.tiles.sql import TileFilters, extent_sql, tile_params, tile_sql

router = APIRouter(prefix="/tiles", tags=["tiles"])

MVT = "application/vnd.mapbox-vector-tile"
MAX_ZOOM = 24
MAX_CATEGORIES = 50
# Tiles always revalidate: a control room must never look at a stale camera, and a revalidation
# costs one data_version lookup (304, no tile drawn).
CACHE_CONTROL = "private, max-age=0, must-revalidate"
VARY = "Authorization, Cookie"
TYPE_NAMES = {"string": "String", "number": "Number", "boolean": "Boolean"}


FromQuery = Annotated[str | None, Query(alias="from", description="ISO month or date, YYYY-MM or YYYY-MM-DD")]
ToQuery = Annotated[str | None, Query(alias="to", description="ISO month or date; a month includes all its days")]
CategoryQuery = Annotated[list[str] | None, Query(
    description=f"repeatable or comma-separated; at most {MAX_CATEGORIES}")]


def tile_cache(request: Request) -> TileCache:
    """One cache per process, made on first use with the configured size."""
    cache = getattr(request.app.state, "tile_cache", None)
    if cache is None:
        cache = request.app.state.tile_cache = TileCache(request.app.state.settings.tile_cache_entries)
    return cache


def visible_layer(catalog: Catalog, layer_id: str, principal: Principal) -> Layer:
    layer = catalog.get(layer_id)
    if layer is None:
        raise NotFound(f"There is no tile layer '{layer_id}'. GET /tiles lists the layers you can see.")
    principal.require(layer.least_role)
    return layer


def parse_filters(layer: Layer, date_from: str | None, date_to: str | None,
                  category: list[str] | None) -> TileFilters:
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


def check_tile(z: int, x: int, y: int) -> None:
    if not 0 <= z <= MAX_ZOOM:
        raise BadRequest(f"Zoom {z} is outside 0..{MAX_ZOOM}.")
    n = 1 << z
    if not (0 <= x < n and 0 <= y < n):
        raise BadRequest(f"Tile {z}/{x}/{y} does not exist: at zoom {z}, x and y run from 0 to {n - 1}.")


def tile_response(tile: bytes, tag: str) -> Response:
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL, "Vary": VARY}
    if not tile:  # an empty tile: no content, but still cacheable and revalidatable
        return Response(status_code=204, headers=headers)
    return Response(tile, media_type=MVT, headers=headers)


def not_modified(tag: str) -> Response:
    return Response(status_code=304, headers={"ETag": tag, "Cache-Control": CACHE_CONTROL, "Vary": VARY})


@router.get("", summary="The tile layers you may see, with their TileJSON")
async def list_layers(request: Request, principal: Viewer, catalog: CatalogDep) -> dict:
    base = str(request.base_url).rstrip("/")
    return {"layers": [
        {"id": l.id, "title": l.title, "description": l.description, "geometry": l.geometry,
         "minzoom": l.minzoom, "maxzoom": l.maxzoom,
         "clustered_to_zoom": l.cluster.max_zoom if l.cluster else None,
         "filters": [n for n, col in (("from", l.filters.date), ("to", l.filters.date),
                                      ("category", l.filters.category)) if col],
         "tilejson": f"{base}/tiles/{l.id}.json",
         "tiles": f"{base}/tiles/{l.id}/{{z}}/{{x}}/{{y}}.mvt"}
        for l in catalog.visible_to(principal.role)]}


@router.get("/{layer_id}.json", summary="TileJSON 3.0.0 for a layer, with the bounds of your data")
async def tilejson(layer_id: str, request: Request, session: SessionDep, principal: Viewer,
                   catalog: CatalogDep, date_from: FromQuery = None, date_to: ToQuery = None,
                   category: CategoryQuery = None,
                   if_none_match: Annotated[str | None, Header()] = None) -> Response:
    layer = visible_layer(catalog, layer_id, principal)
    filters = parse_filters(layer, date_from, date_to, category)
    key = ("tilejson", layer.id, filters.key(), *sharing.access_key(principal), catalog.fingerprint,
           str(request.base_url))
    tag = etag(*key, versions=await current_versions(session, layer, principal))
    if matches(if_none_match, tag):
        return not_modified(tag)
    # Bounds come through the sharing function too: below exact they are anonymous points'.
    row = (await session.execute(text(extent_sql(layer, filters.shape())),
                                 {"tables": list(layer.versioned_by), **sharing.access_params(principal),
                                  **{k: v for k, v in filters.params().items() if v not in (None, [])}})).one()
    tag = etag(*key, versions=fill_versions(row.versions, layer.versioned_by))
    if row.minx is None:
        bounds = [-180.0, -85.0511, 180.0, 85.0511]  # no data yet: the whole world
    else:
        bounds = [row.minx, row.miny, row.maxx, row.maxy]
    span = max(bounds[2] - bounds[0], bounds[3] - bounds[1], 1e-6)
    zoom = min(max(int(math.log2(360 / span)), layer.minzoom), layer.maxzoom)
    query = {"from": filters.date_from and filters.date_from.isoformat(),
             "to": filters.date_to and filters.date_to.isoformat(),
             "category": ",".join(filters.categories) or None}
    qs = urlencode({k: v for k, v in query.items() if v}, quote_via=quote)
    fields = {name: TYPE_NAMES[kind] for name, kind in layer.fields.items()}
    description = layer.description
    if layer.cluster:
        description += (f" Up to zoom {layer.cluster.max_zoom}, features are cells carrying 'count'"
                        + (" and 'top_category'" if layer.filters.category else "") + ".")
        fields["count"] = "Number"
        if layer.filters.category:
            fields["top_category"] = "String"
    body = {
        "tilejson": "3.0.0",
        "name": layer.title,
        "description": description,
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [f"{str(request.base_url).rstrip('/')}/tiles/{layer.id}/{{z}}/{{x}}/{{y}}.mvt"
                  + (f"?{qs}" if qs else "")],
        "minzoom": layer.minzoom,
        "maxzoom": layer.maxzoom,
        "bounds": bounds,
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, zoom],
        "vector_layers": [{"id": layer.id, "description": layer.title, "fields": fields,
                           "minzoom": layer.minzoom, "maxzoom": layer.maxzoom}],
        "attribution": layer.attribution,
    }
    return Response(json.dumps(body), media_type="application/json",
                    headers={"ETag": tag, "Cache-Control": CACHE_CONTROL, "Vary": VARY})


@router.get("/{layer_id}/{z}/{x}/{y}.mvt", summary="A Mapbox Vector Tile of a layer",
            response_class=Response, responses={200: {"content": {MVT: {}}}, 204: {"description": "empty tile"},
                                                304: {"description": "not modified"}})
async def tile(layer_id: str, z: int, x: int, y: int, request: Request, session: SessionDep,
               principal: Viewer, catalog: CatalogDep, date_from: FromQuery = None,
               date_to: ToQuery = None, category: CategoryQuery = None,
               if_none_match: Annotated[str | None, Header()] = None) -> Response:
    layer = visible_layer(catalog, layer_id, principal)
    check_tile(z, x, y)
    filters = parse_filters(layer, date_from, date_to, category)
    # Two callers of one role but different agencies may see different tiles: the sharing access
    # (partnership, role, agency, cap) is part of the key.
    key = (layer.id, z, x, y, filters.key(), *sharing.access_key(principal), catalog.fingerprint)
    if not layer.minzoom <= z <= layer.maxzoom:
        tag = etag(*key, "outside-zoom-range", versions=())  # always empty: no database needed
        return not_modified(tag) if matches(if_none_match, tag) else tile_response(b"", tag)

    tag = etag(*key, versions=await current_versions(session, layer, principal))
    if matches(if_none_match, tag):
        return not_modified(tag)
    cache = tile_cache(request)
    cached = cache.get(tag)
    if cached is not None:
        if tag in exact_tiles(request):
            await audit_exact_tile(request, session, principal, layer, z, x, y)
        return tile_response(cached, tag)

    clustered = layer.cluster is not None and z <= layer.cluster.max_zoom
    row = (await session.execute(text(tile_sql(layer, clustered, filters.shape())),
                                 tile_params(layer, principal.partnership_id, z, x, y, filters,
                                             sharing.access_params(principal), sharing.suppress_below()))).one()
    # The versions read with the tile (same snapshot) name it, even if data changed meanwhile.
    tag = etag(*key, versions=fill_versions(row.versions, layer.versioned_by))
    data = bytes(row.tile or b"")
    cache.put(tag, data)
    if row.exact:
        exact_tiles(request).add(tag)
        await audit_exact_tile(request, session, principal, layer, z, x, y)
    return tile_response(data, tag)


def exact_tiles(request: Request) -> set[str]:
    """ETags of cached tiles that hold exact incident locations (so a cache hit is audited too)."""
    tags = getattr(request.app.state, "exact_tile_tags", None)
    if tags is None or len(tags) > 100_000:
        tags = request.app.state.exact_tile_tags = set()
    return tags


# One 'view.exact' per caller and layer per minute: a map pans through many tiles.
RECENT_EXACT_VIEW = text("""
    SELECT EXISTS (SELECT 1 FROM audit_event WHERE action = 'view.exact' AND principal_id = :pid
                   AND target = :target AND at > now() - interval '1 minute')
""")


async def audit_exact_tile(request: Request, session, principal: Principal, layer: Layer,
                           z: int, x: int, y: int) -> None:
    """Record who looked at exact incident locations and where (the tile that started it), at
    most once a minute per caller and layer, so the trail stays readable. Checked in the database,
    so every worker agrees."""
    target = f"tiles/{layer.id}"
    if (await session.execute(RECENT_EXACT_VIEW, {"pid": principal.id, "target": target})).scalar_one():
        return
    await audit.record(session, "view.exact", principal=principal, target=target,
                       detail={"layer": layer.id, "tile": f"{z}/{x}/{y}", "bbox": tile_bbox(z, x, y)},
                       ip=request.client.host if request.client else None)
    await session.commit()


def tile_bbox(z: int, x: int, y: int) -> list[float]:
    n = 1 << z
    def lat(t: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * t / n))))
    return [x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)]
