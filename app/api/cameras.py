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
from sqlalchemy import ColumnElement, Row, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit
from app.analysis.coverage import refresh_coverage
from app.api.deps import Operator, Pcso, SessionDep, Viewer
from app.errors import AppError, BadRequest, Conflict, NotFound
from app.models import Agency, Camera, CameraCoverage
from app.params import parse_bbox

router = APIRouter(prefix="/api/cameras", tags=["cameras"])

MAX_LIMIT = 10_000
CameraId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The camera id")]
CameraType = Literal["fixed", "ptz", "dome", "anpr", "redeployable"]
Status = Literal["operational", "faulty", "decommissioned", "planned"]
Purpose = Literal["detect", "observe", "recognise", "identify"]
AgencyKind = Literal["police", "council", "fire", "ambulance", "probation", "transport", "private", "other"]

Version = Annotated[int, Field(ge=1, le=2**31 - 1)]

# Every answer about a camera has this one shape (feature() turns a row into GeoJSON): the camera,
# its owner's name and what its coverage says (none for a decommissioned camera).
CAMERA_ROW = (
    select(Camera.id, func.ST_X(Camera.geom).label("lon"), func.ST_Y(Camera.geom).label("lat"),
           Camera.reference, Camera.name, Agency.name.label("owner_agency"), Camera.camera_type, Camera.status,
           Camera.bearing, Camera.fov, Camera.range_m, Camera.height_m, Camera.monitored, Camera.retention_days,
           Camera.contact, Camera.notes, Camera.source, Camera.verified_at, Camera.verified_by,
           Camera.resolution_px, Camera.purpose, Camera.version, Camera.created_at, Camera.updated_at,
           CameraCoverage.assumed.label("coverage_assumed"), CameraCoverage.range_m.label("coverage_range_m"),
           CameraCoverage.line_of_sight)
    .select_from(Camera)
    .outerjoin(Agency, Agency.id == Camera.owner_agency_id)
    .outerjoin(CameraCoverage, CameraCoverage.camera_id == Camera.id)
)


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
    version: Version | None = Field(default=None, description="The row version you read; a stale one gets 409")


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


# -- what the routes answer (feature() builds it; FastAPI checks it against these) ----------------------

class PointOut(BaseModel):
    type: Literal["Point"]
    coordinates: list[float] = Field(description="[longitude, latitude] in WGS84")


class CameraProperties(BaseModel):
    reference: str
    name: str
    owner_agency: str | None
    camera_type: CameraType
    status: Status
    bearing: float | None
    fov: float | None
    range_m: float | None
    height_m: float | None
    monitored: bool
    retention_days: int | None
    contact: str
    notes: str
    source: str = Field(description="Where the camera came from: register (this API) or an import")
    verified_at: str | None = Field(description="ISO 8601")
    verified_by: str | None
    resolution_px: int | None
    purpose: Purpose | None
    version: int = Field(description="The row version: send it back (or as If-Match) to change the camera")
    created_at: str = Field(description="ISO 8601")
    updated_at: str = Field(description="ISO 8601")
    coverage_assumed: bool | None = Field(description="Whether any coverage value is a default; null when "
                                          "the camera covers nothing (decommissioned)")
    coverage_range_m: float | None = Field(description="The range its coverage is drawn with")
    line_of_sight: bool | None = Field(description="Whether buildings have been taken out of its coverage")


class CameraFeature(BaseModel):
    type: Literal["Feature"]
    id: int
    geometry: PointOut
    properties: CameraProperties


class Link(BaseModel):
    rel: str
    href: str
    type: str


class CameraCollection(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[CameraFeature]
    numberMatched: int
    numberReturned: int
    links: list[Link]
    next: str | None = Field(default=None, description="The next page (only when there is one)")


def feature(row: Row) -> dict:
    props = {k: v for k, v in row._mapping.items() if k not in ("id", "lon", "lat")}
    for k in ("verified_at", "created_at", "updated_at"):
        if props[k] is not None:
            props[k] = props[k].isoformat()
    return {"type": "Feature", "id": row.id,
            "geometry": {"type": "Point", "coordinates": [row.lon, row.lat]}, "properties": props}


def _point(geometry: PointGeometry) -> ColumnElement:
    return func.ST_SetSRID(func.ST_MakePoint(geometry.coordinates[0], geometry.coordinates[1]), 4326)


async def _agency_id(session: AsyncSession, partnership_id: int, name: str | None, kind: str | None) -> int | None:
    """The partnership's agency of that name, added if new; a kind given replaces its kind."""
    if name is None:
        return None
    upsert = insert(Agency).values(partnership_id=partnership_id, name=name, kind=kind or "other")
    upsert = upsert.on_conflict_do_update(index_elements=[Agency.partnership_id, Agency.name],
                                          set_={"kind": upsert.excluded.kind if kind else Agency.kind})
    return (await session.execute(upsert.returning(Agency.id))).scalar_one()


async def _fetch(session: AsyncSession, partnership_id: int, camera_id: int) -> Row:
    row = (await session.execute(
        CAMERA_ROW.where(Camera.partnership_id == partnership_id, Camera.id == camera_id))).first()
    if row is None:
        raise NotFound(f"No camera {camera_id} in your partnership.")
    return row


async def _line_of_sight(session: AsyncSession, partnership_id: int, camera_id: int) -> None:
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


@router.get("", summary="Cameras as a GeoJSON FeatureCollection", response_model=CameraCollection,
            response_model_exclude_unset=True)
async def list_cameras(
    request: Request, session: SessionDep, principal: Viewer,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
    status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"at most {MAX_LIMIT}")] = 1000,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict:
    where: list[ColumnElement[bool]] = [Camera.partnership_id == principal.partnership_id]
    box = parse_bbox(bbox)
    if box:
        # && (GeoAlchemy2's intersects): bounding boxes, answered by the GiST index
        where.append(Camera.geom.intersects(func.ST_MakeEnvelope(box.minlon, box.minlat, box.maxlon, box.maxlat, 4326)))
    if status:
        statuses = [s.strip() for s in status.split(",") if s.strip()]
        bad = set(statuses) - set(get_args(Status))
        if bad:
            raise BadRequest(f"Unknown status {sorted(bad)[0]!r}; use {', '.join(get_args(Status))}.")
        where.append(Camera.status.in_(statuses))
    rows = (await session.execute(CAMERA_ROW.where(*where).order_by(Camera.id).limit(limit).offset(offset))).all()
    matched = (await session.execute(select(func.count()).select_from(Camera).where(*where))).scalar_one()
    body: dict = {"type": "FeatureCollection", "features": [feature(r) for r in rows],
                  "numberMatched": matched, "numberReturned": len(rows), "links": []}
    if offset + len(rows) < matched:
        nxt = request.url.include_query_params(offset=offset + len(rows), limit=limit)
        body["links"].append({"rel": "next", "href": str(nxt), "type": "application/geo+json"})
        body["next"] = str(nxt)
    return body


@router.post("", status_code=201, summary="Add a camera (a GeoJSON Point Feature)", response_model=CameraFeature)
async def create_camera(body: CameraFeatureIn, session: SessionDep, principal: Pcso, response: Response) -> dict:
    p = body.properties
    values: dict[str, Any] = {c: getattr(p, c) for c in COLUMNS}
    values.update(name=p.name or "", contact=p.contact or "", notes=p.notes or "",
                  camera_type=p.camera_type or "fixed", status=p.status or "operational",
                  monitored=bool(p.monitored))
    camera = Camera(
        **values, partnership_id=principal.partnership_id, geom=_point(body.geometry),
        owner_agency_id=await _agency_id(session, principal.partnership_id, p.owner_agency, p.owner_agency_kind),
        verified_at=func.now() if p.verified else None, verified_by=principal.name if p.verified else None)
    session.add(camera)
    try:
        await session.flush()  # the INSERT: the trigger draws the plain wedge
    except IntegrityError as e:
        raise Conflict(f"A camera with reference {p.reference!r} already exists in your partnership.") from e
    await _line_of_sight(session, principal.partnership_id, camera.id)
    created = feature(await _fetch(session, principal.partnership_id, camera.id))
    await audit.record(session, "camera.create", principal=principal, target=f"camera/{camera.id}",
                       detail={"after": {**created["properties"], "coordinates": created["geometry"]["coordinates"]}})
    await session.commit()
    response.headers["Location"] = f"/api/cameras/{camera.id}"
    return created


@router.get("/{camera_id}", summary="One camera", response_model=CameraFeature)
async def get_camera(camera_id: CameraId, session: SessionDep, principal: Viewer, response: Response) -> dict:
    row = await _fetch(session, principal.partnership_id, camera_id)
    response.headers["ETag"] = f'"{row.version}"'
    return feature(row)


@router.patch("/{camera_id}", summary="Change a camera; needs the row version (properties.version or If-Match)",
              response_model=CameraFeature)
async def patch_camera(camera_id: CameraId, body: CameraPatch, session: SessionDep, principal: Pcso,
                       if_match: Annotated[str | None, Header()] = None) -> dict:
    p = body.properties
    version = p.version
    if version is None and if_match:
        try:
            version = int(if_match.strip().strip('W/').strip('"'))
        except ValueError as e:
            raise BadRequest("If-Match must be the camera's version, e.g. \"3\".") from e
        if not 1 <= version <= 2**31 - 1:
            raise BadRequest("If-Match must be a version the camera can have (1 to 2147483647).")
    if version is None:
        raise PreconditionRequired("Send the version you read (properties.version or If-Match) so that "
                                   "nobody's change is overwritten.")
    before = feature(await _fetch(session, principal.partnership_id, camera_id))
    given = p.model_dump(exclude_unset=True)
    values: dict[str, Any] = {}
    for col in COLUMNS:
        if col in given:
            if given[col] is None and col in ("reference", "name", "camera_type", "status", "monitored",
                                                 "contact", "notes"):
                raise BadRequest(f"{col} cannot be null.")
            values[col] = given[col]
    if "owner_agency" in given:
        values["owner_agency_id"] = await _agency_id(session, principal.partnership_id, given["owner_agency"],
                                                     given.get("owner_agency_kind"))
    if body.geometry is not None:
        values["geom"] = _point(body.geometry)
    if given.get("verified"):
        values.update(verified_at=func.now(), verified_by=principal.name)
    # Optimistic locking: the row changes only if it is still at the version the caller read.
    change = (update(Camera).values(**values, version=Camera.version + 1, updated_at=func.now())
              .where(Camera.id == camera_id, Camera.partnership_id == principal.partnership_id,
                     Camera.version == version)
              .returning(Camera.id))
    try:
        updated = (await session.execute(change)).first()
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
    await session.execute(delete(Camera).where(Camera.id == camera_id,
                                               Camera.partnership_id == principal.partnership_id))
    await audit.record(session, "camera.delete", principal=principal, target=f"camera/{camera_id}",
                       detail={"before": {**before["properties"], "coordinates": before["geometry"]["coordinates"]}})
    await session.commit()
    return Response(status_code=204)
