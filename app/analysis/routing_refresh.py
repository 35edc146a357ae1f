"""`safermap routes refresh` and `safermap routes lamps`: rebuild a partnership's segment safety
attributes and search its published routes again; load a council's street-lamp register.

The database keeps the attributes up to date by itself after coverage, monitoring, lamp and park
changes (app/sql/route_safety.sql); a refresh is for after changing streets by hand, or to check.
"""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis import routing_published
from app.settings import Settings

FIGURES = text("""
    SELECT count(*) AS edges, coalesce(sum(length_m), 0) AS metres, coalesce(sum(covered_m), 0) AS covered,
           coalesce(sum(monitored_m), 0) AS monitored, coalesce(sum(lamp_m), 0) AS lamps,
           count(*) FILTER (WHERE park_id IS NOT NULL) AS in_parks,
           count(*) FILTER (WHERE opening_hours IS NOT NULL) AS with_hours
    FROM route_edge WHERE partnership_id = :p
""")
# Lamp registers name their coordinates in many ways; these are tried in order.
LON_NAMES, LAT_NAMES = ("lon", "longitude", "long", "x_wgs84"), ("lat", "latitude", "y_wgs84")
EAST_NAMES, NORTH_NAMES = ("easting", "x", "east"), ("northing", "y", "north")
REF_NAMES = ("reference", "ref", "id", "asset_id", "unit_id", "lamp_id")


@dataclass
class RefreshResult:
    edges: int
    metres: float
    covered: float
    monitored: float
    lamps: float
    in_parks: int
    with_hours: int
    routes: int
    routes_failed: int
    seconds: float


async def partnership(session: AsyncSession, slug: str) -> tuple[int, int]:
    row = (await session.execute(text("SELECT id, srid FROM partnership WHERE slug = :s"), {"s": slug})).first()
    if row is None:
        raise LookupError(f"No partnership '{slug}'. Create it with: safermap partnership add {slug} \"Name\"")
    return row[0], row[1]


async def refresh(session: AsyncSession, slug: str, settings: Settings) -> RefreshResult:
    """Every segment's attributes recomputed, every published route searched again (one transaction:
    the caller commits)."""
    started = time.perf_counter()
    pid, _ = await partnership(session, slug)
    await session.execute(text("SELECT safermap_refresh_route_safety(:p)"), {"p": pid})
    done, failed = await routing_published.reevaluate(session, pid, settings)
    f = (await session.execute(FIGURES, {"p": pid})).one()
    return RefreshResult(f.edges, f.metres, f.covered, f.monitored, f.lamps, f.in_parks, f.with_hours,
                         done, failed, time.perf_counter() - started)


def _pick(header: list[str], names: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower().replace(" ", "_").replace("-", "_") for h in header]
    return next((lowered.index(n) for n in names if n in lowered), None)


def read_lamps(path: Path) -> list[tuple[str | None, float, float, bool]]:
    """(reference, x, y, is_lonlat) per row of a lamp register CSV: lon/lat columns, or easting/
    northing in the partnership's metric CRS. Rows without numbers are skipped."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path.name} is empty")
    header, body = rows[0], rows[1:]
    lon, lat = _pick(header, LON_NAMES), _pick(header, LAT_NAMES)
    east, north = _pick(header, EAST_NAMES), _pick(header, NORTH_NAMES)
    ref = _pick(header, REF_NAMES)
    if lon is not None and lat is not None:
        cols, lonlat = (lon, lat), True
    elif east is not None and north is not None:
        cols, lonlat = (east, north), False
    else:
        raise ValueError(f"{path.name}: no lon/lat or easting/northing columns (header: {', '.join(header)})")
    out = []
    for r in body:
        try:
            x, y = float(r[cols[0]]), float(r[cols[1]])
        except (ValueError, IndexError):
            continue
        out.append((r[ref][:100] if ref is not None and ref < len(r) and r[ref] else None, x, y, lonlat))
    return out


async def load_lamps(session: AsyncSession, slug: str, path: Path) -> int:
    """Replace the partnership's lamp register (the segments near old and new lamps are recomputed
    at commit)."""
    pid, srid = await partnership(session, slug)
    lamps = read_lamps(path)
    to_ll = Transformer.from_crs(srid, 4326, always_xy=True)
    points = [(ref, *(to_ll.transform(x, y) if not lonlat else (x, y))) for ref, x, y, lonlat in lamps]
    await session.execute(text("DELETE FROM street_lamp WHERE partnership_id = :p"), {"p": pid})
    if points:
        await session.execute(text(
            "INSERT INTO street_lamp (partnership_id, reference, geom) "
            "SELECT :p, r, ST_SetSRID(ST_MakePoint(x, y), 4326) "
            "FROM unnest(CAST(:refs AS text[]), CAST(:xs AS float8[]), CAST(:ys AS float8[])) AS t(r, x, y)"),
            {"p": pid, "refs": [p[0] for p in points], "xs": [p[1] for p in points], "ys": [p[2] for p in points]})
    return len(points)
