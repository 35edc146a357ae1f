"""The police.uk import: counts, rejects with line numbers, replacing a month, refusing and failing
without leaving anything behind, and the CLI's exit codes. Real PostGIS throughout."""
from __future__ import annotations

import io
import shutil
from datetime import date
from pathlib import Path

import psycopg
import pytest
from rich.console import Console
from sqlalchemy import text
from typer.testing import CliRunner

from app.ingest.police_uk import ImportRefused, import_paths
from app.ingest.police_uk_parse import NotPoliceUk, ParseStats, parse
from tests.factories import partnership

DATA = Path(__file__).parent / "data" / "police_uk"
JAN = DATA / "2024-01-test-constabulary-street.csv"
JAN_REVISED = DATA / "2024-01-test-constabulary-street-revised.csv"
FEB = DATA / "2024-02-test-constabulary-street.csv"
NOT_POLICE = DATA / "camera-register.csv"
HEADER = ("Crime ID,Month,Reported by,Falls within,Longitude,Latitude,Location,LSOA code,LSOA name,"
          "Crime type,Last outcome category,Context")
JAN_REJECTS = [
    {"line": 8, "reason": "unparseable month '2024-13' (expected YYYY-MM)"},
    {"line": 9, "reason": "latitude 95.000000 is out of range -90..90"},
    {"line": 10, "reason": "coordinates are not numbers ('abc', '53.480800')"},
    {"line": 11, "reason": "expected 12 fields, found 10"},
    {"line": 12, "reason": "missing Crime type"},
    {"line": 17, "reason": "unparseable month 'Jan 2024' (expected YYYY-MM)"},
]

INCIDENT_COUNTS = text("""
    SELECT count(*) AS total, count(geom) AS mapped,
           count(*) FILTER (WHERE category = 'Anti-social behaviour') AS asb,
           count(*) FILTER (WHERE category = 'Anti-social behaviour' AND external_ref IS NULL) AS asb_no_ref,
           count(DISTINCT geom) AS points
    FROM incident WHERE partnership_id = :p AND month = :m
""")
RUNS = text("SELECT * FROM import_run ORDER BY id")


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


async def counts(db, pid: int, month: date = date(2024, 1, 1)) -> dict:
    result = dict((await db.execute(INCIDENT_COUNTS, {"p": pid, "m": month})).one()._mapping)
    await db.commit()  # an open transaction that read incident would hold off the next import's swap
    return result


# -- the pure parser --------------------------------------------------------------------------------
def test_parser_counts_rejects_with_physical_lines_and_keeps_duplicates():
    stats = ParseStats()
    with JAN.open(encoding="utf-8-sig", newline="") as f:
        records = list(parse(f, stats))
    assert (stats.total, stats.loaded, stats.rejected) == (15, 9, 6)
    assert stats.rejects == JAN_REJECTS
    asb = [r for r in records if r[2] == "Anti-social behaviour"]
    assert len(asb) == 3 and len(set(asb)) == 1 and asb[0][1] is None  # identical, no Crime ID, all kept
    by_ref = {r[1]: r for r in records}
    assert by_ref["b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1"][6] == \
        "On or near Oxford Road, Manchester"
    no_location = by_ref["c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2"]
    assert (no_location[4], no_location[5], no_location[6]) == (None, None, "No location")
    assert records[-1][10] == "Context that spans\r\ntwo lines"
    assert stats.force_months == {("Test Constabulary", date(2024, 1, 1))}


def test_parser_refuses_a_header_that_is_not_police_uk():
    with pytest.raises(NotPoliceUk, match="missing column"):
        list(parse(["reference,lat,lon\n", "CAM-1,53.4,-2.2\n"], ParseStats()))


def test_parser_rejects_half_coordinates_nan_and_nul():
    lines = [HEADER + "\n",
             ",2024-01,F,F,-2.1,,Somewhere,,,Drugs,,\n",
             ",2024-01,F,F,nan,53.4,Somewhere,,,Drugs,,\n",
             ",2024-01,F,F,-2.1,53.4,Some\x00where,,,Drugs,,\n",
             "\n",
             ",2024-01,F,F,-2.1,53.4,Somewhere,,,Drugs,,\n"]
    stats = ParseStats()
    assert len(list(parse(lines, stats))) == 1
    assert [r["line"] for r in stats.rejects] == [2, 3, 4]
    assert stats.total == 4  # the blank line is not a record


# -- loading ---------------------------------------------------------------------------------------
async def test_import_counts_rejects_and_run_record(settings, db):
    pid = await partnership(db)
    assert await import_paths(settings, [JAN], "test-csp", quiet()) is True
    assert await counts(db, pid) == {"total": 9, "mapped": 8, "asb": 3, "asb_no_ref": 3, "points": 2}
    run = (await db.execute(RUNS)).one()
    assert (run.kind, run.file, run.status) == ("police-uk", JAN.name, "loaded")
    assert (run.rows_total, run.rows_loaded, run.rows_rejected) == (15, 9, 6)
    assert run.rejects == JAN_REJECTS
    assert len(run.checksum) == 64 and run.finished_at is not None
    ds = (await db.execute(text("SELECT d.source_key, d.kind, a.name, a.kind AS agency_kind FROM dataset d "
                                "JOIN agency a ON a.id = d.agency_id"))).one()
    assert tuple(ds) == ("police-uk:test-constabulary", "police_uk", "Test Constabulary", "police")
    row = (await db.execute(text(
        "SELECT month, location_text, lsoa_code, lsoa_name, outcome, context, external_ref, import_run_id, "
        "ST_X(geom) AS lon, ST_Y(geom) AS lat FROM incident WHERE category = 'Burglary'"))).one()
    assert row.month == date(2024, 1, 1) and row.location_text == "On or near Market Street"
    assert (row.lsoa_code, row.lsoa_name, row.outcome) == ("E01005001", "Manchester 001A",
                                                           "Investigation complete; no suspect identified")
    assert row.context is None and row.external_ref.startswith("a1b2") and row.import_run_id == run.id
    assert (row.lon, row.lat) == pytest.approx((-2.2426, 53.4808))
    event = (await db.execute(text("SELECT action, target, detail FROM audit_event"))).one()
    assert (event.action, event.target) == ("import.police-uk", f"import_run/{run.id}")
    assert (event.detail["rows_loaded"], event.detail["rows_rejected"]) == (9, 6)


async def test_importing_the_same_file_twice_gives_the_same_incidents(settings, db):
    pid = await partnership(db)
    await import_paths(settings, [JAN], "test-csp", quiet())
    first = await counts(db, pid)
    assert await import_paths(settings, [JAN], "test-csp", quiet()) is True
    assert await counts(db, pid) == first
    assert (await db.execute(text("SELECT count(*) FROM dataset"))).scalar_one() == 1
    assert (await db.execute(text("SELECT count(*) FROM incident"))).scalar_one() == 9


async def test_concurrent_imports_of_one_month_never_duplicate_it(settings, db):
    import asyncio
    pid = await partnership(db)
    results = await asyncio.gather(*(import_paths(settings, [JAN], "test-csp", quiet()) for _ in range(3)))
    assert results == [True, True, True]
    assert (await counts(db, pid))["total"] == 9
    assert (await db.execute(text("SELECT count(*) FROM dataset"))).scalar_one() == 1


async def test_a_revised_month_replaces_the_old_one_and_leaves_other_months(settings, db):
    pid = await partnership(db)
    await import_paths(settings, [JAN, FEB], "test-csp", quiet())
    assert (await counts(db, pid))["total"] == 9
    assert (await counts(db, pid, date(2024, 2, 1)))["total"] == 2
    assert await import_paths(settings, [JAN_REVISED], "test-csp", quiet()) is True
    assert (await counts(db, pid))["total"] == 3
    assert (await counts(db, pid, date(2024, 2, 1)))["total"] == 2
    outcome = (await db.execute(text("SELECT outcome FROM incident WHERE category = 'Burglary'"))).scalar_one()
    assert outcome == "Offender given a caution"
    assert "replaced 9 earlier incidents" in (await db.execute(RUNS)).all()[-1].message


async def test_a_folder_is_walked_and_outcomes_files_are_skipped(settings, db, tmp_path):
    pid = await partnership(db)
    for month, src in (("2024-01", JAN), ("2024-02", FEB)):
        (tmp_path / month).mkdir()
        shutil.copy(src, tmp_path / month / src.name)
    (tmp_path / "2024-01" / "2024-01-test-constabulary-outcomes.csv").write_text("Crime ID,Month,Outcome type\n")
    assert await import_paths(settings, [tmp_path], "test-csp", quiet()) is True
    assert (await db.execute(text("SELECT count(*) FROM incident WHERE partnership_id = :p"),
                             {"p": pid})).scalar_one() == 11


async def test_a_file_that_is_not_police_uk_is_refused_and_nothing_is_loaded(settings, db):
    await partnership(db)
    with pytest.raises(ImportRefused, match="missing column"):
        await import_paths(settings, [JAN, NOT_POLICE], "test-csp", quiet())
    assert (await db.execute(text("SELECT count(*) FROM incident"))).scalar_one() == 0
    run = (await db.execute(RUNS)).one()
    assert (run.file, run.status) == (NOT_POLICE.name, "refused")
    assert "Crime type" in run.message


async def test_unknown_partnership_is_refused(settings):
    with pytest.raises(ImportRefused, match="No partnership 'nowhere'"):
        await import_paths(settings, [JAN], "nowhere", quiet())


async def test_a_failure_mid_load_leaves_the_old_month_whole(settings, db, database_url, tmp_path):
    """The database refuses the 1,500th row of a revised month (a trigger stands in for a full disk or
    a killed connection): the old month must survive untouched and the run must say it failed."""
    pid = await partnership(db)
    await import_paths(settings, [JAN], "test-csp", quiet())
    rows = [",2024-01,Test Constabulary,Test Constabulary,-2.2,53.4,On or near X,,,Anti-social behaviour,,"
            for _ in range(1499)]
    rows.append(",2024-01,Test Constabulary,Test Constabulary,-2.2,53.4,On or near X,,,Explode,,")
    rows += rows[:500]
    big = tmp_path / "2024-01-test-constabulary-street.csv"
    big.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    # The import loads a month into a table of its own (incident_load_*, made by the import and
    # attached to incident at the end): an event trigger puts the refusing trigger on each one.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("""
            CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'could not extend file: No space left on device'; END $$;
            CREATE FUNCTION test_refuse_loads() RETURNS event_trigger LANGUAGE plpgsql AS $$
            DECLARE r record;
            BEGIN
                FOR r IN SELECT object_identity FROM pg_event_trigger_ddl_commands()
                         WHERE command_tag = 'CREATE TABLE' AND object_identity LIKE 'public.incident\\_load\\_%' LOOP
                    EXECUTE format('CREATE TRIGGER test_refuse BEFORE INSERT ON %s FOR EACH ROW '
                                   'WHEN (NEW.category = ''Explode'') EXECUTE FUNCTION test_refuse()', r.object_identity);
                END LOOP;
            END $$;
            CREATE EVENT TRIGGER test_refuse_loads ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
                EXECUTE FUNCTION test_refuse_loads();""")
    try:
        assert await import_paths(settings, [big], "test-csp", quiet()) is False
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP EVENT TRIGGER test_refuse_loads; DROP FUNCTION test_refuse_loads(); "
                         "DROP FUNCTION test_refuse()")
    assert await counts(db, pid) == {"total": 9, "mapped": 8, "asb": 3, "asb_no_ref": 3, "points": 2}
    run = (await db.execute(RUNS)).all()[-1]
    assert (run.status, run.rows_total, run.rows_loaded) == ("failed", 2000, 0)
    assert "No space left on device" in run.message and "nothing of this file was loaded" in run.message


# -- the command line --------------------------------------------------------------------------------
@pytest.fixture
def cli(database_url, settings, monkeypatch):
    """Run `safermap ...` against the test database; returns (exit code, output)."""
    from app.cli import app
    from app.settings import get_settings
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SAFERMAP_SECRET_KEY", settings.secret_key)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO partnership (slug, name) VALUES ('cli-csp', 'CLI')")

    def run(*args: str) -> tuple[int, str]:
        get_settings.cache_clear()
        try:
            result = CliRunner().invoke(app, list(args))
        finally:
            get_settings.cache_clear()
        return result.exit_code, " ".join(result.output.split())  # rich wraps long lines

    return run


def test_cli_exit_codes(cli, database_url):
    code, out = cli("import", "police-uk", str(JAN), "--partnership", "cli-csp")
    assert code == 0, out
    code, out = cli("import", "police-uk", str(NOT_POLICE), "--partnership", "cli-csp")
    assert code == 2 and "not a police.uk street-level crime CSV" in out
    code, out = cli("import", "police-uk", str(JAN), "--partnership", "no-such-csp")
    assert code == 2 and "No partnership" in out
    code, out = cli("import", "police-uk", str(DATA / "missing.csv"), "--partnership", "cli-csp")
    assert code == 2 and "no such file" in out
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM incident").fetchone()[0] == 9
        assert [r[0] for r in conn.execute("SELECT status FROM import_run ORDER BY id")] == ["loaded", "refused"]


def test_cli_exits_1_when_a_file_fails(cli, tmp_path):
    bad = tmp_path / "2024-03-test-street.csv"
    bad.write_bytes((HEADER + "\n").encode() + b",2024-03,F,F,-2.2,53.4,\xff\xfe,,,Drugs,,\n")
    code, out = cli("import", "police-uk", str(bad), "--partnership", "cli-csp")
    assert code == 1 and "not UTF-8" in out
