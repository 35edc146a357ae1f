"""Hotspot maps: the kernel density surface as transparent PNG tiles with its legend, and incident
counts on grid cells as vector tiles.

Both are aggregates of the caller's incidents read through the sharing function (app.analysis.
hotspot_data), for a period (default: the latest month with data), categories and data sets.
ETags name the request and the data versions the caller's view depends on, so `If-None-Match` is
answered from one data_version lookup and a repeated tile comes from the in-process tile cache.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlencode

import numpy as np
from fastapi import APIRouter, Header, Query, Request, Response
from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.analysis.hotspot_cells import area_cell
from app.analysis.hotspot_data import (
    Bins,
    HotspotFilter,
    HotspotPrincipal,
    SmallCache,
    data_context,
    hotspot_filter,
    load_bins,
    resolve_period,
    study_extent,
)
from app.analysis.kde import MAX_BANDWIDTH_M, MAX_CELL_M, MIN_CELL_M, Surface, hotspot_surface
from app.analysis.raster_tiles import metres_per_pixel, render_tile, tile_bounds_metric
from app.api.deps import SessionDep, Viewer
from app.api.tiles import CACHE_CONTROL, MVT, VARY, check_tile, not_modified, tile_cache, tile_response
from app.tiles.cache import etag, matches
from app.tiles.sql import HOTSPOT_CELL_TILE_SQL

router = APIRouter(tags=["hotspots"])

PNG = "image/png"
UNITS = "incidents per km²"
# Count cells are never finer than the 100 m grid the sharing rules anonymise to, so a count never
# pinpoints an incident; at low zooms cells merge (2x2, 4x4, ...) until each is about CELL_PX wide.
MIN_COUNT_CELL_M = 100.0
CELL_PX = 8

FromQuery = Annotated[str | None, Query(alias="from", description=(
    "YYYY-MM or YYYY-MM-DD; default: the latest month with data"))]
ToQuery = Annotated[str | None, Query(description="YYYY-MM (the whole month) or YYYY-MM-DD")]
CategoryQuery = Annotated[list[str] | None, Query(description="repeatable or comma-separated")]
DatasetQuery = Annotated[list[str] | None, Query(description="data set keys; repeatable or comma-separated")]
ClassesQuery = Annotated[str, Query(pattern="^(stddev|quantile)$", description=(
    "'stddev': classes from the mean up in standard deviations; 'quantile': the top 50/25/10/5/1% of cells"))]
CellQuery = Annotated[float | None, Query(ge=MIN_CELL_M, le=MAX_CELL_M, description=(
    "grid cell in metres; default: the study area's shorter side / 150, two significant figures"))]
BandwidthQuery = Annotated[float | None, Query(gt=0, le=MAX_BANDWIDTH_M, description=(
    "kernel radius in metres, at least one cell; default: five cells"))]
IfNoneMatch = Annotated[str | None, Header()]


@dataclass(frozen=True)
class SurfaceRequest:
    """What a surface request names: its ETag parts, and the query string for tile URLs."""
    flt: HotspotFilter
    classes: str
    cell_m: float | None
    bandwidth_m: float | None

    def key(self) -> tuple:
        return (self.flt.key(), self.classes, self.cell_m, self.bandwidth_m)

    def query(self) -> str:
        values = {"from": self.flt.date_from and self.flt.date_from.isoformat(),
                  "to": self.flt.date_to and self.flt.date_to.isoformat(),
                  "category": ",".join(self.flt.categories) or None,
                  "dataset": ",".join(self.flt.datasets) or None,
                  "classes": self.classes if self.classes != "stddev" else None,
                  "cell_m": self.cell_m, "bandwidth_m": self.bandwidth_m}
        return urlencode({k: v for k, v in values.items() if v is not None}, quote_via=quote)


def surface_request(from_: str | None, to: str | None, category: list[str] | None, dataset: list[str] | None,
                    classes: str, cell_m: float | None, bandwidth_m: float | None) -> SurfaceRequest:
    return SurfaceRequest(hotspot_filter(from_, to, category or [], dataset or []), classes, cell_m, bandwidth_m)


def png_response(tile: bytes, tag: str) -> Response:
    return Response(tile, media_type=PNG, headers={"ETag": tag, "Cache-Control": CACHE_CONTROL, "Vary": VARY})


@router.get("/tiles/hotspots/{z}/{x}/{y}.png", summary="A transparent PNG tile of the hotspot density surface",
            response_class=Response, responses={200: {"content": {PNG: {}}}, 304: {"description": "not modified"}})
async def hotspot_tile(z: int, x: int, y: int, request: Request, session: SessionDep, principal: Viewer,
                       from_: FromQuery = None, to: ToQuery = None, category: CategoryQuery = None,
                       dataset: DatasetQuery = None, classes: ClassesQuery = "stddev", cell_m: CellQuery = None,
                       bandwidth_m: BandwidthQuery = None, if_none_match: IfNoneMatch = None) -> Response:
    """256 px, coloured by the legend's classes (`GET /api/hotspots/legend` with the same
    parameters); below the first class, and outside the study area, transparent."""
    check_tile(z, x, y)
    req = surface_request(from_, to, category, dataset, classes, cell_m, bandwidth_m)
    context = await data_context(session, principal)
    tag = etag("hotspots.png", z, x, y, *req.key(), versions=[context.version_key])
    if matches(if_none_match, tag):
        return not_modified(tag)
    cache = tile_cache(request)
    cached = cache.get(tag)
    if cached is not None:
        return png_response(cached, tag)
    surface = await hotspot_surface(session, principal, req.flt, cell_m, bandwidth_m, classes)
    tile = render_tile(surface, z, x, y)
    tag = etag("hotspots.png", z, x, y, *req.key(), versions=[surface.version_key])  # as read
    cache.put(tag, tile)
    return png_response(tile, tag)


@router.get("/api/hotspots/legend", summary="The legend of the hotspot density surface")
async def legend(request: Request, session: SessionDep, principal: Viewer, from_: FromQuery = None,
                 to: ToQuery = None, category: CategoryQuery = None, dataset: DatasetQuery = None,
                 classes: ClassesQuery = "stddev", cell_m: CellQuery = None, bandwidth_m: BandwidthQuery = None,
                 if_none_match: IfNoneMatch = None) -> Response:
    """Classes (label, colour, min and max density), the cell size and bandwidth used, the
    incidents counted and the period they are from, and a note on what the map cannot show
    (sanitised locations, unmapped incidents). `tiles` and `cells_tiles` are URL templates for
    the same surface and its count cells."""
    req = surface_request(from_, to, category, dataset, classes, cell_m, bandwidth_m)
    context = await data_context(session, principal)
    tag = etag("hotspots.legend", *req.key(), str(request.base_url), versions=[context.version_key])
    if matches(if_none_match, tag):
        return not_modified(tag)
    surface = await hotspot_surface(session, principal, req.flt, cell_m, bandwidth_m, classes)
    body = legend_json(surface, req, str(request.base_url).rstrip("/"))
    return Response(json.dumps(body), media_type="application/json",
                    headers={"ETag": tag, "Cache-Control": CACHE_CONTROL, "Vary": VARY})


def legend_json(surface: Surface, req: SurfaceRequest, base: str) -> dict:
    tops = surface.breaks[1:] + [surface.max_density]
    resolved = SurfaceRequest(surface.period, req.classes, req.cell_m, req.bandwidth_m).query()
    cells_query = urlencode({k: v for k, v in (("from", surface.period.date_from), ("to", surface.period.date_to),
                                               ("category", ",".join(surface.period.categories) or None),
                                               ("dataset", ",".join(surface.period.datasets) or None))
                             if v is not None}, quote_via=quote)
    return {
        "method": surface.method,
        "kernel": "quartic",
        "classes": [{"label": label, "colour": colour, "min": round(lo, 6), "max": round(hi, 6)}
                    for label, colour, lo, hi in zip(surface.labels, surface.colours, surface.breaks, tops)],
        "cell_m": surface.cell_m,
        "bandwidth_m": surface.bandwidth_m,
        "units": UNITS,
        "count": None if surface.suppressed else surface.count,
        "unplaced": surface.unplaced,
        "period": {"from": surface.period.date_from and surface.period.date_from.isoformat(),
                   "to": surface.period.date_to and surface.period.date_to.isoformat()},
        "categories": list(surface.period.categories),
        "datasets": list(surface.period.datasets),
        "sanitised": surface.sanitised,
        "suppressed": surface.suppressed,
        "note": surface.note(),
        "bounds": surface_bounds(surface),
        # The period is resolved in these URLs, so the tiles stay on it when new data arrives.
        "tiles": f"{base}/tiles/hotspots/{{z}}/{{x}}/{{y}}.png" + (f"?{resolved}" if resolved else ""),
        "cells_tiles": f"{base}/tiles/hotspot-cells/{{z}}/{{x}}/{{y}}.mvt" + (f"?{cells_query}" if cells_query else ""),
    }


def surface_bounds(surface: Surface) -> list[float] | None:
    """[minlon, minlat, maxlon, maxlat] of the cells with any density."""
    rows, cols = np.nonzero(surface.density)
    if rows.size == 0:
        return None
    xs = surface.x0 + np.array([cols.min(), cols.max() + 1, cols.max() + 1, cols.min()]) * surface.cell_m
    ys = surface.y0 + np.array([rows.min(), rows.min(), rows.max() + 1, rows.max() + 1]) * surface.cell_m
    lon, lat = Transformer.from_crs(surface.srid, 4326, always_xy=True).transform(xs, ys)
    return [round(float(min(lon)), 6), round(float(min(lat)), 6), round(float(max(lon)), 6), round(float(max(lat)), 6)]


# -- counts on grid cells, as vector tiles ---------------------------------------------------------------
_CELL_BINS = SmallCache(32)


async def count_bins(session: AsyncSession, principal: HotspotPrincipal, flt: HotspotFilter,
                     cell_m: float | None) -> Bins | None:
    """The caller's counts on the area grid (the cells the Gi*, change and top lists use), cached
    by data version."""
    flt = await resolve_period(session, principal, flt)
    extent = await study_extent(session, principal, flt)
    if extent is None:
        return None
    cell = max(area_cell(cell_m, extent), MIN_COUNT_CELL_M)
    context = await data_context(session, principal)
    key = (context.version_key, flt.key(), cell)
    bins = _CELL_BINS.get(key)
    if bins is None:
        bins = await load_bins(session, principal, flt, cell, extent)
        _CELL_BINS.put(key, bins)
    return bins


def merged_cells(bins: Bins, z: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(size, xs, ys, counts) of the non-empty cells, merged in blocks of 2^k x 2^k so that a cell is
    at least CELL_PX pixels wide at zoom z. Blocks are aligned on the whole CRS grid (not this
    grid's corner), so merged cells line up across periods and filters."""
    iy, ix = np.nonzero(bins.counts)
    counts = bins.counts[iy, ix]
    centre_lat = Transformer.from_crs(bins.srid, 4326, always_xy=True).transform(
        bins.x0 + bins.counts.shape[1] * bins.cell_m / 2, bins.y0 + bins.counts.shape[0] * bins.cell_m / 2)[1]
    factor = 2 ** max(0, math.ceil(math.log2(CELL_PX * metres_per_pixel(z, centre_lat) / bins.cell_m)))
    gx = np.round(bins.x0 / bins.cell_m).astype(np.int64) + ix
    gy = np.round(bins.y0 / bins.cell_m).astype(np.int64) + iy
    blocks, inverse = np.unique(np.stack([gx // factor, gy // factor], axis=1), axis=0, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=counts, minlength=len(blocks))
    size = bins.cell_m * factor
    return size, blocks[:, 0] * size, blocks[:, 1] * size, np.rint(summed).astype(np.int64)


@router.get("/tiles/hotspot-cells/{z}/{x}/{y}.mvt", summary="Incident counts on grid cells, as a vector tile",
            response_class=Response, responses={200: {"content": {MVT: {}}}, 204: {"description": "empty tile"},
                                                304: {"description": "not modified"}})
async def hotspot_cells_tile(z: int, x: int, y: int, request: Request, session: SessionDep, principal: Viewer,
                             from_: FromQuery = None, to: ToQuery = None, category: CategoryQuery = None,
                             dataset: DatasetQuery = None,
                             cell_m: Annotated[float | None, Query(ge=MIN_COUNT_CELL_M, le=MAX_CELL_M, description=(
                                 "cell size in metres (at least 100); default: the hotspot statistics' area cell"))]
                             = None, if_none_match: IfNoneMatch = None) -> Response:
    """Layer `hotspot_cells`: square cells (in the partnership's metric CRS) with `count`, `id`
    (lower-left corner, e.g. E383400N398200) and `cell_m`. At low zooms cells merge into blocks of
    2x2, 4x4, ... so each stays visible; every incident is still counted once. Cells with fewer
    than SAFERMAP_SUPPRESS_BELOW incidents are left out unless you see every incident exactly."""
    check_tile(z, x, y)
    flt = hotspot_filter(from_, to, category or [], dataset or [])
    context = await data_context(session, principal)
    tag = etag("hotspot-cells.mvt", z, x, y, flt.key(), cell_m, versions=[context.version_key])
    if matches(if_none_match, tag):
        return not_modified(tag)
    cache = tile_cache(request)
    cached = cache.get(tag)
    if cached is not None:
        return tile_response(cached, tag)
    bins = await count_bins(session, principal, flt, cell_m)
    tile = b""
    if bins is not None and bins.total:
        tile = await cells_tile(session, bins, z, x, y)
        tag = etag("hotspot-cells.mvt", z, x, y, flt.key(), cell_m, versions=[bins.version_key])
    cache.put(tag, tile)
    return tile_response(tile, tag)


async def cells_tile(session: AsyncSession, bins: Bins, z: int, x: int, y: int) -> bytes:
    size, xs, ys, counts = merged_cells(bins, z)
    minx, miny, maxx, maxy = tile_bounds_metric(z, x, y, bins.srid)
    keep = (xs + size >= minx - size) & (xs <= maxx + size) & (ys + size >= miny - size) & (ys <= maxy + size)
    if not bins.all_exact:
        keep &= counts >= sharing.suppress_below()
    if not keep.any():
        return b""
    tile = (await session.execute(text(HOTSPOT_CELL_TILE_SQL), {
        "xs": xs[keep].tolist(), "ys": ys[keep].tolist(), "ns": counts[keep].tolist(), "size": size,
        "srid": bins.srid, "z": z, "x": x, "y": y})).scalar()
    return bytes(tile or b"")

