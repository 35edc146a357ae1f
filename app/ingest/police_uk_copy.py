"""Staging a police.uk street CSV at COPY speed: the server parses the CSV, Python judges only the
rows that are not plainly good.

The file goes through COPY ... (FORMAT csv) into a temporary table of text columns, each record
numbered in file order. A record is plainly good when strict SQL tests of its values pass (a YYYY-MM month of
1900 or later, both coordinates empty or both plain decimals in range, a crime type and a force
with no space at either end); those are written typed straight from the raw table into each month's
load table (insert_good: one pass, no second copy of the records). Every other record (few: the rejects and odd but good ones) is fetched and judged
by the same Python as the slow path (police_uk_parse.record), so a reject reads exactly as it would
there, and the ones it keeps go to the staging table.

Record n is on physical line n + 1 only when no field holds a line break, and COPY refuses what the
Python parser takes in its stride (a record of the wrong width, a blank line, a NUL byte, bytes
that are not UTF-8, a header other than police.uk's exact one). In any of those cases this returns
None having staged nothing (a savepoint), and the caller parses the file in Python.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import asyncpg

from app.ingest.police_uk_parse import HEADER, ParseStats, record

RAW_TABLE = "police_uk_raw"
RAW_COLUMNS = ("crime_id", "month", "reported_by", "falls_within", "longitude", "latitude", "location",
               "lsoa_code", "lsoa_name", "crime_type", "last_outcome", "context")
# (the numbers cached by the thousand: a sequence's own bookkeeping per record costs a tenth of the COPY)
RAW_CREATE = f"""
    CREATE TEMP TABLE {RAW_TABLE} (
        line bigint GENERATED ALWAYS AS IDENTITY (CACHE 1000), {', '.join(c + ' text' for c in RAW_COLUMNS)}
    ) ON COMMIT DROP
"""
# Every distinct value the plain-record tests look at, found in one pass over the raw table (a regular
# expression per record and column costs more than the COPY), each as (kind, a, b, n, odd): months 'm',
# forces 'f', crime types 't' and coordinate pairs 'p', odd when police_uk_parse.record might not take
# it as it is; and 'fm', each (force, month) with its number of records n (odd NULL), from which the
# force-months follow without another pass. The pairs that are not odd are also the file's points.
# (Two grouping sets, not one per kind: months, forces and types come from their few combinations.)
VALUES_TABLE = "police_uk_values"
PRINTABLE_ENDS = "'^[!-~](.*[!-~])?$'"
VALUES_CREATE = f"""
    CREATE TEMP TABLE {VALUES_TABLE} ON COMMIT DROP AS
    WITH g AS MATERIALIZED (
        SELECT GROUPING(longitude, latitude) = 0 AS point, reported_by, month, crime_type, longitude, latitude,
               count(*) AS n
        FROM {RAW_TABLE}
        GROUP BY GROUPING SETS ((reported_by, month, crime_type), (longitude, latitude))
    ), v (kind, a, b, n) AS (
        SELECT 'p', longitude, latitude, n FROM g WHERE point
        UNION ALL
        SELECT 'fm', reported_by, month, sum(n)::bigint FROM g WHERE NOT point GROUP BY reported_by, month
        UNION ALL
        SELECT DISTINCT 'm', month, NULL, NULL::bigint FROM g WHERE NOT point
        UNION ALL
        SELECT DISTINCT 'f', reported_by, NULL, NULL::bigint FROM g WHERE NOT point
        UNION ALL
        SELECT DISTINCT 't', crime_type, NULL, NULL::bigint FROM g WHERE NOT point
    )
    SELECT kind, a, b, n, CASE kind
        WHEN 'm' THEN a !~ '^(19|[2-9][0-9])[0-9]{{2}}-(0[1-9]|1[0-2])$'
        WHEN 'f' THEN a !~ {PRINTABLE_ENDS}
        WHEN 't' THEN a !~ {PRINTABLE_ENDS}
        WHEN 'p' THEN NOT ((a = '' AND b = '')
             OR (a ~ '^-?[0-9]{{1,3}}(\\.[0-9]{{1,15}})?$' AND b ~ '^-?[0-9]{{1,2}}(\\.[0-9]{{1,15}})?$'
                 AND a::float8 BETWEEN -180 AND 180 AND b::float8 BETWEEN -90 AND 90))
    END AS odd FROM v
"""
VALUES_READ = f"SELECT kind, a, b, n, odd FROM {VALUES_TABLE} WHERE odd OR kind = 'fm'"
# (hashed subplans over a small table; no NULL anywhere: every raw column is FORCE_NOT_NULL)
ODD = f"""(
    r.month IN (SELECT a FROM {VALUES_TABLE} WHERE kind = 'm' AND odd)
    OR r.reported_by IN (SELECT a FROM {VALUES_TABLE} WHERE kind = 'f' AND odd)
    OR r.crime_type IN (SELECT a FROM {VALUES_TABLE} WHERE kind = 't' AND odd)
    OR (r.longitude, r.latitude) IN (SELECT a, b FROM {VALUES_TABLE} WHERE kind = 'p' AND odd)
)"""


def good(where: str) -> str:
    """The plainly good raw records `where` says, as the staging table's columns but for the month
    (its text, month_text) and the coordinates (their text, longitude and latitude)."""
    return f"""(
        SELECT r.reported_by AS force, nullif(r.crime_id, '') AS external_ref, r.crime_type AS category,
               r.month AS month_text, r.longitude, r.latitude, nullif(r.location, '') AS location_text,
               nullif(r.lsoa_code, '') AS lsoa_code, nullif(r.lsoa_name, '') AS lsoa_name,
               nullif(r.last_outcome, '') AS outcome, nullif(r.context, '') AS context
        FROM {RAW_TABLE} r {where}
    )"""


# The staged records, as the staging table's columns: the plainly good ones typed from the raw table,
# and the staging table (which holds the others the parser kept). What insert_good and the staging
# table's own INSERT (police_uk.INSERT_LOAD) write, together; tests compare it with the parser's.
SOURCE = f"""(
    SELECT g.force, g.external_ref, g.category, (g.month_text || '-01')::date AS month,
           nullif(g.longitude, '')::float8 AS lon, nullif(g.latitude, '')::float8 AS lat,
           g.location_text, g.lsoa_code, g.lsoa_name, g.outcome, g.context
    FROM {good(f'WHERE NOT {ODD}')} g
    UNION ALL
    SELECT force, external_ref, category, month, lon, lat, location_text, lsoa_code, lsoa_name, outcome, context
    FROM police_uk_stage
)"""
OTHERS = f"SELECT r.line, {', '.join('r.' + c for c in RAW_COLUMNS)} FROM {RAW_TABLE} r WHERE {ODD} ORDER BY r.line"
# The file's distinct points with their anonymous locations (sanitised sharing, migration 0006), once
# per point for the whole file ($1: the partnership), keyed by the coordinates' text as the raw table
# holds them: the records meet them by a hash join on text, with no number parsed per record.
POINTS_TABLE = "police_uk_points"
POINTS_CREATE = f"""
    CREATE TEMP TABLE {POINTS_TABLE} (longitude text, latitude text, geom geometry(Point, 4326),
                                      anon_point_id bigint, geom_anon geometry(Point, 4326)) ON COMMIT DROP
"""
POINTS_FILL = f"""
    INSERT INTO {POINTS_TABLE}
    SELECT p.a, p.b, p.geom, l.anon_point_id, l.geom_anon
    FROM (SELECT a, b, ST_SetSRID(ST_MakePoint(a::float8, b::float8), 4326) AS geom FROM {VALUES_TABLE}
          WHERE kind = 'p' AND NOT odd AND a <> '' OFFSET 0) AS p
    LEFT JOIN LATERAL safermap_anon_location($1, p.geom) AS l ON true
"""
# Only a hash join of the records with the points makes sense, whatever the planner guesses of a raw
# table it has no statistics for (ANALYZE of a million records costs more than it saves).
GOOD_JOIN_BY_HASH = "SET LOCAL enable_nestloop = off; SET LOCAL enable_mergejoin = off; SET LOCAL work_mem = '64MB'"
GOOD_JOIN_RESET = "RESET enable_nestloop; RESET enable_mergejoin; RESET work_mem"
CHUNK = 1 << 20
TEMP_TABLES = ("police_uk_stage", RAW_TABLE, VALUES_TABLE, POINTS_TABLE)  # all that staging by COPY makes


@dataclass
class Staged:
    """What stage() left: whether any value is odd (else every raw record is plainly good), how many
    records the parser kept beside them (in the staging table), and the force-months of the plainly
    good records (the parser's may add others: a kept record's force can come from 'Falls within')."""
    odd: bool
    kept: int
    months: frozenset[tuple[str, date]]


def insert_good(table: str, staged: Staged) -> str:
    """INSERT one force-month's plainly good records into its load table `table` (a quoted name):
    $1 partnership, $2 run, $3 month (a date), $4 data set; and, when the file holds more than one
    force-month, $5 the force and $6 the month as the file spells it (YYYY-MM)."""
    where = [f"NOT {ODD}"] if staged.odd else []
    if len(staged.months) > 1:
        where += ["r.reported_by = $5", "r.month = $6"]
    return f"""
        INSERT INTO {table} (partnership_id, dataset_id, import_run_id, external_ref, category, month, geom,
                             location_text, lsoa_code, lsoa_name, outcome, context, geom_anon, anon_point_id)
        SELECT $1, $4, $2, g.external_ref, g.category, $3::date, p.geom, g.location_text, g.lsoa_code, g.lsoa_name,
               g.outcome, g.context, p.geom_anon, p.anon_point_id
        FROM {good(('WHERE ' + ' AND '.join(where)) if where else '')} g
        LEFT JOIN {POINTS_TABLE} p ON p.longitude = g.longitude AND p.latitude = g.latitude
    """


def standard_header(path: Path) -> bool:
    """The file starts with police.uk's own header, column for column (what RAW_COLUMNS assumes)."""
    with path.open("rb") as f:
        first = f.readline(1 << 16).decode("utf-8-sig", errors="replace").rstrip("\r\n")
    return tuple(h.strip() for h in first.split(",")) == HEADER


async def _chunks(path: Path, newlines: list[int],
                  on_bytes: Callable[[int, int], Awaitable[None]]) -> AsyncIterator[bytes]:
    """The file's bytes for COPY, counting line feeds; on_bytes(bytes read, line feeds) as it goes."""
    done = 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            newlines[0] += chunk.count(b"\n")
            newlines[1] = chunk[-1] == 0x0A
            done += len(chunk)
            await on_bytes(done, newlines[0])
            yield chunk


async def stage(conn: asyncpg.Connection, path: Path, stats: ParseStats,
                on_bytes: Callable[[int, int], Awaitable[None]]) -> Staged | None:
    """Stage `path` by COPY (read it back as SOURCE, or write it with insert_good); None (nothing
    staged) when this way does not apply."""
    if not standard_header(path):
        return None
    newlines = [0, 0]  # line feeds seen, and whether the last byte was one
    tx = conn.transaction()  # a savepoint: the caller's transaction goes on either way
    await tx.start()
    try:
        await conn.execute(RAW_CREATE)
        status = await conn.copy_to_table(RAW_TABLE, source=_chunks(path, newlines, on_bytes), columns=RAW_COLUMNS,
                                          format="csv", header=True, force_not_null=RAW_COLUMNS)
        total = int(status.split()[-1])  # 'COPY n'
        # One record per physical line (the header's, then each record's), else line numbers would lie.
        if newlines[0] + (0 if newlines[1] else 1) != total + 1:
            await tx.rollback()
            return None
    except (asyncpg.DataError, asyncpg.PostgresSyntaxError, asyncpg.CharacterNotInRepertoireError,
            asyncpg.UntranslatableCharacterError):
        await tx.rollback()
        return None
    except BaseException:
        await tx.rollback()
        raise
    await tx.commit()
    stats.total = total
    await conn.execute(VALUES_CREATE)
    values = await conn.fetch(VALUES_READ)
    pairs = {(v["a"], v["b"]): v["n"] for v in values if v["kind"] == "fm"}
    odd = any(v["odd"] for v in values)
    kept = []
    if odd:
        cols = {name: i for i, name in enumerate(HEADER)}
        months: dict[str, date] = {}
        others: Counter[tuple[str, str]] = Counter()  # odd records by their raw (force, month): what is left of each pair is good
        for r in await conn.fetch(OTHERS):
            others[r["reported_by"], r["month"]] += 1
            try:
                kept.append(record([r[c] for c in RAW_COLUMNS], cols, months))
            except ValueError as e:
                stats.reject(r["line"] + 1, str(e))
        pairs = {pair: n - others[pair] for pair, n in pairs.items()}
    # (a pair with a plainly good record has a force and a month that are plainly good: 'YYYY-MM')
    good = frozenset((force, date(int(month[:4]), int(month[5:7]), 1)) for (force, month), n in pairs.items() if n > 0)
    stats.force_months.update(good)
    stats.force_months.update((r[0], r[3]) for r in kept)
    if kept:
        await conn.copy_records_to_table("police_uk_stage", records=kept,
                                         columns=("force", "external_ref", "category", "month", "lon", "lat",
                                                  "location_text", "lsoa_code", "lsoa_name", "outcome", "context"))
    return Staged(odd=odd, kept=len(kept), months=good)
