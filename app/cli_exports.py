"""`safermap export LAYER --partnership SLUG --format F --output FILE`: a layer to a file, on the
server, the same statement and files as `GET /api/exports/...`.

The CLI exports as the partnership's administrator (app.analysis.hotspot_data.SystemPrincipal, as
`safermap hotspots` does): whoever runs it on the server holds the database credentials and could
read every table anyway, and an administrator is what the sharing rules give full sight of the
partnership's own data (exact). The rules still apply: it has no agency, so no other partnership's
data comes with it. Every export is audited (principal name 'cli')."""
from __future__ import annotations

import asyncio
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from app.domain_errors import DomainError
from app.settings import Settings, get_settings

console = Console(stderr=True)


@dataclass(frozen=True)
class Done:
    rows: int
    levels: list[str]
    seconds: float


async def run_export(settings: Settings, slug: str, layer_id: str, fmt: str, output: Path,
                     date_from: str | None = None, date_to: str | None = None, categories: list[str] | None = None,
                     datasets: list[str] | None = None, bbox: str | None = None, cql: str | None = None,
                     cql_lang: str = "cql2-text") -> Done:
    """Write the export to `output` (via a temporary name beside it, so a failed export leaves no
    half file), audit it, and say how many features it holds."""
    import time

    from app import audit
    from app.analysis.hotspot_data import SystemPrincipal
    from app.catalog import Catalog
    from app.db import make_engine
    from app.domain_errors import UnknownItem
    from app.exports import writers
    from app.exports.query import ExportFilter, check_format, find_layer
    from app.exports.run import Counter, Export, audit_events, raw_connection
    from app.params import parse_bbox, parse_categories, parse_period, parse_values

    started = time.perf_counter()
    layer = find_layer(Catalog.load(settings.layers_dir).layers, layer_id)
    check_format(fmt)
    flt = ExportFilter(parse_period(date_from, date_to), parse_categories(categories),
                       parse_values(datasets, "dataset"), parse_bbox(bbox), cql, cql_lang)
    flt.check(layer)
    engine = make_engine(settings)
    part = output.with_name(f".{output.stem}.part{output.suffix}")  # GDAL wants the suffix
    try:
        async with raw_connection(engine) as conn:
            row = await conn.fetchrow("SELECT id, srid FROM partnership WHERE slug = $1", slug)
            if row is None:
                raise UnknownItem(f"No partnership '{slug}'.")
            export = Export(SystemPrincipal(row["id"]), slug, row["srid"], layer, fmt, flt, settings.suppress_below)
            prov = await export.provenance(conn)
            part.unlink(missing_ok=True)
            if fmt in writers.DRIVERS:
                count = await writers.write_file(part, fmt, layer, export.srid, prov, export.rows(conn))
            else:
                counter = Counter()
                rows = counter.through(export.rows(conn))
                text = writers.geojson_text(rows, prov) if fmt == "geojson" else writers.csv_text(rows, layer)
                async with aclosing(text), aclosing(rows):
                    with part.open("wb") as f:
                        async for piece in text:
                            f.write(piece)
                count = counter.rows
            for action, detail in audit_events(export, prov, count, "cli"):
                await audit.record_raw(conn, action, partnership_id=row["id"], target=f"cli/export/{layer.id}.{fmt}",
                                       detail=detail, principal_name="cli")
            part.replace(output)
            return Done(count, sorted(prov.levels), time.perf_counter() - started)
    finally:
        part.unlink(missing_ok=True)
        await engine.dispose()


def export_command(
    layer: str = typer.Argument(..., help="A layer of the catalog (layers/*.toml), e.g. incidents."),
    partnership: str = typer.Option(..., help="Partnership slug."),
    fmt: str = typer.Option(..., "--format", help="gpkg, geojson, csv or fgb."),
    output: Path = typer.Option(..., dir_okay=False, help="The file to write (replaced if it exists)."),
    date_from: str | None = typer.Option(None, "--from", help="Start: YYYY-MM or YYYY-MM-DD."),
    date_to: str | None = typer.Option(None, "--to", help="End, inclusive: YYYY-MM or YYYY-MM-DD."),
    category: list[str] | None = typer.Option(None, help="Only these categories (repeat)."),
    dataset: list[str] | None = typer.Option(None, help="Only these data sets (repeat)."),
    bbox: str | None = typer.Option(None, help="minlon,minlat,maxlon,maxlat (WGS84)."),
    cql: str | None = typer.Option(None, "--filter", help="CQL2 over the layer's queryables, e.g. "
                                   "\"category = 'Burglary' AND month >= '2024-01'\"."),
    cql_lang: str = typer.Option("cql2-text", "--filter-lang", help="cql2-text or cql2-json."),
) -> None:
    """Export a layer of the partnership as GeoPackage (its metric CRS, with a provenance and licence
    note), FlatGeobuf, GeoJSON (WGS84) or CSV (lon/lat and easting/northing), as the partnership's
    administrator sees it. Audited."""
    try:
        done = asyncio.run(run_export(get_settings(), partnership, layer, fmt, output, date_from, date_to,
                                      category, dataset, bbox, cql, cql_lang))
    except DomainError as e:
        console.print(f"[bold red]error:[/] {e.detail}")
        raise typer.Exit(2) from None
    levels = f" (levels: {', '.join(done.levels)})" if done.levels else ""
    console.print(f"{done.rows:,} features written to {output}{levels} in {done.seconds:.1f} s")
