"""Grid cells as the areas of the hotspot statistics (Gi*, change, top list): their default size,
stable ids, outlines in WGS84 and readable labels.

A cell's corners are multiples of its size in the partnership's metric CRS (hotspot_data.grid_for),
so the same cell has the same id in every period, category and request; the id is its lower-left
corner in metres ("E383400N398200" on the British National Grid reads as a grid reference).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.analysis.hotspot_data import (
    Bins,
    HotspotFilter,
    HotspotPrincipal,
    data_context,
    grid_for,
    resolve_period,
    study_extent,
)
from app.domain_errors import InvalidValue, TooLarge

MIN_CELL_M, MAX_CELL_M = 10.0, 5000.0
# Statistics list cells one by one (GeoJSON, Gi* weights): a finer grid is refused, not computed.
MAX_AREA_CELLS = 250_000
# Area cells are about a fortieth of the study area's shorter side (roughly a street block in a
# town, a neighbourhood in a county), rounded to a number people can say, and never finer than 50 m:
# a tasking meeting sends patrols to places, not to pixels.
AREA_CELLS_ACROSS = 40
NICE_CELLS = (50.0, 100.0, 200.0, 250.0, 500.0, 1000.0, 2000.0, 2500.0, 5000.0)
# A label names the nearest street to a cell's centre, if one passes within the cell's reach.
LABEL_SQL = """
    SELECT c.ord, s.name
    FROM unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) WITH ORDINALITY AS c(lon, lat, ord)
    LEFT JOIN LATERAL (
        SELECT st.name FROM street st
        WHERE st.partnership_id = :p AND st.name IS NOT NULL AND st.name <> ''
          AND st.geom && ST_Expand(ST_SetSRID(ST_MakePoint(c.lon, c.lat), 4326), :reach_deg)
        ORDER BY st.geom <-> ST_SetSRID(ST_MakePoint(c.lon, c.lat), 4326)
        LIMIT 1
    ) AS s ON true
"""


def default_area_cell(extent: tuple[float, float, float, float]) -> float:
    minx, miny, maxx, maxy = extent
    target = min(maxx - minx, maxy - miny) / AREA_CELLS_ACROSS
    return min(NICE_CELLS, key=lambda nice: abs(nice - target))


def area_cell(cell_m: float | None, extent: tuple[float, float, float, float]) -> float:
    """The requested cell size, checked, or the default for the extent."""
    if cell_m is None:
        return default_area_cell(extent)
    if not (MIN_CELL_M <= cell_m <= MAX_CELL_M):
        raise InvalidValue(f"cell_m must be between {MIN_CELL_M:g} and {MAX_CELL_M:g} metres.")
    _, _, nx, ny = grid_for(extent, float(cell_m))
    if nx * ny > MAX_AREA_CELLS:
        raise TooLarge(f"A {cell_m:g} m grid over this area has {nx * ny:,} cells; hotspot statistics "
                         f"take at most {MAX_AREA_CELLS:,}. Choose a larger cell_m.")
    return float(cell_m)


@lru_cache(maxsize=32)  # a Transformer per CRS: a pure function of one int, not a data cache
def to_wgs84(srid: int) -> Transformer:
    return Transformer.from_crs(srid, 4326, always_xy=True)


def cell_ids(bins: Bins, iy: np.ndarray, ix: np.ndarray) -> list[str]:
    xs = bins.x0 + ix * bins.cell_m
    ys = bins.y0 + iy * bins.cell_m
    return [f"E{x:.0f}N{y:.0f}" for x, y in zip(xs, ys)]


def cell_polygons(bins: Bins, iy: np.ndarray, ix: np.ndarray) -> list[dict]:
    """GeoJSON Polygons (lon/lat, counter-clockwise) of the given cells."""
    c = bins.cell_m
    x = bins.x0 + ix * c
    y = bins.y0 + iy * c
    # Corners SW, SE, NE, NW, transformed in one vectorised call.
    cx = np.stack([x, x + c, x + c, x], axis=1)
    cy = np.stack([y, y, y + c, y + c], axis=1)
    lon, lat = to_wgs84(bins.srid).transform(cx, cy)
    lon, lat = np.round(lon, 7), np.round(lat, 7)
    polygons = []
    for k in range(len(x)):
        ring = [[float(lon[k, j]), float(lat[k, j])] for j in range(4)]
        polygons.append({"type": "Polygon", "coordinates": [ring + [ring[0]]]})
    return polygons


def cell_centroids(bins: Bins, iy: np.ndarray, ix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lon, lat) arrays of the cells' centres."""
    x = bins.x0 + (ix + 0.5) * bins.cell_m
    y = bins.y0 + (iy + 0.5) * bins.cell_m
    lon, lat = to_wgs84(bins.srid).transform(x, y)
    return np.round(lon, 6), np.round(lat, 6)


async def cell_labels(session: AsyncSession, partnership_id: int, bins: Bins,
                      iy: np.ndarray, ix: np.ndarray) -> list[str]:
    """'Near <street>' for each cell (the street nearest its centre), else its id."""
    ids = cell_ids(bins, iy, ix)
    if not ids:
        return []
    lon, lat = cell_centroids(bins, iy, ix)
    # Reach: the cell's half-diagonal, in degrees of latitude (generous in longitude, fine as a box).
    reach_deg = bins.cell_m * 0.71 / 111_320 * 2
    rows = (await session.execute(text(LABEL_SQL), {
        "lons": lon.tolist(), "lats": lat.tolist(), "p": partnership_id, "reach_deg": reach_deg})).all()
    names = {int(r.ord): r.name for r in rows}
    return [f"Near {names[k + 1]}" if names.get(k + 1) else f"Cell {ids[k]}" for k in range(len(ids))]


def period_json(flt: HotspotFilter) -> dict[str, str | None]:
    return {"from": flt.date_from.isoformat() if flt.date_from else None,
            "to": flt.date_to.isoformat() if flt.date_to else None}


@dataclass(frozen=True)
class AreaGrid:
    """What a statistic over area cells is computed on: the resolved period, the study extent
    (None when the caller has no mapped incidents) and the cell size."""
    flt: HotspotFilter
    extent: tuple[float, float, float, float] | None
    cell_m: float | None
    version_key: str


async def area_grid(session: AsyncSession, principal: HotspotPrincipal, flt: HotspotFilter,
                    cell_m: float | None) -> AreaGrid:
    flt = await resolve_period(session, principal, flt)
    extent = await study_extent(session, principal, flt)
    context = await data_context(session, principal)
    cell = area_cell(cell_m, extent) if extent else None
    return AreaGrid(flt, extent, cell, context.version_key)


def shown(count: float | int | None, all_exact: bool) -> int | None:
    """A count as the caller may see it: None when it must be suppressed."""
    if count is None:
        return None
    n = int(round(count))
    return None if sharing.suppressed(n, all_exact) else n
