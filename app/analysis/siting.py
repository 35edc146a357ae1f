"""Where the next camera should go: greedy maximal covering of uncovered incidents.

Candidates are points every `spacing_m` along the partnership's streets (both ends included) that
have an uncovered incident within range. Each candidate sees a disc (or a wedge of `fov` degrees
turned to the bearing that sees the most) minus what buildings hide (app.analysis.visibility). Picks
are made greedily, each the candidate that covers the most incidents not yet covered; greedy
covering reaches at least 1 - 1/e (63%) of the best possible k picks.

Lazy evaluation: a candidate's gain can only fall as picks are made, and its plain disc count
(no buildings, a k-d tree query) is an upper bound of its line-of-sight gain. So candidates wait in a
heap under their bound, and line of sight is computed only for those that reach the top.

Incidents are judged at the position the caller is given (an anonymous point below exact), only
the caller's partnership's, and only those that can be placed (sanitised or exact).
"""
from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from scipy.spatial import cKDTree
from shapely.geometry import Point, Polygon
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.analysis.gaps import VISIBLE, IncidentFilter, ensure_union
from app.analysis.visibility import visible_area
from app.auth import Principal
from app.domain_errors import TooLarge

# The disc bound must hold for the visibility polygon, whose arc is drawn through points on the
# circle: a hair of slack covers rounding.
BOUND_SLACK = 1.001
MAX_CANDIDATES = 200_000


class SearchTooLarge(TooLarge):
    """More candidate points than one request should weigh."""

# Every placed incident position of the partnership (weights = incidents there), in metres, with
# whether current coverage (the kinds given) already holds it.
POSITIONS = f"""
    WITH v AS (
        SELECT i.geom, count(*) AS n, bool_and(i.level = 'exact') AS all_exact
        FROM {VISIBLE} AS i
        WHERE i.partnership_id = :p AND i.geom IS NOT NULL AND i.level IN ('sanitised', 'exact') {{filters}}
        GROUP BY i.geom
    )
    SELECT ST_X(m) AS x, ST_Y(m) AS y, v.n, v.all_exact,
           EXISTS (SELECT 1 FROM coverage_union u WHERE u.partnership_id = :p AND u.kind = ANY(:kinds)
                   AND ST_Intersects(u.geom, v.geom)) AS covered
    FROM v CROSS JOIN LATERAL ST_Transform(v.geom, CAST(:srid AS integer)) AS m
"""
BBOX_FILTER = " AND i.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)"

# Streets and buildings of the partnership in a metric box, in the metric CRS (the box goes to the
# column's CRS, so the GiST indexes are used).
BOX = "ST_Transform(ST_MakeEnvelope(:x0, :y0, :x1, :y1, CAST(:srid AS integer)), 4326)"
STREETS = text(f"""
    SELECT ST_AsBinary(ST_Transform(s.geom, CAST(:srid AS integer))) AS wkb
    FROM street s WHERE s.partnership_id = :p AND s.geom && {BOX}
""")
BUILDINGS = text(f"""
    SELECT ST_AsBinary(ST_Transform(b.geom, CAST(:srid AS integer))) AS wkb
    FROM building b WHERE b.partnership_id = :p AND b.geom && {BOX}
""")


@dataclass(frozen=True)
class SitingOptions:
    k: int = 5
    range_m: float = 30.0
    fov: float = 360.0
    spacing_m: float = 25.0
    include_planned: bool = False
    bbox: tuple[float, float, float, float] | None = None  # minlon, minlat, maxlon, maxlat


@dataclass
class Scene:
    """Everything the search needs, in the partnership's metric CRS."""
    srid: int
    points: np.ndarray                 # (n, 2) uncovered incident positions
    weights: np.ndarray                # (n,) incidents at each
    streets: list[Any]                 # shapely LineStrings
    buildings: list[Polygon]
    placed: int                        # placed incidents in scope, covered or not
    covered: int                       # of them, already covered
    all_exact: bool                    # the caller sees every counted incident exactly


@dataclass
class Pick:
    candidate: int
    xy: tuple[float, float]
    gain: int
    bearing: float | None
    polygon: Polygon
    members: np.ndarray = field(repr=False)


@dataclass
class Search:
    picks: list[Pick]
    candidates: int
    evaluations: int                   # exact gains computed
    line_of_sight: int                 # visibility polygons computed (one per candidate at most)
    seconds: float


# -- candidates --------------------------------------------------------------------------------------
def candidate_points(lines: Sequence[Any], spacing_m: float) -> np.ndarray:
    """Points every `spacing_m` along each line from its start, plus its end; points closer than
    1 cm (shared street ends) are kept once. Sorted, so numbering is stable."""
    out = []
    for line in lines:
        for part in getattr(line, "geoms", [line]):
            length = part.length
            if length == 0:
                continue
            d = np.append(np.arange(0.0, length, spacing_m), length)
            out.append(shapely.get_coordinates(shapely.line_interpolate_point(part, d)))
    if not out:
        return np.empty((0, 2))
    xy = np.unique(np.round(np.concatenate(out), 2), axis=0)
    return xy


# -- coverage of one candidate -----------------------------------------------------------------------
def bearing_of(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Bearings in degrees clockwise from grid north, 0..360."""
    return np.degrees(np.arctan2(dx, dy)) % 360.0


def best_window(angles: np.ndarray, weights: np.ndarray, fov: float) -> tuple[float, np.ndarray, float]:
    """The arc of `fov` degrees holding the most weight: (weight, mask of members, bearing). The
    bearing is the middle of the members' own span, so none sits on the wedge's edge."""
    live = weights > 0
    if not live.any():
        return 0.0, np.zeros(len(angles), bool), 0.0
    idx = np.flatnonzero(live)
    order = idx[np.argsort(angles[idx], kind="stable")]
    a = angles[order]
    w = weights[order]
    a2 = np.concatenate([a, a + 360.0])
    w2 = np.concatenate([w, w])
    csum = np.concatenate([[0.0], np.cumsum(w2)])
    n = len(a)
    # For a window starting at each member, the members up to start + fov (at most one full turn).
    ends = np.minimum(np.searchsorted(a2, a + fov + 1e-9, side="right"), np.arange(n) + n)
    sums = csum[ends] - csum[np.arange(n)]
    best = int(np.argmax(sums))
    members = np.zeros(len(angles), bool)
    chosen = order[np.arange(best, ends[best]) % n]
    members[chosen] = True
    span = a2[ends[best] - 1] - a[best]
    return float(sums[best]), members, float((a[best] + span / 2) % 360.0)


class Coverer:
    """What each candidate sees, computed once (line of sight), and its gain against what is
    still uncovered."""

    def __init__(self, scene: Scene, candidates: np.ndarray, near: list[np.ndarray], opts: SitingOptions):
        self.scene, self.candidates, self.near, self.opts = scene, candidates, near, opts
        self.tree = shapely.STRtree(scene.buildings) if scene.buildings else None
        self._seen: dict[int, tuple[Polygon, np.ndarray, np.ndarray]] = {}

    @property
    def computed(self) -> int:
        return len(self._seen)

    def obstacles(self, xy: tuple[float, float]) -> list[Polygon]:
        if self.tree is None:
            return []
        hits = self.tree.query(Point(xy), predicate="dwithin", distance=self.opts.range_m)
        return [self.scene.buildings[i] for i in sorted(hits)]

    def seen(self, c: int) -> tuple[Polygon, np.ndarray, np.ndarray]:
        """The candidate's all-round view (past buildings), the incident positions in it, and their
        bearings from the candidate."""
        if c not in self._seen:
            xy = tuple(self.candidates[c])
            view = visible_area(xy, None, 360.0, self.opts.range_m, self.obstacles(xy))
            idx = self.near[c]
            pts = self.scene.points[idx]
            inside = shapely.contains_xy(view, pts[:, 0], pts[:, 1]) if len(idx) and not view.is_empty \
                else np.zeros(len(idx), bool)
            idx = idx[inside]
            d = self.scene.points[idx] - np.asarray(xy)
            self._seen[c] = (view, idx, bearing_of(d[:, 0], d[:, 1]))
        return self._seen[c]

    def gain(self, c: int, remaining: np.ndarray) -> tuple[float, np.ndarray, float | None]:
        """(weight newly covered, indices of the positions it covers, bearing or None)."""
        _, idx, angles = self.seen(c)
        if self.opts.fov >= 360:
            return float(remaining[idx].sum()), idx, None
        total, members, bearing = best_window(angles, remaining[idx], self.opts.fov)
        return total, idx[members], bearing

    def polygon(self, c: int, bearing: float | None) -> Polygon:
        if bearing is None:
            return self.seen(c)[0]
        xy = tuple(self.candidates[c])
        return visible_area(xy, bearing, self.opts.fov, self.opts.range_m, self.obstacles(xy))


# -- the greedy search -------------------------------------------------------------------------------
def lazy_greedy(k: int, bounds: np.ndarray, evaluate: Callable[[int], float],
                commit: Callable[[int], None]) -> tuple[list[int], list[float], int]:
    """Greedy maximal covering with lazy evaluation. `bounds[c]` must be at least candidate c's
    gain; `evaluate(c)` gives its gain now; `commit(c)` takes it. Each step takes the largest gain,
    ties to the lowest candidate number. Returns the picks, their gains and the evaluations made."""
    heap = [(-float(b), c, -1) for c, b in enumerate(bounds) if b > 0]
    heapq.heapify(heap)
    picks: list[int] = []
    gains: list[float] = []
    evaluations = 0
    for step in range(k):
        while heap:
            neg, c, fresh = heapq.heappop(heap)
            if fresh == step:  # its gain is current and no bound above it can beat it
                picks.append(c)
                gains.append(-neg)
                commit(c)
                break
            g = evaluate(c)
            evaluations += 1
            if g > 0:
                heapq.heappush(heap, (-g, c, step))
        else:
            break  # nothing uncovered is within reach of any candidate
    return picks, gains, evaluations


def search(scene: Scene, opts: SitingOptions) -> Search:
    """The k picks for a loaded scene (pure computation: run it off the event loop)."""
    started = time.perf_counter()
    candidates = candidate_points(scene.streets, opts.spacing_m)
    if len(candidates) > MAX_CANDIDATES:
        raise SearchTooLarge(f"{len(candidates):,} candidate points (at most {MAX_CANDIDATES:,}): "
                             "give a bbox or a larger spacing_m.")
    if len(scene.points) == 0 or len(candidates) == 0:
        return Search([], len(candidates), 0, 0, time.perf_counter() - started)
    tree = cKDTree(scene.points)
    near_lists = tree.query_ball_point(candidates, opts.range_m * BOUND_SLACK)
    near = [np.asarray(sorted(n), dtype=np.int64) for n in near_lists]
    bounds = np.array([scene.weights[n].sum() for n in near], dtype=float)
    keep = np.flatnonzero(bounds > 0)  # only candidates with an uncovered incident within reach
    candidates, near, bounds = candidates[keep], [near[i] for i in keep], bounds[keep]

    coverer = Coverer(scene, candidates, near, opts)
    remaining = scene.weights.astype(float).copy()
    chosen: dict[int, tuple[np.ndarray, float | None]] = {}

    def evaluate(c: int) -> float:
        g, members, bearing = coverer.gain(c, remaining)
        chosen[c] = (members, bearing)
        return g

    def commit(c: int) -> None:
        members, _ = chosen[c]
        remaining[members] = 0.0

    picks, gains, evaluations = lazy_greedy(opts.k, bounds, evaluate, commit)
    out = []
    for c, g in zip(picks, gains):
        members, bearing = chosen[c]
        out.append(Pick(c, (float(candidates[c][0]), float(candidates[c][1])), int(round(g)), bearing,
                        coverer.polygon(c, bearing), members))
    return Search(out, len(candidates), evaluations, coverer.computed, time.perf_counter() - started)


# -- loading the scene and answering -----------------------------------------------------------------
async def load_scene(session: AsyncSession, principal: Principal, flt: IncidentFilter,
                     opts: SitingOptions) -> Scene:
    pid, srid = principal.partnership_id, principal.srid
    await ensure_union(session, pid)
    where = flt.sql()
    params: dict[str, Any] = {**sharing.access_params(principal), **flt.params(), "srid": srid,
                              "kinds": ["working", "planned"] if opts.include_planned else ["working"]}
    if opts.bbox:
        where += BBOX_FILTER
        params.update(dict(zip(("x0", "y0", "x1", "y1"), opts.bbox)))
    rows = (await session.execute(text(POSITIONS.format(filters=where)), params)).all()
    open_rows = [r for r in rows if not r.covered]
    points = np.array([(r.x, r.y) for r in open_rows], dtype=float).reshape(-1, 2)
    weights = np.array([r.n for r in open_rows], dtype=float)
    streets: list[Any] = []
    buildings: list[Polygon] = []
    if len(points):
        reach = opts.range_m + opts.spacing_m
        box = {"p": pid, "srid": srid, "x0": points[:, 0].min() - reach, "y0": points[:, 1].min() - reach,
               "x1": points[:, 0].max() + reach, "y1": points[:, 1].max() + reach}
        streets = list(shapely.from_wkb([r.wkb for r in (await session.execute(STREETS, box)).all()]))
        for geom in shapely.from_wkb([r.wkb for r in (await session.execute(BUILDINGS, box)).all()]):
            buildings.extend(g for g in getattr(geom, "geoms", [geom]) if not g.is_empty)
    return Scene(srid=srid, points=points, weights=weights, streets=streets, buildings=buildings,
                 placed=int(sum(r.n for r in rows)), covered=int(sum(r.n for r in rows if r.covered)),
                 all_exact=all(r.all_exact for r in rows))


def to_lonlat(srid: int) -> Transformer:
    return Transformer.from_crs(srid, 4326, always_xy=True)


def polygon_geojson(polygon: Polygon, transformer: Transformer) -> dict[str, Any] | None:
    if polygon.is_empty:
        return None
    geo = shapely.transform(polygon, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
    return {"type": "Polygon",
            "coordinates": [[[round(x, 7), round(y, 7)] for x, y in ring.coords]
                            for ring in (geo.exterior, *geo.interiors)]}


def report(scene: Scene, result: Search, opts: SitingOptions, k_suppress: int) -> dict[str, Any]:
    """The answer: each pick with its marginal gain, the running total and the share after it."""
    def shown(n: int) -> int | None:
        return None if sharing.suppressed(n, scene.all_exact, k_suppress) else n

    tr = to_lonlat(scene.srid)
    picks, cumulative = [], 0
    for rank, p in enumerate(result.picks, start=1):
        cumulative += p.gain
        lon, lat = tr.transform(*p.xy)
        gain, total = shown(p.gain), shown(cumulative)
        picks.append({
            "rank": rank, "lon": round(lon, 7), "lat": round(lat, 7),
            "bearing": None if p.bearing is None else round(p.bearing, 1),
            "fov": opts.fov, "range_m": opts.range_m,
            "gain": gain, "cumulative_covered": total,
            "share_after": None if total is None or not scene.placed
            else round((scene.covered + cumulative) / scene.placed, 4),
            "suppressed": gain is None or total is None,
            "coverage": polygon_geojson(p.polygon, tr),
        })
    placed, covered = shown(scene.placed), shown(scene.covered)
    return {
        "placed": placed, "covered_before": covered, "uncovered_before": shown(int(scene.weights.sum())),
        "share_before": round(covered / placed, 4) if placed and covered is not None else None,
        "picks": picks,
        "exhausted": len(picks) < opts.k,
        "search": {"candidates": result.candidates, "evaluations": result.evaluations,
                   "line_of_sight": result.line_of_sight, "buildings": len(scene.buildings),
                   "milliseconds": round(result.seconds * 1000, 1)},
    }
