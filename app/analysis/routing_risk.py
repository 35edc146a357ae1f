"""Incident risk of each segment, for one caller: the weighted incidents of the last 12 months within
25 m of it, as that caller may see them.

Risk cannot be a stored attribute of a segment: which incidents count, and where, depends on who
asks. So it is read through the sharing function (`safermap_visible_incidents`) with the caller's
partnership, role, agency and level cap, like every other face of incidents:
  - data sets the caller sees `exact` count at their place, `sanitised` ones at their anonymous point;
  - data sets the caller may only count (`aggregate`) are not placed, so they weigh on no segment
    (as in the coverage-gaps figures); sensitive categories held back from the caller do not exist;
  - so an incident the caller may not see never changes that caller's route.
The window is the 12 months ending with the latest month the caller sees a placed incident in
(safermap_route_incident_since).

One query reads the caller's incident places (distinct positions with their weighted counts); the
segments near each are found in memory with the network's spatial index, and the places are kept
for the "incidents near this walk" figures, so a route request asks the database nothing about
incidents. Cached per worker by the caller's access and the data versions of incidents, sharing
rules and the network; the same access shares one entry. The alternative, risk at query time within
the detour ellipse only, costs a spatial join through the sharing function on every request (the
ellipse of a cross-town walk holds most of the network): measured on Helsinki with 20,000 incidents,
that per-request SQL alone took 100-250 ms, against well under a millisecond here. Computing the
entry takes 0.5 s for 20,000 distinct incident places on Helsinki's streets and 1.0 s for 50,000 on
a grid city of 100,000 segments (bench/routes_bench.py), once per access and data version.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.analysis.routing_graph import Network
from app.caches import Bounded

NEAR_M = 25.0  # safermap_route_near_m() in app/sql/route_safety.sql
# How much an incident near a segment weighs, by police.uk category (others weigh 1): what a person
# walking past fears most weighs most. SAFERMAP_ROUTE_INCIDENT_WEIGHTS overrides any of them.
DEFAULT_WEIGHTS: dict[str, float] = {
    "violence and sexual offences": 3.0,
    "robbery": 3.0,
    "possession of weapons": 3.0,
    "public order": 2.0,
    "theft from the person": 2.0,
    "anti-social behaviour": 1.0,
    "criminal damage and arson": 1.0,
    "drugs": 1.0,
    "other theft": 0.5,
    "other crime": 0.5,
    "vehicle crime": 0.5,
    "burglary": 0.3,
    "bicycle theft": 0.3,
    "shoplifting": 0.2,
}
# Weighted incidents per 100 m of a segment (and 25 m beyond each end) at which its risk is 1 - 1/e.
RISK_SCALE = 5.0

# The caller's placed incidents in the window, one row per distinct place (thousands of incidents
# share a police.uk point): metric position, weighted count, count, and whether all are exact.
POINTS = text("""
    SELECT ST_X(s.gm) AS x, ST_Y(s.gm) AS y, s.wt, s.n, s.all_exact
    FROM (
        SELECT ST_Transform(v.geom, CAST(:srid AS integer)) AS gm, sum(coalesce(c.w, 1.0)) AS wt,
               count(*) AS n, bool_and(v.level = 'exact') AS all_exact
        FROM safermap_visible_incidents(:p, CAST(:role AS text), CAST(:agency AS integer), CAST(:level_cap AS text)) AS v
        LEFT JOIN unnest(CAST(:cats AS text[]), CAST(:ws AS float8[])) AS c(cat, w) ON c.cat = lower(v.category)
        WHERE v.partnership_id = :p AND v.geom IS NOT NULL AND v.level IN ('sanitised', 'exact')
          AND v.month >= CAST(:since AS date)
        GROUP BY v.geom
    ) AS s
""")
SINCE = text("SELECT safermap_route_incident_since(:p, CAST(:role AS text), CAST(:agency AS integer), "
             "CAST(:level_cap AS text))")
# The data versions a caller's risk depends on.
RISK_SOURCES = ("incident", "dataset", "sharing_rule", "sensitive_category", "anon_point", "route_edge")


@dataclass(frozen=True)
class Risk:
    weighted: np.ndarray   # weighted incidents near each segment of the network, in its order
    since: date | None     # the first month of the window (None: the caller sees no placed incident)
    count: np.ndarray      # per distinct place: incidents there
    exact: np.ndarray      # per distinct place: whether the caller sees all of them exactly
    places: shapely.STRtree | None = field(default=None, compare=False)

    def level(self, length: np.ndarray) -> np.ndarray:
        """0..1 per segment: 1 - exp(-density / RISK_SCALE), density in weighted incidents per
        100 m of the segment and NEAR_M beyond each end (a short segment by a hotspot is not
        a hundred times riskier than a long one)."""
        density = self.weighted * 100.0 / (length + 2 * NEAR_M)
        return 1.0 - np.exp(-density / RISK_SCALE)

    def near(self, line_m: np.ndarray) -> tuple[int, bool]:
        """(incidents within NEAR_M of a line given by its metric vertices, all seen exactly)."""
        if self.places is None or len(line_m) < 2:
            return 0, True
        hit = self.places.query(shapely.LineString(line_m), predicate="dwithin", distance=NEAR_M)
        return int(self.count[hit].sum()), bool(self.exact[hit].all())


def weights(overrides: str) -> dict[str, float]:
    """The category weights: the defaults with SAFERMAP_ROUTE_INCIDENT_WEIGHTS over them."""
    out = dict(DEFAULT_WEIGHTS)
    if overrides.strip():
        out.update({k.lower(): float(v) for k, v in json.loads(overrides).items()})
    return out


_cache = Bounded(64)
_locks: dict[tuple, asyncio.Lock] = {}


async def risk_for(session: AsyncSession, net: Network, access: dict, versions: dict[str, int],
                   overrides: str = "") -> Risk:
    """The caller's risk per segment of `net` (`access`: app.sharing.access_params of the caller,
    or of the least-privileged reader for published routes)."""
    cat_weights = weights(overrides)
    key = (net.key, access["p"], access["role"], access["agency"], access["level_cap"],
           tuple(versions.get(s) for s in RISK_SOURCES), tuple(sorted(cat_weights.items())))
    found = _cache.get(key)
    if found is not None:
        return found
    lock = _locks.setdefault((id(asyncio.get_running_loop()), key[1:5]), asyncio.Lock())
    async with lock:
        found = _cache.get(key)
        if found is None:
            found = await _compute(session, net, access, cat_weights)
            _cache[key] = found
    return found


async def _compute(session: AsyncSession, net: Network, access: dict, cat_weights: dict[str, float]) -> Risk:
    """One query for the caller's incident places; the segments near each are found in memory with
    the network's own spatial index (no spatial join in the database)."""
    weighted = np.zeros(net.n_edges)
    since = (await session.execute(SINCE, access)).scalar_one()
    if since is None:
        return Risk(weighted, None, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool))
    rows = (await session.execute(POINTS, {**access, "since": since, "srid": net.srid,
                                           "cats": list(cat_weights), "ws": list(cat_weights.values())})).all()
    if not rows:
        return Risk(weighted, since, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool))
    points = shapely.points([(r.x, r.y) for r in rows])
    wt = np.array([float(r.wt) for r in rows])
    if net.n_edges:
        place, edge = net.tree.query(points, predicate="dwithin", distance=NEAR_M)
        np.add.at(weighted, edge, wt[place])
    return Risk(weighted, since, np.array([int(r.n) for r in rows]), np.array([bool(r.all_exact) for r in rows]),
                shapely.STRtree(points))


def public_access(partnership_id: int) -> dict:
    """The least-privileged reader of a partnership's published routes: an embed (data sets' default
    levels, at anonymous points, sensitive categories held back). Published routes are computed and
    counted as it sees incidents, so a route on the shared layer reveals nothing more."""
    return {"p": partnership_id, "role": "embed", "agency": None, "level_cap": "sanitised"}


def caller_access(principal) -> dict:
    return sharing.access_params(principal)


def clear() -> None:
    _cache.clear()

