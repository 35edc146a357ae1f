"""One export, the same for the API and the CLI: the statement for the caller, its provenance, and
what the audit trail says about it. Every export is recorded as `export`; one that holds exact
incident locations is also recorded as `view.exact`, so an audit of exact views finds it."""
from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.catalog import Layer
from app.exports import query
from app.exports.provenance import Provenance, describe
from app.exports.query import ExportFilter

SHAPES: dict[str, query.Shape] = {"gpkg": "wkb", "fgb": "wkb", "geojson": "json", "csv": "csv"}
MEDIA_TYPES = {"gpkg": "application/geopackage+sqlite3", "fgb": "application/flatgeobuf",
               "geojson": "application/geo+json", "csv": "text/csv; charset=utf-8"}


@asynccontextmanager
async def raw_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    """A pooled connection as plain asyncpg (its cursor streams rows without SQLAlchemy's per-row
    cost: about half the time of an export of 1M rows)."""
    async with engine.connect() as conn:
        raw: Any = (await conn.get_raw_connection()).driver_connection
        try:
            yield raw
        finally:
            # An export cut off half-way (a client gone, a failed write) may leave its cursor's
            # transaction open, which the pool would not notice: close that connection instead of
            # returning it, so no later request inherits the transaction and its locks.
            if raw.is_closed() or raw.is_in_transaction():
                await conn.invalidate()


@dataclass(frozen=True)
class Export:
    """What is exported, for whom: `caller` is anything the sharing function can be asked about
    (app.auth.Principal, or the CLI's partnership administrator)."""
    caller: Any
    partnership: str      # slug
    srid: int             # the partnership's metric CRS
    layer: Layer
    fmt: str
    flt: ExportFilter
    suppress_below: int

    @property
    def crs(self) -> str:
        """GeoPackage and FlatGeobuf hold the partnership's metric CRS (what its analysts measure in:
        British National Grid in Great Britain); GeoJSON is WGS84 (RFC 7946); CSV carries both."""
        return "EPSG:4326" if self.fmt == "geojson" else f"EPSG:{self.srid}"

    def statement(self) -> tuple[str, dict[str, Any]]:
        sql, params = query.export_sql(self.layer, self.flt, SHAPES[self.fmt])
        return sql, {**params, **query.bind(self.caller, self.srid, self.suppress_below)}

    async def rows(self, conn: Any) -> AsyncGenerator[list[Any], None]:
        sql, params = self.statement()
        async for chunk in query.stream(conn, sql, params):
            yield chunk

    async def provenance(self, conn: Any) -> Provenance:
        return await describe(conn, self.caller, self.partnership, self.layer, self.fmt, self.crs, self.flt,
                              self.suppress_below)

    def filename(self) -> str:
        def day(d: date | None) -> str | None:
            return d.isoformat() if d else None
        stem = "-".join(filter(None, [self.partnership, self.layer.id, day(self.flt.period.start),
                                      day(self.flt.period.end)]))
        return f"{stem}.{self.fmt}"


def audit_events(export: Export, prov: Provenance, rows: int | None, via: str) -> list[tuple[str, dict[str, Any]]]:
    """(action, detail) of each audit event an export writes."""
    detail = {"layer": export.layer.id, "format": export.fmt, "filters": export.flt.detail(),
              "levels": sorted(prov.levels), "datasets": [d.key for d in prov.datasets], "crs": export.crs,
              "rows": rows, "via": via}
    events = [("export", detail)]
    if "exact" in prov.levels:
        events.append(("view.exact", {**detail, "query": "export"}))
    return events


class Counter:
    """Counts the rows of chunks passing through (a streamed export's feature count)."""

    def __init__(self) -> None:
        self.rows = 0

    async def through(self, chunks: AsyncIterator[list[Any]]) -> AsyncGenerator[list[Any], None]:
        async for chunk in chunks:
            self.rows += len(chunk)
            yield chunk
