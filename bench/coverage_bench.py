"""Line-of-sight coverage: 5,000 cameras among 100,000 buildings.

Side by side in one run: the plain wedges the database trigger draws (no buildings), the bulk
line-of-sight refresh of every camera (what an OpenStreetMap import runs) and its commit (which
rebuilds the coverage union), one camera at a time (what a camera edit in the API runs) and its
commit, and a brute-force ray caster on a sample of the same cameras, for both speed and area
agreement.

    .venv/bin/python -m bench coverage
"""
from __future__ import annotations

import asyncio
import math
import statistics
import time

import asyncpg
import numpy as np
import shapely
from shapely.geometry import LineString, Point

from app.analysis.coverage import BUILDINGS_SQL, SOME_CAMERAS_SQL, _polygons, refresh_coverage
from app.analysis.visibility import viewpoint, visible_area
from bench.import_bench import default_database_url

SLUG = "bench-coverage"
BUILDINGS = 100_000
CAMERAS = 5_000
PITCH_M = 30.0   # one building per 30 m square: 250 x 400 blocks, 7.5 km x 12 km
ORIGIN = (383_000.0, 392_000.0)  # British National Grid, Greater Manchester

RESET = "DELETE FROM partnership WHERE slug = $1"
PARTNERSHIP = "INSERT INTO partnership (slug, name, srid) VALUES ($1, 'Coverage bench', 27700) RETURNING id"
# Buildings 14-26 m wide on a 30 m pitch (streets 4-16 m wide), seeded so every run is the same city.
LOAD_BUILDINGS = """
    SELECT setseed(0.42);
    INSERT INTO building (partnership_id, geom)
    SELECT {pid}, ST_Multi(ST_Transform(ST_MakeEnvelope(x0, y0, x0 + w, y0 + h, 27700), 4326))
    FROM (SELECT {ox} + (i % 250) * {pitch} + 2 + random() * 4 AS x0,
                 {oy} + (i / 250) * {pitch} + 2 + random() * 4 AS y0,
                 14 + random() * 10 AS w, 14 + random() * 10 AS h
          FROM generate_series(0, {n} - 1) AS i) AS b;
"""
# Cameras in the streets, each at a kerb corner of a random block; two in three fixed wedges
# (57-90 degrees, 20-60 m), one in three domes (30 m); one in ten drawn a metre inside the building.
LOAD_CAMERAS = """
    SELECT setseed(0.17);
    INSERT INTO camera (partnership_id, reference, geom, bearing, fov, range_m, camera_type)
    SELECT {pid}, 'B-' || i,
           ST_Transform(ST_SetSRID(ST_MakePoint(
               {ox} + (i * 7919 % 250) * {pitch} + CASE WHEN i % 10 = 0 THEN 3 ELSE 1 END,
               {oy} + (i * 104729 % 400) * {pitch} + CASE WHEN i % 10 = 0 THEN 3 ELSE 1 END), 27700), 4326),
           CASE WHEN i % 3 = 0 THEN NULL ELSE floor(random() * 360) END,
           CASE WHEN i % 3 = 0 THEN 360 ELSE 57 + floor(random() * 34) END,
           CASE WHEN i % 3 = 0 THEN 30 ELSE 20 + floor(random() * 41) END,
           CASE WHEN i % 3 = 0 THEN 'dome' ELSE 'fixed' END
    FROM generate_series(1, {n}) AS i;
"""

# A camera edit: turned by 15 degrees (a dome's disc only gets its plain shape back).
TURN_CAMERA = "UPDATE camera SET bearing = (coalesce(bearing, 0) + 15)::integer % 360 WHERE id = $1"
# Every cell of the coverage union rebuilt, as after a change of the partnership's metric CRS.
FULL_UNION = "SELECT safermap_refresh_coverage_union($1, true)"


def ray_cast_area(eye, bearing, fov, range_m, buildings, step: float = 0.1) -> float:
    outlines = shapely.union_all(buildings).boundary if len(buildings) else None
    angles = (np.arange(0, 360, step) if bearing is None or fov >= 360
              else bearing - fov / 2 + step / 2 + step * np.arange(int(round(fov / step))))
    area = 0.0
    for a in angles:
        t = math.radians(a)
        reach = range_m
        if outlines is not None:
            hit = LineString([eye, (eye[0] + range_m * math.sin(t), eye[1] + range_m * math.cos(t))]).intersection(outlines)
            if not hit.is_empty:
                reach = min(reach, Point(eye).distance(hit))
        area += 0.5 * reach * reach * math.radians(step)
    return area


async def _run(url: str) -> dict:
    conn = await asyncpg.connect(url, server_settings={"synchronous_commit": "off"})
    try:
        await conn.execute(RESET, SLUG)
        pid = await conn.fetchval(PARTNERSHIP, SLUG)
        fmt = dict(pid=pid, ox=ORIGIN[0], oy=ORIGIN[1], pitch=PITCH_M)
        await conn.execute(LOAD_BUILDINGS.format(n=BUILDINGS, **fmt))
        await conn.execute("ANALYZE building")
        started = time.perf_counter()
        await conn.execute(LOAD_CAMERAS.format(n=CAMERAS, **fmt))  # the trigger draws plain wedges
        plain_s = time.perf_counter() - started
        await conn.execute("ANALYZE camera; ANALYZE camera_coverage")

        tr = conn.transaction()
        await tr.start()
        bulk = await refresh_coverage(conn, pid)
        t0 = time.perf_counter()
        await tr.commit()  # the coverage union's cells are rebuilt here, once
        bulk_commit_s = time.perf_counter() - t0
        assert bulk.cameras == CAMERAS
        async with conn.transaction():
            t0 = time.perf_counter()
            await conn.execute(FULL_UNION, pid)
            full_union_s = time.perf_counter() - t0

        ids = [r["id"] for r in await conn.fetch("SELECT id FROM camera WHERE partnership_id = $1 ORDER BY id LIMIT 50", pid)]
        # One camera as the API does it: turn it (the trigger redraws its plain wedge), recompute its
        # line of sight inside the transaction, then commit, which rebuilds the union's cells its old
        # and new coverage reach (timed apart: the commit also waits on the disk, which other work on
        # the machine shares).
        single, commits = [], []
        for cid in ids:
            tr = conn.transaction()
            await tr.start()
            await conn.execute(TURN_CAMERA, cid)
            t0 = time.perf_counter()
            await refresh_coverage(conn, pid, [cid])
            t1 = time.perf_counter()
            await tr.commit()
            single.append(t1 - t0)
            commits.append(time.perf_counter() - t1)

        # The same 20 cameras by exact polygons and by brute-force ray casting (0.1 degree rays).
        sample = await conn.fetch(SOME_CAMERAS_SQL, pid, ids[:20])
        exact_s = brute_s = 0.0
        errors = []
        for cam in sample:
            centre, r = (cam["x"], cam["y"]), cam["range_m"]
            rows = await conn.fetch(BUILDINGS_SQL, pid, 27700, centre[0] - r, centre[1] - r, centre[0] + r, centre[1] + r)
            near = list(_polygons(shapely.from_wkb([row["wkb"] for row in rows])))
            t0 = time.perf_counter()
            view = visible_area(centre, cam["bearing"], cam["fov"], r, near)
            exact_s += time.perf_counter() - t0
            eye = viewpoint(centre, cam["bearing"] if cam["fov"] < 360 else None, near)
            t0 = time.perf_counter()
            reference = ray_cast_area(eye, cam["bearing"], cam["fov"], r, near)
            brute_s += time.perf_counter() - t0
            errors.append(abs(view.area - reference) / max(reference, 1e-9))
        await conn.execute(RESET, SLUG)
    finally:
        await conn.close()
    return {
        "cameras": CAMERAS, "buildings": BUILDINGS,
        "plain_wedges_trigger_s": round(plain_s, 2),
        "line_of_sight_bulk_s": round(bulk.seconds, 2),
        "line_of_sight_per_camera_ms": round(1000 * bulk.seconds / CAMERAS, 2),
        "bulk_vs_plain_ratio": round(bulk.seconds / plain_s, 2),
        "line_of_sight_bulk_commit_s": round(bulk_commit_s, 2),
        "coverage_union_full_rebuild_s": round(full_union_s, 2),
        "one_camera_p50_ms": round(1000 * statistics.median(single), 1),
        "one_camera_max_ms": round(1000 * max(single), 1),
        "one_camera_commit_p50_ms": round(1000 * statistics.median(commits), 1),
        # The budget for one camera's line of sight (checked here, not in the test suite,
        # whose machines may be slower and busier than this one).
        "one_camera_within_100ms_budget": statistics.median(single) < 0.1,
        "exact_polygon_20_cameras_s": round(exact_s, 3),
        "exact_polygon_per_camera_ms": round(1000 * exact_s / max(len(sample), 1), 2),
        "ray_casting_20_cameras_s": round(brute_s, 2),
        "exact_vs_ray_casting_speedup": round(brute_s / exact_s, 1),
        "area_difference_max_pct": round(100 * max(errors), 3),
    }


def run(report: dict) -> dict:
    result = asyncio.run(_run(default_database_url()))
    report["coverage"] = result
    return result
