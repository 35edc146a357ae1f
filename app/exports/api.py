"""`GET /api/exports/{layer}.{format}`: a catalog layer as GeoPackage, GeoJSON, CSV or FlatGeobuf,
at the caller's sharing level, with the same filters as the incidents API.

GeoJSON and CSV stream as the rows arrive (a server-side cursor on a connection of the streaming
response's own, so nothing waits for the whole table). Their 200 goes out only once the statement
has run and its first rows are read, so a failure up to then is answered as a problem; a failure
after it breaks the transfer (see _started), so a cut-off download never looks complete. GeoPackage and FlatGeobuf are files by
nature (an index and a header written at the end): written to a temporary file first, which is
removed as soon as it is open for sending (so no answer, finished or cut off, leaves it behind). The audit event of a streamed export is written before its first byte; that of a
file, once the file is complete, with its feature count."""
from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Annotated, BinaryIO, Literal

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app import audit
from app.api.deps import CatalogDep, CategoriesDep, DatasetsDep, PeriodDep, SessionDep, Viewer
from app.auth import Principal
from app.catalog import Layer
from app.exports import writers
from app.exports.provenance import Provenance
from app.exports.query import FORMATS, ExportFilter, check_format, find_layer
from app.exports.run import MEDIA_TYPES, Counter, Export, audit_events, raw_connection
from app.exports.slots import Slot, SlotResponse
from app.params import parse_bbox

log = logging.getLogger("safermap.exports")
router = APIRouter(tags=["exports"])
SEND_CHUNK = 1 << 20  # bytes read from a written file at a time

RESPONSES = {200: {"content": {MEDIA_TYPES[f].split(";")[0]: {} for f in FORMATS},
                   "description": "The export, as an attachment"}}


async def _record(session, principal: Principal, request: Request, export: Export, prov, rows: int | None) -> None:
    for action, detail in audit_events(export, prov, rows, "api"):
        await audit.record(session, action, principal=principal, target=f"api/exports/{export.layer.id}.{export.fmt}",
                           detail=detail, ip=request.client.host if request.client else None)
    await session.commit()


@router.get("/api/exports/{layer_id}.{fmt}", summary="A layer as GeoPackage, GeoJSON, CSV or FlatGeobuf",
            response_class=StreamingResponse, responses=RESPONSES)  # type: ignore[arg-type]
async def export_layer(
    request: Request, session: SessionDep, principal: Viewer, catalog: CatalogDep,
    layer_id: str, fmt: str, period: PeriodDep, categories: CategoriesDep, datasets: DatasetsDep,
    bbox: Annotated[str | None, Query(max_length=200, description="minlon,minlat,maxlon,maxlat (WGS84)")] = None,
    filter: Annotated[str | None, Query(max_length=4000, description="CQL2 over the layer's queryables, as "
                                        "/ogc/collections/{id}/queryables lists them")] = None,
    filter_lang: Annotated[Literal["cql2-text", "cql2-json"], Query(alias="filter-lang")] = "cql2-text",
):
    """The layer's features that you may see, as a file: `gpkg` (GeoPackage in your partnership's
    metric CRS, EPSG:27700 in Great Britain, with a provenance and licence note as its metadata),
    `fgb` (FlatGeobuf, the same CRS), `geojson` (WGS84) or `csv` (lon/lat beside easting/northing in
    your partnership's metric CRS; lines and polygons add `wkt`). Filters as for `/api/incidents`
    (`from`, `to`, `category`, `dataset`, `bbox`); a layer ignores those it has no column for. A CQL2
    `filter` (text, or JSON with `filter-lang=cql2-json`) narrows it as on `/ogc`.

    Incidents come at your level for each data set: exact, anonymous points (sanitised), or, where
    you may only count, `count`s on 250 m grid squares with small counts held back. Every export is
    audited. Each server process runs a few exports at once (SAFERMAP_EXPORT_CONCURRENCY); past
    that the answer is 503 with Retry-After. A download cut off by a failure is left incomplete
    (no final chunk), never a well-formed file that lacks rows."""
    layer = find_layer(catalog.layers, layer_id)
    principal.require(layer.least_role)
    check_format(fmt)
    flt = ExportFilter(period, categories, datasets, parse_bbox(bbox), filter, filter_lang)
    flt.check(layer)
    slot = request.app.state.export_slots.take()  # held until the answer is over (app/exports/slots.py)
    try:
        return await _export(request, session, principal, layer, fmt, flt, slot)
    except BaseException:
        slot.release()
        raise


async def _export(request: Request, session: AsyncSession, principal: Principal, layer: Layer, fmt: str,
                  flt: ExportFilter, slot: Slot) -> SlotResponse:
    export = Export(principal, principal.partnership_slug, principal.srid, layer, fmt, flt,
                    request.app.state.settings.suppress_below)
    engine = request.app.state.engine
    async with raw_connection(engine) as conn:
        prov = await export.provenance(conn)
    headers = {"Content-Disposition": f'attachment; filename="{export.filename()}"', "Cache-Control": "no-store"}
    if fmt in ("geojson", "csv"):
        counter = Counter()
        pieces = _streamed(engine, export, prov, counter)
        try:
            # The first piece comes once a connection is taken and the statement has run: a pool
            # that is full, a statement refused, are still answered as problems, not as a 200.
            first = await anext(pieces)
            await _record(session, principal, request, export, prov, None)
        except BaseException:
            await pieces.aclose()
            raise
        return SlotResponse(_started(first, pieces, export, counter), slot, media_type=MEDIA_TYPES[fmt],
                            headers=headers)
    folder = Path(tempfile.mkdtemp(prefix="safermap-export-"))
    try:
        path = folder / f"{layer.id}.{fmt}"
        async with raw_connection(engine) as conn:
            count = await writers.write_file(path, fmt, layer, export.srid, prov, export.rows(conn))
        await _record(session, principal, request, export, prov, count)
        # Opened, then removed at once: the open file is all that is left, and it goes when closed,
        # however the answer ends (sent, or the client gone half-way).
        file = path.open("rb")
        size = path.stat().st_size
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return SlotResponse(_send(file), slot, media_type=MEDIA_TYPES[fmt], headers={**headers, "Content-Length": str(size)})


async def _streamed(engine: AsyncEngine, export: Export, prov: Provenance,
                    counter: Counter) -> AsyncGenerator[bytes, None]:
    """A GeoJSON or CSV export's text, read on a connection of its own."""
    async with raw_connection(engine) as conn:
        rows = counter.through(export.rows(conn))
        text = writers.geojson_text(rows, prov) if export.fmt == "geojson" else writers.csv_text(rows, export.layer)
        async with aclosing(text), aclosing(rows):  # their transaction ends before the connection goes
            async for piece in text:
                yield piece


async def _started(first: bytes, rest: AsyncGenerator[bytes, None], export: Export,
                   counter: Counter) -> AsyncGenerator[bytes, None]:
    """The answer's body once its 200 is decided. A failure after that (the database gone, the
    statement cancelled) is logged and raised on: the server then drops the connection without the
    chunked body's last chunk, so curl and browsers report an incomplete download, never a
    well-formed file that silently lacks rows. Nothing here may end the body normally on an error."""
    async with aclosing(rest):
        yield first
        try:
            async for piece in rest:
                yield piece
        except Exception as e:
            log.error("export %s.%s of %s for principal %s cut off after %d rows (the download is left broken): "
                      "%s: %s", export.layer.id, export.fmt, export.partnership, export.caller.id, counter.rows,
                      type(e).__name__, e)
            raise


async def _send(file: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while piece := await anyio.to_thread.run_sync(file.read, SEND_CHUNK):
            yield piece
    finally:
        file.close()
