"""`GET /api/exports/{layer}.{format}`: a catalog layer as GeoPackage, GeoJSON, CSV or FlatGeobuf,
at the caller's sharing level, with the same filters as the incidents API.

GeoJSON and CSV stream as the rows arrive (a server-side cursor on a connection of the streaming
response's own, so nothing waits for the whole table). GeoPackage and FlatGeobuf are files by
nature (an index and a header written at the end): written to a temporary file first, which is
removed as soon as it is open for sending (so no answer, finished or cut off, leaves it behind). The audit event of a streamed export is written before its first byte; that of a
file, once the file is complete, with its feature count."""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Annotated, BinaryIO

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from app import audit
from app.api.deps import CatalogDep, CategoriesDep, DatasetsDep, PeriodDep, SessionDep, Viewer
from app.auth import Principal
from app.exports import writers
from app.exports.query import FORMATS, ExportFilter, check_format, find_layer
from app.exports.run import MEDIA_TYPES, Export, audit_events, raw_connection
from app.params import parse_bbox

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
):
    """The layer's features that you may see, as a file: `gpkg` (GeoPackage in your partnership's
    metric CRS, EPSG:27700 in Great Britain, with a provenance and licence note as its metadata),
    `fgb` (FlatGeobuf, the same CRS), `geojson` (WGS84) or `csv` (lon/lat beside easting/northing in
    your partnership's metric CRS; lines and polygons add `wkt`). Filters as for `/api/incidents`
    (`from`, `to`, `category`, `dataset`, `bbox`); a layer ignores those it has no column for.

    Incidents come at your level for each data set: exact, anonymous points (sanitised), or, where
    you may only count, `count`s on 500 m grid cells with small counts held back. Every export is
    audited."""
    layer = find_layer(catalog.layers, layer_id)
    principal.require(layer.least_role)
    check_format(fmt)
    flt = ExportFilter(period, categories, datasets, parse_bbox(bbox))
    export = Export(principal, principal.partnership_slug, principal.srid, layer, fmt, flt,
                    request.app.state.settings.suppress_below)
    engine = request.app.state.engine
    async with raw_connection(engine) as conn:
        prov = await export.provenance(conn)
    headers = {"Content-Disposition": f'attachment; filename="{export.filename()}"', "Cache-Control": "no-store"}
    if fmt in ("geojson", "csv"):
        await _record(session, principal, request, export, prov, None)

        async def body() -> AsyncIterator[bytes]:
            async with raw_connection(engine) as conn:
                rows = export.rows(conn)
                text = writers.geojson_text(rows, prov) if fmt == "geojson" else writers.csv_text(rows, layer)
                async with aclosing(text), aclosing(rows):  # their transaction ends before the connection goes
                    async for piece in text:
                        yield piece

        return StreamingResponse(body(), media_type=MEDIA_TYPES[fmt], headers=headers)
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
    return StreamingResponse(_send(file), media_type=MEDIA_TYPES[fmt],
                             headers={**headers, "Content-Length": str(size)})


async def _send(file: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while piece := await anyio.to_thread.run_sync(file.read, SEND_CHUNK):
            yield piece
    finally:
        file.close()
