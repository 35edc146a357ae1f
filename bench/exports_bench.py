"""Export benchmark: 1,000,000 incidents to GeoPackage (the target: under 30 s), FlatGeobuf, CSV and
GeoJSON through `safermap export`'s own code (provenance, sharing function, streaming cursor,
writer, audit), beside the bare read of the same statement and beside GDAL's ogr2ogr reading the
table straight from PostgreSQL into a GeoPackage (no sharing, no provenance), in one run; then the
GeoPackage and the CSV over HTTP from a served app, with the first byte's delay and the server's
peak memory (an export streams: memory holds a chunk or two, not the million rows).

Uses the tiles benchmark's database (1M incidents over Greater Manchester; built once).

    python -m bench.exports_bench
"""
from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.analysis.hotspot_data import SystemPrincipal
from app.catalog import Catalog
from app.cli_exports import run_export
from app.db import make_engine
from app.exports.query import ExportFilter
from app.exports.run import Export, raw_connection
from app.settings import Settings
from bench import tiles_bench

FORMATS = ("gpkg", "fgb", "csv", "geojson")
TARGET_S = 30.0
# The peer: GDAL reads the incident table itself (every row exact, no sharing rules, no metadata).
OGR_SQL = ("SELECT id, category, to_char(month, 'YYYY-MM') AS month_label, location_text, lsoa_name, outcome, "
           "ST_Transform(geom, 27700) AS geom FROM incident WHERE geom IS NOT NULL")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


async def bare_read(settings: Settings, pid: int) -> tuple[int, float]:
    """The export statement alone, through the same cursor, rows thrown away."""
    layer = Catalog.load(settings.layers_dir).layers["incidents"]
    export = Export(SystemPrincipal(pid), "bench", 27700, layer, "gpkg", ExportFilter(), settings.suppress_below)
    engine = make_engine(settings)
    try:
        started = time.perf_counter()
        n = 0
        async with raw_connection(engine) as conn:
            async for chunk in export.rows(conn):
                n += len(chunk)
        return n, time.perf_counter() - started
    finally:
        await engine.dispose()


def ogr2ogr_peer(out: Path) -> float | None:
    exe = shutil.which("ogr2ogr")
    if exe is None:
        return None
    server = tiles_bench.SERVER.removeprefix("postgresql://")
    user, _, hostport = server.partition("@")
    host, _, port = hostport.partition(":")
    started = time.perf_counter()
    subprocess.run([exe, "-f", "GPKG", str(out), f"PG:host={host} port={port} user={user} dbname={tiles_bench.DB_NAME}",
                    "-sql", OGR_SQL, "-nln", "incidents", "-a_srs", "EPSG:27700"], check=True,
                   capture_output=True)
    return time.perf_counter() - started


def database() -> int:
    """The tiles benchmark's partnership: its database as it is when complete (another checkout may
    have migrated it further than this one knows), else built by the tiles benchmark."""
    import psycopg
    try:
        with psycopg.connect(tiles_bench.DB_URL) as conn:
            meta = conn.execute("SELECT generator, incidents, partnership FROM bench_meta").fetchone()
            if meta and meta[0] == tiles_bench.GENERATOR and meta[1] == tiles_bench.INCIDENTS:
                count = conn.execute("SELECT count(*) FROM incident WHERE partnership_id = %s", (meta[2],)).fetchone()[0]
                if count == tiles_bench.INCIDENTS:
                    return meta[2]
    except psycopg.Error:
        pass
    return tiles_bench.ensure_database()[0]


def peak_rss_mb(pid: int) -> float:
    """The highest resident memory of a process and its children so far (VmHWM), in MB."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total += int(line.split()[1])
    return round(total / 1024, 1)


def over_http(pid: int, out: dict) -> None:
    """The same exports through `GET /api/exports/...` on a served app (one worker): total time, the
    first byte (CSV streams; a GeoPackage is written first) and the server's peak memory."""
    import httpx
    token = tiles_bench.make_token(pid)
    with tiles_bench.safermap_server(1) as server:
        out["http_server_rss_mb_before"] = peak_rss_mb(server.proc.pid)
        for fmt in ("gpkg", "csv"):
            started = time.perf_counter()
            first = None
            size = 0
            with httpx.stream("GET", f"{server.base}/api/exports/incidents.{fmt}",
                              headers={"Authorization": f"Bearer {token}"}, timeout=600) as r:
                r.raise_for_status()
                for piece in r.iter_bytes(1 << 20):
                    first = first or time.perf_counter() - started
                    size += len(piece)
            out[f"http_{fmt}_s"] = round(time.perf_counter() - started, 2)
            out[f"http_{fmt}_first_byte_s"] = round(first or 0.0, 2)
            log(f"  HTTP {fmt:<5} {size / 1e6:,.0f} MB in {out[f'http_{fmt}_s']:.1f} s "
                f"(first byte after {out[f'http_{fmt}_first_byte_s']:.2f} s)")
        out["http_server_peak_rss_mb"] = peak_rss_mb(server.proc.pid)
        log(f"  server peak memory: {out['http_server_peak_rss_mb']:,.0f} MB "
            f"(idle {out['http_server_rss_mb_before']:,.0f} MB)")


def run(report: dict) -> dict:
    pid = database()
    settings = Settings(database_url=tiles_bench.DB_URL)
    slug = "bench"
    out: dict = {"incidents": tiles_bench.INCIDENTS, "target_gpkg_s": TARGET_S}
    folder = Path(tempfile.mkdtemp(prefix="safermap-exports-bench-"))
    try:
        n, seconds = asyncio.run(bare_read(settings, pid))
        out["bare_read_s"] = round(seconds, 2)
        log(f"  bare read of the export statement: {n:,} rows in {seconds:.1f} s")
        for fmt in FORMATS:
            path = folder / f"incidents.{fmt}"
            done = asyncio.run(run_export(settings, slug, "incidents", fmt, path))
            size = os.path.getsize(path)
            out[f"{fmt}_s"] = round(done.seconds, 2)
            out[f"{fmt}_rows"] = done.rows
            out[f"{fmt}_mb"] = round(size / 1e6, 1)
            log(f"  {fmt:<8} {done.rows:,} features, {size / 1e6:,.0f} MB in {done.seconds:.1f} s")
            path.unlink()
        peer = ogr2ogr_peer(folder / "peer.gpkg")
        if peer is not None:
            out["ogr2ogr_gpkg_s"] = round(peer, 2)
            out["gpkg_vs_ogr2ogr"] = round(out["gpkg_s"] / peer, 2)
            log(f"  ogr2ogr straight from the table (no sharing, no metadata): {peer:.1f} s; "
                f"SaferMap's GeoPackage takes {out['gpkg_vs_ogr2ogr']:.2f}x that")
        out["gpkg_under_target"] = out["gpkg_s"] < TARGET_S
        over_http(pid, out)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report["exports"] = out
    return out


if __name__ == "__main__":
    import json
    result = run({})
    print(json.dumps(result, indent=2))
