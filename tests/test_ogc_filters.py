"""OGC API – Features Part 3 basics (queryables, CQL2 filters as text or JSON, filter geometries in
another CRS) and hostile input at /ogc: every bad value is a 400 problem+json, never a 500, and no
filter text ever reaches SQL."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from tests import factories

ITEMS = "/ogc/collections/incidents/items"


async def _scene(db, make_caller):
    caller = await make_caller("ogc-filter", "admin")
    a = await factories.dataset(db, caller.partnership_id, "police-crime", "exact", name="Police crime")
    b = await factories.dataset(db, caller.partnership_id, "council-asb", "exact", name="Council ASB")
    await factories.incidents(db, caller.partnership_id, a, [
        (-2.24, 53.48, "Burglary", "2024-01", 3), (-2.25, 53.47, "Drugs", "2024-02", 2),
        (-2.23, 53.49, "Robbery", "2024-03", 1)], outcome="Under investigation")
    await factories.incidents(db, caller.partnership_id, b, [(-2.24, 53.48, "Anti-social behaviour", "2024-02", 4)])
    return caller


async def _matched(client, caller, flt: str, **more: str) -> int:
    r = await client.get(ITEMS, params={"filter": flt, "limit": 1000, **more}, headers=caller.headers)
    assert r.status_code == 200, r.text
    return r.json()["numberMatched"]


async def test_queryables(client, db, make_caller):
    caller = await _scene(db, make_caller)
    r = await client.get("/ogc/collections/incidents/queryables", headers=caller.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/schema+json")
    props = r.json()["properties"]
    assert props["category"]["type"] == "string" and props["dataset"]["type"] == "string"
    assert props["month"]["format"] == "date"
    cams = (await client.get("/ogc/collections/cameras/queryables", headers=caller.headers)).json()["properties"]
    assert cams["status"]["type"] == "string" and cams["monitored"]["type"] == "boolean"


@pytest.mark.parametrize(("flt", "n"), [
    ("category = 'Burglary'", 3),
    ("category <> 'Burglary'", 7),
    ("month = '2024-02'", 6),
    ("month >= '2024-02' AND month <= '2024-02-29'", 6),
    ("month BETWEEN '2024-02' AND '2024-03'", 7),
    ("month < DATE('2024-02-01')", 3),
    ("dataset = 'council-asb'", 4),
    ("dataset IN ('council-asb', 'police-crime') AND NOT category = 'Drugs'", 8),
    ("category LIKE 'Rob%' OR category = 'Drugs'", 3),
    ("outcome IS NULL", 4),
    ("S_INTERSECTS(geometry, BBOX(-2.245, 53.475, -2.235, 53.485))", 7),
    ("S_INTERSECTS(geometry, POLYGON((-2.26 53.46, -2.24 53.46, -2.24 53.475, -2.26 53.475, -2.26 53.46)))", 2),
    ("\"category\" = 'Drugs'", 2),
])
async def test_cql2_text_filters(client, db, make_caller, flt, n):
    caller = await _scene(db, make_caller)
    assert await _matched(client, caller, flt) == n


@pytest.mark.parametrize(("flt", "n"), [
    ({"op": "=", "args": [{"property": "category"}, "Burglary"]}, 3),
    ({"op": "and", "args": [{"op": "in", "args": [{"property": "dataset"}, ["council-asb", "police-crime"]]},
                            {"op": "not", "args": [{"op": "=", "args": [{"property": "category"}, "Drugs"]}]}]}, 8),
    ({"op": "like", "args": [{"property": "category"}, "Rob%"]}, 1),
    ({"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": [-2.245, 53.475, -2.235, 53.485]}]}, 7),
    ({"op": "s_intersects", "args": [{"property": "geometry"}, {"type": "Polygon", "coordinates": [
        [[-2.26, 53.46], [-2.24, 53.46], [-2.24, 53.475], [-2.26, 53.475], [-2.26, 53.46]]]}]}, 2),
])
async def test_cql2_json_filters_match_their_text_twins(client, db, make_caller, flt, n):
    """QGIS and OWSLib may send CQL2 as JSON (filter-lang=cql2-json): the same answers as the text."""
    import json
    caller = await _scene(db, make_caller)
    assert await _matched(client, caller, json.dumps(flt), **{"filter-lang": "cql2-json"}) == n


async def test_filter_geometries_in_british_national_grid_or_latitude_first(client, db, make_caller):
    """An analyst draws in EPSG:27700 (metres) or EPSG:4326 (latitude first): filter-crs says so, and
    the same area selects the same incidents as in CRS84."""
    from pyproj import Transformer
    caller = await _scene(db, make_caller)
    to_bng = Transformer.from_crs("OGC:CRS84", "EPSG:27700", always_xy=True)
    (e0, e1), (n0, n1) = to_bng.transform([-2.245, -2.235], [53.475, 53.485])
    box = f"S_INTERSECTS(geometry, BBOX({min(e0, e1)}, {min(n0, n1)}, {max(e0, e1)}, {max(n0, n1)}))"
    assert await _matched(client, caller, box, **{"filter-crs": "http://www.opengis.net/def/crs/EPSG/0/27700"}) == 7
    assert await _matched(client, caller, box) == 0  # the same numbers read as degrees: nowhere near
    flipped = "S_INTERSECTS(geometry, POLYGON((53.46 -2.26, 53.46 -2.24, 53.475 -2.24, 53.475 -2.26, 53.46 -2.26)))"
    assert await _matched(client, caller, flipped, **{"filter-crs": "EPSG:4326"}) == 2


async def test_a_filter_value_is_data_never_sql(client, db, make_caller):
    caller = await _scene(db, make_caller)
    assert await _matched(client, caller, "category = 'x; DELETE FROM incident; --'") == 0
    assert await _matched(client, caller, "category = 'Drugs' OR category = 'Robbery\" OR 1=1 --'") == 2
    assert (await db.execute(text("SELECT count(*) FROM incident"))).scalar_one() == 10


@pytest.mark.parametrize("params", [
    {"limit": "0"}, {"limit": "10001"}, {"limit": "99999999999999999999"}, {"limit": "ten"},
    {"bbox": "1,2,3"}, {"bbox": "a,b,c,d"}, {"bbox": "10,10,0,0"}, {"bbox": "0,0,200,10"},
    {"bbox": "nan,0,1,1"}, {"bbox": "1e400,0,1,1"}, {"bbox": "0,0,1,1", "bbox-crs": "EPSG:3857"},
    {"bbox": "0,0,1," * 200 + "1"},
    {"datetime": "yesterday"}, {"datetime": "2024-13-01"}, {"datetime": "/"}, {"datetime": "../.."[:3] + "/x"},
    {"datetime": "2024-03-01/2024-01-01"}, {"datetime": "2024-01/2024-02/2024-03"},
    {"crs": "EPSG:3857"}, {"crs": "http://www.opengis.net/def/crs/EPSG/0/99999"}, {"crs": "x" * 5000},
    {"filter": "category ="}, {"filter": "nosuch = 'x'"}, {"filter": "category = 5"},
    {"filter": "month = 'not a month'"}, {"filter": "(" * 1900 + "category = 5" + ")" * 1900},
    {"filter": " OR ".join(["category = 'x'"] * 300)}, {"filter": "x" * 5000},
    {"filter": "category = 'x'", "filter-lang": "cql2-json"}, {"filter": "category = 'x'", "filter-crs": "EPSG:3857"},
    {"filter": "category = 'x'", "filter-lang": "cql2-xml"}, {"filter": "[1, 2]", "filter-lang": "cql2-json"},
    {"filter": '{"op": "=", "args": [{"property": "nosuch"}, "x"]}', "filter-lang": "cql2-json"},
    {"filter": '{"op": "drop", "args": []}', "filter-lang": "cql2-json"},
    {"filter": '{"op": "not", "args": [' * 600 + "true" + "]}" * 600, "filter-lang": "cql2-json"},
    {"filter": "S_INTERSECTS(category, POINT(0 0))"}, {"filter": "category IN ()"},
    {"cursor": "garbage"}, {"cursor": "eyJkIjoibiIsImsiOi0xLCJzIjoieCJ9"}, {"cursor": "x" * 500},
    {"f": "xml"},
])
async def test_hostile_input_is_a_400_problem(client, db, make_caller, params):
    caller = await _scene(db, make_caller)
    r = await client.get(ITEMS, params=params, headers=caller.headers)
    assert r.status_code == 400, (params, r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/problem+json"


async def test_unknown_collections_and_features_are_404(client, db, make_caller):
    caller = await _scene(db, make_caller)
    for path in ("/ogc/collections/nosuch", "/ogc/collections/nosuch/items", "/ogc/collections/incidents/items/x",
                 "/ogc/collections/incidents/items/99999999", "/ogc/collections/incidents/items/" + "9" * 40,
                 "/ogc/collections/dataset-999999/items"):
        r = await client.get(path, headers=caller.headers)
        assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json", path
