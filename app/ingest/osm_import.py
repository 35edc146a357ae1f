"""`safermap import osm FILE.osm.pbf --partnership SLUG`: streets (with the tags routing reads),
parks, buildings and surveillance cameras from an OpenStreetMap extract (read with pyrosm, see osm_extract), and the walkable
routable network built from the streets (route_vertex, route_edge; migration 0009). One
transaction: a failed import leaves the previous one in place.

Re-importing replaces the partnership's OSM streets, parks and buildings (those with an osm_id) and
updates OSM cameras by reference ('OSM-<node id>'), so camera ids, statuses and owners set by
people survive. An OSM camera within 2 m of one of the partnership's own cameras (source other
than 'osm') is skipped: the partner's record wins.

The row loaders of app.demo are reused (the same COPY of streets and buildings)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import shapely
from pyproj import CRS
from rich.console import Console

from app.analysis.coverage import refresh_coverage
from app.db import raw_connection
from app.domain_errors import ImportRefused
from app.ingest.camera_values import parse_direction
from app.ingest.osm_extract import OsmCamera, OsmExtract, camera_type, read_extract, tag_number
from app.ingest.pg_copy import BUILDING_COLUMNS, STREET_COLUMNS, copy_rows, ewkb, geometry_as_bytes, values
from app.settings import Settings

OWN_CAMERA_RADIUS_M = 2.0
PARK_COLUMNS = ["partnership_id", "osm_id", "name", "opening_hours", "geom"]


@dataclass
class OsmImportResult:
    partnership_id: int
    srid: int
    streets: int
    buildings: int
    cameras: int
    cameras_skipped: int      # OSM cameras at a partner's own camera
    route_edges: int
    route_vertices: int
    read_s: float
    load_s: float
    coverage_cameras: int = 0  # cameras whose line of sight was recomputed
    coverage_s: float = 0.0


CAMERA_STAGE = """
    CREATE TEMP TABLE _osm_camera (
        reference text, name text, geom geometry, bearing double precision, fov double precision,
        height_m double precision, camera_type text, notes text
    ) ON COMMIT DROP
"""
CAMERA_STAGE_COLUMNS = ["reference", "name", "geom", "bearing", "fov", "height_m", "camera_type", "notes"]
# OSM cameras standing where the partnership has a camera of its own.
MARK_SKIPPED = """
    DELETE FROM _osm_camera t WHERE EXISTS (
        SELECT 1 FROM camera c
        WHERE c.partnership_id = $1 AND c.source <> 'osm'
          AND c.geom && ST_Expand(t.geom, 0.0001)
          AND ST_DWithin(c.geom::geography, t.geom::geography, $2))
"""
DROP_GONE = """
    DELETE FROM camera c WHERE c.partnership_id = $1 AND c.source = 'osm'
      AND NOT EXISTS (SELECT 1 FROM _osm_camera t WHERE t.reference = c.reference)
"""
# Only what OSM says is refreshed; status, owner, contact and the like stay as people set them.
UPSERT_CAMERAS = """
    INSERT INTO camera AS c (partnership_id, reference, name, geom, bearing, fov, height_m,
                             camera_type, notes, source)
    SELECT $1, reference, name, geom, bearing, fov, height_m, camera_type, notes, 'osm'
    FROM _osm_camera
    ON CONFLICT (partnership_id, reference) DO UPDATE SET
        name = EXCLUDED.name, geom = EXCLUDED.geom, bearing = EXCLUDED.bearing, fov = EXCLUDED.fov,
        height_m = EXCLUDED.height_m, camera_type = EXCLUDED.camera_type, updated_at = now()
    WHERE c.source = 'osm'
      AND (c.name, ST_AsEWKB(c.geom), c.bearing, c.fov, c.height_m, c.camera_type)
          IS DISTINCT FROM (EXCLUDED.name, ST_AsEWKB(EXCLUDED.geom), EXCLUDED.bearing, EXCLUDED.fov,
                            EXCLUDED.height_m, EXCLUDED.camera_type)
"""
COUNTS = """
    SELECT (SELECT count(*) FROM street WHERE partnership_id = $1) AS streets,
           (SELECT count(*) FROM building WHERE partnership_id = $1) AS buildings,
           (SELECT count(*) FROM camera WHERE partnership_id = $1 AND source = 'osm') AS cameras,
           (SELECT count(*) FROM route_vertex WHERE partnership_id = $1) AS vertices
"""


def camera_rows(cameras: list[OsmCamera]) -> list[tuple]:
    """Staging rows for OSM cameras: direction, angle, height and type from their tags."""
    rows = []
    geoms = ewkb(shapely.points([(c.lon, c.lat) for c in cameras])) if cameras else []
    for cam, geom in zip(cameras, geoms):
        tags = cam.tags
        bearing = None
        for key in ("camera:direction", "direction"):
            if key in tags:
                try:
                    bearing = parse_direction(tags[key]) % 360
                    break
                except ValueError:
                    pass
        fov = tag_number(tags, "camera:angle", units=("°", "deg"))
        fov = fov if fov is not None and 0 < fov <= 360 else None
        height = tag_number(tags, "height", "est_height")
        height = height if height is not None and 0 <= height <= 300 else None
        name = (tags.get("name") or tags.get("operator") or "OpenStreetMap camera")[:200]
        described = ", ".join(f"{k}={tags[k]}" for k in ("surveillance", "surveillance:type",
                                                        "camera:type", "camera:mount", "operator")
                              if k in tags)
        notes = f"From OpenStreetMap node {cam.osm_id}" + (f" ({described})" if described else "") + "."
        rows.append((f"OSM-{cam.osm_id}", name, geom, bearing, fov, height, camera_type(tags),
                     notes[:4000]))
    return rows


def _covers(srid: int, bounds: tuple[float, float, float, float]) -> bool:
    area = CRS.from_epsg(srid).area_of_use
    if area is None:
        return False
    west, south, east, north = bounds
    return area.west <= west and east <= area.east and area.south <= south and north <= area.north


async def import_osm(settings: Settings, path: Path, slug: str,
                     console: Console | None = None) -> OsmImportResult:
    started = time.perf_counter()
    try:
        extract: OsmExtract = read_extract(Path(path))
    except (OSError, ValueError) as e:
        raise ImportRefused(f"cannot read {path}: {e}") from e
    read_s = time.perf_counter() - started
    s, b = extract.streets, extract.buildings
    street_rows = list(zip(s["osm_id"].tolist(), values(s["name"]), values(s["highway"]),
                           values(s["lit"]), ewkb(s.geometry.to_numpy()),
                           [json.dumps(t) for t in s["tags"]] if "tags" in s else ["{}"] * len(s)))
    parks = extract.parks
    park_rows = ([] if parks is None or parks.empty else
                 list(zip(parks["osm_id"].tolist(), values(parks["name"]), values(parks["opening_hours"]),
                          ewkb(parks.geometry.to_numpy()))))
    building_rows = list(zip(b["osm_id"].tolist(), values(b["name"]), values(b["height_m"]),
                             values(b["levels"]), ewkb(b.geometry.to_numpy())))
    cameras = camera_rows(extract.cameras)

    async with raw_connection(settings) as conn:
        await geometry_as_bytes(conn)
        async with conn.transaction():
            row = await conn.fetchrow("SELECT id, srid FROM partnership WHERE slug = $1 FOR UPDATE", slug)
            if row is None:
                raise ImportRefused(f"No partnership '{slug}'. Create it with: "
                                    f"safermap partnership add {slug} \"Name\"")
            pid, srid = row["id"], row["srid"]
            if not _covers(srid, extract.bounds):
                # A metric CRS made for elsewhere (27700 by default) would distort every distance.
                srid = extract.srid
                await conn.execute("UPDATE partnership SET srid = $2 WHERE id = $1", pid, srid)
                if console:
                    console.print(f"partnership '{slug}': metric CRS set to EPSG:{srid} for this extract")
            await conn.execute("DELETE FROM street WHERE partnership_id = $1 AND osm_id IS NOT NULL", pid)
            await conn.execute("DELETE FROM building WHERE partnership_id = $1 AND osm_id IS NOT NULL", pid)
            await conn.execute("DELETE FROM park WHERE partnership_id = $1 AND osm_id IS NOT NULL", pid)
            await copy_rows(conn, "street", [*STREET_COLUMNS, "tags"], [(pid, *r) for r in street_rows])
            await copy_rows(conn, "park", PARK_COLUMNS, [(pid, *r) for r in park_rows])
            await copy_rows(conn, "building", BUILDING_COLUMNS, [(pid, *r) for r in building_rows])

            await conn.execute(CAMERA_STAGE)
            await copy_rows(conn, "_osm_camera", CAMERA_STAGE_COLUMNS, cameras)
            skipped = int((await conn.execute(MARK_SKIPPED, pid, OWN_CAMERA_RADIUS_M)).split()[-1])
            await conn.execute(DROP_GONE, pid)
            await conn.execute(UPSERT_CAMERAS, pid)
            await conn.execute("DROP TABLE _osm_camera")

            edges = await conn.fetchval("SELECT safermap_build_route_network($1)", pid)
            await conn.execute("SELECT safermap_refresh_anon_points($1)", pid)
            # New buildings change what every camera of the partnership can see.
            coverage = await refresh_coverage(conn, pid)
            counts = await conn.fetchrow(COUNTS, pid)
    result = OsmImportResult(pid, srid, counts["streets"], counts["buildings"], counts["cameras"], skipped,
                             edges, counts["vertices"], read_s, time.perf_counter() - started - read_s,
                             coverage.cameras, coverage.seconds)
    if console:
        console.print(f"{path}: {result.streets:,} streets, {result.buildings:,} buildings, "
                      f"{result.cameras:,} OSM cameras ({skipped} skipped beside the partnership's own), "
                      f"routing network {result.route_edges:,} edges / {result.route_vertices:,} vertices, "
                      f"line of sight for {result.coverage_cameras:,} cameras in {result.coverage_s:.1f} s; "
                      f"read {read_s:.1f} s, load {result.load_s:.1f} s (EPSG:{srid})")
    return result
