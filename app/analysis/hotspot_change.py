"""Change over time: each area cell's count this period against the previous one (the same length
just before, or the same period a year earlier), and the areas that rose or fell the most.

Both periods are binned on the same grid (the study extent does not depend on the period), so a
cell is the same place in both. Counts a caller may not see are null, and so is any change that
would reveal them; such cells are left out of the ranked lists rather than ranked on hidden numbers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.analysis.hotspot_cells import (
    AreaGrid,
    area_grid,
    cell_centroids,
    cell_ids,
    cell_labels,
    cell_polygons,
    period_json,
    shown,
)
from app.analysis.hotspot_data import Bins, HotspotFilter, HotspotPrincipal, SmallCache, load_bins, previous_period
from app.domain_errors import InvalidValue

MAX_N = 100
COMPARES = ("previous", "last_year")
_RESULTS = SmallCache(64)


@dataclass
class CellChange:
    """Cells with an incident in either period, in row-major order."""
    iy: np.ndarray
    ix: np.ndarray
    current: np.ndarray
    previous: np.ndarray


def cell_changes(current: np.ndarray, previous: np.ndarray) -> CellChange:
    if current.shape != previous.shape:
        raise ValueError("both periods must be binned on the same grid")
    iy, ix = np.nonzero((current > 0) | (previous > 0))
    return CellChange(iy, ix, current[iy, ix], previous[iy, ix])


def change_pct(current: int, previous: int) -> float | None:
    """Percentage change; None from nothing (a rise from 0 has no percentage)."""
    return None if previous == 0 else round(100.0 * (current - previous) / previous, 1)


def ranked(values: list[dict[str, Any]], n: int, rising: bool) -> list[dict[str, Any]]:
    """The n areas that rose (or fell) the most; ties: the busier area first, then by id."""
    sign = 1 if rising else -1
    moved = [v for v in values if v["change"] is not None and sign * v["change"] > 0]
    moved.sort(key=lambda v: (-sign * v["change"], -max(v["current"], v["previous"]), v["id"]))
    return moved[:n]


def validate(compare: str, n: int) -> None:
    if compare not in COMPARES:
        raise InvalidValue("compare must be 'previous' or 'last_year'.")
    if not 1 <= n <= MAX_N:
        raise InvalidValue(f"n must be between 1 and {MAX_N}.")


def compared_period(grid: AreaGrid, compare: str) -> HotspotFilter | None:
    return previous_period(grid.flt, compare) if grid.flt.date_from is not None else None


async def both_periods(session: AsyncSession, principal: HotspotPrincipal, grid: AreaGrid,
                       before: HotspotFilter | None) -> tuple[Bins, Bins] | tuple[None, None]:
    """The bins of this period and of the one it is compared with, on the same grid (None when
    the caller has no mapped incidents)."""
    if before is None or grid.extent is None or grid.cell_m is None:  # cell_m is None iff extent is
        return None, None
    current = await load_bins(session, principal, grid.flt, grid.cell_m, grid.extent)
    previous = await load_bins(session, principal, before, grid.cell_m, grid.extent)
    return current, previous


async def hotspot_change(session: AsyncSession, principal: HotspotPrincipal, flt: HotspotFilter,
                         compare: str = "previous", cell_m: float | None = None, n: int = 10) -> dict[str, Any]:
    validate(compare, n)
    grid = await area_grid(session, principal, flt, cell_m)
    key = (grid.version_key, grid.flt.key(), grid.cell_m, compare, n)
    if (cached := _RESULTS.get(key)) is not None:
        return cached
    before = compared_period(grid, compare)
    current, previous = await both_periods(session, principal, grid, before)
    body: dict[str, Any] = {
        "period": period_json(grid.flt), "previous_period": period_json(before) if before else None,
        "compare": compare, "cell_m": grid.cell_m, "suppress_below": sharing.suppress_below(),
        "areas": {"type": "FeatureCollection", "features": []}, "rose": [], "fell": []}
    if current is not None and previous is not None:  # both or neither
        body.update(change_body(current, previous, n))
        listed = body["rose"] + body["fell"]
        labels = await cell_labels(session, principal.partnership_id, current,
                                   np.array([v.pop("_iy") for v in listed], dtype=np.int64),
                                   np.array([v.pop("_ix") for v in listed], dtype=np.int64))
        for v, label in zip(listed, labels):
            v["label"] = label
    _RESULTS.put(key, body)
    return body


def change_body(current: Bins, previous: Bins, n: int) -> dict[str, Any]:
    """The change layer and the n areas that rose and fell most (unlabelled; the list items carry
    their cell's row and column as _iy/_ix)."""
    all_exact = current.all_exact and previous.all_exact
    cells = cell_changes(current.counts, previous.counts)
    ids = cell_ids(current, cells.iy, cells.ix)
    polygons = cell_polygons(current, cells.iy, cells.ix)
    lon, lat = cell_centroids(current, cells.iy, cells.ix)
    features, values = [], []
    for k in range(len(ids)):
        now, then = shown(cells.current[k], all_exact), shown(cells.previous[k], all_exact)
        props = {"id": ids[k], "current": now, "previous": then,
                 "change": now - then if now is not None and then is not None else None,
                 "change_pct": change_pct(now, then) if now is not None and then is not None else None}
        features.append({"type": "Feature", "id": ids[k], "geometry": polygons[k], "properties": props})
        values.append({**props, "centroid": [float(lon[k]), float(lat[k])],
                       "_iy": int(cells.iy[k]), "_ix": int(cells.ix[k])})
    rose, fell = ranked(values, n, True), ranked(values, n, False)
    return {"areas": {"type": "FeatureCollection", "features": features},
            "rose": [dict(v) for v in rose], "fell": [dict(v) for v in fell],
            "count": shown(current.total, all_exact), "previous_count": shown(previous.total, all_exact),
            "unplaced": shown(current.unplaced, all_exact), "sanitised": not all_exact}
