"""OGC API – Features benchmark: 1,000,000 incidents paged out through GDAL's OAPIF driver at 1,000
features a page (the issue's target: under 60 s), beside the same pages fetched bare (httpx
following the next links), which shows how much of the time is the server's.

The data are the tile benchmark's (bench/tiles_bench.py's builder, imported, not copied), in a
scratch database of this benchmark's own: the tiles database may be migrated by another checkout,
and this one must match the code it measures.

    python -m bench.ogc_bench
"""
from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import summary, tiles_bench

PAGE = 1_000
TARGET_S = 60.0
OUT = Path(__file__).resolve().parent / "out"
DB_NAME = "safermap_bench_ogc"


def use_own_database() -> None:
    """Point the tile benchmark's builder, token and server at this benchmark's database."""
    tiles_bench.DB_NAME = DB_NAME
    tiles_bench.DB_URL = f"{tiles_bench.SERVER}/{DB_NAME}"


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (Linux /proc), 0 for any gone."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def backend_pids() -> list[int]:
    import psycopg
    with psycopg.connect(tiles_bench.DB_URL, autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (DB_NAME,)).fetchall()]


class CpuMeter:
    """CPU seconds spent by the app server, its database backends and the client (children) over a
    block, and the machine's load: on a shared machine the wall time alone says little."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def __enter__(self) -> CpuMeter:
        self.backends = backend_pids()
        self.t0 = (cpu_seconds([self.server_pid]), cpu_seconds(self.backends), _children_cpu(), os.getloadavg()[0])
        return self

    def __exit__(self, *exc) -> None:
        backends = sorted(set(self.backends) | set(backend_pids()))
        server, db, client = cpu_seconds([self.server_pid]), cpu_seconds(backends), _children_cpu()
        self.result = {"server_cpu_s": round(server - self.t0[0], 1), "postgres_cpu_s": round(db - self.t0[1], 1),
                       "client_cpu_s": round(client - self.t0[2], 1),
                       "load_average_1min": [round(self.t0[3], 1), round(os.getloadavg()[0], 1)]}


def _children_cpu() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def lay_out_in_key_order() -> bool:
    """The tile builder assigns ids in a shuffled order (its join emits rows unordered), so rows
    neighbouring by id sit on different disk pages: a page of 1,000 ids reads ~1,000 heap pages.
    An import writes rows in id order; this puts the scratch table in that order once (CLUSTER on
    the primary key) so the benchmark measures paging as it is on imported data. Returns whether
    it had to."""
    import psycopg
    with psycopg.connect(tiles_bench.DB_URL, autocommit=True) as conn:
        corr = conn.execute("SELECT correlation FROM pg_stats WHERE tablename = 'incident' AND attname = 'id'"
                            ).fetchone()
        if corr and corr[0] is not None and corr[0] > 0.9:
            return False
        log(f"clustering {DB_NAME}.incident on its primary key (id correlation {corr[0] if corr else None}) ...")
        conn.execute("CLUSTER incident USING incident_pkey")
        conn.execute("ANALYZE incident")
        return True


def bare_pass(base: str, token: str) -> dict:
    """Every page by following `next` links: the server's share of the time, and the first and last
    pages' times (keyset paging: page 1,000 costs what page 1 costs)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/geo+json"}
    url: str | None = f"{base}/ogc/collections/incidents/items?limit={PAGE}"
    times, features, ids_ok, last_id = [], 0, True, -1
    started = time.perf_counter()
    with httpx.Client(headers=headers, timeout=60) as client:
        while url:
            t = time.perf_counter()
            r = client.get(url)
            r.raise_for_status()
            body = r.json()
            times.append(time.perf_counter() - t)
            ids = [f["id"] for f in body["features"]]
            ids_ok = ids_ok and all(a < b for a, b in zip([last_id, *ids], ids, strict=False))
            last_id = ids[-1] if ids else last_id
            features += len(ids)
            url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    total = time.perf_counter() - started
    return {"seconds": round(total, 2), "features": features, "pages": len(times), "ascending_no_repeats": ids_ok,
            "first_page_ms": round(times[0] * 1000, 1), "median_page_ms": round(statistics.median(times) * 1000, 1),
            "last_10_pages_median_ms": round(statistics.median(times[-10:]) * 1000, 1)}


def gdal_pass(base: str, token: str) -> dict:
    """ogr2ogr reads the incidents collection through the OAPIF driver, PAGE_SIZE=1000, to a
    GeoJSONSeq file; every line is a feature."""
    out = Path(tempfile.mkdtemp(prefix="safermap-ogc-bench-")) / "incidents.geojsonl"
    env = {**os.environ, "GDAL_HTTP_HEADERS": f"Authorization: Bearer {token}", "GDAL_HTTP_TIMEOUT": "120"}
    started = time.perf_counter()
    run = subprocess.run(["ogr2ogr", "-f", "GeoJSONSeq", str(out), f"OAPIF:{base}/ogc", "incidents",
                          "-oo", f"PAGE_SIZE={PAGE}", "-preserve_fid"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"ogr2ogr failed: {run.stderr[-1000:]}")
    ids = set()
    with out.open() as f:
        for line in f:
            ids.add(json.loads(line)["id"])
    shutil.rmtree(out.parent, ignore_errors=True)
    return {"seconds": round(seconds, 2), "features": len(ids), "under_60_s": seconds < TARGET_S}


def run(report: dict) -> dict:
    if shutil.which("ogr2ogr") is None:
        raise SystemExit("ogr2ogr is missing: install Debian's gdal-bin (make system-deps)")
    use_own_database()
    pid, built, _cells_s = tiles_bench.ensure_database()
    clustered = lay_out_in_key_order()
    token = tiles_bench.make_token(pid)
    with tiles_bench.safermap_server(workers=1) as server:
        log(f"GDAL ogr2ogr: {tiles_bench.INCIDENTS:,} incidents at {PAGE:,} a page ...")
        with CpuMeter(server.proc.pid) as meter:
            gdal = gdal_pass(server.base, token)
        gdal.update(meter.result)
        log(f"  {gdal}")
        log("bare httpx, following the next links ...")
        with CpuMeter(server.proc.pid) as meter:
            bare = bare_pass(server.base, token)
        bare.update(meter.result)
        log(f"  {bare}")
    result = {"incidents": tiles_bench.INCIDENTS, "page_size": PAGE, "gdal_version": _gdal_version(),
              "gdal_ogr2ogr": gdal, "bare_http": bare, "database_built_s": round(built, 1),
              "clustered_now": clustered}
    report["ogc"] = result
    return result


def _gdal_version() -> str:
    return subprocess.run(["ogrinfo", "--version"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    """Run alone: the figures are merged into bench/out/report.json under 'ogc'."""
    OUT.mkdir(exist_ok=True)
    path = OUT / "report.json"
    report = json.loads(path.read_text()) if path.exists() else {}
    result = run(report)
    for key, value in result.items():
        print(f"  {key:<20} {value}")
    summary.print_summary(summary.summarise(report))
    path.write_text(json.dumps(report, indent=2, default=str))
    print(f"report: {path}")


if __name__ == "__main__":
    main()
