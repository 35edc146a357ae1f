"""Footage requests for the CCTV control room: which cameras could have seen a place at a time, or a
walking path between related incidents, whose they are, and by when to ask for their footage; a
camera's status history; and the printable footage-request list.

Each lookup is audited (counts only, never the place). The logic and SQL are in app/analysis/footage.py.
"""
from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app import audit
from app.analysis import footage
from app.api.deps import (
    AtQuery,
    LatQuery,
    LonQuery,
    PointAtDep,
    SessionDep,
    SettingsDep,
    Viewer,
    parse_coordinate,
    parse_point_at,
)
from app.api.maps import page_role
from app.api.schemas import ApiModel
from app.auth import Principal
from app.errors import BadRequest
from app.pages import footage_request, sign_in

router = APIRouter(tags=["footage"])

CameraId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The camera id")]
PageViewer = Annotated[Principal | None, Depends(page_role("viewer"))]


class PathIncident(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description="WGS84 degrees")
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="WGS84 degrees")
    at: str = Field(max_length=40, description="ISO 8601 date-time; no offset means Europe/London")
    label: str = Field("", max_length=100, description="optional, e.g. 'robbery' or 'phone found'")


class PathRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    incidents: list[PathIncident] = Field(min_length=footage.MIN_INCIDENTS, max_length=footage.MAX_INCIDENTS,
                                          description="related incidents in time order")
    margin_minutes: int = Field(15, ge=0, le=240, description="widens each camera's window on both sides")


class FootageCamera(ApiModel):
    """A camera to ask for footage: whose it is, how to reach them, and by when."""
    id: int
    reference: str
    name: str | None
    owner_agency: str | None
    contact: str | None
    monitored: bool | None
    camera_type: str | None
    status_at_time: str = Field(description="its status at the time asked about")
    status_known: bool = Field(description="false: no history reaches back that far (its first status is assumed)")
    status_now: str | None
    distance_m: float
    band: str | None = Field(description="the best EN 62676-4 band the place or path is in (identify ... detect)")
    coverage_assumed: bool = Field(description="field of view and range assumed, not surveyed")
    line_of_sight: bool
    retention_days: int
    retention_assumed: bool
    request_by: str = Field(description="ISO 8601: ask before then, or the footage is likely overwritten")
    expired: bool
    lon: float
    lat: float


class Place(ApiModel):
    lon: float
    lat: float


class CamerasAt(ApiModel):
    point: Place
    at: str
    cameras: list[FootageCamera]
    not_operational: list[FootageCamera] = Field(description="cameras that were faulty at that time")


class PathCamera(FootageCamera):
    distance_along_m: float = Field(description="where along the path it is first in view")
    window_start: str
    window_end: str


class Line(ApiModel):
    type: Literal["LineString"]
    coordinates: list[list[float]]


class LegOut(ApiModel):
    from_: int = Field(alias="from")
    to: int
    length_m: float
    start: str
    end: str
    start_m: float
    end_m: float


class StopOut(ApiModel):
    lon: float
    lat: float
    at: str
    label: str
    snapped_m: float = Field(description="how far the incident was from the street vertex it was snapped to")


class PathPack(ApiModel):
    path: Line
    length_m: float
    legs: list[LegOut]
    incidents: list[StopOut]
    margin_minutes: int
    cameras: list[PathCamera]
    not_operational: list[PathCamera]


class StatusPeriod(ApiModel):
    status: str
    valid_from: str
    valid_to: str | None = Field(description="null: its status now")


class StatusHistory(ApiModel):
    camera_id: int
    reference: str
    history: list[StatusPeriod]


def _inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema with its $defs put in place, for a body this route reads itself."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


def _validated(raw: Any) -> PathRequest:
    try:
        return PathRequest.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(f"{field}: {first['msg']}",
                         errors=[{"field": ".".join(str(p) for p in err["loc"]) or "body", "message": err["msg"]}
                                 for err in e.errors()[:20]]) from e


async def _parse_path(request: Request) -> PathRequest:
    try:
        raw = json.loads(await request.body() or b"null")
    except ValueError as e:
        raise BadRequest("The body must be JSON: {\"incidents\": [{\"lon\", \"lat\", \"at\"}, ...]}.") from e
    return _validated(raw)


def _stops(body: PathRequest) -> list[footage.Stop]:
    return [footage.Stop(i.lon, i.lat, footage.parse_at(i.at, f"incidents[{n}].at"), i.label)
            for n, i in enumerate(body.incidents)]


def _to_sign_in(request: Request) -> RedirectResponse:
    """A browser that is not signed in goes to sign in, and comes back here after."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/maps/sign-in?next={quote(sign_in.safe_next(target), safe='/')}", status_code=303)


@router.get("/api/coverage/at", summary="Cameras that could have seen a place at a time", response_model=CamerasAt)
async def coverage_at(session: SessionDep, principal: Viewer, where: PointAtDep) -> dict:
    """Cameras of your partnership whose coverage (line of sight where computed) contained the point
    and that were operational at `at`, nearest first, with owner, contact, status then and now, and
    `request_by`: the time plus the camera's retention days (31 when the register gives none, flagged
    `retention_assumed`). Cameras faulty at that time are in `not_operational`."""
    result = await footage.cameras_at(session, principal.partnership_id, principal.srid, where.lon, where.lat,
                                      where.at)
    await audit.record(session, "coverage.at", principal=principal, target="coverage",
                       detail={"cameras": len(result["cameras"]), "not_operational": len(result["not_operational"])})
    return result


@router.post("/api/coverage/path", summary="A footage-request pack for the walking path between related incidents",
             response_model=PathPack,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": _inline_schema(PathRequest)}}}})
async def coverage_path(request: Request, session: SessionDep, principal: Viewer) -> dict:
    """The likely walking path between 2-10 related incidents in time order (each snapped to the
    nearest street vertex within 250 m; shortest paths over the imported streets) and every camera
    operational then whose coverage it crosses, in the order the path meets them, each with the time
    window to ask for (interpolated along the leg, widened by `margin_minutes`) and `request_by`."""
    body = await _parse_path(request)
    stops = _stops(body)
    result = await footage.path_pack(session, principal.partnership_id, principal.srid, stops, body.margin_minutes)
    await audit.record(session, "coverage.path", principal=principal, target="coverage",
                       detail={"incidents": len(stops), "length_m": result["length_m"],
                               "cameras": len(result["cameras"]), "not_operational": len(result["not_operational"])})
    await session.commit()
    return result


@router.get("/api/cameras/{camera_id}/status-history", summary="When a camera was operational, faulty, ...",
            response_model=StatusHistory)
async def camera_status_history(camera_id: CameraId, session: SessionDep, principal: Viewer) -> dict:
    """Periods oldest first; the last, with `valid_to` null, is the current status. Cameras that
    existed before the history was kept start with their status at that time, from their creation."""
    return await footage.status_history(session, principal.partnership_id, camera_id)


@router.get("/maps/coverage/footage-request", response_class=HTMLResponse,
            summary="A printable footage-request list for a place and time")
async def footage_request_page(request: Request, session: SessionDep, settings: SettingsDep,
                               principal: PageViewer, lon: LonQuery = None, lat: LatQuery = None,
                               at: AtQuery = None) -> Response:
    if principal is None:
        return _to_sign_in(request)
    where = parse_point_at(lon, lat, at)  # after the sign-in redirect: a browser is sent there first
    result = await footage.cameras_at(session, principal.partnership_id, principal.srid, where.lon, where.lat,
                                      where.at)
    place = await footage.place_name(session, principal.partnership_id, principal.srid, where.lon, where.lat)
    await audit.record(session, "coverage.at", principal=principal, target="coverage",
                       detail={"cameras": len(result["cameras"]), "not_operational": len(result["not_operational"]),
                               "page": True})
    body, policy = footage_request.point_page(settings.static_dir, result, place=place, requested_by=principal.name)
    return HTMLResponse(body, headers={"Cache-Control": "no-store", "Content-Security-Policy": policy})


@router.get("/maps/coverage/footage-pack", response_class=HTMLResponse,
            summary="A printable footage-request pack for the walking path between related incidents")
async def footage_pack_page(
    request: Request, session: SessionDep, settings: SettingsDep, principal: PageViewer,
    incident: Annotated[list[str] | None, Query(description=(
        "repeat 2-10 times, in time order: lon,lat,at[,label], e.g. -2.2426,53.4808,2026-03-01T22:15,robbery"))] = None,
    margin_minutes: Annotated[int, Query(ge=0, le=240)] = 15,
) -> Response:
    """The same pack as POST /api/coverage/path, as a page to print: the incidents, a sketch of the
    path with the cameras numbered, and the list in the order the path meets them."""
    if principal is None:
        return _to_sign_in(request)
    raw = []
    for value in (incident or [])[:footage.MAX_INCIDENTS + 1]:
        parts = value[:300].split(",", 3)
        if len(parts) < 3:
            raise BadRequest(f"incident must be lon,lat,at[,label]; got {value[:60]!r}.")
        raw.append({"lon": parse_coordinate(parts[0], "lon"), "lat": parse_coordinate(parts[1], "lat"), "at": parts[2],
                    "label": parts[3] if len(parts) > 3 else ""})
    stops = _stops(_validated({"incidents": raw, "margin_minutes": margin_minutes}))
    pack = await footage.path_pack(session, principal.partnership_id, principal.srid, stops, margin_minutes)
    places = [await footage.place_name(session, principal.partnership_id, principal.srid, s.lon, s.lat)
              for s in stops]
    await audit.record(session, "coverage.path", principal=principal, target="coverage",
                       detail={"incidents": len(stops), "length_m": pack["length_m"], "cameras": len(pack["cameras"]),
                               "not_operational": len(pack["not_operational"]), "page": True})
    body, policy = footage_request.path_page(settings.static_dir, pack, srid=principal.srid, places=places,
                                             requested_by=principal.name)
    return HTMLResponse(body, headers={"Cache-Control": "no-store", "Content-Security-Policy": policy})
