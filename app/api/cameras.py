"""Cameras: GeoJSON in and out; PATCH with optimistic locking on the row version.

The database redraws the plain wedge on every create and update (the `camera_coverage_sync`
trigger), so every path that changes a camera keeps a coverage shape; within the same transaction
app.analysis.coverage then cuts it to what the camera can see past the buildings.
"""
from __future__ import annotations

import math
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from app import audit
from app.analysis.coverage import refresh_coverage
from app.api.deps import Operator, Pcso, SessionDep, Viewer
from app.errors import AppError, BadRequest, Conflict, NotFound
from app.params import parse_bbox

router = APIRouter(prefix="/api/cameras", tags=["cameras"])

MAX_LIMIT = 10_000
CameraId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The camera id")]
CameraType = Literal["fixed", "ptz", "dome", "anpr", "redeployable"]
Status = Literal["operational", "faulty", "decommissioned", "planned"]
Purpose = Literal["detect", "observe", "recognise", "identify"]
AgencyKind = Literal["police", "council", "fire", "ambulance", "probation", "transport", "private", "other"]

CAMERA_SELECT = """
    SELECT c.id, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.reference, c.name,
           a.name AS owner_agency, c.camera_type, c.status, c.bearing, c.fov, c.range_m, c.height_m,
           c.monitored, c.retention_days, c.contact, c.notes, c.source, c.verified_at, c.verified_by,
           c.resolution_px, c.purpose, c.version, c.created_at, c.updated_at,
           cc.assumed AS coverage_assumed, cc.range_m AS coverage_range_m, cc.line_of_sight
    FROM camera c
    LEFT JOIN agency a ON a.id = c.owner_agency_id
    LEFT JOIN camera_coverage cc ON cc.camera_id = c.id
"""


class PreconditionRequired(AppError):
    status, title = 428, "Precondition required"


class PointGeometry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["Point"]
    coordinates: list[float] = Field(min_length=2, max_length=3)

    @field_validator("coordinates")
    @classmethod
    def _in_range(cls, v: list[float]) -> list[float]:
        lon, lat = v[0], v[1]
        if not (math.isfinite(lon) and math.isfinite(lat)):
            raise ValueError("coordinates must be finite numbers")
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise ValueError("coordinates must be [longitude, latitude] in WGS84 (RFC 7946 order)")
        return v


class CameraFields(BaseModel):
    """Editable properties. Angles in degrees; bearing clockwise from north."""
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)
    owner_agency: str | None = Field(default=None, min_length=1, max_length=200)
    owner_agency_kind: AgencyKind | None = None
    camera_type: CameraType | None = None
    status: Status | None = None
    bearing: float | None = Field(default=None, ge=0, lt=360)
    fov: float | None = Field(default=None, gt=0, le=360)
    range_m: float | None = Field(default=None, gt=0, le=2000)
    height_m: float | None = Field(default=None, ge=0, le=300)
    monitored: bool | None = None
    retention_days: int | None = Field(default=None, ge=0, le=3650)
    resolution_px: int | None = Field(default=None, ge=160, le=20000,
                                      description="Horizontal resolution in pixels (e.g. 1920)")
    purpose: Purpose | None = Field(default=None, description="What the camera is for (EN 62676-4): its useful "
                                    "range when range_m is not given and the resolution is known")
    contact: str | None = Field(default=None, max_length=500)
    notes: str | None = Field(default=None, max_length=4000)
    verified: bool | None = Field(default=None, description="true marks the camera verified now, by you")


class CameraCreateProps(CameraFields):
    reference: str = Field(min_length=1, max_length=100)


class CameraPatchProps(CameraFields):
    reference: str | None = Field(default=None, min_length=1, max_length=100)
    version: int | None = Field(default=None, description="The row version you read; a stale one gets 409")


class CameraFeatureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["Feature"]
    geometry: PointGeometry
    properties: CameraCreateProps
    id: Any = None


class CameraPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["Feature"] | None = None
    geometry: PointGeometry | None = None
    properties: CameraPatchProps = Field(default_factory=CameraPatchProps)


def feature(row) -> dict:
    props = {k: v for k, v in row._mapping.items() if k not in ("id", "lon", "lat")}
    for k in ("verified_at", "created_at", "updated_at"):
        if props[k] is not None:
            props[k] = props[k].isoformat()
    return {"type": "Feature", "id": row.id,
            "geometry": {"type": "Point", "coordinates": [row.lon, row.lat]}, "properties": props}


async def _agency_id(session, partnership_id: int, name: str | None, kind: str | None) -> int | None:
    if name is None:
        return None
    return (await session.execute(text(
        "INSERT INTO agency (partnership_id, name, kind) VALUES (:p, :n, coalesce(:k, 'other')) "
        "ON CONFLICT (partnership_id, name) DO UPDATE SET kind = coalesce(:k, agency.kind) RETURNING id"),
        {"p": partnership_id, "n": name, "k": kind})).scalar_one()


async def _fetch(session, partnership_id: int, camera_id: int):
    row = (await session.execute(text(CAMERA_SELECT + " WHERE c.partnership_id = :p AND c.id = :id"),
                                 {"p": partnership_id, "id": camera_id})).first()
    if row is None:
        raise NotFound(f"No camera {camera_id} in your partnership.")
    return row


async def _line_of_sight(session, partnership_id: int, camera_id: int) -> None:
    """Cut the trigger's plain wedge to what the camera sees, in this request's transaction."""
    conn = await (await session.connection()).get_raw_connection()
    await refresh_coverage(conn.driver_connection, partnership_id, [camera_id])


def changes(before: dict, after: dict) -> dict:
    """The audit detail of a change: each property that changed, with its old and new value."""
    keys = sorted(k for k in after if before.get(k) != after.get(k) and k not in ("updated_at",))
    return {"before": {k: before.get(k) for k in keys}, "after": {k: after.get(k) for k in keys}}


COLUMNS = ("name", "camera_type", "status", "bearing", "fov", "range_m", "height_m", "monitored",
           "retention_days", "contact", "notes", "reference", "resolution_px", "purpose")
# What the coverage shape depends on (the trigger's column list, migration 0010).
COVERAGE_COLUMNS = {"bearing", "fov", "range_m", "height_m", "camera_type", "status", "resolution_px", "purpose"}


@router.get("", summary="Cameras as a GeoJSON FeatureCollection")
async def list_cameras(
    request: Request, session: SessionDep, principal: Viewer,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
    status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"at most {MAX_LIMIT}")] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    params: dict[str, Any]
    where, params = ["c.partnership_id = :p"], {"p": principal.partnership_id, "limit": limit, "offset": offset}
    box = parse_bbox(bbox)
    if box:
        where.append("c.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params.update(x0=box.minlon, y0=box.minlat, x1=box.maxlon, y1=box.maxlat)
    if status:
        statuses = [s.strip() for s in status.split(",") if s.strip()]
        bad = set(statuses) - set(get_args(Status))
        if bad:
            raise BadRequest(f"Unknown status {sorted(bad)[0]!r}; use {', '.join(get_args(Status))}.")
        where.append("c.status = ANY(:statuses)")
        params["statuses"] = statuses
    clause = " WHERE " + " AND ".join(where)
    rows = (await session.execute(text(CAMERA_SELECT + clause + " ORDER BY c.id LIMIT :limit OFFSET :offset"),
                                  params)).all()
    matched = (await session.execute(text("SELECT count(*) FROM camera c" + clause), params)).scalar_one()
    body: dict = {"type": "FeatureCollection", "features": [feature(r) for r in rows],
                  "numberMatched": matched, "numberReturned": len(rows), "links": []}
    if offset + len(rows) < matched:
        nxt = request.url.include_query_params(offset=offset + len(rows), limit=limit)
        body["links"].append({"rel": "next", "href": str(nxt), "type": "application/geo+json"})
        body["next"] = str(nxt)
    return body


@router.post("", status_code=201, summary="Add a camera (a GeoJSON Point Feature)")
async def create_camera(body: CameraFeatureIn, session: SessionDep, principal: Pcso, response: Response) -> dict:
    p = body.properties
    agency = await _agency_id(session, principal.partnership_id, p.owner_agency, p.owner_agency_kind)
    values = {c: getattr(p, c) for c in COLUMNS}
    values.update(name=p.name or "", contact=p.contact or "", notes=p.notes or "",
                  camera_type=p.camera_type or "fixed", status=p.status or "operational",
                  monitored=bool(p.monitored))
    try:
        new_id = (await session.execute(text(
            "INSERT INTO camera (partnership_id, owner_agency_id, geom, verified_at, verified_by, "
            + ", ".join(COLUMNS) + ") VALUES (:partnership_id, :agency, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), "
            "CASE WHEN :verified THEN now() END, CASE WHEN :verified THEN :who END, "
            + ", ".join(f":{c}" for c in COLUMNS) + ") RETURNING id"),
            {**values, "partnership_id": principal.partnership_id, "agency": agency,
             "lon": body.geometry.coordinates[0], "lat": body.geometry.coordinates[1],
             "verified": bool(p.verified), "who": principal.name})).scalar_one()
    except IntegrityError as e:
        raise Conflict(f"A camera with reference {p.reference!r} already exists in your partnership.") from e
    await _line_of_sight(session, principal.partnership_id, new_id)
    created = feature(await _fetch(session, principal.partnership_id, new_id))
    await audit.record(session, "camera.create", principal=principal, target=f"camera/{new_id}",
                       detail={"after": {**created["properties"], "coordinates": created["geometry"]["coordinates"]}})
    await session.commit()
    response.headers["Location"] = f"/api/cameras/{new_id}"
    return created


@router.get("/{camera_id}", summary="One camera")
async def get_camera(camera_id: CameraId, session: SessionDep, principal: Viewer, response: Response) -> dict:
    row = await _fetch(session, principal.partnership_id, camera_id)
    response.headers["ETag"] = f'"{row.version}"'
    return feature(row)


@router.patch("/{camera_id}", summary="Change a camera; needs the row version (properties.version or If-Match)")
async def patch_camera(camera_id: CameraId, body: CameraPatch, session: SessionDep, principal: Pcso,
                       if_match: Annotated[str | None, Header()] = None) -> dict:
    p = body.properties
    version = p.version
    if version is None and if_match:
        try:
            version = int(if_match.strip().strip('W/').strip('"'))
        except ValueError as e:
            raise BadRequest("If-Match must be the camera's version, e.g. \"3\".") from e
    if version is None:
        raise PreconditionRequired("Send the version you read (properties.version or If-Match) so that "
                                   "nobody's change is overwritten.")
    before = feature(await _fetch(session, principal.partnership_id, camera_id))
    params: dict[str, Any]
    sets, params = [], {"id": camera_id, "p": principal.partnership_id, "version": version}
    given = p.model_dump(exclude_unset=True)
    for col in COLUMNS:
        if col in given:
            if given[col] is None and col in ("reference", "name", "camera_type", "status", "monitored",
                                                 "contact", "notes"):
                raise BadRequest(f"{col} cannot be null.")
            sets.append(f"{col} = :{col}")
            params[col] = given[col]
    if "owner_agency" in given:
        sets.append("owner_agency_id = :agency")
        params["agency"] = await _agency_id(session, principal.partnership_id, given["owner_agency"],
                                            given.get("owner_agency_kind"))
    if body.geometry is not None:
        sets.append("geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)")
        params.update(lon=body.geometry.coordinates[0], lat=body.geometry.coordinates[1])
    if given.get("verified"):
        sets.append("verified_at = now(), verified_by = :who")
        params["who"] = principal.name
    sets.append("version = version + 1, updated_at = now()")
    try:
        updated = (await session.execute(text(
            f"UPDATE camera SET {', '.join(sets)} WHERE id = :id AND partnership_id = :p AND version = :version "
            "RETURNING id"), params)).first()
    except IntegrityError as e:
        raise Conflict("Another camera in your partnership already has that reference.") from e
    if updated is None:
        current = await _fetch(session, principal.partnership_id, camera_id)  # 404 when it is not ours
        raise Conflict(f"The camera was changed by someone else (now version {current.version}, you sent "
                       f"{version}). Reload it and apply your change again.", current_version=current.version)
    if body.geometry is not None or COVERAGE_COLUMNS & given.keys():
        await _line_of_sight(session, principal.partnership_id, camera_id)
    after = feature(await _fetch(session, principal.partnership_id, camera_id))
    await audit.record(session, "camera.update", principal=principal, target=f"camera/{camera_id}",
                       detail=changes({**before["properties"], "coordinates": before["geometry"]["coordinates"]},
                                      {**after["properties"], "coordinates": after["geometry"]["coordinates"]}))
    await session.commit()
    return after


@router.delete("/{camera_id}", status_code=204, summary="Remove a camera and its coverage")
async def delete_camera(camera_id: CameraId, session: SessionDep, principal: Operator) -> Response:
    before = feature(await _fetch(session, principal.partnership_id, camera_id))  # 404 when not ours
    await session.execute(text("DELETE FROM camera WHERE id = :id AND partnership_id = :p"),
                          {"id": camera_id, "p": principal.partnership_id})
    await audit.record(session, "camera.delete", principal=principal, target=f"camera/{camera_id}",
                       detail={"before": {**before["properties"], "coordinates": before["geometry"]["coordinates"]}})
    await session.commit()
    return Response(status_code=204)
