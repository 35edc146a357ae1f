"""Camera register import: CSV (lat/lon or BNG) and GeoJSON, per-row errors, re-import by
reference, refusal of files that are no register, and the `safermap import cameras` exit codes."""
from __future__ import annotations

import io
from pathlib import Path

import psycopg
import pytest
from pyproj import Transformer
from rich.console import Console
from sqlalchemy import text
from typer.testing import CliRunner

from app.ingest.camera_register import ImportRefused, import_register

DATA = Path(__file__).parent / "data" / "cameras"
SLUG = "test-csp"


@pytest.fixture
async def partnership(make_caller) -> int:
    return (await make_caller(SLUG, "admin")).partnership_id


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


async def cameras(db) -> dict[str, dict]:
    rows = (await db.execute(text(
        "SELECT c.reference, c.name, ST_X(c.geom) AS lon, ST_Y(c.geom) AS lat, c.camera_type, c.status,"
        " c.monitored, c.retention_days, c.bearing, c.fov, c.range_m, c.height_m, c.source, c.version,"
        " a.name AS owner, a.kind AS owner_kind"
        " FROM camera c LEFT JOIN agency a ON a.id = c.owner_agency_id"))).mappings().all()
    return {r["reference"]: dict(r) for r in rows}


async def last_run(db) -> dict:
    return dict((await db.execute(text(
        "SELECT * FROM import_run ORDER BY id DESC LIMIT 1"))).mappings().one())


async def test_csv_with_lat_lon_and_synonym_headers_loads_every_camera(settings, partnership, db):
    assert await import_register(settings, DATA / "register_latlon.csv", SLUG, quiet()) is True
    cams = await cameras(db)
    assert set(cams) == {"MCC-001", "MCC-002", "MCC-003", "GMP-101", "PRIV-7"}
    ptz = cams["MCC-001"]
    assert (ptz["camera_type"], ptz["status"], ptz["monitored"]) == ("ptz", "operational", True)
    assert (ptz["lon"], ptz["lat"]) == pytest.approx((-2.2365, 53.4812))
    assert ptz["owner"] == "Manchester City Council" and ptz["owner_kind"] == "council"
    assert cams["GMP-101"]["owner_kind"] == "police" and cams["PRIV-7"]["owner_kind"] == "private"
    assert cams["MCC-002"]["bearing"] == 135  # 'SE'
    assert cams["PRIV-7"]["retention_days"] == 28 and cams["PRIV-7"]["status"] == "planned"
    assert all(c["source"] == "register" and c["version"] == 1 for c in cams.values())
    run = await last_run(db)
    assert (run["kind"], run["status"], run["rows_total"], run["rows_loaded"], run["rows_rejected"]) == \
        ("cameras", "loaded", 5, 5, 0)


async def test_imported_cameras_get_coverage_from_the_trigger(settings, partnership, db):
    await import_register(settings, DATA / "register_latlon.csv", SLUG, quiet())
    rows = (await db.execute(text(
        "SELECT c.reference, cc.fov, cc.range_m, cc.assumed, ST_Contains(cc.geom, "
        "ST_Project(c.geom::geography, 10, radians(c.bearing))::geometry) AS ahead"
        " FROM camera c JOIN camera_coverage cc ON cc.camera_id = c.id"))).mappings().all()
    by_ref = {r["reference"]: r for r in rows}
    assert set(by_ref) == {"MCC-001", "MCC-002", "MCC-003", "GMP-101", "PRIV-7"}
    # Surveyed values are used as given; a point 10 m along the bearing is inside the wedge.
    assert (by_ref["MCC-002"]["fov"], by_ref["MCC-002"]["range_m"], by_ref["MCC-002"]["assumed"]) == (60, 40, False)
    assert by_ref["MCC-002"]["ahead"] is True
    assert by_ref["MCC-001"]["fov"] == 360  # PTZ: a disc


async def test_easting_northing_are_transformed_from_british_national_grid(settings, partnership, db):
    assert await import_register(settings, DATA / "register_bng.csv", SLUG, quiet()) is True
    cams = await cameras(db)
    expected = Transformer.from_crs("EPSG:27700", "EPSG:4326", always_xy=True).transform(383880, 398090)
    got = (cams["BNG-1"]["lon"], cams["BNG-1"]["lat"])
    # Within a metre (1e-5 degrees of latitude is ~1.1 m) and at Manchester Town Hall.
    assert got == pytest.approx(expected, abs=1e-5)
    assert got == pytest.approx((-2.2444, 53.4793), abs=5e-4)
    assert cams["BNG-2"]["owner"] == "Metrolink" and cams["BNG-2"]["owner_kind"] == "transport"
    assert cams["BNG-3"]["status"] == "decommissioned"  # 'removed'
    # A decommissioned camera covers nothing.
    covered = (await db.execute(text(
        "SELECT c.reference FROM camera_coverage cc JOIN camera c ON c.id = cc.camera_id"))).scalars().all()
    assert sorted(covered) == ["BNG-1", "BNG-2"]


async def test_geojson_register_loads_points_and_reports_the_bad_feature(settings, partnership, db):
    assert await import_register(settings, DATA / "register.geojson", SLUG, quiet()) is False
    cams = await cameras(db)
    assert set(cams) == {"GJ-1", "GJ-2"}
    assert (cams["GJ-2"]["bearing"], cams["GJ-2"]["fov"], cams["GJ-2"]["range_m"]) == (45, 50, 30)
    assert cams["GJ-1"]["monitored"] is True and cams["GJ-2"]["monitored"] is False
    run = await last_run(db)
    assert run["rejects"] == [{"feature": 2, "reason": "geometry is not a Point"}]


async def test_bad_rows_are_reported_by_line_and_the_rest_load(settings, partnership, db):
    console = quiet()
    assert await import_register(settings, DATA / "register_errors.csv", SLUG, console) is False
    assert set(await cameras(db)) == {"OK-1", "OK-2", "OK-3"}
    run = await last_run(db)
    assert (run["status"], run["rows_total"], run["rows_loaded"], run["rows_rejected"]) == ("loaded", 10, 3, 7)
    # Physical lines: the quoted two-line name in the OK-2 record shifts every later line by one.
    reasons = {r["line"]: r["reason"] for r in run["rejects"]}
    assert sorted(reasons) == [3, 6, 7, 8, 9, 10, 11]
    assert "not on the earth" in reasons[3]
    assert "sort of" in reasons[6]
    assert "reference is empty" in reasons[7]
    assert "fov" in reasons[8]
    assert "already given at line 2" in reasons[9]
    assert "thermal" in reasons[10]
    assert "no coordinates" in reasons[11]
    assert "line 6" in console.file.getvalue()


async def test_reimport_updates_by_reference_instead_of_duplicating(settings, partnership, db, tmp_path):
    await import_register(settings, DATA / "register_latlon.csv", SLUG, quiet())
    changed = tmp_path / "register_latlon.csv"
    changed.write_text((DATA / "register_latlon.csv").read_text().replace(
        "Albert Square,53.4794,-2.2453,Manchester City Council,Dome,faulty",
        "Albert Square,53.4795,-2.2453,Manchester City Council,Dome,operational"))
    assert await import_register(settings, changed, SLUG, quiet()) is True
    cams = await cameras(db)
    assert len(cams) == 5
    assert all(c["version"] == 2 for c in cams.values())
    assert cams["MCC-003"]["status"] == "operational" and cams["MCC-003"]["lat"] == pytest.approx(53.4795)
    agencies = (await db.execute(text("SELECT count(*) FROM agency"))).scalar_one()
    assert agencies == 3
    assert "0 new, 5 updated" in (await last_run(db))["message"]


async def test_reimport_without_a_column_keeps_what_was_surveyed(settings, partnership, db, tmp_path):
    await import_register(settings, DATA / "register_latlon.csv", SLUG, quiet())
    # A later register without direction or range columns must not wipe the surveyed values.
    slim = tmp_path / "slim.csv"
    slim.write_text("reference,lat,lon,status\nMCC-002,53.4826,-2.2410,faulty\n")
    assert await import_register(settings, slim, SLUG, quiet()) is True
    cam = (await cameras(db))["MCC-002"]
    assert (cam["status"], cam["bearing"], cam["range_m"], cam["owner"]) == \
        ("faulty", 135, 40, "Manchester City Council")


async def test_a_file_that_is_no_register_is_refused_and_nothing_loads(settings, partnership, db, tmp_path):
    with pytest.raises(ImportRefused, match="no reference column"):
        await import_register(settings, DATA / "police_uk_not_a_register.csv", SLUG, quiet())
    garbage = tmp_path / "cameras.json"
    garbage.write_text('{"cameras": [1, 2, 3]')
    with pytest.raises(ImportRefused, match="not valid JSON"):
        await import_register(settings, garbage, SLUG, quiet())
    assert await cameras(db) == {}
    runs = (await db.execute(text("SELECT status, message FROM import_run ORDER BY id"))).all()
    assert [r.status for r in runs] == ["refused", "refused"]
    assert "does not look like a camera register" in runs[0].message


def test_cli_exit_codes(database_url: str, monkeypatch, tmp_path):
    from app.cli import app as cli
    from app.settings import get_settings

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO partnership (slug, name) VALUES (%s, %s)", (SLUG, "Test CSP"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        ok = runner.invoke(cli, ["import", "cameras", str(DATA / "register_latlon.csv"), "--partnership", SLUG])
        assert ok.exit_code == 0, ok.output
        some_bad = runner.invoke(cli, ["import", "cameras", str(DATA / "register_errors.csv"),
                                       "--partnership", SLUG])
        assert some_bad.exit_code == 1
        refused = runner.invoke(cli, ["import", "cameras", str(DATA / "police_uk_not_a_register.csv"),
                                      "--partnership", SLUG])
        assert refused.exit_code == 2
        assert "does not look like a camera register" in refused.output
        unknown = runner.invoke(cli, ["import", "cameras", str(DATA / "register_latlon.csv"),
                                      "--partnership", "nobody"])
        assert unknown.exit_code == 2
    finally:
        get_settings.cache_clear()
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM camera").fetchone()[0] == 8


async def test_a_register_import_is_audited(settings, make_caller, db):
    caller = await make_caller("audit-csp", role="admin")
    register = Path(__file__).parent / "data" / "cameras" / "register_latlon.csv"
    await import_register(settings, register, caller.slug, Console(file=io.StringIO()))
    row = (await db.execute(text("SELECT action, partnership_id, detail FROM audit_event"))).one()
    assert row.action == "import.cameras" and row.partnership_id == caller.partnership_id
    assert row.detail["file"] == register.name and row.detail["inserted"] >= 1
