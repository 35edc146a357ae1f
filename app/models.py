"""The tables, as the migrations leave them (head: 0019). The migrations make the schema, never the
app; these models describe it so that CRUD code can say select(Camera) and Alembic can diff it.

tests/test_models_match_schema.py keeps the two in step: Alembic's compare_metadata must find no
difference, and the constraints and indexes it cannot see (CHECKs, partial and INCLUDE indexes,
ON DELETE) are compared as PostgreSQL itself prints them.

Not expressible here, and kept in the migrations (and migrations/env.py skips them):
  - views: layer_cameras, layer_coverage, layer_coverage_bands, layer_coverage_union,
    layer_incidents, layer_streets, layer_buildings, layer_safe_routes (what the catalog serves);
  - functions and triggers: the coverage wedge (camera_coverage_sync), data versions
    (*_version_insert/update/delete), anonymous locations, status history, camera revisions
    (camera_revision_write), the coverage-union cells and its deferred constraint triggers, the
    append-only audit trail;
  - the role safermap_app and its grants;
  - the PostGIS/pgRouting tables (spatial_ref_sys, ...).
Nothing is partitioned.

Every name (constraint and index) is PostgreSQL's own default for the SQL in the migrations, so a
model is read against `\\d table` without translation. Geometry columns use spatial_index=False:
each GiST index is declared once, by name, with Index(..., postgresql_using="gist").
"""
from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from geoalchemy2 import Geometry, WKBElement
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Sequence,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    column,
    desc,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import conv

# PostgreSQL's own names for unnamed constraints (ChooseConstraintName). A CHECK is named here by
# its column ("bearing" -> camera_bearing_check); one over several columns gets conv() of its full name.
NAMING = {
    "pk": "%(table_name)s_pkey",
    "fk": "%(table_name)s_%(column_0_N_name)s_fkey",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
}

ROLES = ("admin", "analyst", "operator", "pcso", "viewer")
LEVELS = ("none", "aggregate", "sanitised", "exact")
CAMERA_STATUSES = ("operational", "faulty", "decommissioned", "planned")
BANDS = ("detect", "observe", "recognise", "identify")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        str: Text,
        int: Integer,
        float: Double,
        bool: Boolean,
        bytes: LargeBinary,
        date: Date,
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
        list[Any]: JSONB,
        list[str]: ARRAY(Text),
        uuid.UUID: UUID(as_uuid=True),
    }


def _geom(kind: str, srid: int = 4326) -> Geometry:
    # spatial_index=False: every GiST index is declared by name below, exactly once.
    return Geometry(kind, srid=srid, spatial_index=False)


def _one_of(col: str, values: tuple[str, ...]) -> CheckConstraint:
    return CheckConstraint(f"{col} IN ({', '.join(repr(v) for v in values)})", name=col)


def _length(col: str, low: int, high: int) -> CheckConstraint:
    return CheckConstraint(f"length({col}) BETWEEN {low} AND {high}", name=col)


def _gist(name: str, col: str) -> Index:
    return Index(name, col, postgresql_using="gist")


def _to(target: str, ondelete: str = "CASCADE") -> ForeignKey:
    return ForeignKey(target, ondelete=ondelete)


NOW = func.now()

# -- partnerships, agencies, people ---------------------------------------------------------------


class Partnership(Base):
    __tablename__ = "partnership"
    __table_args__ = (
        CheckConstraint("slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'", name="slug"),
        _length("name", 1, 200),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    # the metric CRS for distances, buffers and wedges (27700 British National Grid in GB)
    srid: Mapped[int] = mapped_column(server_default=text("27700"))
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)


class Agency(Base):
    __tablename__ = "agency"
    __table_args__ = (
        UniqueConstraint("partnership_id", "name"),
        _length("name", 1, 200),
        _one_of("kind", ("police", "council", "fire", "ambulance", "probation", "transport", "private", "other")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    name: Mapped[str]
    kind: Mapped[str] = mapped_column(server_default="other")


class Principal(Base):
    """A `user` (email and password) or a `service` (bearer tokens only)."""
    __tablename__ = "principal"
    __table_args__ = (
        _length("name", 1, 200),
        _one_of("role", ROLES),
        _one_of("kind", ("user", "service")),
        CheckConstraint(r"email IS NULL OR (length(email) BETWEEN 3 AND 254 AND email ~ '^[^@\s]+@[^@\s]+$')",
                        name="email"),
        CheckConstraint("kind = 'service' OR email IS NOT NULL", name=conv("principal_user_has_email")),
        Index("principal_partnership_idx", "partnership_id"),
        # unique ignoring case: a user signs in with the email alone
        Index("principal_email_key", func.lower(column("email")), unique=True),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    agency_id: Mapped[int | None] = mapped_column(_to("agency.id", "SET NULL"))
    name: Mapped[str]
    role: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    disabled_at: Mapped[datetime | None]
    kind: Mapped[str] = mapped_column(server_default="service")
    email: Mapped[str | None]
    password_hash: Mapped[str | None]
    failed_sign_ins: Mapped[int] = mapped_column(server_default=text("0"))
    locked_until: Mapped[datetime | None]
    last_sign_in_at: Mapped[datetime | None]
    # carried in the signed session cookie: bumping it ends every session of the principal
    session_epoch: Mapped[int] = mapped_column(server_default=text("0"))


class ApiToken(Base):
    """A bearer token, kept only as its SHA-256 digest (the token is shown once)."""
    __tablename__ = "api_token"
    __table_args__ = (Index("api_token_principal_idx", "principal_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    principal_id: Mapped[int] = mapped_column(_to("principal.id"))
    name: Mapped[str] = mapped_column(server_default="")
    token_hash: Mapped[bytes] = mapped_column(unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class SignInLink(Base):
    __tablename__ = "sign_in_link"
    id: Mapped[int] = mapped_column(primary_key=True)
    principal_id: Mapped[int] = mapped_column(_to("principal.id"))
    token_hash: Mapped[bytes] = mapped_column(unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class AuditEvent(Base):
    """Append-only (a trigger refuses UPDATE and DELETE); no foreign keys: it outlives its subjects."""
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("audit_event_partnership_idx", "partnership_id", desc("at")),
        Index("audit_event_action_idx", "action", desc("at")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())
    partnership_id: Mapped[int | None]
    principal_id: Mapped[int | None]
    principal_name: Mapped[str | None]
    action: Mapped[str]
    target: Mapped[str] = mapped_column(server_default="")
    detail: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    ip: Mapped[str | None]


# -- cameras ----------------------------------------------------------------------------------------


class Camera(Base):
    """The `camera_coverage_sync` trigger redraws the camera's plain coverage on every change of
    its shape columns; `camera_status_open`/`camera_status_change` keep its status history."""
    __tablename__ = "camera"
    __table_args__ = (
        UniqueConstraint("partnership_id", "reference"),
        _length("reference", 1, 100),
        CheckConstraint("length(name) <= 200", name="name"),
        CheckConstraint("bearing >= 0 AND bearing < 360", name="bearing"),
        CheckConstraint("fov > 0 AND fov <= 360", name="fov"),
        CheckConstraint("range_m > 0 AND range_m <= 2000", name="range_m"),
        CheckConstraint("height_m >= 0 AND height_m <= 300", name="height_m"),
        _one_of("camera_type", ("fixed", "ptz", "dome", "anpr", "redeployable")),
        _one_of("status", CAMERA_STATUSES),
        CheckConstraint("retention_days BETWEEN 0 AND 3650", name="retention_days"),
        CheckConstraint("length(contact) <= 500", name="contact"),
        CheckConstraint("length(notes) <= 4000", name="notes"),
        CheckConstraint("resolution_px BETWEEN 160 AND 20000", name="resolution_px"),
        _one_of("purpose", BANDS),
        CheckConstraint("location_accuracy_m >= 0", name="location_accuracy_m"),
        CheckConstraint("length(owner_contact) <= 500", name="owner_contact"),
        _gist("camera_geom_idx", "geom"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    owner_agency_id: Mapped[int | None] = mapped_column(_to("agency.id", "SET NULL"))
    reference: Mapped[str]
    name: Mapped[str] = mapped_column(server_default="")
    geom: Mapped[WKBElement] = mapped_column(_geom("POINT"))
    bearing: Mapped[float | None]
    fov: Mapped[float | None]
    range_m: Mapped[float | None]
    height_m: Mapped[float | None]
    camera_type: Mapped[str] = mapped_column(server_default="fixed")
    status: Mapped[str] = mapped_column(server_default="operational")
    monitored: Mapped[bool] = mapped_column(server_default=text("false"))
    retention_days: Mapped[int | None]
    contact: Mapped[str] = mapped_column(server_default="")
    notes: Mapped[str] = mapped_column(server_default="")
    source: Mapped[str] = mapped_column(server_default="register")
    verified_at: Mapped[datetime | None]
    verified_by: Mapped[str | None]
    version: Mapped[int] = mapped_column(server_default=text("1"))
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(server_default=NOW)
    resolution_px: Mapped[int | None]
    purpose: Mapped[str | None]
    location_accuracy_m: Mapped[float | None]  # the device's GPS accuracy when it was placed (metres)
    owner_contact: Mapped[str] = mapped_column(server_default="")  # how to reach a private owner


class CameraRevision(Base):
    """Every version of every camera, kept by the camera_revision_write trigger (never the ORM).
    No foreign key to camera: a deleted camera's history stays, ending in a `deleted` row."""
    __tablename__ = "camera_revision"
    camera_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    properties: Mapped[dict[str, Any]]  # the camera's columns but id, partnership, geom and bookkeeping
    geom: Mapped[WKBElement] = mapped_column(_geom("POINT"))
    deleted: Mapped[bool] = mapped_column(server_default=text("false"))
    changed_by: Mapped[str | None]  # the transaction's safermap.actor
    changed_at: Mapped[datetime] = mapped_column(server_default=NOW)


class CameraPhoto(Base):
    """A photo of a camera; the image and its thumbnail are files under settings.photo_dir."""
    __tablename__ = "camera_photo"
    __table_args__ = (
        _one_of("format", ("jpeg", "png", "webp")),
        CheckConstraint("width > 0", name="width"),
        CheckConstraint("height > 0", name="height"),
        CheckConstraint("bytes > 0", name="bytes"),
        CheckConstraint("thumbnail_bytes > 0", name="thumbnail_bytes"),
        Index("camera_photo_camera_idx", "camera_id", "created_at"),
    )
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    camera_id: Mapped[int] = mapped_column(_to("camera.id"))
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    format: Mapped[str]
    width: Mapped[int]
    height: Mapped[int]
    bytes: Mapped[int]
    thumbnail_bytes: Mapped[int]
    sha256: Mapped[str]  # of the stored (re-encoded) image
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    created_by: Mapped[int | None] = mapped_column(_to("principal.id", "SET NULL"))
    created_by_name: Mapped[str | None]


class IdempotencyKey(Base):
    """The answer given to an Idempotency-Key, stored with the change it answers (app/idempotency.py)."""
    __tablename__ = "idempotency_key"
    __table_args__ = (
        CheckConstraint("status >= 200 AND status <= 299", name="status"),
        Index("idempotency_key_created_idx", "partnership_id", "created_at"),
    )
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"), primary_key=True)
    key: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    principal_id: Mapped[int] = mapped_column(_to("principal.id"))
    method: Mapped[str]
    path: Mapped[str]
    body_sha256: Mapped[str]
    status: Mapped[int]
    response: Mapped[dict[str, Any] | None]
    headers: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)


class CameraCoverage(Base):
    """Written by the trigger (the plain wedge) and app.analysis.coverage (line of sight), never by
    the ORM."""
    __tablename__ = "camera_coverage"
    __table_args__ = (_gist("camera_coverage_geom_idx", "geom"),)
    camera_id: Mapped[int] = mapped_column(_to("camera.id"), primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    geom: Mapped[WKBElement] = mapped_column(_geom("POLYGON"))
    bearing: Mapped[float | None]
    fov: Mapped[float]
    range_m: Mapped[float]
    assumed: Mapped[bool]  # true when any value came from defaults, not a survey
    computed_at: Mapped[datetime] = mapped_column(server_default=NOW)
    purpose: Mapped[str | None]
    bands: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))  # band -> metres
    line_of_sight: Mapped[bool] = mapped_column(server_default=text("false"))


class CameraCoverageBand(Base):
    __tablename__ = "camera_coverage_band"
    __table_args__ = (
        _one_of("band", BANDS),
        _gist("camera_coverage_band_geom_idx", "geom"),
    )
    camera_id: Mapped[int] = mapped_column(_to("camera.id"), primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    band: Mapped[str] = mapped_column(primary_key=True)
    distance_m: Mapped[float]
    geom: Mapped[WKBElement] = mapped_column(_geom("POLYGON"))


class CameraStatusHistory(Base):
    """One row per period; the open one (valid_to NULL) is the current status. Kept by triggers."""
    __tablename__ = "camera_status_history"
    __table_args__ = (
        _one_of("status", CAMERA_STATUSES),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name=conv("camera_status_history_check")),
        Index("camera_status_history_at_idx", "camera_id", desc("valid_from"), desc("id"),
              postgresql_include=["status", "valid_to"]),
        Index("camera_status_history_open_idx", "camera_id", unique=True,
              postgresql_where=text("valid_to IS NULL")),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    camera_id: Mapped[int] = mapped_column(_to("camera.id"))
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    status: Mapped[str]
    valid_from: Mapped[datetime]
    valid_to: Mapped[datetime | None]


# -- incidents and who sees them ---------------------------------------------------------------------


class Dataset(Base):
    __tablename__ = "dataset"
    __table_args__ = (
        UniqueConstraint("partnership_id", "source_key"),
        _one_of("kind", ("police_uk", "partner")),
        _one_of("sharing_level", LEVELS),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    agency_id: Mapped[int | None] = mapped_column(_to("agency.id", "SET NULL"))
    source_key: Mapped[str]  # e.g. 'police-uk:greater-manchester-police'
    name: Mapped[str]
    kind: Mapped[str] = mapped_column(server_default="partner")
    sharing_level: Mapped[str] = mapped_column(server_default="exact")
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)


class ImportRun(Base):
    __tablename__ = "import_run"
    __table_args__ = (
        _one_of("status", ("running", "loaded", "failed", "refused", "interrupted", "cancelled")),
        Index("import_run_partnership_idx", "partnership_id", desc("id")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    kind: Mapped[str]
    file: Mapped[str]
    checksum: Mapped[str | None]
    status: Mapped[str] = mapped_column(server_default="running")
    rows_total: Mapped[int] = mapped_column(server_default=text("0"))
    rows_loaded: Mapped[int] = mapped_column(server_default=text("0"))
    rows_rejected: Mapped[int] = mapped_column(server_default=text("0"))
    rejects: Mapped[list[Any]] = mapped_column(server_default=text("'[]'::jsonb"))
    message: Mapped[str] = mapped_column(server_default="")
    started_at: Mapped[datetime] = mapped_column(server_default=NOW)
    finished_at: Mapped[datetime | None]
    progress_at: Mapped[datetime | None]  # the heartbeat while a file streams in


class Incident(Base):
    """No foreign keys on purpose (migrations 0003, 0008): checking them cost seconds per million
    rows of a bulk load. A data set's deletion removes its incidents by a statement trigger.

    Partitioned by data set and month (migration 0018; app/sql/incident_partitions.sql): an import
    loads a month into a table of its own and swaps it in. The partitions are not modelled (see
    PARTITION_PREFIXES). A key must hold the partition key, hence (id, dataset_id, month)."""
    __tablename__ = "incident"
    __table_args__ = (
        _gist("incident_geom_idx", "geom"),
        _gist("incident_geom_anon_idx", "geom_anon"),
        Index("incident_dataset_month_idx", "dataset_id", "month"),
        Index("incident_partnership_month_idx", "partnership_id", "month"),
        {"postgresql_partition_by": "RANGE (dataset_id, month)"},
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    partnership_id: Mapped[int]
    dataset_id: Mapped[int] = mapped_column(primary_key=True)
    import_run_id: Mapped[int | None]
    external_ref: Mapped[str | None]  # police.uk Crime ID; empty for anti-social behaviour
    category: Mapped[str]
    month: Mapped[date] = mapped_column(primary_key=True)  # first day of the month
    occurred_at: Mapped[datetime | None]
    geom: Mapped[WKBElement | None] = mapped_column(_geom("POINT"))  # NULL: kept, not mapped
    location_text: Mapped[str | None]
    lsoa_code: Mapped[str | None]
    lsoa_name: Mapped[str | None]
    outcome: Mapped[str | None]
    context: Mapped[str | None]
    # the anonymous location (set by the incident_anonymise trigger or the import)
    geom_anon: Mapped[WKBElement | None] = mapped_column(_geom("POINT"))
    anon_point_id: Mapped[int | None] = mapped_column(BigInteger)


class SharingRule(Base):
    __tablename__ = "sharing_rule"
    __table_args__ = (
        _one_of("grantee_role", ROLES),
        _one_of("level", LEVELS),
        CheckConstraint("(grantee_agency_id IS NULL) <> (grantee_role IS NULL)", name=conv("sharing_rule_check")),
        Index("sharing_rule_agency_key", "dataset_id", "grantee_agency_id", unique=True,
              postgresql_where=text("grantee_agency_id IS NOT NULL")),
        Index("sharing_rule_role_key", "dataset_id", "grantee_role", unique=True,
              postgresql_where=text("grantee_role IS NOT NULL")),
        Index("sharing_rule_grantee_idx", "grantee_agency_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))  # the data set's
    dataset_id: Mapped[int] = mapped_column(_to("dataset.id"))
    # an agency of any partnership (a county hub): the only way data crosses partnerships
    grantee_agency_id: Mapped[int | None] = mapped_column(_to("agency.id"))
    grantee_role: Mapped[str | None]
    level: Mapped[str]
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    created_by: Mapped[int | None] = mapped_column(_to("principal.id", "SET NULL"))


class SensitiveCategory(Base):
    __tablename__ = "sensitive_category"
    __table_args__ = (
        _length("category", 1, 200),
        _one_of("least_role", ("viewer", "pcso", "operator", "analyst", "admin")),
    )
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"), primary_key=True)
    category: Mapped[str] = mapped_column(primary_key=True)
    least_role: Mapped[str]


class AnonPoint(Base):
    """Street-based anonymous points, in the manner of police.uk's snap points."""
    __tablename__ = "anon_point"
    __table_args__ = (_gist("anon_point_geom_m_idx", "geom_m"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    geom: Mapped[WKBElement] = mapped_column(_geom("POINT"))
    geom_m: Mapped[WKBElement] = mapped_column(_geom("POINT", srid=-1))  # in the partnership's metric CRS
    label: Mapped[str]


class Embed(Base):
    __tablename__ = "embed"
    __table_args__ = (
        CheckConstraint("public_id ~ '^[A-Za-z0-9_-]{8,64}$'", name="public_id"),
        _length("title", 1, 200),
        CheckConstraint("cardinality(layers) BETWEEN 1 AND 20", name="layers"),
        _one_of("precision", ("sanitised", "aggregate")),
        CheckConstraint("cardinality(allowed_origins) BETWEEN 1 AND 20", name="allowed_origins"),
        Index("embed_partnership_idx", "partnership_id", desc("id")),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    public_id: Mapped[str] = mapped_column(unique=True)
    key_hash: Mapped[bytes] = mapped_column(unique=True)
    title: Mapped[str]
    layers: Mapped[list[str]]
    area: Mapped[WKBElement | None] = mapped_column(_geom("POLYGON"))  # NULL: the partnership's whole data
    precision: Mapped[str]
    allowed_origins: Mapped[list[str]]
    expires_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    created_by: Mapped[int | None] = mapped_column(_to("principal.id", "SET NULL"))
    revoked_at: Mapped[datetime | None]
    views: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    view_audited_at: Mapped[datetime | None]


class DataVersion(Base):
    """Bumped (from data_version_seq) by a statement trigger on every versioned table: tile ETags."""
    __tablename__ = "data_version"
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"), primary_key=True)
    source: Mapped[str] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class HotspotExtent(Base):
    """A caller's study extent kept under the data versions it was read at (app/analysis/hotspot_data)."""
    __tablename__ = "hotspot_extent"
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"), primary_key=True)
    access: Mapped[str] = mapped_column(primary_key=True)
    versions: Mapped[str]
    srid: Mapped[int]
    minx: Mapped[float | None]
    miny: Mapped[float | None]
    maxx: Mapped[float | None]
    maxy: Mapped[float | None]
    computed_at: Mapped[datetime] = mapped_column(server_default=NOW)


# Not tied to a column: the data-version triggers draw from it (Alembic does not compare sequences).
data_version_seq = Sequence("data_version_seq", metadata=Base.metadata)


# -- OpenStreetMap and routing ---------------------------------------------------------------------


class Street(Base):
    __tablename__ = "street"
    __table_args__ = (
        _gist("street_geom_idx", "geom"),
        Index("street_partnership_idx", "partnership_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    osm_id: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str | None]
    highway: Mapped[str | None]
    lit: Mapped[str | None]  # the OSM value as tagged: yes, no, 24/7, automatic, ...
    geom: Mapped[WKBElement] = mapped_column(_geom("LINESTRING"))
    # The OSM tags routing reads (opening_hours, access, foot, ...; migration 0016).
    tags: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))


class Building(Base):
    __tablename__ = "building"
    __table_args__ = (
        CheckConstraint("height_m > 0 AND height_m <= 1000", name="height_m"),
        CheckConstraint("levels >= 0 AND levels <= 300", name="levels"),
        _gist("building_geom_idx", "geom"),
        Index("building_partnership_idx", "partnership_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    osm_id: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str | None]
    height_m: Mapped[float | None]
    levels: Mapped[float | None]
    geom: Mapped[WKBElement] = mapped_column(_geom("MULTIPOLYGON"))


class RouteVertex(Base):
    __tablename__ = "route_vertex"
    __table_args__ = (
        _gist("route_vertex_geom_idx", "geom"),
        Index("route_vertex_partnership_idx", "partnership_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    geom: Mapped[WKBElement] = mapped_column(_geom("POINT"))


class RouteEdge(Base):
    """Built by safermap_build_route_network(); source/target are route_vertex ids (pgRouting's
    convention, no foreign keys: the network is rebuilt as a whole)."""
    __tablename__ = "route_edge"
    __table_args__ = (
        _gist("route_edge_geom_idx", "geom"),
        Index("route_edge_partnership_idx", "partnership_id"),
        Index("route_edge_source_idx", "source"),
        Index("route_edge_target_idx", "target"),
        _gist("route_edge_geom_m_idx", "geom_m"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    street_id: Mapped[int | None] = mapped_column(BigInteger)
    source: Mapped[int] = mapped_column(BigInteger)
    target: Mapped[int] = mapped_column(BigInteger)
    cost: Mapped[float]
    reverse_cost: Mapped[float]
    length_m: Mapped[float]
    lit: Mapped[str | None]
    highway: Mapped[str | None]
    name: Mapped[str | None]
    geom: Mapped[WKBElement] = mapped_column(_geom("LINESTRING"))
    # Migration 0016: the line in the metric CRS and its safety attributes (app/sql/route_safety.sql),
    # in metres of its length.
    geom_m: Mapped[WKBElement | None] = mapped_column(_geom("LINESTRING", srid=-1))
    covered_m: Mapped[float] = mapped_column(server_default=text("0"))
    monitored_m: Mapped[float] = mapped_column(server_default=text("0"))
    lamp_m: Mapped[float] = mapped_column(server_default=text("0"))
    park_id: Mapped[int | None] = mapped_column(BigInteger, _to("park.id", "SET NULL"))
    opening_hours: Mapped[str | None]


class Park(Base):
    """OpenStreetMap parks (leisure=park), read by routing for their names and opening hours."""
    __tablename__ = "park"
    __table_args__ = (
        _gist("park_geom_idx", "geom"),
        Index("park_partnership_idx", "partnership_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    osm_id: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str | None]
    opening_hours: Mapped[str | None]
    geom: Mapped[WKBElement] = mapped_column(_geom("MULTIPOLYGON"))


class StreetLamp(Base):
    """A council's street-lamp register: a segment is lit where lamps stand near it."""
    __tablename__ = "street_lamp"
    __table_args__ = (
        _gist("street_lamp_geom_idx", "geom"),
        Index("street_lamp_partnership_idx", "partnership_id"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    reference: Mapped[str | None]
    geom: Mapped[WKBElement] = mapped_column(_geom("POINT"))


# Places whose segments' safety attributes wait for the deferred recompute (no primary key, like
# coverage_union_dirty), and the partnerships pending in a transaction.
route_safety_dirty = Table(
    "route_safety_dirty", Base.metadata,
    Column("partnership_id", Integer, _to("partnership.id"), nullable=False),
    Column("bbox", _geom("GEOMETRY"), nullable=False),
    Index("route_safety_dirty_partnership_idx", "partnership_id"),
)


class RouteSafetyPending(Base):
    __tablename__ = "route_safety_pending"
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"), primary_key=True)
    xact: Mapped[int] = mapped_column(BigInteger, primary_key=True, server_default=func.txid_current())


class RoutePublished(Base):
    """A named safe route an analyst saved: the `safe_routes` layer (view layer_safe_routes)."""
    __tablename__ = "route_published"
    __table_args__ = (
        _length("name", 1, 200),
        _one_of("profile", ("safest", "shortest")),
        CheckConstraint("max_detour >= 1 AND max_detour <= 3", name="max_detour"),
        _one_of("time_of_day", ("day", "night")),
        _gist("route_published_geom_idx", "geom"),
        Index("route_published_partnership_idx", "partnership_id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    name: Mapped[str]
    profile: Mapped[str]
    max_detour: Mapped[float]
    time_of_day: Mapped[str]
    from_geom: Mapped[WKBElement] = mapped_column(_geom("POINT"))
    to_geom: Mapped[WKBElement] = mapped_column(_geom("POINT"))
    geom: Mapped[WKBElement] = mapped_column(_geom("LINESTRING"))
    length_m: Mapped[float]
    camera_share: Mapped[float]
    lit_share: Mapped[float]
    incidents_near: Mapped[int | None]
    suppress_below: Mapped[int]
    explanation: Mapped[str] = mapped_column(server_default="")
    created_by: Mapped[int | None] = mapped_column(_to("principal.id", "SET NULL"))
    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    evaluated_at: Mapped[datetime] = mapped_column(server_default=NOW)


# -- the coverage union (migration 0012): kept by triggers and safermap_refresh_coverage_union() --------


class CoverageUnion(Base):
    __tablename__ = "coverage_union"
    __table_args__ = (
        _one_of("kind", ("working", "planned")),
        _gist("coverage_union_geom_idx", "geom"),
        _gist("coverage_union_geom_m_idx", "geom_m"),
        Index("coverage_union_partnership_idx", "partnership_id", "kind"),
        Index("coverage_union_cell_idx", "partnership_id", "cx", "cy"),
    )
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"))
    kind: Mapped[str]
    cx: Mapped[int]  # the grid cell the piece lies in
    cy: Mapped[int]
    geom: Mapped[WKBElement] = mapped_column(_geom("POLYGON"))
    geom_m: Mapped[WKBElement] = mapped_column(_geom("POLYGON", srid=-1))  # in the metric CRS


# No primary key on purpose (two transactions noting one place must not wait on each other), so
# this is a plain table, not a mapped class.
coverage_union_dirty = Table(
    "coverage_union_dirty", Base.metadata,
    Column("partnership_id", Integer, _to("partnership.id"), nullable=False),
    Column("bbox", _geom("GEOMETRY"), nullable=False),
    Index("coverage_union_dirty_partnership_idx", "partnership_id"),
)


class CoverageUnionPending(Base):
    """One row per partnership and transaction; its deferred constraint trigger syncs at commit."""
    __tablename__ = "coverage_union_pending"
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"), primary_key=True)
    xact: Mapped[int] = mapped_column(BigInteger, primary_key=True, server_default=func.txid_current())


class CoverageUnionState(Base):
    __tablename__ = "coverage_union_state"
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"), primary_key=True)
    srid: Mapped[int]  # the metric CRS of geom_m and of the grid
    cell_m: Mapped[float]  # the grid's cell size
    built_at: Mapped[datetime]  # the last rebuild of every cell
    synced_at: Mapped[datetime]  # the last rebuild of any cell


# -- incident cells: what low-zoom incident tiles count from (app/sql/incident_cells.sql) --------

# No primary key on purpose: rebuilt whole per partnership, read by tile; a plain table.
incident_cell = Table(
    "incident_cell", Base.metadata,
    Column("partnership_id", Integer, _to("partnership.id"), nullable=False),
    Column("dataset_id", Integer, nullable=False),
    Column("anon", Boolean, nullable=False),
    Column("z", SmallInteger, nullable=False),
    Column("x", Integer, nullable=False),
    Column("y", Integer, nullable=False),
    Column("cx", Integer, nullable=False),
    Column("cy", Integer, nullable=False),
    Column("category", Text, nullable=False),
    Column("n", Integer, nullable=False),
    Column("sx", Double, nullable=False),
    Column("sy", Double, nullable=False),
    Index("incident_cell_tile_idx", "partnership_id", "z", "x", "y", "dataset_id", "anon"),
)


class IncidentCellBuild(Base):
    """The partnership's 'incident' data version its incident cells were read at."""
    __tablename__ = "incident_cell_build"
    partnership_id: Mapped[int] = mapped_column(_to("partnership.id"), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)
    built_at: Mapped[datetime]


# -- what Alembic compares (migrations/env.py and tests/test_models_match_schema.py) ----------------

# Tables that extensions own: PostGIS, pgRouting, the TIGER geocoder and topology.
EXTENSION_TABLES = frozenset({
    "spatial_ref_sys", "geometry_columns", "geography_columns", "raster_columns", "raster_overviews",
    "topology", "layer", "pointcloud_formats", "us_gaz", "us_lex", "us_rules",
})
EXTENSION_SCHEMAS = frozenset({"tiger", "tiger_data", "topology"})
# Views (Alembic does not reflect them, but should anyone ask it to): the catalog's layer views.
VIEW_PREFIX = "layer_"
# Partitions of incident (one per data set-month, and the default) and an import's tables to be
# attached as such (migration 0018): the partitioned table is modelled, they are not.
PARTITION_PREFIXES = ("incident_p_", "incident_load_")


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    """Alembic's include_name hook: leave out what the extensions own and the layer views."""
    if type_ == "schema":
        return name not in EXTENSION_SCHEMAS
    if type_ == "table":
        return (name not in EXTENSION_TABLES and not (name or "").startswith((VIEW_PREFIX, *PARTITION_PREFIXES))
                and parent_names.get("schema_name") not in EXTENSION_SCHEMAS)
    return True


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Alembic's include_object hook: GeoAlchemy2's own filter (spatial internal tables) as well."""
    from geoalchemy2.alembic_helpers import include_object as spatial_include_object
    if type_ == "table" and not include_name(name, "table", {"schema_name": getattr(obj, "schema", None)}):
        return False
    return bool(spatial_include_object(obj, name, type_, reflected, compare_to))


# The options env.py configures Alembic with, and the model test compares with.
COMPARE_OPTIONS: dict[str, Any] = {
    "include_name": include_name,
    "include_object": include_object,
    "compare_type": True,
    "compare_server_default": True,
}
