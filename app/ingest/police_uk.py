"""Import police.uk street-level crime CSVs (`safermap import police-uk`).

Each file is one import_run. The server parses it by COPY into a temporary table when it can
(app.ingest.police_uk_copy), else its rows are parsed here (app.ingest.police_uk_parse) while they
stream through COPY into a temporary staging table; then, in the same transaction, each force-month
present in the file is written from there into a table of its own, with no index and no trigger
(incident is partitioned by data set and month, migration 0018), its indexes are built, and at the
very end all of them are swapped in for the old months at once (app/sql/incident_partitions.sql).
A republished month therefore replaces the old one whole, a failure at any point leaves the old one
untouched, and readers see the old month or the new one and wait only for the moment of the swap.
The import_run row is written outside that transaction, on a connection of its own that holds the
run's advisory lock (app.ingest.run_record), so that a failed, refused, cancelled or killed import
is still on record and never left 'running'.

Files are refused before anything is loaded when any of them is not a police.uk street CSV.
"""
from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from app import audit
from app.db import raw_connection
from app.domain_errors import ImportRefused
from app.ingest import police_uk_copy
from app.ingest.police_uk_parse import NotPoliceUk, ParseStats, Record, parse, read_header, slugify
from app.ingest.run_record import RunRecorder, cancel_reason, commit_through_cancel, run_recorder
from app.settings import Settings

KIND = "police-uk"
# Parts of a police.uk archive that sit beside the street files but are other data.
OTHER_ARCHIVE_FILES = ("-outcomes.csv", "-stop-and-search.csv")
PROGRESS_EVERY = 20_000
# Rows per COPY into the staging table; between chunks the run row gets its heartbeat (rows reached),
# one round trip per chunk on the run connection.
COPY_CHUNK = 50_000

PARTNERSHIP_ID = "SELECT id FROM partnership WHERE slug = $1"
RUN_START = """
    INSERT INTO import_run (partnership_id, kind, file, checksum, status)
    VALUES ($1, $2, $3, $4, 'running') RETURNING id
"""
RUN_REFUSED = """
    INSERT INTO import_run (partnership_id, kind, file, checksum, status, message, finished_at)
    VALUES ($1, $2, $3, $4, 'refused', $5, now())
"""
# The file's checksum is read beside the load (a second core hashes while the server COPYs) and
# written once known, before the outcome.
RUN_CHECKSUM = "UPDATE import_run SET checksum = $2 WHERE id = $1"
RUN_FINISH = """
    UPDATE import_run SET status = $2, rows_total = $3, rows_loaded = $4, rows_rejected = $5,
           rejects = $6::jsonb, message = $7, finished_at = now()
    WHERE id = $1
"""
# Bigger local buffers keep a million staged rows in memory; only settable before any temp table.
SESSION_SETUP = "SET temp_buffers = '256MB'"
STAGE_TABLE = "police_uk_stage"
STAGE_CREATE = f"""
    CREATE TEMP TABLE {STAGE_TABLE} (
        force text, external_ref text, category text, month date, lon double precision,
        lat double precision, location_text text, lsoa_code text, lsoa_name text, outcome text,
        context text
    ) ON COMMIT DROP
"""
STAGE_COLUMNS = ("force", "external_ref", "category", "month", "lon", "lat", "location_text", "lsoa_code",
                 "lsoa_name", "outcome", "context")
AGENCY_ENSURE = """
    INSERT INTO agency (partnership_id, name, kind) VALUES ($1, $2, 'police')
    ON CONFLICT (partnership_id, name) DO NOTHING
"""
AGENCY_ID = "SELECT id FROM agency WHERE partnership_id = $1 AND name = $2"
DATASET_ENSURE = """
    INSERT INTO dataset (partnership_id, agency_id, source_key, name, kind)
    VALUES ($1, $2, $3, $4, 'police_uk')
    ON CONFLICT (partnership_id, source_key) DO NOTHING
"""
# The row lock serialises concurrent imports of one force, so two of them never both load a month.
DATASET_LOCK = "SELECT id FROM dataset WHERE partnership_id = $1 AND source_key = $2 FOR UPDATE"
# Incidents a force's months hold now (partition and default), for the run's message. Read on the
# run connection: a lock on incident held by the data transaction until its swap could deadlock two
# imports that both then ask for ACCESS EXCLUSIVE (see app/sql/incident_partitions.sql).
COUNT_MONTHS = "SELECT count(*) FROM incident WHERE dataset_id = $1 AND month = ANY($2::date[])"
LOAD_CLEANUP = "SELECT safermap_incident_load_cleanup()"
LOAD_TABLE = "SELECT safermap_incident_load_table($1, $2, $3)"
LOAD_INDEX = "SELECT safermap_incident_load_index($1, $2, $3)"
MONTH_SWAP = "SELECT safermap_incident_month_swap($1, $2, $3::int[], $4::date[])"
# The million staged records meet their anonymous locations by hash: estimating the distinct points
# high, the planner would sort both sides for a merge join, on disk (seconds per million rows), and
# it would sort the records to find the distinct points (nothing is lost: the one sort left, of the
# few nearest anonymous points of each point, is needed and stays).
LOAD_JOIN_BY_HASH = "SET LOCAL enable_mergejoin = off; SET LOCAL enable_sort = off; SET LOCAL work_mem = '64MB'"
LOAD_JOIN_RESET = "RESET enable_mergejoin; RESET enable_sort; RESET work_mem"  # (for what runs at COMMIT)
# One force-month into its load table, from the staging table (all the file's records when Python
# parsed it; when COPY staged it, only the odd records the parser kept: the plainly good ones go
# straight from the raw table by police_uk_copy.insert_good). Each incident gets its anonymous location (sanitised sharing,
# migration 0006) as it is written: computed once per distinct point (police.uk points are shared by
# thousands of incidents), so no row is written twice.
INSERT_LOAD = """
    WITH pts AS MATERIALIZED (
        SELECT DISTINCT s.lon, s.lat FROM police_uk_stage s
        WHERE s.force = $3 AND s.month = $4 AND s.lon IS NOT NULL AND s.lat IS NOT NULL
    ), anon AS MATERIALIZED (
        SELECT p.lon, p.lat, l.anon_point_id, l.geom_anon
        FROM pts p CROSS JOIN LATERAL safermap_anon_location($1, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326)) AS l
    )
    INSERT INTO {table} (partnership_id, dataset_id, import_run_id, external_ref, category, month, geom,
                          location_text, lsoa_code, lsoa_name, outcome, context, geom_anon, anon_point_id)
    SELECT $1, $5, $2, s.external_ref, s.category, s.month, ST_SetSRID(ST_MakePoint(s.lon, s.lat), 4326),
           s.location_text, s.lsoa_code, s.lsoa_name, s.outcome, s.context, a.geom_anon, a.anon_point_id
    FROM police_uk_stage s
    LEFT JOIN anon a ON a.lon = s.lon AND a.lat = s.lat
    WHERE s.force = $3 AND s.month = $4
"""


@dataclass
class FileResult:
    path: Path
    ok: bool
    stats: ParseStats
    message: str
    seconds: float


def find_files(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """The CSVs named or found under folders (police.uk archives nest YYYY-MM/YYYY-MM-force-street.csv),
    and the outcomes/stop-and-search files skipped from folders."""
    files: list[Path] = []
    skipped: list[Path] = []
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*.csv")):
                (skipped if f.name.endswith(OTHER_ARCHIVE_FILES) else files).append(f)
        elif p.is_file():
            files.append(p)
        else:
            raise ImportRefused(f"{p}: no such file or folder.")
    if not files:
        raise ImportRefused("No police.uk street CSV files found in " + ", ".join(str(p) for p in paths) + ".")
    return files, skipped


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def header_problem(path: Path) -> str | None:
    """Why `path` is not a police.uk street CSV, or None when its header is."""
    with path.open("rb") as f:
        first = f.readline(1 << 16)  # the header only: a bad byte further on fails that file's load
    try:
        read_header([first.decode("utf-8-sig")])
    except NotPoliceUk as e:
        return str(e)
    except UnicodeDecodeError:
        return "not a police.uk CSV: its header is not UTF-8 text"
    return None


class RowsColumn(ProgressColumn):
    """'123,456 rows · 98,765 rows/s'."""

    def render(self, task: Task) -> Text:
        rows = task.fields.get("rows", 0)
        rate = rows / task.elapsed if task.elapsed else 0.0
        return Text(f"{rows:,} rows · {rate:,.0f} rows/s", style="progress.data.speed")


def _tracked(records: Iterable[Record], stats: ParseStats, progress: Progress, task, raw) -> Iterator[Record]:
    """Pass records through, reporting bytes read and rows seen to the progress bar now and then."""
    n = 0
    for n, rec in enumerate(records, 1):
        if n % PROGRESS_EVERY == 0:
            progress.update(task, completed=raw.tell(), rows=stats.total)
        yield rec
    progress.update(task, completed=raw.tell(), rows=stats.total)


def _month_list(months: Iterable[date]) -> str:
    return ", ".join(sorted(m.strftime("%Y-%m") for m in months))


@dataclass
class Loaded:
    """The force-months loaded into tables of their own, waiting to be swapped in, and in words."""
    dataset_ids: list[int]
    months: list[date]
    notes: list[str]


async def _load(conn: asyncpg.Connection, runs: RunRecorder, partnership_id: int, run_id: int,
                stats: ParseStats, staged: police_uk_copy.Staged | None) -> Loaded:
    """Write every force-month staged into a load table and index it: from the raw table and the
    staging table when COPY staged the file (`staged`), else from the staging table alone."""
    by_force: dict[str, list[date]] = {}
    for force, month in stats.force_months:
        by_force.setdefault(force, []).append(month)
    loaded = Loaded([], [], [])
    for force in sorted(by_force):
        await conn.execute(AGENCY_ENSURE, partnership_id, force)
        agency_id = await conn.fetchval(AGENCY_ID, partnership_id, force)
        key = f"police-uk:{slugify(force)}"
        await conn.execute(DATASET_ENSURE, partnership_id, agency_id, key, f"police.uk: {force}")
        dataset_id = await conn.fetchval(DATASET_LOCK, partnership_id, key)
        months = sorted(by_force[force])
        for month in months:
            table = _quoted(await conn.fetchval(LOAD_TABLE, run_id, dataset_id, month))
            if staged is not None and (force, month) in staged.months:
                by_month = (force, month.strftime("%Y-%m")) if len(staged.months) > 1 else ()
                await conn.execute(police_uk_copy.GOOD_JOIN_BY_HASH)
                await conn.execute(police_uk_copy.insert_good(table, staged), partnership_id, run_id, month,
                                   dataset_id, *by_month)
                await conn.execute(police_uk_copy.GOOD_JOIN_RESET)
            if staged is None or staged.kept:
                await conn.execute(LOAD_JOIN_BY_HASH)
                await conn.execute(INSERT_LOAD.format(table=table), partnership_id, run_id,
                                   force, month, dataset_id)
                await conn.execute(LOAD_JOIN_RESET)
            loaded.dataset_ids.append(dataset_id)
            loaded.months.append(month)
        replaced = await runs.conn.fetchval(COUNT_MONTHS, dataset_id, months)
        loaded.notes.append(f"{force} {_month_list(months)}"
                            + (f" (replaced {replaced:,} earlier incidents)" if replaced else ""))
    for dataset_id, month in zip(loaded.dataset_ids, loaded.months):
        await conn.execute(LOAD_INDEX, run_id, dataset_id, month)
    return loaded


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _stage(conn: asyncpg.Connection, runs: RunRecorder, run_id: int, records: Iterator[Record],
                 stats: ParseStats) -> None:
    """COPY the records into the staging table chunk by chunk, with a heartbeat after each chunk."""
    while chunk := list(itertools.islice(records, COPY_CHUNK)):
        await conn.copy_records_to_table(STAGE_TABLE, records=chunk, columns=STAGE_COLUMNS)
        await runs.progress(run_id, stats.total)


async def _stage_file(conn: asyncpg.Connection, runs: RunRecorder, partnership_id: int, run_id: int, path: Path,
                      stats: ParseStats, progress: Progress, task) -> police_uk_copy.Staged | None:
    """Stage the file: by COPY when police_uk_copy can (what it staged), else parsed here line by
    line into the staging table (None)."""
    beat = [0]

    async def on_bytes(done: int, lines: int) -> None:
        progress.update(task, completed=done, rows=max(lines - 1, 0))
        if lines - beat[0] >= COPY_CHUNK:  # a heartbeat now and then: rows reached, about
            beat[0] = lines
            await runs.progress(run_id, max(lines - 1, 0))

    staged = await police_uk_copy.stage(conn, path, stats, on_bytes)
    if staged is not None:
        await runs.progress(run_id, stats.total)
        progress.update(task, rows=stats.total)
        await conn.execute(police_uk_copy.POINTS_CREATE)
        await conn.execute(police_uk_copy.POINTS_FILL, partnership_id)
        # (without statistics the planner takes the points' coordinates for far from distinct, and
        # hashes the million records instead of the points: seconds instead of a fraction of one)
        await conn.execute(f"ANALYZE {police_uk_copy.POINTS_TABLE} (longitude, latitude)")
        if len(staged.months) > 1:  # each month's INSERT picks its records out of the raw table
            await conn.execute(f"ANALYZE {police_uk_copy.RAW_TABLE}")
    else:  # (a COPY that did not apply left stats untouched)
        with path.open(encoding="utf-8-sig", newline="") as f:
            records = _tracked(parse(f, stats), stats, progress, task, f.buffer)
            await _stage(conn, runs, run_id, records, stats)
    # Statistics for the per-force-month INSERTs: guessing, the planner takes the filter on force and
    # month for a few rows and joins the anonymous locations by nested loop, once per staged row.
    if staged is None or staged.kept:
        await conn.execute(f"ANALYZE {STAGE_TABLE}")
    return staged


async def load_file(conn: asyncpg.Connection, runs: RunRecorder, partnership_id: int, path: Path,
                    progress: Progress) -> FileResult:
    """Load one file in one transaction and record its import_run; never raises for a bad file.

    Cancelled (the CLI turns SIGINT/SIGTERM into cancellation), it drops the data connection, whose
    transaction the server then rolls back, marks the run 'cancelled' and re-raises."""
    started = time.perf_counter()
    stats = ParseStats()
    hashing = asyncio.ensure_future(asyncio.to_thread(sha256, path))
    run_id = await runs.start(RUN_START, partnership_id, KIND, path.name, None)
    task = progress.add_task(path.name, total=path.stat().st_size, rows=0)
    # Managed by hand, not `async with`: a cancelled transaction is ended by closing its connection,
    # after which asyncpg's __aexit__ would replace the CancelledError with "connection is closed".
    tx = conn.transaction()
    try:
        await tx.start()
        try:
            await conn.execute(STAGE_CREATE)
            staged = await _stage_file(conn, runs, partnership_id, run_id, path, stats, progress, task)
            progress.update(task, description=f"{path.name}: loading and indexing months")
            loaded = await _load(conn, runs, partnership_id, run_id, stats, staged)
            notes = loaded.notes
            # In the same transaction: the trail records an import exactly when it happened.
            await audit.record_raw(conn, "import.police-uk", partnership_id=partnership_id,
                                   target=f"import_run/{run_id}", principal_name="safermap CLI",
                                   detail={"file": path.name, "rows_loaded": stats.loaded,
                                           "rows_rejected": stats.rejected, "months": notes})
            if loaded.months:  # last: from here to the COMMIT readers of incident wait
                progress.update(task, description=f"{path.name}: replacing months")
                # Emptied now, the staged tables cost the COMMIT nothing (made in this transaction,
                # they are truncated in place; dropped, their files and buffers would go at COMMIT).
                await conn.execute(f"TRUNCATE {', '.join(police_uk_copy.TEMP_TABLES if staged is not None else (STAGE_TABLE,))}")
                await conn.fetchval(MONTH_SWAP, partnership_id, run_id, loaded.dataset_ids, loaded.months)
        except asyncio.CancelledError:
            # The connection may be mid-COPY, unfit for a ROLLBACK; dropping it rolls back just as well.
            conn.terminate()
            raise
        except BaseException:
            await tx.rollback()
            raise
        late = await commit_through_cancel(tx)
    except asyncio.CancelledError as e:
        message = (f"cancelled by {cancel_reason(e)} after {stats.total:,} rows, "
                   "nothing of this file was loaded")
        await runs.conn.execute(RUN_CHECKSUM, run_id, await hashing)
        await runs.cancelled(run_id, stats.total, stats.rejected, message)
        progress.update(task, description=f"{path.name}: cancelled")
        raise
    except Exception as e:  # anything at all: the transaction has rolled back, so say so and go on
        reason = "the file is not UTF-8 text" if isinstance(e, UnicodeDecodeError) else str(e).splitlines()[0]
        message = f"failed after {stats.total:,} rows, nothing of this file was loaded: {reason}"
        await runs.conn.execute(RUN_CHECKSUM, run_id, await hashing)
        await runs.finish(run_id, RUN_FINISH, "failed", stats.total, 0, stats.rejected,
                          json.dumps(stats.rejects), message)
        progress.update(task, description=f"{path.name}: failed")
        return FileResult(path, False, stats, message, time.perf_counter() - started)
    message = "loaded " + ("; ".join(notes) if notes else "no rows")
    if stats.rejected > len(stats.rejects):
        message += f"; {stats.rejected:,} rows rejected, the first {len(stats.rejects):,} are listed"
    if late is not None:
        message += f"; {cancel_reason(late)} came during the commit, which completed"
    await runs.conn.execute(RUN_CHECKSUM, run_id, await hashing)
    await runs.finish(run_id, RUN_FINISH, "loaded", stats.total, stats.loaded, stats.rejected,
                      json.dumps(stats.rejects), message)
    progress.update(task, description=f"{path.name}: done", completed=path.stat().st_size)
    if late is not None:
        raise late  # this file is in; stop before the next one, as the signal asked
    return FileResult(path, True, stats, message, time.perf_counter() - started)


def _report(console: Console, r: FileResult) -> None:
    s = r.stats
    rate = s.total / r.seconds if r.seconds else 0
    colour = "green" if r.ok else "red"
    console.print(f"[{colour}]{r.path.name}[/]: {s.total:,} rows, {s.loaded if r.ok else 0:,} loaded, "
                  f"{s.rejected:,} rejected in {r.seconds:.1f} s ({rate:,.0f} rows/s). {r.message}")
    for rej in s.rejects[:10]:
        console.print(f"  line {rej['line']}: {rej['reason']}")
    if s.rejected > 10:
        console.print(f"  ... and {s.rejected - 10:,} more (see `GET /api/imports`)")


async def import_paths(settings: Settings, paths: list[Path], partnership_slug: str, console: Console) -> bool:
    """Import police.uk street CSVs (files or folders) into a partnership.

    Returns False when any file failed to load (its import_run says why; the others still load).
    Raises ImportRefused, having loaded nothing, for an unknown partnership, a missing path or a
    file that is not a police.uk street CSV (each such file gets a 'refused' import_run).
    """
    files, skipped = find_files([Path(p) for p in paths])
    async with raw_connection(settings) as conn, run_recorder(settings) as runs:
        await conn.execute(SESSION_SETUP)
        await conn.execute(LOAD_CLEANUP)  # load tables of an import that ended half-way (none, normally)
        partnership_id = await conn.fetchval(PARTNERSHIP_ID, partnership_slug)
        if partnership_id is None:
            raise ImportRefused(f"No partnership '{partnership_slug}'. "
                                f"Create it with: safermap partnership add {partnership_slug} \"Name\"")
        refused = [(f, why) for f in files if (why := header_problem(f))]
        if refused:
            for f, why in refused:
                await runs.conn.execute(RUN_REFUSED, partnership_id, KIND, f.name, sha256(f), why)
            listed = "; ".join(f"{f}: {why}" for f, why in refused)
            raise ImportRefused(f"Nothing was imported. {listed}")
        if skipped:
            console.print(f"skipping {len(skipped)} outcomes/stop-and-search file(s): not street-level crime")
        results = []
        with Progress(TextColumn("{task.description}"), BarColumn(), RowsColumn(), TimeElapsedColumn(),
                      console=console, transient=False) as progress:
            for f in files:
                results.append(await load_file(conn, runs, partnership_id, f, progress))
    for r in results:
        _report(console, r)
    return all(r.ok for r in results)
