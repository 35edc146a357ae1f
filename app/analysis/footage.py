"""Who could have seen it: the cameras whose coverage held a place at a time, or that a walking path
between related incidents crossed, with whose they are and by when their footage must be asked for.

Coverage is whatever `camera_coverage.geom` holds (the line-of-sight polygon once buildings have been
applied) and the quality bands are `camera_coverage_band`: these queries follow them. Whether a camera
worked at the time comes from `camera_status_history` (migration 0011). Distances are measured in the
partnership's metric CRS. Only the caller's partnership's cameras and streets are read; no incident
is read at all (the places and times are the caller's own).
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.domain_errors import InvalidPeriod, InvalidValue, NoRoute, NotEnoughData, OutOfArea, UnknownItem

LOCAL_TZ = ZoneInfo("Europe/London")  # a time given without an offset is UK local time
# UK public-space footage is commonly overwritten after 28-31 days (design brief 6): when a register
# gives no retention, assume the upper end, and say so.
DEFAULT_RETENTION_DAYS = 31
SNAP_MAX_M = 250.0         # an incident further than this from any street vertex cannot be routed
MIN_INCIDENTS, MAX_INCIDENTS = 2, 10
ROUTE_SEARCH_MIN_M = 1000  # the street network is searched this far around the incidents, or more
FUTURE_SLACK = timedelta(minutes=5)  # clocks differ a little; an incident cannot be later than that
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
BANDS = ("identify", "recognise", "observe", "detect")  # best first

# The cameras a list is about: operational at the time; faulty ones are listed apart; planned and
# decommissioned ones never.
LISTED, NOT_OPERATIONAL = "operational", "faulty"

# Each camera's coverage. A camera decommissioned since has lost its coverage row (the trigger deletes
# it), yet may have been working at the time asked about: for those, its plain coverage is drawn again
# by the trigger's own rule (safermap_plain_coverage, app/sql/coverage.sql: the same default angle,
# and the same range from resolution and purpose or mounting height), as assumed.
COVERAGE_SHAPES = """
    shape AS (
        SELECT cc.camera_id, cc.geom FROM camera_coverage cc WHERE cc.partnership_id = :p
        UNION ALL
        SELECT c.id, pc.geom
        FROM camera c
        JOIN partnership pa ON pa.id = c.partnership_id
        CROSS JOIN LATERAL safermap_plain_coverage(c.geom, pa.srid, c.camera_type, c.bearing, c.fov, c.range_m,
                                                   c.height_m, c.resolution_px, c.purpose) AS pc
        WHERE c.partnership_id = :p AND c.status = 'decommissioned'
          AND NOT EXISTS (SELECT 1 FROM camera_coverage cc WHERE cc.camera_id = c.id)
    )"""

BAND_RANK = "array_position(ARRAY[{}], b.band)".format(", ".join(f"'{b}'" for b in BANDS))  # best first

# Cameras whose coverage contains a point, with their distance to it and the best band holding it.
POINT_HITS = text(f"""
    WITH q AS (SELECT ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), 4326) AS pt),
    {COVERAGE_SHAPES}
    SELECT s.camera_id,
           ST_Distance(ST_Transform(c.geom, CAST(:srid AS integer)),
                       ST_Transform(q.pt, CAST(:srid AS integer))) AS distance_m,
           (SELECT b.band FROM camera_coverage_band b
            WHERE b.camera_id = s.camera_id AND ST_Intersects(b.geom, q.pt)
            ORDER BY {BAND_RANK} LIMIT 1) AS band
    FROM q, shape s JOIN camera c ON c.id = s.camera_id
    WHERE ST_Intersects(s.geom, q.pt)
""")

# What a footage request needs to know of each camera, and its status at a time of its own: the
# period of its history holding that time, else (registered later) its earliest known status.
CAMERA_FACTS = text("""
    SELECT c.id, c.reference, c.name, a.name AS owner_agency, c.contact, c.monitored, c.camera_type,
           c.status AS status_now, c.retention_days, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat,
           coalesce(cc.assumed, true) AS coverage_assumed, coalesce(cc.line_of_sight, false) AS line_of_sight,
           coalesce(th.status, fst.status, c.status) AS status_at_time, th.status IS NOT NULL AS status_known
    FROM unnest(CAST(:ids AS integer[]), CAST(:ats AS timestamptz[])) AS q(camera_id, at)
    JOIN camera c ON c.id = q.camera_id AND c.partnership_id = :p
    LEFT JOIN agency a ON a.id = c.owner_agency_id
    LEFT JOIN camera_coverage cc ON cc.camera_id = c.id
    LEFT JOIN LATERAL (
        SELECT h.status FROM camera_status_history h
        WHERE h.camera_id = c.id AND h.valid_from <= q.at AND (h.valid_to IS NULL OR h.valid_to > q.at)
        ORDER BY h.valid_from DESC, h.id DESC LIMIT 1) AS th ON true
    LEFT JOIN LATERAL (
        SELECT h.status FROM camera_status_history h WHERE h.camera_id = c.id
        ORDER BY h.valid_from, h.id LIMIT 1) AS fst ON true
""")

STATUS_HISTORY = text("""
    SELECT h.status, h.valid_from, h.valid_to
    FROM camera_status_history h JOIN camera c ON c.id = h.camera_id
    WHERE c.id = :id AND c.partnership_id = :p
    ORDER BY h.valid_from, h.id
""")
CAMERA_REFERENCE = text("SELECT reference FROM camera WHERE id = :id AND partnership_id = :p")


# The nearest named street, to say where a point is on a printed list.
PLACE_NAME = text("""
    SELECT 'On or near ' || s.name
    FROM (SELECT name, geom FROM street
          WHERE partnership_id = :p AND coalesce(name, '') <> ''
          ORDER BY geom <-> ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), 4326)
          LIMIT 1) AS s
    WHERE ST_Distance(ST_Transform(s.geom, CAST(:srid AS integer)),
                      ST_Transform(ST_SetSRID(ST_MakePoint(CAST(:lon AS float8), CAST(:lat AS float8)), 4326),
                                   CAST(:srid AS integer))) <= :near_m
""")
PLACE_NEAR_M = 100

# The box, in WGS84, that the route search is held to: around all the incidents, by at least
# ROUTE_SEARCH_MIN_M or half their spread.
SEARCH_BOX = text("""
    WITH m AS (
        SELECT ST_Transform(ST_SetSRID(ST_Collect(ST_MakePoint(s.lon, s.lat)), 4326),
                            CAST(:srid AS integer)) AS pts
        FROM unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) AS s(lon, lat)
    ), b AS (
        SELECT Box2D(ST_Transform(ST_Expand(ST_Envelope(pts), greatest(CAST(:search_m AS float8),
                                                                   0.5 * ST_MaxDistance(pts, pts))), 4326)) AS b
        FROM m
    )
    SELECT ST_XMin(b) AS x0, ST_YMin(b) AS y0, ST_XMax(b) AS x1, ST_YMax(b) AS y1 FROM b
""")
EDGES = ("SELECT id, source, target, cost, reverse_cost FROM route_edge WHERE partnership_id = {p} "
         "AND geom && ST_MakeEnvelope({x0!r}, {y0!r}, {x1!r}, {y1!r}, 4326)")

# Each incident's nearest street vertex, and its nearest on the main network within the search box
# (the largest connected piece): a footway island or a courtyard path nearer to an incident is no
# start for a walk that has to reach the others. The 8 nearest in degrees are re-ranked in metres.
SNAP = text("""
    WITH s AS (
        SELECT s.i, ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326) AS pt
        FROM unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[])) WITH ORDINALITY AS s(lon, lat, i)
    ), piece AS (
        SELECT node, component FROM pgr_connectedComponents(CAST(:edges AS text))
    ), main AS (
        SELECT node FROM piece WHERE component = (
            SELECT component FROM piece GROUP BY component ORDER BY count(*) DESC, component LIMIT 1)
    )
    SELECT s.i, near.id AS vertex, near.distance_m, joined.id AS joined_vertex, joined.distance_m AS joined_m
    FROM s
    LEFT JOIN LATERAL (
        SELECT n.id, ST_Distance(ST_Transform(n.geom, CAST(:srid AS integer)),
                                 ST_Transform(s.pt, CAST(:srid AS integer))) AS distance_m
        FROM (SELECT v.id, v.geom FROM route_vertex v WHERE v.partnership_id = :p
              ORDER BY v.geom <-> s.pt LIMIT 8) AS n
        ORDER BY 2 LIMIT 1) AS near ON true
    LEFT JOIN LATERAL (
        SELECT n.id, ST_Distance(ST_Transform(n.geom, CAST(:srid AS integer)),
                                 ST_Transform(s.pt, CAST(:srid AS integer))) AS distance_m
        FROM (SELECT v.id, v.geom FROM route_vertex v JOIN main ON main.node = v.id
              WHERE v.partnership_id = :p ORDER BY v.geom <-> s.pt LIMIT 8) AS n
        ORDER BY 2 LIMIT 1) AS joined ON true
    ORDER BY s.i
""")

# The walking path, leg by leg, as steps in walking order: the incident to its street vertex, the
# shortest path's edges (each turned to run the way it is walked), the last vertex to the next incident.
ROUTE = text("""
    WITH stop AS (
        SELECT s.i, ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326) AS pt, s.v
        FROM unnest(CAST(:lons AS float8[]), CAST(:lats AS float8[]), CAST(:vertices AS bigint[]))
             WITH ORDINALITY AS s(lon, lat, v, i)
    ), leg AS (
        SELECT a.i - 1 AS leg, a.pt AS pa, b.pt AS pb, a.v AS va, b.v AS vb
        FROM stop a JOIN stop b ON b.i = a.i + 1
    ), step AS (
        SELECT l.leg, 0 AS seq, false AS street, ST_MakeLine(l.pa, v.geom) AS geom
        FROM leg l JOIN route_vertex v ON v.id = l.va
        UNION ALL
        SELECT l.leg, d.seq, true, CASE WHEN d.node = e.source THEN e.geom ELSE ST_Reverse(e.geom) END
        FROM leg l
        CROSS JOIN LATERAL pgr_dijkstra(CAST(:edges AS text), l.va, l.vb, directed => false) AS d
        JOIN route_edge e ON e.id = d.edge
        UNION ALL
        SELECT l.leg, 2147483647, false, ST_MakeLine(v.geom, l.pb)
        FROM leg l JOIN route_vertex v ON v.id = l.vb
    )
    SELECT leg, seq, street, ST_Length(ST_Transform(geom, CAST(:srid AS integer))) AS length_m,
           ST_AsGeoJSON(geom) AS geojson
    FROM step ORDER BY leg, seq
""")

# Where the path runs through each camera's coverage: the first entry and the last exit, as metres
# along the path (each step is located on its own, so a path that doubles back is measured right),
# the camera's distance to the covered stretch, and the best band the path passes through.
CROSSINGS = text(f"""
    WITH step AS (
        SELECT s.start_m, g.geom, ST_Transform(g.geom, CAST(:srid AS integer)) AS gm
        FROM unnest(CAST(:steps AS text[]), CAST(:starts AS float8[])) AS s(gj, start_m)
        CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_GeomFromGeoJSON(s.gj), 4326) AS geom) AS g
    ), {COVERAGE_SHAPES},
    piece AS (
        SELECT sh.camera_id, st.start_m, st.gm, d.geom AS pg
        FROM step st JOIN shape sh ON ST_Intersects(sh.geom, st.geom)
        CROSS JOIN LATERAL ST_Dump(ST_Intersection(st.gm, ST_Transform(sh.geom, CAST(:srid AS integer)))) AS d
    ), located AS (
        SELECT camera_id, gm,
               start_m + ST_Length(gm) * ST_LineLocatePoint(gm, CASE WHEN GeometryType(pg) = 'POINT'
                                                            THEN pg ELSE ST_StartPoint(pg) END) AS a_m,
               start_m + ST_Length(gm) * ST_LineLocatePoint(gm, CASE WHEN GeometryType(pg) = 'POINT'
                                                            THEN pg ELSE ST_EndPoint(pg) END) AS b_m
        FROM piece WHERE GeometryType(pg) IN ('POINT', 'LINESTRING')
    )
    SELECT l.camera_id, min(least(a_m, b_m)) AS enter_m, max(greatest(a_m, b_m)) AS leave_m,
           min(ST_Distance(ST_Transform(c.geom, CAST(:srid AS integer)), l.gm)) AS distance_m,
           (SELECT b.band FROM camera_coverage_band b
            WHERE b.camera_id = l.camera_id
              AND EXISTS (SELECT 1 FROM step st WHERE ST_Intersects(b.geom, st.geom))
            ORDER BY {BAND_RANK} LIMIT 1) AS band
    FROM located l JOIN camera c ON c.id = l.camera_id
    GROUP BY l.camera_id
""")


# ---- times ---------------------------------------------------------------------------------

OFFSET_LOST_PLUS = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}(?::?\d{2})?)$")


def parse_at(value: str | None, name: str = "at", *, now: datetime | None = None) -> datetime:
    """An ISO 8601 date-time; naive means Europe/London. A '+' of an offset that arrived as a space
    (an unencoded query string) is put back."""
    now = now or datetime.now(UTC)
    if value is None or not value.strip():
        raise InvalidPeriod(f"{name} is missing: give an ISO 8601 date-time such as 2026-03-01T22:15.")
    raw = OFFSET_LOST_PLUS.sub(r"\1+\2", value.strip())
    if len(raw) <= 10:
        raise InvalidPeriod(f"{name} needs a time of day as well as a date (e.g. {raw}T22:15).")
    try:
        at = datetime.fromisoformat(raw)
    except ValueError as e:
        raise InvalidPeriod(f"{name} must be an ISO 8601 date-time such as 2026-03-01T22:15:00+00:00.") from e
    if at.tzinfo is None:
        at = at.replace(tzinfo=LOCAL_TZ)
    if at < EARLIEST:
        raise InvalidPeriod(f"{name} must be after 2000-01-01.")
    if at > now + FUTURE_SLACK:
        raise InvalidPeriod(f"{name} is in the future; footage can only be asked for what has happened.")
    return at


def iso(at: datetime) -> str:
    """UK local time with its offset: what a control room reads, and still unambiguous."""
    return at.astimezone(LOCAL_TZ).isoformat(timespec="seconds")


def check_lon_lat(lon: float, lat: float, where: str = "") -> None:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InvalidValue(f"{where}lon and lat must be finite numbers.")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidValue(f"{where}lon must be within -180..180 and lat within -90..90 (WGS84 degrees).")


@dataclass(frozen=True)
class Leg:
    """A stretch of the path between two incidents, in metres along the whole path."""
    start_m: float
    length_m: float
    start: datetime
    end: datetime


def time_along(distance_m: float, legs: Sequence[Leg]) -> datetime:
    """The time someone walking the path at an even pace on each leg was `distance_m` along it."""
    for leg in legs:
        if distance_m <= leg.start_m + leg.length_m or leg is legs[-1]:
            if leg.length_m <= 0:
                return leg.start
            share = min(1.0, max(0.0, (distance_m - leg.start_m) / leg.length_m))
            return leg.start + (leg.end - leg.start) * share
    raise ValueError("no legs")


def retention(days: int | None) -> tuple[int, bool]:
    return (DEFAULT_RETENTION_DAYS, True) if days is None else (days, False)


def camera_entry(row: Any, at: datetime, now: datetime, **extra: Any) -> dict[str, Any]:
    """One camera of a footage-request list. `at` is when its footage starts to matter."""
    days, assumed = retention(row.retention_days)
    request_by = at + timedelta(days=days)
    return {
        "id": row.id, "reference": row.reference, "name": row.name, "owner_agency": row.owner_agency,
        "contact": row.contact, "monitored": row.monitored, "camera_type": row.camera_type,
        "status_at_time": row.status_at_time, "status_known": row.status_known, "status_now": row.status_now,
        **extra,
        "coverage_assumed": row.coverage_assumed, "line_of_sight": row.line_of_sight,
        "retention_days": days, "retention_assumed": assumed,
        "request_by": iso(request_by), "expired": request_by < now,
        "lon": row.lon, "lat": row.lat,
    }


async def _facts(session: AsyncSession, partnership_id: int, times: dict[int, datetime]) -> dict[int, Any]:
    if not times:
        return {}
    ids = list(times)
    rows = (await session.execute(CAMERA_FACTS, {"p": partnership_id, "ids": ids,
                                                 "ats": [times[i] for i in ids]})).all()
    return {r.id: r for r in rows}


def _split(entries: list[tuple[Any, dict]]) -> tuple[list[dict], list[dict]]:
    listed = [e for r, e in entries if r.status_at_time == LISTED]
    faulty = [e for r, e in entries if r.status_at_time == NOT_OPERATIONAL]
    return listed, faulty


# ---- a place and a time --------------------------------------------------------------------

async def cameras_at(session: AsyncSession, partnership_id: int, srid: int, lon: float, lat: float,
                     at: datetime, *, now: datetime | None = None) -> dict[str, Any]:
    """The cameras whose coverage contained (lon, lat) and that worked at `at`, nearest first;
    those that were faulty then apart."""
    now = now or datetime.now(UTC)
    check_lon_lat(lon, lat)
    hits = (await session.execute(POINT_HITS, {"p": partnership_id, "srid": srid, "lon": lon, "lat": lat})).all()
    facts = await _facts(session, partnership_id, {h.camera_id: at for h in hits})
    entries = [(facts[h.camera_id], camera_entry(facts[h.camera_id], at, now,
                                                 distance_m=round(h.distance_m, 1), band=h.band))
               for h in sorted(hits, key=lambda h: (h.distance_m, h.camera_id)) if h.camera_id in facts]
    cameras, not_operational = _split(entries)
    return {"point": {"lon": lon, "lat": lat}, "at": iso(at), "cameras": cameras,
            "not_operational": not_operational}


async def status_history(session: AsyncSession, partnership_id: int, camera_id: int) -> dict[str, Any]:
    reference = (await session.execute(CAMERA_REFERENCE, {"id": camera_id, "p": partnership_id})).scalar()
    if reference is None:
        raise UnknownItem(f"No camera {camera_id} in your partnership.")
    rows = (await session.execute(STATUS_HISTORY, {"id": camera_id, "p": partnership_id})).all()
    return {"camera_id": camera_id, "reference": reference,
            "history": [{"status": r.status, "valid_from": iso(r.valid_from),
                         "valid_to": iso(r.valid_to) if r.valid_to else None} for r in rows]}


# ---- a path between related incidents --------------------------------------------------------

@dataclass(frozen=True)
class Stop:
    lon: float
    lat: float
    at: datetime
    label: str = ""


@dataclass(frozen=True)
class Step:
    leg: int
    length_m: float
    coordinates: list[list[float]]
    geojson: str


async def _snap(session: AsyncSession, partnership_id: int, srid: int,
                stops: Sequence[Stop]) -> tuple[list[int], list[float], str]:
    """Each incident's street vertex and how far it is, and the edges the route search may use."""
    where = {"lons": [s.lon for s in stops], "lats": [s.lat for s in stops]}
    box = (await session.execute(SEARCH_BOX, {**where, "srid": srid, "search_m": ROUTE_SEARCH_MIN_M})).one()
    edges = EDGES.format(p=int(partnership_id), x0=float(box.x0), y0=float(box.y0), x1=float(box.x1),
                         y1=float(box.y1))
    rows = (await session.execute(SNAP, {**where, "p": partnership_id, "srid": srid, "edges": edges})).all()
    if all(r.vertex is None for r in rows):
        raise NotEnoughData("Your partnership has no walkable street network yet: import streets first "
                            "(safermap import osm).")
    for i, r in enumerate(rows):
        if r.joined_vertex is not None and r.joined_m <= SNAP_MAX_M:
            continue
        if r.vertex is not None and r.distance_m <= SNAP_MAX_M:
            raise NoRoute(f"No walking route over the imported streets joins incidents[{i}] to the "
                                f"others: its nearest streets are not joined to theirs within "
                                f"{ROUTE_SEARCH_MIN_M:,} m.", incident=i)
        far = f"{r.distance_m:,.0f} m" if r.vertex is not None else "far"
        raise OutOfArea(f"incidents[{i}] is {far} from the nearest walkable street; it must be within "
                         f"{SNAP_MAX_M:.0f} m to be routed.", incident=i)
    return [r.joined_vertex for r in rows], [r.joined_m for r in rows], edges


async def _route(session: AsyncSession, srid: int, stops: Sequence[Stop], vertices: list[int],
                 edges: str) -> list[Step]:
    rows = (await session.execute(ROUTE, {"srid": srid, "edges": edges, "vertices": vertices,
                                          "lons": [s.lon for s in stops], "lats": [s.lat for s in stops]})).all()
    for leg in range(len(stops) - 1):
        routed = any(r.leg == leg and r.street for r in rows)
        if vertices[leg] != vertices[leg + 1] and not routed:
            raise NoRoute(f"No walking route over the imported streets joins incidents[{leg}] and "
                                f"incidents[{leg + 1}] (searched within {ROUTE_SEARCH_MIN_M:,} m of them).",
                                leg=leg)
    return [Step(r.leg, r.length_m, json.loads(r.geojson)["coordinates"], r.geojson)
            for r in rows if r.length_m > 0]


def _legs(stops: Sequence[Stop], steps: Sequence[Step]) -> list[Leg]:
    legs, start = [], 0.0
    for k in range(len(stops) - 1):
        length = sum(s.length_m for s in steps if s.leg == k)
        legs.append(Leg(start, length, stops[k].at, stops[k + 1].at))
        start += length
    return legs


def _line(steps: Sequence[Step], stops: Sequence[Stop]) -> list[list[float]]:
    """The steps joined into one LineString's positions (shared ends once)."""
    coords: list[list[float]] = []
    for step in steps:
        for c in step.coordinates:
            if not coords or coords[-1] != c:
                coords.append(c)
    if len(coords) < 2:  # every incident at one spot: a line of no length, still valid GeoJSON
        coords = [[stops[0].lon, stops[0].lat], [stops[-1].lon, stops[-1].lat]]
    return coords


async def path_pack(session: AsyncSession, partnership_id: int, srid: int, stops: Sequence[Stop],
                    margin_minutes: int, *, now: datetime | None = None) -> dict[str, Any]:
    """The likely walking path between the incidents and every camera that worked then and whose
    coverage it crosses, in the order the path meets them, with the time window to ask for."""
    now = now or datetime.now(UTC)
    if not MIN_INCIDENTS <= len(stops) <= MAX_INCIDENTS:
        raise InvalidValue(f"Give {MIN_INCIDENTS} to {MAX_INCIDENTS} incidents; got {len(stops)}.")
    for i, s in enumerate(stops):
        check_lon_lat(s.lon, s.lat, f"incidents[{i}]: ")
        if i and s.at < stops[i - 1].at:
            raise InvalidPeriod(f"incidents must be in time order: incidents[{i}] is earlier than "
                             f"incidents[{i - 1}].", incident=i)
    vertices, snapped, edges = await _snap(session, partnership_id, srid, stops)
    steps = await _route(session, srid, stops, vertices, edges)
    legs = _legs(stops, steps)
    starts, run = [], 0.0
    for step in steps:
        starts.append(run)
        run += step.length_m

    crossings = (await session.execute(CROSSINGS, {"p": partnership_id, "srid": srid, "starts": starts,
                                                   "steps": [s.geojson for s in steps]})).all() if steps else []
    entered = {c.camera_id: time_along(c.enter_m, legs) for c in crossings}
    facts = await _facts(session, partnership_id, entered)
    margin = timedelta(minutes=margin_minutes)
    entries = []
    for c in sorted(crossings, key=lambda c: (c.enter_m, c.camera_id)):
        if c.camera_id not in facts:
            continue
        window_start = entered[c.camera_id] - margin
        window_end = time_along(c.leave_m, legs) + margin
        entries.append((facts[c.camera_id], camera_entry(
            facts[c.camera_id], window_start, now, distance_m=round(c.distance_m, 1), band=c.band,
            distance_along_m=round(c.enter_m, 1), window_start=iso(window_start), window_end=iso(window_end))))
    cameras, not_operational = _split(entries)
    return {
        "path": {"type": "LineString", "coordinates": _line(steps, stops)},
        "length_m": round(sum(leg.length_m for leg in legs), 1),
        "legs": [{"from": k, "to": k + 1, "length_m": round(leg.length_m, 1), "start": iso(leg.start),
                  "end": iso(leg.end), "start_m": round(leg.start_m, 1),
                  "end_m": round(leg.start_m + leg.length_m, 1)} for k, leg in enumerate(legs)],
        "incidents": [{"lon": s.lon, "lat": s.lat, "at": iso(s.at), "label": s.label,
                       "snapped_m": round(d, 1)} for s, d in zip(stops, snapped)],
        "margin_minutes": margin_minutes,
        "cameras": cameras,
        "not_operational": not_operational,
    }



async def place_name(session: AsyncSession, partnership_id: int, srid: int, lon: float, lat: float) -> str | None:
    return (await session.execute(PLACE_NAME, {"p": partnership_id, "srid": srid, "lon": lon, "lat": lat,
                                               "near_m": PLACE_NEAR_M})).scalar()
