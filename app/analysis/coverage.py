"""Keeps `camera_coverage` true to line of sight.

The database trigger draws the plain wedge the moment a camera changes and decides its range and
quality-band distances (safermap_plain_coverage, app/sql/coverage.sql); this module replaces the
wedge with what the camera can see past the buildings (app.analysis.visibility) and cuts the nested
bands from it. It runs for one camera inside the request that changed it, and for a whole
partnership when its buildings change (an OpenStreetMap import, the demo, `safermap coverage refresh`).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import asyncpg
import numpy as np
import shapely
from shapely.geometry import Point, Polygon

from app.analysis.visibility import _main_part, viewpoint, visible_area
from app.db import raw_connection
from app.settings import Settings

BANDS = ("identify", "recognise", "observe", "detect")

# Cameras (with the range, field of view and bands the trigger decided) in the partnership's CRS.
# Two statements, not one with "ids IS NULL OR ...": asyncpg prepares statements, and a generic plan
# for the combined form could not use the primary key for one camera.
_CAMERAS = """
    SELECT c.id, p.srid, ST_X(ST_Transform(c.geom, p.srid)) AS x, ST_Y(ST_Transform(c.geom, p.srid)) AS y,
           cc.bearing, cc.fov, cc.range_m, cc.bands::text AS bands
    FROM camera c
    JOIN partnership p ON p.id = c.partnership_id
    JOIN camera_coverage cc ON cc.camera_id = c.id
    WHERE c.partnership_id = $1 {}
    ORDER BY c.id
"""
ALL_CAMERAS_SQL = _CAMERAS.format("")
SOME_CAMERAS_SQL = _CAMERAS.format("AND c.id = ANY($2::integer[])")
# Buildings of the partnership in a metric box, in the partnership's CRS. The box is transformed to
# the column's CRS once (a sub-select), so the GiST index is used even by a generic plan.
BUILDINGS_SQL = """
    SELECT ST_AsBinary(ST_Transform(b.geom, $2::integer)) AS wkb
    FROM building b
    WHERE b.partnership_id = $1
      AND b.geom && (SELECT ST_Transform(ST_MakeEnvelope($3::float8, $4::float8, $5::float8, $6::float8,
                                                         $2::integer), 4326))
"""
WRITE_COVERAGE_SQL = """
    UPDATE camera_coverage cc
    SET geom = ST_Transform(ST_SetSRID(ST_GeomFromWKB(u.wkb), $1::integer), 4326),
        line_of_sight = true, computed_at = now()
    FROM unnest($2::integer[], $3::bytea[]) AS u(camera_id, wkb)
    WHERE cc.camera_id = u.camera_id
"""
DELETE_BANDS_SQL = "DELETE FROM camera_coverage_band WHERE camera_id = ANY($1::integer[])"
WRITE_BANDS_SQL = """
    INSERT INTO camera_coverage_band (camera_id, partnership_id, band, distance_m, geom)
    SELECT u.camera_id, $1::integer, u.band, u.distance_m, ST_Transform(ST_SetSRID(ST_GeomFromWKB(u.wkb), $2::integer), 4326)
    FROM unnest($3::integer[], $4::text[], $5::double precision[], $6::bytea[])
         AS u(camera_id, band, distance_m, wkb)
"""


async def refresh_partnership(settings: Settings, slug: str) -> RefreshResult:
    """Recompute a whole partnership's coverage in one transaction (LookupError: no such slug)."""
    async with raw_connection(settings) as conn:
        pid = await conn.fetchval("SELECT id FROM partnership WHERE slug = $1", slug)
        if pid is None:
            raise LookupError(f"No partnership '{slug}'.")
        async with conn.transaction():
            return await refresh_coverage(conn, pid)


@dataclass
class RefreshResult:
    cameras: int
    buildings: int
    seconds: float


async def refresh_coverage(conn: asyncpg.Connection, partnership_id: int,
                           camera_ids: list[int] | None = None) -> RefreshResult:
    """Recompute line-of-sight coverage (and bands) for some cameras of a partnership, or all of
    them. Runs in the caller's transaction."""
    started = time.perf_counter()
    cams = await (conn.fetch(ALL_CAMERAS_SQL, partnership_id) if camera_ids is None
                  else conn.fetch(SOME_CAMERAS_SQL, partnership_id, camera_ids))
    if not cams:
        return RefreshResult(0, 0, time.perf_counter() - started)
    srid = cams[0]["srid"]
    reach = max(c["range_m"] for c in cams)
    xs, ys = [c["x"] for c in cams], [c["y"] for c in cams]
    rows = await conn.fetch(BUILDINGS_SQL, partnership_id, srid, min(xs) - reach, min(ys) - reach,
                            max(xs) + reach, max(ys) + reach)
    buildings = _polygons(shapely.from_wkb([r["wkb"] for r in rows]))
    tree = shapely.STRtree(buildings)

    ids, shapes = [], []
    band_rows: list[tuple[int, str, float, bytes]] = []
    for cam in cams:
        centre = (cam["x"], cam["y"])
        near = buildings[tree.query(Point(centre).buffer(cam["range_m"] + 1).envelope)]
        view = visible_area(centre, cam["bearing"], cam["fov"], cam["range_m"], list(near))
        eye = viewpoint(centre, cam["bearing"] if cam["fov"] < 360 else None, list(near))
        ids.append(cam["id"])
        shapes.append(shapely.to_wkb(view))
        bands = json.loads(cam["bands"])
        for band in BANDS:
            if band in bands:
                part = band_shape(view, eye, float(bands[band]), cam["range_m"])
                band_rows.append((cam["id"], band, float(bands[band]), shapely.to_wkb(part)))
    await conn.execute(WRITE_COVERAGE_SQL, srid, ids, shapes)
    await conn.execute(DELETE_BANDS_SQL, ids)
    if band_rows:
        cols = list(zip(*band_rows))
        await conn.execute(WRITE_BANDS_SQL, partnership_id, srid, list(cols[0]), list(cols[1]),
                           list(cols[2]), list(cols[3]))
    return RefreshResult(len(ids), len(buildings), time.perf_counter() - started)


def band_shape(view: Polygon, centre: tuple[float, float], distance_m: float, range_m: float) -> Polygon:
    """The part of the visible area within a band's distance of the camera."""
    if distance_m >= range_m or view.is_empty:
        return view
    return _main_part(view.intersection(Point(centre).buffer(distance_m, quad_segs=90)))


def _polygons(geoms: np.ndarray) -> np.ndarray:
    """Single polygons from building footprints (made valid: OpenStreetMap has self-touching rings)."""
    parts = shapely.get_parts(shapely.make_valid(geoms))
    while True:  # collections may hold multipolygons
        nested = shapely.get_type_id(parts) >= 4
        if not nested.any():
            break
        parts = np.concatenate([parts[~nested], shapely.get_parts(parts[nested])])
    return parts[(shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)]
