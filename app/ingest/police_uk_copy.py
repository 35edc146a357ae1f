"""Staging a police.uk street CSV at COPY speed: the server parses the CSV, Python judges only the
rows that are not plainly good.

The file goes through COPY ... (FORMAT csv) into a temporary table of text columns, each record
numbered in file order. A record is plainly good when a strict SQL test passes (a YYYY-MM month of
1900 or later, both coordinates empty or both plain decimals in range, a crime type and a force
with no space at either end); those are typed by SQL straight into the staging table. Every other
record (few: the rejects and odd but good ones) is fetched and judged by the same Python as the
slow path (police_uk_parse.record), so a reject reads exactly as it would there.

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
# Plainly good: every value below is what police_uk_parse.record makes of such a record.
PRINTABLE_ENDS = "'^[!-~](.*[!-~])?$'"
GOOD = f"""(
    r.month ~ '^(19|[2-9][0-9])[0-9]{{2}}-(0[1-9]|1[0-2])$'
    AND ((r.longitude = '' AND r.latitude = '')
         OR (r.longitude ~ '^-?[0-9]{{1,3}}(\\.[0-9]{{1,15}})?$' AND r.latitude ~ '^-?[0-9]{{1,2}}(\\.[0-9]{{1,15}})?$'
             AND r.longitude::float8 BETWEEN -180 AND 180 AND r.latitude::float8 BETWEEN -90 AND 90))
    AND r.crime_type ~ {PRINTABLE_ENDS} AND r.reported_by ~ {PRINTABLE_ENDS}
)"""
STAGE_GOOD = f"""
    INSERT INTO police_uk_stage (force, external_ref, category, month, lon, lat, location_text, lsoa_code,
                                 lsoa_name, outcome, context)
    SELECT r.reported_by, nullif(r.crime_id, ''), r.crime_type, (r.month || '-01')::date,
           nullif(r.longitude, '')::float8, nullif(r.latitude, '')::float8, nullif(r.location, ''),
           nullif(r.lsoa_code, ''), nullif(r.lsoa_name, ''), nullif(r.last_outcome, ''), nullif(r.context, '')
    FROM {RAW_TABLE} r WHERE {GOOD}
"""
OTHERS = f"SELECT line, {', '.join(RAW_COLUMNS)} FROM {RAW_TABLE} r WHERE NOT {GOOD} ORDER BY line"
SUMMARY = f"SELECT count(*) AS n FROM {RAW_TABLE}"
FORCE_MONTHS = "SELECT DISTINCT force, month FROM police_uk_stage"
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
    """Fill police_uk_stage from `path` by COPY; False (nothing staged) when this way does not apply."""
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
    await conn.execute(STAGE_GOOD)
    cols = {name: i for i, name in enumerate(HEADER)}
    months: dict[str, date] = {}
    kept = []
    for r in await conn.fetch(OTHERS):
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
