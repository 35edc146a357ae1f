"""ORM tables. The schema itself is made by the Alembic migrations in migrations/, never by the app."""
from __future__ import annotations

from datetime import date, datetime

from geoalchemy2 import Geometry
from sqlalchemy import BigInteger, Boolean, Date, DateTime, Float, ForeignKey, Integer, LargeBinary, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def _geom(kind: str) -> Geometry:
    # spatial_index=False: the migrations create each index exactly once.
    return Geometry(kind, srid=4326, spatial_index=False)


class Partnership(Base):
    __tablename__ = "partnership"
    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    srid: Mapped[int] = mapped_column(Integer, default=27700)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Agency(Base):
    __tablename__ = "agency"
    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(ForeignKey("partnership.id"))
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, default="other")


class Principal(Base):
    __tablename__ = "principal"
    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(ForeignKey("partnership.id"))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principal.id"))
    name: Mapped[str] = mapped_column(Text, default="")
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SignInLink(Base):
    __tablename__ = "sign_in_link"
    id: Mapped[int] = mapped_column(primary_key=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("principal.id"))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Camera(Base):
    __tablename__ = "camera"
    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(ForeignKey("partnership.id"))
    owner_agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    reference: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text, default="")
    geom = mapped_column(_geom("POINT"), nullable=False)
    bearing: Mapped[float | None] = mapped_column(Float)
    fov: Mapped[float | None] = mapped_column(Float)
    range_m: Mapped[float | None] = mapped_column(Float)
    height_m: Mapped[float | None] = mapped_column(Float)
    camera_type: Mapped[str] = mapped_column(Text, default="fixed")
    status: Mapped[str] = mapped_column(Text, default="operational")
    monitored: Mapped[bool] = mapped_column(Boolean, default=False)
    retention_days: Mapped[int | None] = mapped_column(Integer)
    resolution_px: Mapped[int | None] = mapped_column(Integer)
    purpose: Mapped[str | None] = mapped_column(Text)
    contact: Mapped[str] = mapped_column(Text, default="")
    notes: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="register")
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    verified_by: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CameraCoverage(Base):
    __tablename__ = "camera_coverage"
    camera_id: Mapped[int] = mapped_column(ForeignKey("camera.id"), primary_key=True)
    partnership_id: Mapped[int] = mapped_column(ForeignKey("partnership.id"))
    geom = mapped_column(_geom("POLYGON"), nullable=False)
    bearing: Mapped[float | None] = mapped_column(Float)
    fov: Mapped[float] = mapped_column(Float)
    range_m: Mapped[float] = mapped_column(Float)
    assumed: Mapped[bool] = mapped_column(Boolean)
    purpose: Mapped[str | None] = mapped_column(Text)
    bands: Mapped[dict] = mapped_column(JSONB, default=dict)
    line_of_sight: Mapped[bool] = mapped_column(Boolean, default=False)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Dataset(Base):
    __tablename__ = "dataset"
    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(ForeignKey("partnership.id"))
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
    source_key: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, default="partner")
    sharing_level: Mapped[str] = mapped_column(Text, default="exact")


class ImportRun(Base):
    __tablename__ = "import_run"
    id: Mapped[int] = mapped_column(primary_key=True)
    partnership_id: Mapped[int] = mapped_column(ForeignKey("partnership.id"))
    kind: Mapped[str] = mapped_column(Text)
    file: Mapped[str] = mapped_column(Text)
    checksum: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, default="running")
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_loaded: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    rejects: Mapped[list] = mapped_column(JSONB, default=list)
    message: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Incident(Base):
    __tablename__ = "incident"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    partnership_id: Mapped[int] = mapped_column(ForeignKey("partnership.id"))
    dataset_id: Mapped[int] = mapped_column(ForeignKey("dataset.id"))
    import_run_id: Mapped[int | None] = mapped_column(ForeignKey("import_run.id"))
    external_ref: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str] = mapped_column(Text)
    month: Mapped[date] = mapped_column(Date)
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    geom = mapped_column(_geom("POINT"), nullable=True)
    location_text: Mapped[str | None] = mapped_column(Text)
    lsoa_code: Mapped[str | None] = mapped_column(Text)
    lsoa_name: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)
    context: Mapped[str | None] = mapped_column(Text)
