"""The top hotspots list for a tasking meeting: the N busiest area cells of the period, with the
previous period's count, the change, their commonest categories, the working cameras inside them
and the share of their incidents that falls inside a working camera's coverage.

Counts come from the same bins as the change layer (hotspot_change.both_periods). Categories and
coverage are counted in one statement for the chosen cells only, with the cell of each incident
computed exactly as the bins are (hotspot_data.cells_simple: floor((x - x0) / cell) on the position
the caller sees, the same float64 operations), so a cell's categories add up to its count.
"Working" means status 'operational'; coverage is whatever camera_coverage holds (the plain wedge,
or the line-of-sight polygon once computed). Only the caller's own partnership's incidents and cameras are used.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.analysis.hotspot_cells import (
    area_grid,
    cell_centroids,
    cell_ids,
    cell_labels,
    cell_polygons,
    period_json,
    shown,
)
from app.analysis.hotspot_change import both_periods, change_pct, compared_period, validate
from app.analysis.hotspot_data import VISIBLE, Bins, HotspotFilter, HotspotPrincipal, SmallCache, with_filter

TOP_CATEGORIES = 3
_RESULTS = SmallCache(64)

# Incidents of the chosen cells by category, and how many sit inside an operational camera's
# coverage. Each cell is read through the spatial indexes with its own lon/lat box (a lateral
# join), and an incident counts for a cell only if it is in that cell by the same floor() as the
# bins (the boxes of neighbouring cells overlap a little). Grouped by distinct position first:
# thousands of incidents on one snapped point are transformed and tested against coverage once.
CELL_DETAIL_SQL = f"""
    WITH cells AS (
        SELECT * FROM unnest(CAST(:ixs AS int[]), CAST(:iys AS int[]), CAST(:ws AS float8[]),
                             CAST(:ss AS float8[]), CAST(:es AS float8[]), CAST(:ns AS float8[]))
                      AS c(ix, iy, w, s, e, n)
    ), by_point AS MATERIALIZED (
        SELECT c.ix, c.iy, x.lon, x.lat, x.category, x.n
        FROM cells c CROSS JOIN LATERAL (
            SELECT ST_X(t.geom) AS lon, ST_Y(t.geom) AS lat, t.category, count(*) AS n
            FROM {VISIBLE} AS t
            WHERE t.partnership_id = :p AND t.level IN ('sanitised', 'exact') AND t.geom IS NOT NULL
              AND t.geom && ST_MakeEnvelope(c.w, c.s, c.e, c.n, 4326) AND {{where}}
            GROUP BY 1, 2, 3
        ) AS x
    ), placed AS (
        SELECT d.ix, d.iy, d.lon, d.lat
        FROM (SELECT DISTINCT ix, iy, lon, lat FROM by_point) AS d,
             ST_Transform(ST_SetSRID(ST_MakePoint(d.lon, d.lat), 4326), CAST(:srid AS integer)) AS m
        WHERE floor((ST_X(m) - CAST(:x0 AS float8)) / CAST(:cell AS float8))::int = d.ix
          AND floor((ST_Y(m) - CAST(:y0 AS float8)) / CAST(:cell AS float8))::int = d.iy
    ), covered AS (
        SELECT p.ix, p.iy, p.lon, p.lat,
               EXISTS (SELECT 1 FROM camera_coverage cc JOIN camera c ON c.id = cc.camera_id
                       WHERE cc.partnership_id = :p AND c.status = 'operational'
                         AND ST_Intersects(cc.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))) AS inside
        FROM placed p
    )
    SELECT b.ix, b.iy, b.category, sum(b.n)::bigint AS n, (sum(b.n) FILTER (WHERE cv.inside))::bigint AS covered
    FROM covered cv JOIN by_point b ON b.ix = cv.ix AND b.iy = cv.iy AND b.lon = cv.lon AND b.lat = cv.lat
    GROUP BY 1, 2, 3
"""

# Operational cameras in the chosen cells.
CELL_CAMERAS_SQL = """
    SELECT k.ix, k.iy, count(*) AS n FROM (
        SELECT floor((ST_X(m) - CAST(:x0 AS float8)) / CAST(:cell AS float8))::int AS ix,
               floor((ST_Y(m) - CAST(:y0 AS float8)) / CAST(:cell AS float8))::int AS iy
        FROM camera c, ST_Transform(c.geom, CAST(:srid AS integer)) AS m
        WHERE c.partnership_id = :p AND c.status = 'operational'
          AND c.geom && ST_MakeEnvelope(:w, :s, :e, :n, 4326)
    ) AS k
    JOIN unnest(CAST(:ixs AS int[]), CAST(:iys AS int[])) AS c(ix, iy) ON c.ix = k.ix AND c.iy = k.iy
    GROUP BY 1, 2
"""


def top_cells(current: np.ndarray, previous: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(iy, ix) of the n busiest cells with at least one incident: most incidents first, then the
    larger rise, then south-west to north-east (so the order is stable)."""
    iy, ix = np.nonzero(current > 0)
    counts = current[iy, ix]
    rise = counts - previous[iy, ix]
    order = np.lexsort((ix, iy, -rise, -counts))[:n]
    return iy[order], ix[order]


PAD_DEG = 1e-5  # about a metre: a box is a little wider than its cell, so no edge incident is missed


def boxes(polygons: list[dict]) -> dict[str, list[float]]:
    """Each cell's lon/lat box (ws, ss, es, ns), a little wider than the cell."""
    out: dict[str, list[float]] = {"ws": [], "ss": [], "es": [], "ns": []}
    for p in polygons:
        lons, lats = [x for x, _ in p["coordinates"][0]], [y for _, y in p["coordinates"][0]]
        out["ws"].append(min(lons) - PAD_DEG)
        out["ss"].append(min(lats) - PAD_DEG)
        out["es"].append(max(lons) + PAD_DEG)
        out["ns"].append(max(lats) + PAD_DEG)
    return out


def envelope(cell_boxes: dict[str, list[float]]) -> dict[str, float]:
    """One lon/lat box around all the cells."""
    return {"w": min(cell_boxes["ws"]), "s": min(cell_boxes["ss"]), "e": max(cell_boxes["es"]),
            "n": max(cell_boxes["ns"])}


async def cell_details(session: AsyncSession, principal: HotspotPrincipal, flt: HotspotFilter, bins: Bins,
                       iy: np.ndarray, ix: np.ndarray, cell_boxes: dict[str, list[float]]):
    """Per chosen cell: {category: count}, incidents inside coverage, operational cameras inside."""
    box = envelope(cell_boxes)
    params = {**sharing.access_params(principal), **flt.params(), **cell_boxes, "x0": bins.x0, "y0": bins.y0,
              "cell": bins.cell_m, "srid": bins.srid, "ixs": ix.tolist(), "iys": iy.tolist()}
    categories: dict[tuple[int, int], dict[str, int]] = defaultdict(dict)
    covered: dict[tuple[int, int], int] = defaultdict(int)
    for r in (await session.execute(text(with_filter(CELL_DETAIL_SQL, flt)), params)).all():
        categories[(r.iy, r.ix)][r.category] = int(r.n)
        covered[(r.iy, r.ix)] += int(r.covered or 0)
    cameras = {(r.iy, r.ix): int(r.n) for r in (await session.execute(text(CELL_CAMERAS_SQL), {
        "p": principal.partnership_id, **box, "x0": bins.x0, "y0": bins.y0, "cell": bins.cell_m,
        "srid": bins.srid, "ixs": ix.tolist(), "iys": iy.tolist()})).all()}
    return categories, covered, cameras


async def top_hotspots(session: AsyncSession, principal: HotspotPrincipal, flt: HotspotFilter,
                       n: int = 10, compare: str = "previous", cell_m: float | None = None) -> dict[str, Any]:
    validate(compare, n)
    grid = await area_grid(session, principal, flt, cell_m)
    key = (grid.version_key, grid.flt.key(), grid.cell_m, compare, n)
    if (cached := _RESULTS.get(key)) is not None:
        return cached
    before = compared_period(grid, compare)
    current, previous = await both_periods(session, principal, grid, before)
    body: dict[str, Any] = {"period": period_json(grid.flt),
                            "previous_period": period_json(before) if before else None,
                            "compare": compare, "cell_m": grid.cell_m,
                            "suppress_below": sharing.suppress_below(), "areas": []}
    if current is not None and previous is not None:  # both or neither
        iy, ix = top_cells(current.counts, previous.counts, n)
        if len(iy):
            body["areas"] = await _areas(session, principal, grid.flt, current, previous, iy, ix)
        all_exact = current.all_exact and previous.all_exact
        body.update(count=shown(current.total, all_exact), sanitised=not all_exact)
    _RESULTS.put(key, body)
    return body


async def _areas(session, principal, flt, current: Bins, previous: Bins, iy, ix) -> list[dict[str, Any]]:
    all_exact = current.all_exact and previous.all_exact
    polygons = cell_polygons(current, iy, ix)
    ids = cell_ids(current, iy, ix)
    lon, lat = cell_centroids(current, iy, ix)
    labels = await cell_labels(session, principal.partnership_id, current, iy, ix)
    categories, covered, cameras = await cell_details(session, principal, flt, current, iy, ix, boxes(polygons))
    areas = []
    for k, (row, col) in enumerate(zip(iy.tolist(), ix.tolist())):
        count, before = shown(current.counts[row, col], all_exact), shown(previous.counts[row, col], all_exact)
        cats = sorted(categories[(row, col)].items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CATEGORIES]
        placed = sum(categories[(row, col)].values())
        areas.append({
            "rank": k + 1, "id": ids[k], "label": labels[k], "geometry": polygons[k],
            "centroid": [float(lon[k]), float(lat[k])],
            "count": count, "previous_count": before,
            "change": count - before if count is not None and before is not None else None,
            "change_pct": change_pct(count, before) if count is not None and before is not None else None,
            "top_categories": [{"category": c, "count": shown(m, all_exact)} for c, m in cats],
            "cameras_inside": cameras.get((row, col), 0),
            "share_in_coverage": (round(covered[(row, col)] / placed, 4)
                                  if placed and count is not None else None),
        })
    return areas
