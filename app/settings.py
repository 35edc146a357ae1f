"""All configuration in one place: environment variables prefixed SAFERMAP_ (plus DATABASE_URL).

Numbers have bounds, and a bad value stops the CLI and the app at start-up with a message that
names the variable (`SettingsError`), never a traceback or a misbehaving server.
"""
from __future__ import annotations

import json
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
KIB, MIB, GIB = 1024, 1024 ** 2, 1024 ** 3


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAFERMAP_", extra="ignore")

    # With no DATABASE_URL the app uses its private cluster under var/ (see app/embedded.py).
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "SAFERMAP_DATABASE_URL")
    )
    var_dir: Path = ROOT / "var"
    # SAFERMAP_EMBEDDED_PORT pins the port; unset, it is 54329 unless taken (app.embedded.resolve_port).
    embedded_port: int | None = Field(default=None, ge=1, le=65535)
    embedded_db: str = "safermap"
    pg_bindir: Path | None = None  # where initdb/pg_ctl live; found automatically when unset

    # The database role the app works as (migration 0004): it cannot alter the audit trail.
    # Empty means the connecting user's own role.
    db_role: str = "safermap_app"

    # Each worker's pool, shrunk at start-up when workers x (pool + overflow + 1 listener) would not
    # fit under the server's max_connections less the superuser's reserve and `db_headroom` (left
    # for the CLI, migrations and imports): app/db.py plan_pool. `workers` is how many processes
    # share the server (`safermap serve` sets it; unset: one per core, serve's default).
    pool_size: int = Field(default=5, ge=1, le=1000)
    max_overflow: int = Field(default=5, ge=0, le=1000)
    workers: int | None = Field(default=None, ge=1, le=1024)
    db_headroom: int = Field(default=10, ge=0, le=10_000)
    # A request that waits longer than this for a connection is answered 503 with Retry-After.
    pool_timeout_s: float = Field(default=2.0, ge=0.05, le=60)
    # The live state's listening connection (app/live_state.py): after losing it, wait this long
    # before connecting again (answering from the database meanwhile); check it is alive this often.
    live_retry_s: float = Field(default=1.0, ge=0.01, le=300)
    live_check_s: float = Field(default=10.0, ge=0.1, le=3600)

    secret_key: str | None = None  # signs session cookies; shared by every worker
    session_max_age_s: int = Field(default=12 * 3600, ge=60, le=90 * 24 * 3600)
    cookie_secure: bool = False  # set true behind TLS (cookies are also Secure on any HTTPS request)

    # Sign-in: after `sign_in_max_failures` consecutive failures an email is locked for 1, 2, 4...
    # minutes (capped); each IP may try `sign_in_per_ip_per_minute` times a minute.
    sign_in_max_failures: int = Field(default=5, ge=1, le=1000)
    sign_in_lock_cap_minutes: int = Field(default=60, ge=1, le=7 * 24 * 60)
    sign_in_per_ip_per_minute: int = Field(default=20, ge=1, le=100_000)
    user_token_days: int = Field(default=90, ge=1, le=3650)  # default lifetime of a user's API token

    # Hardening (app/security.py). CORS origins: comma-separated, e.g. "https://intranet.example.gov.uk";
    # empty means no CORS headers at all.
    cors_origins: str = ""
    max_body_bytes: int = Field(default=MIB, ge=KIB, le=GIB)              # JSON and form bodies
    max_upload_bytes: int = Field(default=20 * MIB, ge=KIB, le=4 * GIB)  # multipart uploads (a camera photo)
    rate_limit_per_minute: int = Field(default=1200, ge=1, le=10_000_000)        # /api per token, session or IP
    tile_rate_limit_per_minute: int = Field(default=12000, ge=1, le=10_000_000)  # /tiles: a page asks for dozens

    # Camera photos (app/photos.py): files under photo_dir (default var_dir/photos), never in the
    # web root. A photo is refused (413) past max_photo_bytes, counted while it streams in.
    photo_dir: Path | None = None
    max_photo_bytes: int = Field(default=15 * MIB, ge=KIB, le=200 * MIB)
    # Idempotency-Key answers are kept at least this long, per partnership (app/idempotency.py).
    idempotency_days: int = Field(default=7, ge=1, le=365)

    layers_dir: Path = ROOT / "layers"
    static_dir: Path = ROOT / "static"

    max_features_limit: int = Field(default=10_000, ge=1, le=1_000_000)  # the documented maximum `limit`
    # Exports (GET /api/exports/...) each worker runs at once; more are answered 503 with
    # Retry-After. Unset: half the cores, at least 1 (an export keeps about a core busy here, its
    # writer or encoder, and one in PostgreSQL reading the rows).
    export_concurrency: int | None = Field(default=None, ge=1, le=1024)
    # Tiles each worker draws at once (app/tiles/pipeline.py DrawGate); more wait their turn without
    # holding a connection, up to pool_timeout_s, then are answered 503 with Retry-After. Unset: two
    # per core shared out among the workers, at least 2. Drawing is CPU work in PostgreSQL: on 2
    # cores, ten tiles drawn at once (the whole pool) each took about as long as ten in a row, and
    # starved this process of the CPU it needs to answer them.
    tile_draws: int | None = Field(default=None, ge=1, le=1024)
    # The tile cache of each worker (app/tiles/cache.py): at most this many tiles and bytes; 0 turns it off.
    tile_cache_entries: int = Field(default=2_000, ge=0, le=10_000_000)
    tile_cache_bytes: int = Field(default=256 * MIB, ge=0, le=64 * GIB)

    # Counts shown to anyone without exact access to every counted incident hide groups smaller
    # than this (cells, categories, areas): app/sharing.py.
    suppress_below: int = Field(default=5, ge=1, le=1000)

    # Safe walking routes (app/analysis/routing*.py): walking speed; whether a street with no OSM
    # lit tag (and no register lamp near) counts as lit; incident weights by category as a JSON
    # object over the defaults (app/analysis/routing_risk.py); the time zone of times given
    # without an offset and of opening_hours.
    route_walk_speed_mps: float = Field(default=1.35, ge=0.3, le=5)
    route_untagged_lit: bool = False
    route_incident_weights: str = ""
    route_timezone: str = "Europe/London"

    @field_validator("route_incident_weights")
    @classmethod
    def _weights(cls, v: str) -> str:
        if v.strip():
            try:
                parsed = json.loads(v)
            except ValueError as exc:
                raise ValueError("must be a JSON object of category: weight") from exc
            if not isinstance(parsed, dict) or not all(
                    isinstance(w, int | float) and 0 <= w <= 1000 for w in parsed.values()):
                raise ValueError("must be a JSON object of category: weight, weights 0..1000")
        return v

    @field_validator("route_timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ValueError, ZoneInfoNotFoundError) as exc:
            raise ValueError("must be an IANA time zone such as Europe/London") from exc
        return v

    @model_validator(mode="after")
    def _photos_outside_the_web_root(self) -> Settings:
        # Photos are served only through their API routes, which check the caller's partnership.
        if self.photos_path.resolve().is_relative_to(self.static_dir.resolve()):
            raise ValueError("photo_dir must not be inside static_dir (the web root)")
        return self

    @property
    def photos_path(self) -> Path:
        """photo_dir, resolved (it defaults to var_dir/photos)."""
        return self.photo_dir or self.var_dir / "photos"

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    def resolved_workers(self) -> int:
        return self.workers or os.cpu_count() or 1

    def resolved_tile_draws(self) -> int:
        return self.tile_draws or max(2, 2 * (os.cpu_count() or 1) // self.resolved_workers())

    def resolved_export_concurrency(self) -> int:
        return self.export_concurrency or max(1, (os.cpu_count() or 1) // 2)

    @property
    def embedded(self) -> bool:
        return not self.database_url

    def resolved_database_url(self) -> str:
        """The SQLAlchemy async URL: DATABASE_URL, or the embedded cluster's."""
        if self.database_url:
            return to_async_url(self.database_url)
        from app.embedded import resolve_port  # late: app.embedded imports this module
        return f"postgresql+asyncpg://postgres@127.0.0.1:{resolve_port(self)}/{self.embedded_db}"

    def resolved_secret_key(self) -> str:
        """A stable secret: from the environment, else one kept under var/ so all workers agree."""
        if self.secret_key:
            return self.secret_key
        path = self.var_dir / "secret_key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


def to_async_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


def to_sync_url(url: str) -> str:
    """The same database through psycopg, for Alembic."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def to_libpq_url(url: str) -> str:
    """The same database as a plain libpq/asyncpg DSN."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix):]
    return url


class SettingsError(ValueError):
    """A setting with a bad value; the message names each environment variable and what it needs."""


def env_name(field: str) -> str:
    """The environment variable behind a setting."""
    return "DATABASE_URL" if field.lower() == "database_url" else f"SAFERMAP_{field.upper()}"


def load_settings(**values: Any) -> Settings:
    """Settings from the environment (and `values`), or a SettingsError naming every bad variable."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = env_name(str(err["loc"][0])) if err["loc"] else "a setting"
            problems.append(f"{name}={err.get('input')!r}: {err['msg'].lower()}")
        raise SettingsError("bad setting" + ("s" if len(problems) > 1 else "") + ": "
                            + "; ".join(problems)) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()
