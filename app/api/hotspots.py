"""Hotspot maps: the kernel density surface as transparent PNG tiles with its legend, and incident
counts on grid cells as vector tiles.

Both are aggregates of the caller's incidents read through the sharing function (app.analysis.
hotspot_data), for a period (default: the latest month with data), categories and data sets.
ETags name the request and the data versions the caller's view depends on, so `If-None-Match` is
answered from one data_version lookup and a repeated tile comes from the in-process tile cache.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote, urlencode

import numpy as np
from fastapi import APIRouter, Header, Query, Request, Response
from pyproj import Transformer

from app.analysis.hotspot_data import HotspotFilter, data_context, hotspot_filter
from app.analysis.kde import MAX_BANDWIDTH_M, MAX_CELL_M, MIN_CELL_M, Surface, hotspot_surface
from app.api.deps import SessionDep, TileDep, TilesDep, Viewer
from app.tiles.cache import Body, etag
from app.tiles.hotspots import MIN_COUNT_CELL_M, PNG, count_cells_tile, surface_tile
from app.tiles.http import respond
from app.tiles.pipeline import MVT, conditional

router = APIRouter(tags=["hotspots"])

UNITS = "incidents per km²"

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


@router.get("/tiles/hotspots/{z}/{x}/{y}.png", summary="A transparent PNG tile of the hotspot density surface",
            response_class=Response, responses={200: {"content": {PNG: {}}}, 304: {"description": "not modified"}})
async def hotspot_tile(xyz: TileDep, session: SessionDep, principal: Viewer, tiles: TilesDep,
                       from_: FromQuery = None, to: ToQuery = None, category: CategoryQuery = None,
                       dataset: DatasetQuery = None, classes: ClassesQuery = "stddev", cell_m: CellQuery = None,
                       bandwidth_m: BandwidthQuery = None, if_none_match: IfNoneMatch = None) -> Response:
    """256 px, coloured by the legend's classes (`GET /api/hotspots/legend` with the same
    parameters); below the first class, and outside the study area, transparent."""
    flt = hotspot_filter(from_, to, category or [], dataset or [])
    return respond(await surface_tile(tiles, session, principal, xyz, flt, classes, cell_m, bandwidth_m,
                                      if_none_match))


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

    async def produce() -> Body:
        surface = await hotspot_surface(session, principal, req.flt, cell_m, bandwidth_m, classes)
        body = legend_json(surface, req, str(request.base_url).rstrip("/"))
        return Body(json.dumps(body).encode(), tag, "application/json")

    return respond(await conditional(if_none_match, tag, produce))


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
@router.get("/tiles/hotspot-cells/{z}/{x}/{y}.mvt", summary="Incident counts on grid cells, as a vector tile",
            response_class=Response, responses={200: {"content": {MVT: {}}}, 204: {"description": "empty tile"},
                                                304: {"description": "not modified"}})
async def hotspot_cells_tile(xyz: TileDep, session: SessionDep, principal: Viewer, tiles: TilesDep,
                             from_: FromQuery = None, to: ToQuery = None, category: CategoryQuery = None,
                             dataset: DatasetQuery = None,
                             cell_m: Annotated[float | None, Query(ge=MIN_COUNT_CELL_M, le=MAX_CELL_M, description=(
                                 "cell size in metres (at least 100); default: the hotspot statistics' area cell"))]
                             = None, if_none_match: IfNoneMatch = None) -> Response:
    """Layer `hotspot_cells`: square cells (in the partnership's metric CRS) with `count`, `id`
    (lower-left corner, e.g. E383400N398200) and `cell_m`. At low zooms cells merge into blocks of
    2x2, 4x4, ... so each stays visible; every incident is still counted once. Cells with fewer
    than SAFERMAP_SUPPRESS_BELOW incidents are left out unless you see every incident exactly."""
    flt = hotspot_filter(from_, to, category or [], dataset or [])
    return respond(await count_cells_tile(tiles, session, principal, xyz, flt, cell_m, if_none_match))
