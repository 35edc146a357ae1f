"""Published safe routes: named walks an analyst saves for the partnership ("Night-time economy to
Piccadilly"), drawn by the `safe_routes` layer (view layer_safe_routes) on the overview and in
embeds that include it.

A published route is computed as the least-privileged reader of the layer sees incidents
(routing_risk.public_access: an embed's view), so its line and figures reveal nothing those readers
may not see. Its figures (share under working cameras, incidents near it) are refreshed in the
database at the commit of any change of coverage or incidents (safermap_refresh_published_routes,
app/sql/route_safety.sql); `safermap routes refresh` also searches each route again, for changes
of the network, lighting or parks.
"""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis import routing, routing_risk
from app.auth import Principal
from app.settings import Settings

INSERT = text("""
    INSERT INTO route_published (partnership_id, name, profile, max_detour, time_of_day, from_geom, to_geom,
                                 geom, length_m, camera_share, lit_share, suppress_below, explanation, created_by)
    VALUES (:p, :name, :profile, :detour, :tod, ST_SetSRID(ST_MakePoint(:x0, :y0), 4326),
            ST_SetSRID(ST_MakePoint(:x1, :y1), 4326), ST_SetSRID(ST_GeomFromGeoJSON(:line), 4326),
            :length, :camera, :lit, :k, :explanation, :by)
    RETURNING id
""")
UPDATE = text("""
    UPDATE route_published SET geom = ST_SetSRID(ST_GeomFromGeoJSON(:line), 4326), length_m = :length,
        camera_share = :camera, lit_share = :lit, suppress_below = :k, explanation = :explanation
    WHERE id = :id
""")
FIGURES = text("SELECT safermap_refresh_published_routes(:p)")
LIST = text("""
    SELECT r.id, r.name, r.profile, r.max_detour, r.time_of_day, ST_AsGeoJSON(r.geom) AS geometry,
           ST_X(r.from_geom) AS x0, ST_Y(r.from_geom) AS y0, ST_X(r.to_geom) AS x1, ST_Y(r.to_geom) AS y1,
           r.length_m, r.camera_share, r.lit_share, r.incidents_near, r.suppress_below, r.explanation,
           r.created_at, r.evaluated_at
    FROM route_published r WHERE r.partnership_id = :p AND (CAST(:id AS integer) IS NULL OR r.id = :id)
    ORDER BY r.name, r.id
""")
DELETE = text("DELETE FROM route_published WHERE partnership_id = :p AND id = :id RETURNING id")


def _values(feature: dict[str, Any]) -> dict[str, Any]:
    props = feature["properties"]
    return {"line": json.dumps(feature["geometry"]), "length": props["length_m"],
            "camera": props["camera_share"], "lit": props["lit_share"], "explanation": props["explanation"]}


async def _route(session: AsyncSession, partnership_id: int, query: routing.RouteQuery,
                 settings: Settings) -> dict[str, Any]:
    """The walk to publish: the safest (or the shortest), searched as the public sees incidents."""
    result = await routing.find_routes(session, partnership_id, routing_risk.public_access(partnership_id),
                                       query, settings)
    return result["features"][1 if query.profile == "safest" and len(result["features"]) > 1 else 0]


async def publish(session: AsyncSession, principal: Principal, name: str, query: routing.RouteQuery,
                  settings: Settings) -> dict[str, Any]:
    feature = await _route(session, principal.partnership_id, query, settings)
    route_id = (await session.execute(INSERT, {
        "p": principal.partnership_id, "name": name, "profile": query.profile, "detour": query.max_detour,
        "tod": query.time, "x0": query.start[0], "y0": query.start[1], "x1": query.end[0], "y1": query.end[1],
        "k": settings.suppress_below, "by": principal.id, **_values(feature)})).scalar_one()
    await session.execute(FIGURES, {"p": principal.partnership_id})
    return (await listing(session, principal.partnership_id, route_id))["features"][0]


async def reevaluate(session: AsyncSession, partnership_id: int, settings: Settings) -> tuple[int, int]:
    """Search every published route of the partnership again; (routes updated, routes that can no
    longer be walked, kept as they were)."""
    rows = (await session.execute(LIST, {"p": partnership_id, "id": None})).mappings().all()
    done = failed = 0
    for r in rows:
        query = routing.RouteQuery((r["x0"], r["y0"]), (r["x1"], r["y1"]), r["profile"], r["max_detour"],
                                   r["time_of_day"])
        try:
            feature = await _route(session, partnership_id, query, settings)
        except routing.RouteProblem:
            failed += 1
            continue
        await session.execute(UPDATE, {"id": r["id"], "k": settings.suppress_below, **_values(feature)})
        done += 1
    await session.execute(FIGURES, {"p": partnership_id})
    return done, failed


async def listing(session: AsyncSession, partnership_id: int, route_id: int | None = None) -> dict[str, Any]:
    """The published routes as GeoJSON; incident counts below the route's suppression threshold are
    null (they are counted at anonymous points, never all exact)."""
    rows = (await session.execute(LIST, {"p": partnership_id, "id": route_id})).mappings().all()
    features = []
    for r in rows:
        n = r["incidents_near"]
        hidden = n is not None and 0 < n < r["suppress_below"]
        features.append({"type": "Feature", "id": r["id"], "geometry": json.loads(r["geometry"]), "properties": {
            "id": r["id"], "name": r["name"], "profile": r["profile"], "max_detour": r["max_detour"],
            "time": r["time_of_day"], "from": [r["x0"], r["y0"]], "to": [r["x1"], r["y1"]],
            "length_m": round(r["length_m"], 1), "camera_share": round(r["camera_share"], 4),
            "lit_share": round(r["lit_share"], 4), "incidents_near": None if hidden else n,
            "incidents_suppressed": hidden, "explanation": r["explanation"],
            "created_at": r["created_at"].isoformat(), "evaluated_at": r["evaluated_at"].isoformat()}})
    return {"type": "FeatureCollection", "features": features}


async def delete(session: AsyncSession, partnership_id: int, route_id: int) -> bool:
    return (await session.execute(DELETE, {"p": partnership_id, "id": route_id})).first() is not None
