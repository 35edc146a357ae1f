"""Staging a police.uk street CSV at COPY speed: the server parses the CSV, Python judges only the
rows that are not plainly good.

The file goes through COPY ... (FORMAT csv) into a temporary table of text columns, each record
numbered in file order. A record is plainly good when strict SQL tests of its values pass (a YYYY-MM month of
1900 or later, both coordinates empty or both plain decimals in range, a crime type and a force
with no space at either end); those are read typed from the raw table by SQL (SOURCE) when the
months are loaded. Every other record (few: the rejects and odd but good ones) is fetched and judged
by the same Python as the slow path (police_uk_parse.record), so a reject reads exactly as it would
there, and the ones it keeps go to the staging table.

Record n is on physical line n + 1 only when no field holds a line break, and COPY refuses what the
Python parser takes in its stride (a record of the wrong width, a blank line, a NUL byte, bytes
that are not UTF-8, a header other than police.uk's exact one). In any of those cases this returns
False having staged nothing (a savepoint), and the caller parses the file in Python.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from pathlib import Path

import asyncpg

from app.ingest.police_uk_parse import HEADER, ParseStats, record

RAW_TABLE = "police_uk_raw"
RAW_COLUMNS = ("crime_id", "month", "reported_by", "falls_within", "longitude", "latitude", "location",
               "lsoa_code", "lsoa_name", "crime_type", "last_outcome", "context")
RAW_CREATE = f"""
    CREATE TEMP TABLE {RAW_TABLE} (
        line bigint GENERATED ALWAYS AS IDENTITY, {', '.join(c + ' text' for c in RAW_COLUMNS)}
    ) ON COMMIT DROP
"""
# Values that are not plainly good, found by testing each distinct value once (a regular expression
# per record and column costs more than the COPY): months, forces, crime types and coordinate pairs,
# each as (kind, a, b). Every other value is one police_uk_parse.record takes as it is. Usually empty.
ODD_TABLE = "police_uk_odd"
PRINTABLE_ENDS = "'^[!-~](.*[!-~])?$'"
ODD_CREATE = f"""
    CREATE TEMP TABLE {ODD_TABLE} ON COMMIT DROP AS
    SELECT kind, a, b FROM (
        SELECT CASE WHEN GROUPING(month) = 0 THEN 'm' WHEN GROUPING(reported_by) = 0 THEN 'f'
                    WHEN GROUPING(crime_type) = 0 THEN 't' ELSE 'p' END AS kind,
               coalesce(month, reported_by, crime_type, longitude) AS a, latitude AS b
        FROM {RAW_TABLE}
        GROUP BY GROUPING SETS ((month), (reported_by), (crime_type), (longitude, latitude))
    ) AS v
    WHERE NOT CASE kind
        WHEN 'm' THEN a ~ '^(19|[2-9][0-9])[0-9]{{2}}-(0[1-9]|1[0-2])$'
        WHEN 'f' THEN a ~ {PRINTABLE_ENDS}
        WHEN 't' THEN a ~ {PRINTABLE_ENDS}
        ELSE (a = '' AND b = '')
             OR (a ~ '^-?[0-9]{{1,3}}(\\.[0-9]{{1,15}})?$' AND b ~ '^-?[0-9]{{1,2}}(\\.[0-9]{{1,15}})?$'
                 AND a::float8 BETWEEN -180 AND 180 AND b::float8 BETWEEN -90 AND 90)
    END
"""
# (hashed subplans over a small table; no NULL anywhere: every raw column is FORCE_NOT_NULL)
ODD = f"""(
    r.month IN (SELECT a FROM {ODD_TABLE} WHERE kind = 'm')
    OR r.reported_by IN (SELECT a FROM {ODD_TABLE} WHERE kind = 'f')
    OR r.crime_type IN (SELECT a FROM {ODD_TABLE} WHERE kind = 't')
    OR (r.longitude, r.latitude) IN (SELECT a, b FROM {ODD_TABLE} WHERE kind = 'p')
)"""
# The staged records, as the staging table's columns: the plainly good ones typed from the raw table,
# and the staging table (which then holds the others the parser kept). police_uk's INSERT_LOAD
# reads this instead of the staging table alone, sparing a copy of every record.
SOURCE = f"""(
    SELECT r.reported_by AS force, nullif(r.crime_id, '') AS external_ref, r.crime_type AS category,
           (r.month || '-01')::date AS month, nullif(r.longitude, '')::float8 AS lon,
           nullif(r.latitude, '')::float8 AS lat, nullif(r.location, '') AS location_text,
           nullif(r.lsoa_code, '') AS lsoa_code, nullif(r.lsoa_name, '') AS lsoa_name,
           nullif(r.last_outcome, '') AS outcome, nullif(r.context, '') AS context
    FROM {RAW_TABLE} r WHERE NOT {ODD}
    UNION ALL
    SELECT force, external_ref, category, month, lon, lat, location_text, lsoa_code, lsoa_name, outcome, context
    FROM police_uk_stage
)"""
OTHERS = f"SELECT r.line, {', '.join('r.' + c for c in RAW_COLUMNS)} FROM {RAW_TABLE} r WHERE {ODD} ORDER BY r.line"
SUMMARY = f"SELECT count(*) AS n FROM {RAW_TABLE}"
FORCE_MONTHS = f"SELECT DISTINCT force, month FROM {SOURCE} AS s"
CHUNK = 1 << 20


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
                on_bytes: Callable[[int, int], Awaitable[None]]) -> bool:
    """Stage `path` by COPY (read it back as SOURCE); False (nothing staged) when this way does not apply."""
    if not standard_header(path):
        return False
    newlines = [0, 0]  # line feeds seen, and whether the last byte was one
    tx = conn.transaction()  # a savepoint: the caller's transaction goes on either way
    await tx.start()
    try:
        await conn.execute(RAW_CREATE)
        await conn.copy_to_table(RAW_TABLE, source=_chunks(path, newlines, on_bytes), columns=RAW_COLUMNS,
                                 format="csv", header=True, force_not_null=RAW_COLUMNS)
        total = await conn.fetchval(SUMMARY)
        # One record per physical line (the header's, then each record's), else line numbers would lie.
        if newlines[0] + (0 if newlines[1] else 1) != total + 1:
            await tx.rollback()
            return False
    except (asyncpg.DataError, asyncpg.PostgresSyntaxError, asyncpg.CharacterNotInRepertoireError,
            asyncpg.UntranslatableCharacterError):
        await tx.rollback()
        return False
    except BaseException:
        await tx.rollback()
        raise
    await tx.commit()
    stats.total = total
    await conn.execute(ODD_CREATE)
    others = await conn.fetch(OTHERS)
    cols = {name: i for i, name in enumerate(HEADER)}
    months: dict[str, date] = {}
    kept = []
    for r in others:
        try:
            kept.append(record([r[c] for c in RAW_COLUMNS], cols, months))
        except ValueError as e:
            stats.reject(r["line"] + 1, str(e))
    if kept:
        await conn.copy_records_to_table("police_uk_stage", records=kept,
                                         columns=("force", "external_ref", "category", "month", "lon", "lat",
                                                  "location_text", "lsoa_code", "lsoa_name", "outcome", "context"))
    stats.force_months.update((r["force"], r["month"]) for r in await conn.fetch(FORCE_MONTHS))
    return True
