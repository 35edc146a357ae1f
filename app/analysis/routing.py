"""Safe walking routes: the shortest walk between two points and, for the `safest` profile, up to
three walks on the trade-off between length and safety, each with its figures and an explanation.

A request reads the partnership's network from this worker's cache (routing_graph: one data-version
lookup when nothing changed), the caller's incident risk per segment and incident places from its
cache (routing_risk: read through the sharing rules), and searches in memory (routing_search:
snapping, ellipse pruning, Dijkstra); the incidents within 25 m of each walk are counted from the
same places. Figures follow the sharing rules and small-count suppression.

Safety of a segment, per metre, for weights w (DAY or NIGHT; lighting weighs more after sunset):
    pen = w.camera·(1 - camera) + w.lit·(1 - lit) + w.risk·risk
    camera = (covered + b·monitored) / ((1 + b)·length)   live-monitored coverage counts (1 + b) times
    lit    = 1 where OSM says lit=yes|24/7|automatic; else the share within reach of register lamps,
             or 1 for an untagged street when SAFERMAP_ROUTE_UNTAGGED_LIT is true
    risk   = routing_risk.Risk.level (0..1, from weighted incidents near it)
Segments whose opening_hours (their own, or their park's) say closed at the time are not walked.
"""
from __future__ import annotations

import asyncio
import math
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.analysis import routing_explain as words
from app.analysis import routing_graph, routing_hours, routing_risk
from app.analysis.routing_graph import Network
from app.analysis.routing_search import Attributes, RouteProblem, Search, Snap, Walk, choose, snap_pair
from app.caches import Bounded
from app.settings import Settings

PROFILES = ("safest", "shortest")
DEFAULT_DETOUR, MIN_DETOUR, MAX_DETOUR = 1.3, 1.0, 3.0
MAX_ALTERNATIVES = 3


@dataclass(frozen=True)
class Weights:
    camera: float
    lit: float
    risk: float
    monitored_bonus: float = 1.0  # live-monitored coverage counts 1 + this


DAY = Weights(camera=1.0, lit=0.3, risk=1.0)
NIGHT = Weights(camera=1.0, lit=2.0, risk=1.5)


@dataclass(frozen=True)
class RouteQuery:
    start: tuple[float, float]   # lon, lat
    end: tuple[float, float]
    profile: str = "safest"
    max_detour: float = DEFAULT_DETOUR
    time: str | None = None      # day | night | ISO 8601 | None (now)


@dataclass(frozen=True)
class When:
    night: bool
    at: datetime                 # the instant opening hours are read at (aware, local time)
    given: str                   # day | night | the time asked (ISO) | now


def when(query_time: str | None, lon: float, lat: float, tz: ZoneInfo, now: datetime) -> When:
    """Day or night, and the instant for opening hours. A time without an offset is local time (tz)."""
    if query_time in ("day", "night"):
        today = now.astimezone(tz).date()
        return When(query_time == "night", routing_hours.local_noon_or_night(query_time, today, tz), query_time)
    if query_time is None:
        at, given = now.astimezone(tz), "now"
    else:
        parsed = datetime.fromisoformat(query_time)
        at = (parsed.replace(tzinfo=tz) if parsed.tzinfo is None else parsed).astimezone(tz)
        given = at.isoformat()
    return When(routing_hours.is_night(lon, lat, at), at, given)


def lit_share(net: Network, untagged_lit: bool) -> np.ndarray:
    """Per segment, the share of its length that is lit."""
    length = np.maximum(net.length, 1e-9)
    lamps = np.clip(net.lamp / length, 0, 1)
    untagged = 1.0 if untagged_lit else 0.0
    return np.where(net.lit_tag == 1, 1.0, np.maximum(lamps, np.where(net.lit_tag == -1, untagged, 0.0)))


_penalties = Bounded(32)


def attributes(net: Network, risk: routing_risk.Risk, weights: Weights, untagged_lit: bool,
               moment: When, place: tuple[float, float]) -> tuple[Attributes, list[str], list[str]]:
    """The request's penalty per segment, shares, and which segments are open; with the opening_hours
    found closed and those that could not be read. The penalties depend only on the network, the
    caller's risk and the weights, so they are kept for the next request."""
    key = (net.key, id(risk), weights, untagged_lit)
    found = _penalties.get(key)
    if found is None or found[0] is not risk:
        length = np.maximum(net.length, 1e-9)
        b = weights.monitored_bonus
        camera = np.clip((net.covered + b * net.monitored) / ((1 + b) * length), 0, 1)
        lit = lit_share(net, untagged_lit)
        pen = weights.camera * (1 - camera) + weights.lit * (1 - lit) + weights.risk * risk.level(net.length)
        found = (risk, pen, np.clip(net.covered / length, 0, 1), lit)
        _penalties[key] = found
    _, pen, camera_share, lit = found
    is_open = np.ones(net.n_edges, dtype=bool)
    closed: set[str] = set()
    unread: set[str] = set()
    for code, hours in enumerate(net.hours_values):
        try:
            if routing_hours.is_open(hours, moment.at, place[0], place[1]):
                continue
        except routing_hours.Unreadable:
            unread.add(hours)
            continue
        shut = np.flatnonzero(net.hours_code == code)
        is_open[shut] = False
        closed.update(words.label(net, int(k)) for k in shut)
    return Attributes(pen, camera_share, lit, is_open), sorted(closed), sorted(unread)


@dataclass
class Plan:
    start: Snap
    end: Snap
    shortest: Walk
    chosen: list[Walk]            # the safest first; empty for the shortest profile
    searches: int
    edges_read: int               # the most segments one search read (the ellipse's doing)
    closed: list[str]
    unread: list[str]
    attrs: Attributes


def plan(net: Network, risk: routing_risk.Risk, query: RouteQuery, moment: When, untagged_lit: bool,
         prune: bool = True) -> Plan:
    """The search, in memory (run in a thread). `prune=False` reads every segment in every search
    (the benchmark's baseline for the ellipse)."""
    weights = NIGHT if moment.night else DAY
    mid = ((query.start[0] + query.end[0]) / 2, (query.start[1] + query.end[1]) / 2)
    attrs, closed, unread = attributes(net, risk, weights, untagged_lit, moment, mid)
    a = net.to_m.transform(*query.start)
    b = net.to_m.transform(*query.end)
    start, end = snap_pair(net, a, b)
    search = Search(net, start, end, attrs, prune)
    shortest = search.shortest()
    chosen: list[Walk] = []
    if query.profile == "safest":
        hull = search.trade_off(shortest, query.max_detour)
        chosen = choose(hull, shortest, query.max_detour, MAX_ALTERNATIVES)
    return Plan(start, end, shortest, chosen, search.runs, search.edges_read, closed, unread, attrs)


def _snapped(net: Network, snap: Snap) -> dict[str, Any]:
    lon, lat = net.to_ll.transform(snap.x, snap.y)
    length = float(net.lines_m[snap.k].length)
    return {"lon": round(lon, 7), "lat": round(lat, 7), "distance_m": round(snap.distance_m, 1),
            "edge_id": int(net.edge_id[snap.k]), "s_m": round(snap.s, 6),
            "fraction": round(snap.s / length, 9) if length > 0 else 0.0,
            "junction": snap.node >= 0, "street": words.label(net, snap.k)}


async def find_routes(session: AsyncSession, partnership_id: int, access: dict, query: RouteQuery,
                      settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """The answer of GET /api/routes, as a GeoJSON FeatureCollection (raises RouteProblem)."""
    started = time.perf_counter()
    current = await routing_graph.versions(session, partnership_id)
    net = await routing_graph.network(session, partnership_id, current)
    if net.n_edges == 0:
        raise RouteProblem("no_network", "The partnership has no walkable street network yet: import "
                                         "OpenStreetMap streets (safermap import osm).")
    risk = await routing_risk.risk_for(session, net, access, current, settings.route_incident_weights)
    tz = ZoneInfo(settings.route_timezone)
    mid = ((query.start[0] + query.end[0]) / 2, (query.start[1] + query.end[1]) / 2)
    moment = when(query.time, mid[0], mid[1], tz, now or datetime.now(UTC))
    result = await asyncio.to_thread(plan, net, risk, query, moment, settings.route_untagged_lit)
    walks = [result.shortest, *result.chosen]
    pieces = [words.coords(net, w) for w in walks]
    drawn = [words.line(net, w, c) for w, c in zip(walks, pieces)]
    lines = [ll for ll, _ in drawn]
    near = [risk.near(m) for _, m in drawn]
    k = settings.suppress_below
    counts = [None if sharing.suppressed(n, exact, k) else n for n, exact in near]
    weights = NIGHT if moment.night else DAY

    def feature(i: int, walk: Walk, profile: str, name: str, explanation: str) -> dict[str, Any]:
        return {"type": "Feature", "geometry": {"type": "LineString", "coordinates": lines[i]},
                "properties": {
                    "profile": profile, "name": name, "length_m": round(walk.length, 1),
                    "duration_s": int(round(walk.length / settings.route_walk_speed_mps)),
                    "camera_share": round(walk.share(walk.covered), 4), "lit_share": round(walk.share(walk.lit), 4),
                    "incidents_near": counts[i], "incidents_suppressed": counts[i] is None,
                    "detour": round(walk.length / result.shortest.length, 4) if result.shortest.length else 1.0,
                    "explanation": explanation, "directions": words.directions(net, walk, pieces[i]),
                    "cost": round(walk.cost, 4), "safety_penalty": round(walk.penalty, 4),
                    "weights": {"lambda": walk.lam, **asdict(weights)}}}

    features = [feature(0, result.shortest, "shortest", "Shortest",
                        words.explain_shortest(result.shortest, counts[0]))]
    for j, walk in enumerate(result.chosen, start=1):
        features.append(feature(j, walk, "safest", "Safest" if j == 1 else f"Alternative {j - 1}",
                                words.explain(net, walk, result.shortest, result.attrs.lit, counts[j], counts[0])))
    sun = routing_hours.sun_times(mid[0], mid[1], moment.at.date(), tz)
    return {
        "type": "FeatureCollection",
        "features": features,
        "query": {"from": list(query.start), "to": list(query.end), "profile": query.profile,
                  "max_detour": query.max_detour, "time": moment.given},
        "time_of_day": "night" if moment.night else "day",
        "sunrise": sun["sunrise"].isoformat() if sun["sunrise"] else None,
        "sunset": sun["sunset"].isoformat() if sun["sunset"] else None,
        "snapped": {"from": _snapped(net, result.start), "to": _snapped(net, result.end)},
        "closed_now": result.closed,
        "opening_hours_unread": result.unread,
        "incident_window": _window(risk.since),
        "searches": result.searches,
        "edges_searched": result.edges_read,
        "edges_total": net.n_edges,
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }


def _window(since: date | None) -> dict[str, str] | None:
    """The 12 months incident figures count, as YYYY-MM."""
    if since is None:
        return None
    last = since.year * 12 + since.month - 1 + 11
    return {"from": f"{since.year:04d}-{since.month:02d}", "to": f"{last // 12:04d}-{last % 12 + 1:02d}"}


def parse_point(value: str | None, name: str) -> tuple[float, float]:
    """'LON,LAT' as two finite numbers on the globe (ValueError otherwise)."""
    if value is None or not value.strip():
        raise ValueError(f"'{name}' is required, as LON,LAT (e.g. {name}=24.9415,60.1712).")
    parts = value.split(",")
    if len(parts) != 2:
        raise ValueError(f"'{name}' must be LON,LAT (two numbers separated by a comma).")
    try:
        lon, lat = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"'{name}' must be LON,LAT (two numbers separated by a comma).") from None
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"'{name}' is not on the globe: longitude -180..180, latitude -90..90.")
    return lon, lat
