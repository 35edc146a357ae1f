"""Cameras: GeoJSON in and out; changes based on a row version, merged three ways when the camera
changed meanwhile (app/camera_merge.py); the PCSO capture routes (nearby, survey, form lists, the
coverage rule).

The database redraws the plain wedge on every create and update (the `camera_coverage_sync`
trigger), so every path that changes a camera keeps a coverage shape; within the same transaction
app.analysis.coverage then cuts it to what the camera can see past the buildings. The
`camera_revision_write` trigger keeps every version (the merge base, and deleted cameras: 410).

Every write takes an optional Idempotency-Key and X-Device-Position (app/api/camera_edits.py): the
answer to the key, the audit event and the change commit together.
"""
from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Header, Path, Query, Request, Response
from geoalchemy2 import Geography
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import ColumnElement, Row, cast, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app import photos
from app.analysis.camera_rule import camera_rule
from app.analysis.coverage import refresh_coverage
from app.api.camera_edits import CameraEdit, EditDep
from app.api.deps import Operator, Pcso, SessionDep, SettingsDep, Viewer
from app.auth import Principal
from app.camera_merge import merge
from app.errors import AppError, BadRequest, Conflict, Gone, NotFound, PreconditionRequired
from app.idempotency import digest
from app.models import Agency, Camera, CameraCoverage, CameraPhoto, CameraRevision
from app.params import parse_bbox

router = APIRouter(prefix="/api/cameras", tags=["cameras"])

MAX_LIMIT = 10_000
NEAR_MAX_M = 2000
DUPLICATE_M = 10  # a new camera this close to a recorded one may be the same camera
CameraId = Annotated[int, Path(ge=1, le=2**31 - 1, description="The camera id")]
CameraType = Literal["fixed", "ptz", "dome", "anpr", "redeployable"]
Status = Literal["operational", "faulty", "decommissioned", "planned"]
Purpose = Literal["detect", "observe", "recognise", "identify"]
AgencyKind = Literal["police", "council", "fire", "ambulance", "probation", "transport", "private", "other"]
RETENTION_DAYS = [7, 14, 28, 31, 60, 90]  # suggestions for the form (UK public space: about 28-31)

Version = Annotated[int, Field(ge=1, le=2**31 - 1)]

PHOTO_COUNT = (select(func.count()).select_from(CameraPhoto).where(CameraPhoto.camera_id == Camera.id)
               .correlate(Camera).scalar_subquery())

# Every answer about a camera has this one shape (feature() turns a row into GeoJSON): the camera,
# its owner's name and what its coverage says (none for a decommissioned camera).
CAMERA_ROW = (
    select(Camera.id, func.ST_X(Camera.geom).label("lon"), func.ST_Y(Camera.geom).label("lat"),
           Camera.reference, Camera.name, Agency.name.label("owner_agency"), Camera.camera_type, Camera.status,
           Camera.bearing, Camera.fov, Camera.range_m, Camera.height_m, Camera.monitored, Camera.retention_days,
           Camera.contact, Camera.owner_contact, Camera.notes, Camera.source, Camera.verified_at,
           Camera.verified_by, Camera.resolution_px, Camera.purpose, Camera.location_accuracy_m, Camera.version,
           Camera.created_at, Camera.updated_at,
           CameraCoverage.assumed.label("coverage_assumed"), CameraCoverage.range_m.label("coverage_range_m"),
           CameraCoverage.line_of_sight, PHOTO_COUNT.label("photo_count"))
    .select_from(Camera)
    .outerjoin(Agency, Agency.id == Camera.owner_agency_id)
    .outerjoin(CameraCoverage, CameraCoverage.camera_id == Camera.id)
)


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
    owner_contact: str | None = Field(default=None, max_length=500,
                                      description="How to reach the owner (a private owner's name, phone, email)")
    notes: str | None = Field(default=None, max_length=4000)
    location_accuracy_m: float | None = Field(default=None, ge=0, le=100_000,
                                              description="How far off the position may be (the device's GPS "
                                              "accuracy when it was placed), metres")
    verified: bool | None = Field(default=None, description="true marks the camera verified now, by you")


class CameraCreateProps(CameraFields):
    reference: str = Field(min_length=1, max_length=100)
    check_duplicates: bool = Field(default=False, description=f"Refuse (409, with `nearby`) when a camera of the "
                                   f"partnership lies within {DUPLICATE_M} m: the capture page asks; scripts that "
                                   "add several cameras at one spot do not")
    confirm_new: bool = Field(default=False, description="The PCSO saw the nearby cameras (the 409) and says this "
                              "one is new: no duplicate check")


class CameraPatchProps(CameraFields):
    reference: str | None = Field(default=None, min_length=1, max_length=100)
    version: Version | None = Field(default=None, description="The row version your change is based on")


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


class Survey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: Literal["verified", "faulty", "gone"] = Field(
        description="verified: seen working (verified_at/by); faulty: status faulty; gone: status decommissioned")
    note: str = Field(default="", max_length=1000, description="Added to the camera's notes, dated and signed")
    version: Version | None = Field(default=None, description="The version the survey saw (merged like a PATCH)")


# -- what the routes answer (feature() builds it; FastAPI checks it against these) ----------------------

class PointOut(BaseModel):
    type: Literal["Point"]
    coordinates: list[float] = Field(description="[longitude, latitude] in WGS84")


class CameraProperties(BaseModel):
    id: int = Field(description="The camera id (as the feature's id)")
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
    owner_contact: str
    notes: str
    source: str = Field(description="Where the camera came from: register (this API) or an import")
    verified_at: str | None = Field(description="ISO 8601")
    verified_by: str | None = Field(description="The name of who verified it")
    resolution_px: int | None
    purpose: Purpose | None
    location_accuracy_m: float | None = Field(description="How far off the position may be, metres")
    version: int = Field(description="The row version: send it back (or as If-Match) to change the camera")
    created_at: str = Field(description="ISO 8601")
    updated_at: str = Field(description="ISO 8601")
    coverage_assumed: bool | None = Field(description="Whether any coverage value is a default; null when "
                                          "the camera covers nothing (decommissioned)")
    coverage_range_m: float | None = Field(description="The range its coverage is drawn with")
    line_of_sight: bool | None = Field(description="Whether buildings have been taken out of its coverage")
    photo_count: int
    distance_m: float | None = Field(description="Metres from `near` (only in a list asked with near=)")
    merged: bool = Field(description="true when your change was merged with changes made since your version")


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


class AgencyOption(BaseModel):
    id: int
    name: str
    kind: AgencyKind


class CameraOptions(BaseModel):
    agencies: list[AgencyOption] = Field(description="The partnership's agencies (owners), by name")
    agency_kinds: list[AgencyKind]
    camera_types: list[CameraType]
    statuses: list[Status]
    purposes: list[Purpose]
    retention_days: list[int] = Field(description="Suggestions; any 0..3650 is accepted")


class CameraRuleOut(BaseModel):
    """The numbers of the plain coverage rule (app/analysis/camera_rule.py)."""
    fov_deg_by_type: dict[str, float]
    range_m_per_height_m: float
    assumed_height_m: float
    density_px_per_m: dict[str, float]
    purpose_when_unknown: str
    fisheye_from_fov_deg: float
    max_range_m: float


def feature(row: Row, merged: bool = False) -> dict:
    props = {k: v for k, v in row._mapping.items() if k not in ("lon", "lat")}
    for k in ("verified_at", "created_at", "updated_at"):
        if props[k] is not None:
            props[k] = props[k].isoformat()
    props.setdefault("distance_m", None)
    props["merged"] = merged
    return {"type": "Feature", "id": row.id,
            "geometry": {"type": "Point", "coordinates": [row.lon, row.lat]}, "properties": props}


def answer(f: dict) -> dict:
    """A feature exactly as the client receives it (what an Idempotency-Key replays)."""
    return CameraFeature.model_validate(f).model_dump(mode="json")


def _point(geometry: PointGeometry) -> ColumnElement:
    return func.ST_SetSRID(func.ST_MakePoint(geometry.coordinates[0], geometry.coordinates[1]), 4326)


def _within(lon: float, lat: float, metres: float) -> tuple[list[ColumnElement[bool]], ColumnElement]:
    """Cameras within `metres` of a point: a box in degrees (the GiST index) then the exact
    distance on the spheroid; and that distance, for ordering."""
    point = func.ST_SetSRID(func.ST_MakePoint(lon, lat), 4326)
    dlat = metres / 110_000
    dlon = min(180.0, dlat / max(math.cos(math.radians(lat)), 0.01))
    distance = func.ST_Distance(cast(Camera.geom, Geography), cast(point, Geography))
    return ([Camera.geom.intersects(func.ST_Expand(point, dlon, dlat)),
             func.ST_DWithin(cast(Camera.geom, Geography), cast(point, Geography), metres)], distance)


def parse_near(near: str) -> tuple[float, float]:
    try:
        lon, lat = (float(v) for v in near.split(","))
    except ValueError as e:
        raise BadRequest("near must be 'longitude,latitude', e.g. near=-2.2426,53.4808.") from e
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise BadRequest("near must be a longitude (-180..180) and a latitude (-90..90).")
    return lon, lat


async def _agency_id(session: AsyncSession, partnership_id: int, name: str | None, kind: str | None) -> int | None:
    """The partnership's agency of that name, added if new; a kind given replaces its kind."""
    if name is None:
        return None
    upsert = insert(Agency).values(partnership_id=partnership_id, name=name, kind=kind or "other")
    upsert = upsert.on_conflict_do_update(index_elements=[Agency.partnership_id, Agency.name],
                                          set_={"kind": upsert.excluded.kind if kind else Agency.kind})
    return (await session.execute(upsert.returning(Agency.id))).scalar_one()


async def _deleted(session: AsyncSession, partnership_id: int, camera_id: int) -> CameraRevision | None:
    return (await session.execute(select(CameraRevision).where(
        CameraRevision.camera_id == camera_id, CameraRevision.partnership_id == partnership_id,
        CameraRevision.deleted))).scalars().first()


async def camera_missing(session: AsyncSession, partnership_id: int, camera_id: int) -> AppError:
    """404, or 410 for a camera of the partnership that was deleted (never recreated by a change)."""
    gone = await _deleted(session, partnership_id, camera_id)
    if gone is None:
        return NotFound(f"No camera {camera_id} in your partnership.")
    who = f" by {gone.changed_by}" if gone.changed_by else ""
    return Gone(f"Camera {camera_id} was deleted{who} on {gone.changed_at:%Y-%m-%d %H:%M} UTC; your change "
                "was not applied and the camera was not recreated.", deleted=True, deleted_at=gone.changed_at.isoformat())


async def fetch_row(session: AsyncSession, partnership_id: int, camera_id: int, *, writing: bool = False) -> Row:
    """The camera's answer row; 404 when there is none (410 when a change finds it deleted)."""
    row = (await session.execute(
        CAMERA_ROW.where(Camera.partnership_id == partnership_id, Camera.id == camera_id))).first()
    if row is None:
        if writing:
            raise await camera_missing(session, partnership_id, camera_id)
        raise NotFound(f"No camera {camera_id} in your partnership.")
    return row


async def _line_of_sight(session: AsyncSession, partnership_id: int, camera_id: int) -> None:
    """Cut the trigger's plain wedge to what the camera sees, in this request's transaction."""
    conn = await (await session.connection()).get_raw_connection()
    await refresh_coverage(conn.driver_connection, partnership_id, [camera_id])


def changes(before: dict, after: dict) -> dict:
    """The audit detail of a change: each property that changed, with its old and new value."""
    keys = sorted(k for k in after if before.get(k) != after.get(k) and k not in IGNORED_IN_AUDIT)
    return {"before": {k: before.get(k) for k in keys}, "after": {k: after.get(k) for k in keys}}


def _audited(f: dict) -> dict:
    return {**f["properties"], "coordinates": f["geometry"]["coordinates"]}


COLUMNS = ("name", "camera_type", "status", "bearing", "fov", "range_m", "height_m", "monitored",
           "retention_days", "contact", "owner_contact", "notes", "reference", "resolution_px", "purpose",
           "location_accuracy_m")
NOT_NULL = ("reference", "name", "camera_type", "status", "monitored", "contact", "owner_contact", "notes")
# What the coverage shape depends on (the trigger's column list, migration 0010).
COVERAGE_COLUMNS = {"bearing", "fov", "range_m", "height_m", "camera_type", "status", "resolution_px", "purpose"}
# Not changes of the camera: bookkeeping, and what an answer adds.
IGNORED_IN_AUDIT = {"id", "updated_at", "distance_m", "merged", "photo_count"}
MAX_NOTES = 4000


# -- reading --------------------------------------------------------------------------------------------

@router.get("", summary="Cameras as a GeoJSON FeatureCollection (near=: nearest first, with distance_m)",
            response_model=CameraCollection, response_model_exclude_unset=True)
async def list_cameras(
    request: Request, session: SessionDep, principal: Viewer,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat")] = None,
    near: Annotated[str | None, Query(description="lon,lat: cameras within radius_m, nearest first")] = None,
    radius_m: Annotated[float, Query(gt=0, le=NEAR_MAX_M, description=f"with near; at most {NEAR_MAX_M}")] = 300,
    status: Annotated[str | None, Query(description="comma-separated statuses")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"at most {MAX_LIMIT}")] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
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
    query = CAMERA_ROW
    order: list[Any] = [Camera.id]
    if near is not None:
        lon, lat = parse_near(near)
        clauses, distance = _within(lon, lat, radius_m)
        where += clauses
        labelled = distance.label("distance_m")
        query = query.add_columns(labelled)
        order = [labelled, Camera.id]
    rows = (await session.execute(query.where(*where).order_by(*order).limit(limit).offset(offset))).all()
    matched = (await session.execute(select(func.count()).select_from(Camera).where(*where))).scalar_one()
    body: dict = {"type": "FeatureCollection", "features": [feature(r) for r in rows],
                  "numberMatched": matched, "numberReturned": len(rows), "links": []}
    if offset + len(rows) < matched:
        nxt = request.url.include_query_params(offset=offset + len(rows), limit=limit)
        body["links"].append({"rel": "next", "href": str(nxt), "type": "application/geo+json"})
        body["next"] = str(nxt)
    return body


@router.get("/rule", summary="The plain coverage rule, so a page draws wedges by the trigger's numbers",
            response_model=CameraRuleOut)
async def get_rule(session: SessionDep, principal: Viewer, response: Response,
                   if_none_match: Annotated[str | None, Header()] = None) -> Any:
    rule = (await camera_rule(session)).as_json()
    etag = '"' + hashlib.sha256(json.dumps(rule, sort_keys=True).encode()).hexdigest()[:16] + '"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=3600"}
    if if_none_match and etag in [t.strip().removeprefix("W/") for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return rule


@router.get("/options", summary="The lists the capture form offers", response_model=CameraOptions)
async def get_options(session: SessionDep, principal: Viewer) -> dict:
    agencies = (await session.execute(select(Agency.id, Agency.name, Agency.kind)
                                      .where(Agency.partnership_id == principal.partnership_id)
                                      .order_by(Agency.name))).all()
    return {"agencies": [{"id": a.id, "name": a.name, "kind": a.kind} for a in agencies],
            "agency_kinds": list(get_args(AgencyKind)), "camera_types": list(get_args(CameraType)),
            "statuses": list(get_args(Status)), "purposes": list(get_args(Purpose)),
            "retention_days": RETENTION_DAYS}


@router.get("/{camera_id}", summary="One camera", response_model=CameraFeature)
async def get_camera(camera_id: CameraId, session: SessionDep, principal: Viewer, response: Response) -> dict:
    row = await fetch_row(session, principal.partnership_id, camera_id)
    response.headers["ETag"] = f'"{row.version}"'
    return feature(row)


# -- writing --------------------------------------------------------------------------------------------

@router.post("", status_code=201, summary="Add a camera (a GeoJSON Point Feature); 409 with `nearby` when "
             f"one lies within {DUPLICATE_M} m, unless properties.confirm_new", response_model=CameraFeature)
async def create_camera(body: CameraFeatureIn, session: SessionDep, principal: Pcso, edit: EditDep,
                        response: Response) -> Any:
    replay = await edit.begin(session, principal, digest(body.model_dump(mode="json", exclude_unset=True)))
    if replay is not None:
        return replay
    p = body.properties
    if p.check_duplicates and not p.confirm_new:
        await _refuse_duplicate(session, principal.partnership_id, body.geometry)
    values: dict[str, Any] = {c: getattr(p, c) for c in COLUMNS}
    values.update(name=p.name or "", contact=p.contact or "", owner_contact=p.owner_contact or "",
                  notes=p.notes or "", camera_type=p.camera_type or "fixed", status=p.status or "operational",
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
    created = answer(feature(await fetch_row(session, principal.partnership_id, camera.id)))
    await edit.record(session, principal, "camera.create", f"camera/{camera.id}", {"after": _audited(created)})
    location = {"Location": f"/api/cameras/{camera.id}"}
    await edit.finish(session, principal, 201, created, location)
    response.headers.update(location)
    return created


async def _refuse_duplicate(session: AsyncSession, partnership_id: int, geometry: PointGeometry) -> None:
    lon, lat = geometry.coordinates[0], geometry.coordinates[1]
    clauses, distance = _within(lon, lat, DUPLICATE_M)
    labelled = distance.label("distance_m")
    rows = (await session.execute(CAMERA_ROW.add_columns(labelled)
                                  .where(Camera.partnership_id == partnership_id, *clauses)
                                  .order_by(labelled, Camera.id).limit(20))).all()
    if rows:
        raise Conflict(f"{len(rows)} camera(s) already recorded within {DUPLICATE_M} m. If one is this camera, "
                       "change or verify it instead; if not, send again with properties.confirm_new = true.",
                       nearby=[answer(feature(r)) for r in rows])


def _base_version(version: int | None, if_match: str | None) -> int:
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
    return version


def _merge_view(columns: Mapping[str, Any], lon: float, lat: float) -> dict[str, Any]:
    """A camera (or a revision) as the merge compares it: API fields, the owner by agency id."""
    view = {c: columns.get(c) for c in COLUMNS}
    view["owner_agency"] = columns.get("owner_agency_id")
    view["geometry"] = [lon, lat]
    return view


async def _agency_names(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = (await session.execute(select(Agency.id, Agency.name).where(Agency.id.in_(ids)))).all()
    return {row.id: row.name for row in rows}


async def _apply_change(session: AsyncSession, principal: Principal, edit: CameraEdit, camera_id: int,
                        base_version: int, yours: dict[str, Any], *, verify: bool = False,
                        note: str | None = None, action: str = "camera.update",
                        detail: dict[str, Any] | None = None) -> dict:
    """Merge `yours` (API fields; owner_agency as an agency id; geometry as [lon, lat]) made on
    `base_version` into the camera as it is now, write it, audit it; the camera's answer after."""
    pid = principal.partnership_id
    current = (await session.execute(
        select(*Camera.__table__.c, func.ST_X(Camera.geom).label("lon"), func.ST_Y(Camera.geom).label("lat"))
        .where(Camera.id == camera_id, Camera.partnership_id == pid).with_for_update())).first()
    if current is None:
        raise await camera_missing(session, pid, camera_id)
    now = _merge_view(dict(current._mapping), current.lon, current.lat)
    base: dict[str, Any] | None = now
    if base_version != current.version:
        revision = (await session.execute(
            select(CameraRevision.properties, func.ST_X(CameraRevision.geom).label("lon"),
                   func.ST_Y(CameraRevision.geom).label("lat"))
            .where(CameraRevision.camera_id == camera_id, CameraRevision.version == base_version,
                   CameraRevision.partnership_id == pid, ~CameraRevision.deleted))).first()
        base = _merge_view(revision.properties, revision.lon, revision.lat) if revision else None
    result = merge(yours, now, base)
    before = feature(await fetch_row(session, pid, camera_id))
    if result.conflicts:
        names = await _agency_names(session, {v for c in result.conflicts if c.field == "owner_agency"
                                              for v in (c.yours, c.theirs, c.base) if v is not None})
        conflicts = [{"field": c.field, **{side: names.get(v, v) if c.field == "owner_agency" else v
                                          for side, v in (("yours", c.yours), ("theirs", c.theirs), ("base", c.base))}}
                     for c in result.conflicts]
        raise Conflict(f"The camera was changed by someone else since version {base_version} (now version "
                       f"{current.version}) and {len(conflicts)} field(s) differ: choose for each, then send "
                       f"your choice with version {current.version}.",
                       current_version=current.version, current=answer(before), conflicts=conflicts)
    values: dict[str, Any] = {c: v for c, v in result.apply.items() if c in COLUMNS}
    if "owner_agency" in result.apply:
        values["owner_agency_id"] = result.apply["owner_agency"]
    if "geometry" in result.apply:
        values["geom"] = _point(PointGeometry(type="Point", coordinates=result.apply["geometry"]))
    if verify:
        values.update(verified_at=func.now(), verified_by=principal.name)
    if note:
        line = f"{datetime.now(UTC):%Y-%m-%d} {principal.name}: {note}"
        values["notes"] = ((current.notes + "\n") if current.notes else "") + line
        values["notes"] = values["notes"][-MAX_NOTES:]
    merged = base_version != current.version
    if not values:
        return feature(await fetch_row(session, pid, camera_id), merged=merged)  # nothing left to change
    try:
        await session.execute(update(Camera).values(**values, version=Camera.version + 1, updated_at=func.now())
                              .where(Camera.id == camera_id, Camera.partnership_id == pid))
    except IntegrityError as e:
        raise Conflict("Another camera in your partnership already has that reference.") from e
    if "geometry" in result.apply or COVERAGE_COLUMNS & values.keys():
        await _line_of_sight(session, pid, camera_id)
    after = feature(await fetch_row(session, pid, camera_id), merged=merged)
    audit_detail = {**(detail or {}), **changes(_audited(before), _audited(after))}
    if merged:
        audit_detail["merged_from_version"] = base_version
    await edit.record(session, principal, action, f"camera/{camera_id}", audit_detail)
    return after


@router.patch("/{camera_id}", summary="Change a camera from the version you read (properties.version or "
              "If-Match): merged when it changed meanwhile, 409 for fields both changed, 410 if deleted",
              response_model=CameraFeature)
async def patch_camera(camera_id: CameraId, body: CameraPatch, session: SessionDep, principal: Pcso,
                       edit: EditDep, if_match: Annotated[str | None, Header()] = None) -> Any:
    p = body.properties
    version = _base_version(p.version, if_match)
    replay = await edit.begin(session, principal, digest(body.model_dump(mode="json", exclude_unset=True), if_match))
    if replay is not None:
        return replay
    given = p.model_dump(exclude_unset=True)
    yours: dict[str, Any] = {}
    for col in COLUMNS:
        if col in given:
            if given[col] is None and col in NOT_NULL:
                raise BadRequest(f"{col} cannot be null.")
            yours[col] = given[col]
    if "owner_agency" in given:
        yours["owner_agency"] = await _agency_id(session, principal.partnership_id, given["owner_agency"],
                                                 given.get("owner_agency_kind"))
    if body.geometry is not None:
        yours["geometry"] = body.geometry.coordinates[:2]
    after = answer(await _apply_change(session, principal, edit, camera_id, version, yours,
                                       verify=bool(given.get("verified"))))
    await edit.finish(session, principal, 200, after)
    return after


SURVEY_STATUS = {"faulty": "faulty", "gone": "decommissioned"}


@router.post("/{camera_id}/survey", summary="A PCSO's survey of a camera: verified, faulty or gone",
             response_model=CameraFeature)
async def survey_camera(camera_id: CameraId, body: Survey, session: SessionDep, principal: Pcso,
                        edit: EditDep) -> Any:
    replay = await edit.begin(session, principal, digest(body.model_dump(mode="json", exclude_unset=True)))
    if replay is not None:
        return replay
    if body.version is None:
        # No version seen: the survey applies to the camera as it is now.
        current = await fetch_row(session, principal.partnership_id, camera_id, writing=True)
        version = current.version
    else:
        version = body.version
    yours = {"status": SURVEY_STATUS[body.outcome]} if body.outcome in SURVEY_STATUS else {}
    after = answer(await _apply_change(
        session, principal, edit, camera_id, version, yours, verify=body.outcome == "verified",
        note=f"{body.outcome}: {body.note.strip()}" if body.note.strip() else None,
        action="camera.survey", detail={"outcome": body.outcome, "note": body.note}))
    await edit.finish(session, principal, 200, after)
    return after


@router.delete("/{camera_id}", status_code=204, summary="Remove a camera, its coverage and its photos")
async def delete_camera(camera_id: CameraId, session: SessionDep, principal: Operator, edit: EditDep,
                        settings: SettingsDep) -> Response:
    replay = await edit.begin(session, principal, digest(None))
    if replay is not None:
        return replay
    before = feature(await fetch_row(session, principal.partnership_id, camera_id, writing=True))  # 404, 410
    await session.execute(delete(Camera).where(Camera.id == camera_id,
                                               Camera.partnership_id == principal.partnership_id))
    await edit.record(session, principal, "camera.delete", f"camera/{camera_id}", {"before": _audited(before)})
    await edit.finish(session, principal, 204)
    photos.remove_camera(settings.photos_path, principal.partnership_id, camera_id)  # committed: the files go too
    return Response(status_code=204)
