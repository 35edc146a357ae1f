"""The police.uk import against its floor: a bare COPY of the same file into a plain table.

    .venv/bin/python -m bench.import_bench [ROWS] [DATABASE_URL]

With no DATABASE_URL it uses a scratch database `safermap_bench` on the embedded cluster, made
(with PostGIS) and migrated when missing. Prints rows/s of both and their ratio; `run()` fills a
report dict for `make bench`.
"""
from __future__ import annotations

import asyncio
import io
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psycopg
from rich.console import Console

from app.ingest.police_uk import import_paths
from app.settings import Settings, to_libpq_url
from bench.synthetic import write_police_uk_csv

BENCH_DB = "safermap_bench"
PARTNERSHIP = "bench-import"
ROWS = 1_000_000

# Empty the benchmark partnership (not deleted: its id and data sets stay, as a real one's would).
PARTNERSHIP_RESET = (
    "INSERT INTO partnership (slug, name) VALUES ($1, 'Import benchmark') ON CONFLICT (slug) DO NOTHING",
    "DELETE FROM incident WHERE partnership_id = (SELECT id FROM partnership WHERE slug = $1)",
    "DELETE FROM import_run WHERE partnership_id = (SELECT id FROM partnership WHERE slug = $1)",
)
# The floor is an UNLOGGED table (no WAL): the least any load of this file can cost. A durable
# load writes the rows to the WAL too, so a logged plain table is measured beside it for reference.
PLAIN_TABLE = """
    DROP TABLE IF EXISTS bench_plain_copy;
    CREATE {kind} TABLE bench_plain_copy (
        crime_id text, month text, reported_by text, falls_within text, longitude double precision,
        latitude double precision, location text, lsoa_code text, lsoa_name text, crime_type text,
        last_outcome text, context text);
"""


def default_database_url() -> str:
    """The scratch benchmark database on the embedded cluster, made and migrated when missing."""
    from app.cli import migrate
    from app.embedded import Cluster
    settings = Settings(database_url=None)
    cluster = Cluster(settings)
    cluster.up()
    server = f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
    with psycopg.connect(server, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (BENCH_DB,)).fetchone():
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    url = urlunsplit(urlsplit(server)._replace(path=f"/{BENCH_DB}"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    migrate(Settings(database_url=url))
    return url


async def _reset(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in PARTNERSHIP_RESET:
            await conn.execute(statement, PARTNERSHIP)
        await conn.execute("VACUUM ANALYZE incident")  # time the load on a settled table, not on dead rows
    finally:
        await conn.close()


async def _checkpoint(url: str) -> None:
    """Write out dirty pages before a timed section, so that no section pays for a checkpoint the
    one before it set off (the import writes ~400 MB of WAL). Needs a superuser (the embedded
    cluster's postgres); elsewhere it is skipped."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CHECKPOINT")
    except asyncpg.InsufficientPrivilegeError:
        pass
    finally:
        await conn.close()


async def _bare_copy(url: str, path: Path, logged: bool = False) -> float:
    await _checkpoint(url)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(PLAIN_TABLE.format(kind="" if logged else "UNLOGGED"))
        started = time.perf_counter()
        await conn.copy_to_table("bench_plain_copy", source=path, format="csv", header=True)
        seconds = time.perf_counter() - started
        await conn.execute("DROP TABLE bench_plain_copy")
        return seconds
    finally:
        await conn.close()


async def _counts(url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(geom) AS mapped FROM incident i JOIN partnership p "
            "ON p.id = i.partnership_id WHERE p.slug = $1", PARTNERSHIP)
        return row["n"], row["mapped"]
    finally:
        await conn.close()


class Reader:
    """Reads incident (another partnership's, so that only waiting shows) in a loop on a thread of
    its own while the month is replaced; the longest read, in ms."""

    def __init__(self, url: str) -> None:
        self.url, self.longest, self.reads = url, 0.0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                started = time.perf_counter()
                conn.execute("SELECT count(*) FROM incident WHERE partnership_id = -1").fetchone()
                self.longest = max(self.longest, (time.perf_counter() - started) * 1000)
                self.reads += 1
                time.sleep(0.005)

    def __enter__(self) -> Reader:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def run(report: dict, database_url: str, rows: int = ROWS, console: Console | None = None) -> dict:
    """Time `import_paths` on `rows` synthetic rows (twice: a first load and a replacing re-import)
    and a bare COPY of the same file; put the numbers in `report` and return it."""
    url = to_libpq_url(database_url)
    settings = Settings(database_url=url)
    console = console or Console(file=io.StringIO())
    with tempfile.TemporaryDirectory() as tmp:
        path = write_police_uk_csv(Path(tmp) / "2024-01-greater-manchester-street.csv", rows)
        asyncio.run(_reset(url))
        asyncio.run(_checkpoint(url))
        started = time.perf_counter()
        ok = asyncio.run(import_paths(settings, [path], PARTNERSHIP, console))
        first = time.perf_counter() - started
        asyncio.run(_checkpoint(url))
        with Reader(url) as reader:
            started = time.perf_counter()
            ok = asyncio.run(import_paths(settings, [path], PARTNERSHIP, console)) and ok
            again = time.perf_counter() - started
        total, mapped = asyncio.run(_counts(url))
        bare = asyncio.run(_bare_copy(url, path))
        bare_logged = asyncio.run(_bare_copy(url, path, logged=True))
        asyncio.run(_reset(url))  # leave the scratch database small
    report.update({
        "load_average_1m": round(os.getloadavg()[0], 2),  # the machine may be shared: say how busy it was
        "import_rows": rows, "import_ok": ok, "incidents_after_reimport": total, "incidents_mapped": mapped,
        "import_s": round(first, 2), "import_rows_per_s": round(rows / first),
        "reimport_s": round(again, 2), "reimport_rows_per_s": round(rows / again),
        "bare_copy_s": round(bare, 2), "bare_copy_rows_per_s": round(rows / bare),
        "import_vs_bare_copy": round(first / bare, 2),
        "bare_copy_logged_s": round(bare_logged, 2), "import_vs_logged_copy": round(first / bare_logged, 2),
        # the longest read of incident (another partnership's) while the re-import ran, and how many
        "reimport_reader_longest_ms": round(reader.longest, 1), "reimport_reader_reads": reader.reads,
    })
    return report


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else ROWS
    url = sys.argv[2] if len(sys.argv) > 2 else default_database_url()
    console = Console(stderr=True)
    report = run({}, url, rows, console)
    print(f"police.uk import: {report['import_rows']:,} rows in {report['import_s']} s "
          f"({report['import_rows_per_s']:,} rows/s); re-import replacing the month {report['reimport_s']} s "
          f"({report['reimport_rows_per_s']:,} rows/s); incidents after re-import {report['incidents_after_reimport']:,} "
          f"({report['incidents_mapped']:,} mapped)")
    print(f"bare COPY of the same file into a plain table: {report['bare_copy_s']} s "
          f"({report['bare_copy_rows_per_s']:,} rows/s); into a logged one (WAL, as a durable load): "
          f"{report['bare_copy_logged_s']} s")
    print(f"a reader of incident during the re-import: longest read {report['reimport_reader_longest_ms']} ms "
          f"of {report['reimport_reader_reads']:,}")
    print(f"import / bare COPY time: {report['import_vs_bare_copy']}x "
          f"(load average at the end: {report['load_average_1m']})")


if __name__ == "__main__":
    main()
