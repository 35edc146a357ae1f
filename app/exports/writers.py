"""Writing an export's chunks: GeoPackage and FlatGeobuf through GDAL (pyogrio's Arrow stream:
one dataset kept open while chunks arrive, so the GeoPackage's R-tree is built once at the end;
appending chunk by chunk updated it row by row and took 20 s for 1M points instead of ~5 s);
GeoJSON and CSV as text, chunk by chunk. Memory holds one chunk at a time.

GDAL blocks, so it runs in a worker thread that pulls each chunk from the event loop
(anyio.from_thread), which keeps reading the database while other requests are served."""
from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import pyarrow as pa
from pyogrio import set_gdal_config_options
from pyogrio.raw import write_arrow

from app import csv_cells
from app.catalog import Layer
from app.exports.provenance import Provenance
from app.exports.query import GEOMETRY_TYPES, columns, csv_header

ARROW_TYPES = {"string": pa.string(), "number": pa.float64(), "boolean": pa.bool_(), "integer": pa.int64()}
DRIVERS = {"gpkg": "GPKG", "fgb": "FlatGeobuf"}
PREFETCH = 2  # chunks read ahead of the writer
# Exports write files of their own that nobody reads until complete, so SQLite need not fsync each
# transaction (a crash leaves a temporary file to throw away either way). GDAL's configuration is
# process-wide; nothing else in the app writes SQLite through GDAL.
set_gdal_config_options({"OGR_SQLITE_SYNCHRONOUS": "OFF"})


def arrow_schema(layer: Layer) -> pa.Schema:
    fields = [pa.field(c.name, ARROW_TYPES[c.kind]) for c in columns(layer)]
    return pa.schema(fields + [pa.field("geom", pa.binary(), metadata={"ARROW:extension:name": "geoarrow.wkb"})])


def _batch(schema: pa.Schema, rows: list[Any]) -> pa.RecordBatch:
    # Column by column with indexing: transposing asyncpg records with zip(*rows) took twice as long
    # (3.2 s against 1.6 s for 1M rows of 10 columns).
    return pa.record_batch([pa.array([r[i] for r in rows], type=f.type) for i, f in enumerate(schema)],
                           schema=schema)


def _options(fmt: str, layer: Layer, prov: Provenance) -> dict[str, Any]:
    meta = prov.gdal_metadata()
    if fmt == "gpkg":
        # GeoPackage 1.2: read by every GDAL and QGIS still in use (1.4 draws warnings from GDAL 3.6).
        return {"dataset_options": {"VERSION": "1.2"}, "dataset_metadata": meta, "layer_metadata": meta,
                "layer_options": {"IDENTIFIER": layer.title, "DESCRIPTION": f"{meta['LICENCE']} {meta['SHARING']}"}}
    return {"layer_options": {"TITLE": layer.title, "DESCRIPTION": json.dumps(prov.as_dict(), default=str)}}


async def write_file(path: Path, fmt: str, layer: Layer, srid: int, prov: Provenance,
                     chunks: AsyncGenerator[list[Any], None]) -> int:
    """Write the chunks to a GeoPackage or FlatGeobuf at `path` (which must not exist); the number
    of features written. The next chunks are read from the database while GDAL writes one (a queue
    of PREFETCH chunks between them), so the two overlap instead of taking turns."""
    schema = arrow_schema(layer)
    queue: asyncio.Queue[list[Any] | BaseException | None] = asyncio.Queue(maxsize=PREFETCH)
    written = 0
    read_error: list[Exception] = []

    async def produce() -> None:
        async with contextlib.aclosing(chunks):  # closed here, so its transaction ends here
            try:
                async for rows in chunks:
                    await queue.put(rows)
                await queue.put(None)
            except Exception as e:  # handed to the writer, which raises it
                read_error.append(e)
                await queue.put(e)

    def batches() -> Iterator[pa.RecordBatch]:
        nonlocal written
        while True:
            item = anyio.from_thread.run(queue.get)
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            written += len(item)
            yield _batch(schema, item)

    def write() -> None:
        reader = pa.RecordBatchReader.from_batches(schema, batches())
        write_arrow(reader, str(path), layer=layer.id, driver=DRIVERS[fmt], geometry_name="geom",
                    geometry_type=GEOMETRY_TYPES[layer.geometry], crs=f"EPSG:{srid}", **_options(fmt, layer, prov))

    producer = asyncio.create_task(produce())
    try:
        await anyio.to_thread.run_sync(write)
    except Exception:
        if read_error:  # GDAL reports it as "Error while accessing batch from stream": the read's
            raise read_error[0] from None  # own error says what went wrong, and is answered as such
        raise
    finally:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
    return written


async def geojson_text(chunks: AsyncIterator[list[Any]], prov: Provenance) -> AsyncGenerator[bytes, None]:
    """A FeatureCollection (RFC 7946, WGS84), the provenance as its `safermap` member; each row
    arrives as a Feature already encoded by PostgreSQL. The opening comes with the first rows, so
    the first piece is read only once the statement has run (app.exports.api starts the answer then)."""
    opening = json.dumps({"type": "FeatureCollection", "name": prov.layer.id, "safermap": prov.as_dict()},
                         default=str)[:-1] + ', "features": [\n'
    first = True
    async for rows in chunks:
        yield ((opening if first else ",\n") + ",\n".join(r[0] for r in rows)).encode()
        first = False
    yield ((opening if first else "") + "\n]}\n").encode()


async def csv_text(chunks: AsyncIterator[list[Any]], layer: Layer) -> AsyncGenerator[bytes, None]:
    """A header row, then one row per feature: the attributes, lon/lat (WGS84) and easting/northing
    (the partnership's metric CRS: EPSG:27700 in Great Britain). Text that a spreadsheet would run
    as a formula is defended (app.csv_cells); numbers stay numbers. The header comes with the first
    rows, as GeoJSON's opening does."""
    defend = csv_cells.guard([i for i, c in enumerate(columns(layer)) if c.kind == "string"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_header(layer))
    async for rows in chunks:
        writer.writerows(map(defend, rows))
        yield out.getvalue().encode()
        out.seek(0)
        out.truncate()
    if out.tell():  # no rows: the header alone
        yield out.getvalue().encode()
