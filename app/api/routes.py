"""Safe walking routes: GET /api/routes, the published routes (the `safe_routes` layer), the route
page /maps/routes and its printable A4 sheet. The search is in app/analysis/routing*.py."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from app import sharing
from app.analysis import routing, routing_published
from app.analysis.routing_search import RouteProblem
from app.api.deps import Analyst, SessionDep, SettingsDep, Viewer
from app.api.maps import _html, _to_sign_in, page_role
from app.auth import Principal
from app.errors import BadRequest, NotFound, Unprocessable
from app.pages import routes as route_pages

router = APIRouter(tags=["routes"])
MIN_YEAR, MAX_YEAR = 1900, 2200  # sunsets and time zones are only asked about within these

ProfileQuery = Annotated[str, Query(max_length=20, description="safest (default) or shortest")]
DetourQuery = Annotated[str | None, Query(max_length=20, description=(
    f"the safest walk is at most this times the shortest ({routing.MIN_DETOUR}..{routing.MAX_DETOUR}, "
    f"default {routing.DEFAULT_DETOUR})"))]
PageViewer = Annotated[Principal | None, Depends(page_role("viewer"))]


def build_query(start: str | None, end: str | None, profile: str, max_detour: str | float | None,
                when: str | None) -> routing.RouteQuery:
    try:
        a = routing.parse_point(start, "from")
        b = routing.parse_point(end, "to")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if profile not in routing.PROFILES:
        raise BadRequest(f"Unknown profile '{profile[:20]}': use safest or shortest.")
    detour = routing.DEFAULT_DETOUR
    if max_detour is not None and str(max_detour).strip():
        try:
            detour = float(max_detour)
        except ValueError:
            raise BadRequest("max_detour must be a number, e.g. 1.3.") from None
        if not routing.MIN_DETOUR <= detour <= routing.MAX_DETOUR:
            raise BadRequest(f"max_detour must be between {routing.MIN_DETOUR} and {routing.MAX_DETOUR}.")
    if when is not None and when not in ("day", "night"):
        try:
            moment = datetime.fromisoformat(when)
        except ValueError:
            raise BadRequest("time must be day, night or an ISO 8601 date-time such as 2026-03-01T22:15.") from None
        if not MIN_YEAR <= moment.year <= MAX_YEAR:
            raise BadRequest(f"time must be between the years {MIN_YEAR} and {MAX_YEAR}.")
    return routing.RouteQuery(a, b, profile, detour, when)


def _query_dep(start: Annotated[str | None, Query(alias="from", max_length=60, description="LON,LAT")] = None,
               end: Annotated[str | None, Query(alias="to", max_length=60, description="LON,LAT")] = None,
               profile: ProfileQuery = "safest", max_detour: DetourQuery = None,
               when: Annotated[str | None, Query(alias="time", max_length=40, description=(
                   "day, night or an ISO 8601 date-time (no offset: SAFERMAP_ROUTE_TIMEZONE); default now"))] = None,
               ) -> routing.RouteQuery:
    return build_query(start, end, profile, max_detour, when)


RouteQueryDep = Annotated[routing.RouteQuery, Depends(_query_dep)]


async def answer(session, principal: Principal, query: routing.RouteQuery, settings) -> dict[str, Any]:
    try:
        return await routing.find_routes(session, principal.partnership_id, sharing.access_params(principal),
                                         query, settings)
    except RouteProblem as exc:
        raise Unprocessable(exc.detail, reason=exc.reason) from None


@router.get("/api/routes", summary="Walking routes: the shortest, and the safest with alternatives")
async def get_routes(principal: Viewer, session: SessionDep, settings: SettingsDep,
                     query: RouteQueryDep) -> dict[str, Any]:
    """A GeoJSON FeatureCollection: the shortest walk, and for `profile=safest` up to three walks on
    the trade-off between length and safety (the safest first), each with `length_m`, `duration_s`,
    `camera_share`, `lit_share`, `incidents_near` (within 25 m, last 12 months, as you may see them;
    null when suppressed), `detour`, `explanation` and `directions`."""
    return await answer(session, principal, query, settings)


class PublishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, description='e.g. "Night-time economy to Piccadilly"')
    start: str = Field(alias="from", max_length=60, description="LON,LAT")
    end: str = Field(alias="to", max_length=60, description="LON,LAT")
    profile: str = Field("safest", max_length=20, description="safest or shortest")
    max_detour: float = Field(routing.DEFAULT_DETOUR, ge=routing.MIN_DETOUR, le=routing.MAX_DETOUR,
                              allow_inf_nan=False)
    time: str = Field("night", pattern="^(day|night)$", description="day or night")


@router.post("/api/routes/published", status_code=201, summary="Publish a named safe route (layer safe_routes)")
async def publish_route(body: PublishRequest, principal: Analyst, session: SessionDep,
                        settings: SettingsDep) -> dict[str, Any]:
    """Saves the route as the partnership's published route: it is computed as the least-privileged
    reader of the layer sees incidents (an embed: anonymous points, default sharing levels), so the
    line reveals nothing the layer's readers may not see. Its figures are refreshed when cameras or
    incidents change."""
    query = build_query(body.start, body.end, body.profile, body.max_detour, body.time)
    name = body.name.strip()
    if not name:
        raise BadRequest("name must not be blank.")
    try:
        feature = await routing_published.publish(session, principal, name, query, settings)
    except RouteProblem as exc:
        raise Unprocessable(exc.detail, reason=exc.reason) from None
    await session.commit()
    return feature


@router.get("/api/routes/published", summary="The partnership's published routes (GeoJSON)")
async def list_published(principal: Viewer, session: SessionDep) -> dict[str, Any]:
    return await routing_published.listing(session, principal.partnership_id)


@router.delete("/api/routes/published/{route_id}", status_code=204, summary="Withdraw a published route")
async def delete_published(route_id: Annotated[int, Path(ge=1, le=2**31 - 1)], principal: Analyst,
                           session: SessionDep) -> Response:
    if not await routing_published.delete(session, principal.partnership_id, route_id):
        raise NotFound(f"There is no published route {route_id}.")
    await session.commit()
    return Response(status_code=204)


STREETS = text("""
    SELECT s.name, ST_X(s.pt) AS lon, ST_Y(s.pt) AS lat
    FROM (SELECT name, ST_LineInterpolatePoint((array_agg(geom ORDER BY ST_NPoints(geom) DESC, id))[1], 0.5) AS pt,
                 min(CASE WHEN lower(name) LIKE :prefix ESCAPE '\\' THEN 0 ELSE 1 END) AS rank
          FROM street
          WHERE partnership_id = :p AND name IS NOT NULL AND lower(name) LIKE :inner ESCAPE '\\'
          GROUP BY name) AS s
    ORDER BY s.rank, length(s.name), s.name
    LIMIT :limit
""")
MAX_STREET_MATCHES = 10


def _like(value: str) -> str:
    return value.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@router.get("/api/routes/streets", summary="The partnership's streets whose names match (for the route page)")
async def street_names(principal: Viewer, session: SessionDep,
                       q: Annotated[str, Query(min_length=2, max_length=100, description="part of a street name")],
                       ) -> dict[str, Any]:
    """Offline: matched against the partnership's own street names (names starting with `q` first),
    each with a point on the street."""
    term = _like(q.strip())
    rows = (await session.execute(STREETS, {"p": principal.partnership_id, "prefix": f"{term}%",
                                            "inner": f"%{term}%", "limit": MAX_STREET_MATCHES})).all()
    return {"streets": [{"name": r.name, "lon": round(r.lon, 7), "lat": round(r.lat, 7)} for r in rows]}


@router.get("/maps/routes", response_class=HTMLResponse, summary="The safe walking routes page")
async def routes_page(request: Request, session: SessionDep, settings: SettingsDep,
                      principal: PageViewer) -> Response:
    if principal is None:
        return _to_sign_in(request)
    config = await route_pages.page_config(session, principal)
    body, csp = route_pages.routes_html(settings.static_dir, config)
    return _html(body, csp)


@router.get("/maps/routes/print", response_class=HTMLResponse, summary="A printable A4 route sheet")
async def route_sheet(request: Request, session: SessionDep, settings: SettingsDep, principal: PageViewer,
                      query: RouteQueryDep) -> Response:
    if principal is None:
        return _to_sign_in(request)
    result = await answer(session, principal, query, settings)
    body, csp = await route_pages.sheet(session, principal, result, request.url.query, settings.static_dir)
    return _html(body, csp)
