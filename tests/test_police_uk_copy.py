"""Staging by COPY (app.ingest.police_uk_copy) gives what the Python parser gives: the same rows and
the same rejects with the same line numbers, or steps aside for files only the parser can read; and an
import by COPY loads the same incidents as one by the parser."""
from __future__ import annotations

import io
from pathlib import Path

import asyncpg
import pytest
from rich.console import Console
from sqlalchemy import text

from app.ingest import police_uk_copy
from app.ingest.police_uk import STAGE_COLUMNS, STAGE_CREATE, STAGE_TABLE, import_paths
from app.ingest.police_uk_parse import ParseStats, parse
from app.settings import to_libpq_url
from tests.factories import partnership

HEADER = ("Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
          "Crime type,Last outcome category,Context")
GOOD = "a1,2024-01,Test Constabulary,Test Constabulary,-2.242600,53.480800,On or near X,E01,Man 001A,Burglary,,"
ODD_BUT_GOOD = [
    ",2024-01,Test Constabulary,Test Constabulary,,,No location,,,Anti-social behaviour,,",
    "b2, 2024-01 ,Test Constabulary,Test Constabulary, -2.2 , 53.4 ,On or near Y,,,Drugs ,Under investigation,",
    "c3,2024-01,,Falls Within Police,1e-3,5e1,On or near Z,,,Robbery,,a note",
    'd4,2024-02,Test Constabulary,Test Constabulary,-2.2,53.4,"On or near ""Quoted"", Street",,,Other theft,,',
    "e5,2024-01,Test Constabulary ,Test Constabulary,-180,-90,On or near W,,,Shoplifting,,",
]
REJECTED = [
    "f6,2024-13,Test Constabulary,Test Constabulary,-2.2,53.4,X,,,Drugs,,",
    "g7,Jan 2024,Test Constabulary,Test Constabulary,-2.2,53.4,X,,,Drugs,,",
    "h8,2024-01,Test Constabulary,Test Constabulary,-2.2,95.0,X,,,Drugs,,",
    "i9,2024-01,Test Constabulary,Test Constabulary,abc,53.4,X,,,Drugs,,",
    "j0,2024-01,Test Constabulary,Test Constabulary,-2.2,,X,,,Drugs,,",
    "k1,2024-01,Test Constabulary,Test Constabulary,nan,53.4,X,,,Drugs,,",
    "l2,2024-01,Test Constabulary,Test Constabulary,-2.2,53.4,X,,, ,,",
    "m3,2024-01, , ,-2.2,53.4,X,,,Drugs,,",
    "n4,1899-12,Test Constabulary,Test Constabulary,-2.2,53.4,X,,,Drugs,,",
]


@pytest.fixture
async def conn(database_url):
    c = await asyncpg.connect(to_libpq_url(database_url))
    yield c
    await c.close()


async def nothing(done: int, lines: int) -> None:
    pass


async def staged(conn: asyncpg.Connection, applied: bool) -> list[tuple]:
    source = police_uk_copy.SOURCE if applied else STAGE_TABLE
    rows = await conn.fetch(f"SELECT {', '.join(STAGE_COLUMNS)} FROM {source} AS s")
    return sorted((tuple(r) for r in rows), key=repr)


async def both_ways(conn: asyncpg.Connection, path: Path) -> tuple[bool, tuple, tuple]:
    """(whether COPY applied, its (rows, stats), the parser's (rows, stats))."""
    async with conn.transaction():
        await conn.execute(STAGE_CREATE)
        by_copy = ParseStats()
        applied = await police_uk_copy.stage(conn, path, by_copy, nothing)
        copy_rows = await staged(conn, applied)
        await conn.execute(f"DROP TABLE {STAGE_TABLE}")
    by_parse = ParseStats()
    with path.open(encoding="utf-8-sig", newline="") as f:
        parse_rows = sorted(parse(f, by_parse), key=repr)
    return applied, (copy_rows, by_copy), (parse_rows, by_parse)


def summary(stats: ParseStats) -> tuple:
    return stats.total, stats.rejected, stats.rejects, stats.force_months


async def test_copy_stages_what_the_parser_would_with_the_same_rejects(conn, tmp_path):
    path = tmp_path / "2024-01-test-constabulary-street.csv"
    lines = [GOOD] * 3 + ODD_BUT_GOOD + REJECTED + [GOOD]
    path.write_text("\ufeff" + HEADER + "\r\n" + "\r\n".join(lines) + "\r\n", encoding="utf-8")
    applied, (copy_rows, by_copy), (parse_rows, by_parse) = await both_ways(conn, path)
    assert applied
    assert copy_rows == parse_rows and len(copy_rows) == 4 + len(ODD_BUT_GOOD)
    assert summary(by_copy) == summary(by_parse)
    assert [r["line"] for r in by_copy.rejects] == list(range(10, 10 + len(REJECTED)))


@pytest.mark.parametrize("body", [
    GOOD + "\n" + GOOD.rsplit(",", 2)[0] + "\n",  # a record two fields short
    GOOD + "\n\n" + GOOD + "\n",  # a blank line
    GOOD + '\n"a\nb",2024-01,T,T,-2.2,53.4,X,,,Drugs,,\n',  # a line break inside a field
    GOOD + "\nx\x00,2024-01,T,T,-2.2,53.4,X,,,Drugs,,\n",  # a NUL byte
    'x,2024-01,T,T,-2.2,53.4,"unterminated,,,Drugs,,\n',
])
async def test_copy_steps_aside_for_what_only_the_parser_reads(conn, tmp_path, body):
    path = tmp_path / "2024-01-test-constabulary-street.csv"
    path.write_text(HEADER + "\n" + body, encoding="utf-8")
    applied, (copy_rows, by_copy), _ = await both_ways(conn, path)
    assert not applied and copy_rows == [] and summary(by_copy) == summary(ParseStats())


async def test_another_header_is_left_to_the_parser(conn, tmp_path):
    path = tmp_path / "2024-01-test-constabulary-street.csv"
    path.write_text(HEADER.replace("Context", "Notes") + "\n" + GOOD + "\n", encoding="utf-8")
    assert not (await both_ways(conn, path))[0]


INCIDENTS = text("""
    SELECT d.name AS dataset, i.external_ref, i.category, i.month, ST_AsEWKB(i.geom) AS geom, i.location_text,
           i.lsoa_code, i.lsoa_name, i.outcome, i.context, ST_AsEWKB(i.geom_anon) AS geom_anon, i.anon_point_id
    FROM incident i JOIN partnership p ON p.id = i.partnership_id JOIN dataset d ON d.id = i.dataset_id
    WHERE p.slug = :slug
""")
RUN = text("""
    SELECT r.status, r.rows_total, r.rows_loaded, r.rows_rejected, r.rejects
    FROM import_run r JOIN partnership p ON p.id = r.partnership_id WHERE p.slug = :slug
""")


@pytest.mark.parametrize("lines, months", [
    ([GOOD] * 3 + ODD_BUT_GOOD + REJECTED + [GOOD, GOOD.replace("2024-01", "2024-02")], 2),
    ([GOOD] * 3 + [ODD_BUT_GOOD[2]] + REJECTED, 1),  # one month plainly good, another force's kept
])
async def test_an_import_by_copy_loads_what_an_import_by_the_parser_loads(settings, db, tmp_path, monkeypatch,
                                                                          lines, months):
    """Forces' months, odd but good records and rejects: the incidents written straight from the
    raw table (and the parser's kept ones beside them) are those the parser's import writes."""
    by_copy, by_parser = tmp_path / "copy" / "street.csv", tmp_path / "parser" / "street.csv"
    for path, tail in ((by_copy, ""), (by_parser, "\n")):  # a blank line at the end: COPY steps aside
        path.parent.mkdir()
        path.write_text(HEADER + "\n" + "\n".join(lines) + "\n" + tail, encoding="utf-8")
    stage = police_uk_copy.stage
    applied = []

    async def spy(*args, **kwargs):
        applied.append(await stage(*args, **kwargs))
        return applied[-1]

    monkeypatch.setattr(police_uk_copy, "stage", spy)
    for slug, path in (("by-copy", by_copy), ("by-parser", by_parser)):
        await partnership(db, slug)
        assert await import_paths(settings, [path], slug, Console(file=io.StringIO())) is True
    assert applied[0] is not None and len(applied[0].months) == months and applied[0].odd and applied[1] is None
    loaded = {}
    for slug in ("by-copy", "by-parser"):
        rows = (await db.execute(INCIDENTS, {"slug": slug})).all()
        loaded[slug] = sorted((tuple(r) for r in rows), key=repr)
        assert (await db.execute(RUN, {"slug": slug})).one() == (
            await db.execute(RUN, {"slug": "by-parser"})).one()
    await db.commit()
    good = len(lines) - len(REJECTED)
    assert loaded["by-copy"] == loaded["by-parser"] and len(loaded["by-copy"]) == good
    assert len({r[0] for r in loaded["by-copy"]}) == 2  # Test Constabulary's and the one 'Falls within' names
