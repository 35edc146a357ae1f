"""Sharing rules and sanitised locations, as each kind of user meets them: one data set seen at
different levels by two agencies, by a role, by a county hub in another partnership; anonymous
points that never give the exact spot away in any response (API, every tile zoom, TileJSON bounds,
the overview page); small counts held back; sensitive categories; changes that take effect at once
and are audited."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from app.tiles.sql import lonlat_to_tile
from tests.factories import Caller, agency, dataset, person, streets
from tests.factories import incidents as add_incidents

LON, LAT = -2.2426, 53.4808  # Manchester
M_LON = 1 / (111_320 * math.cos(math.radians(LAT)))  # degrees per metre, east
M_LAT = 1 / 110_540                                  # degrees per metre, north

# Named streets: Market Street east-west through the centre, High Street north-south, Church
# Street east-west 300 m north.
STREETS = [
    ("Market Street", [(LON - 400 * M_LON, LAT), (LON + 400 * M_LON, LAT)]),
    ("High Street", [(LON + 150 * M_LON, LAT - 300 * M_LAT), (LON + 150 * M_LON, LAT + 400 * M_LAT)]),
    ("Church Street", [(LON - 400 * M_LON, LAT + 300 * M_LAT), (LON + 400 * M_LON, LAT + 300 * M_LAT)]),
]
# Exact incident locations, each 25-60 m off the streets (never on an anonymous point), with how many
# incidents there: some groups under 5, some over.
EXACT = [
    (LON - 180 * M_LON, LAT + 30 * M_LAT, "Burglary", 3),
    (LON - 60 * M_LON, LAT - 40 * M_LAT, "Anti-social behaviour", 7),
    (LON + 100 * M_LON, LAT + 60 * M_LAT, "Vehicle crime", 1),
    (LON + 190 * M_LON, LAT + 180 * M_LAT, "Anti-social behaviour", 6),
    (LON - 250 * M_LON, LAT + 260 * M_LAT, "Shoplifting", 2),
    (LON + 40 * M_LON, LAT + 330 * M_LAT, "Anti-social behaviour", 5),
]
DOMESTIC = (LON - 20 * M_LON, LAT + 150 * M_LAT, "Domestic abuse", 2)
TOTAL = sum(n for *_, n in EXACT)


def decode(body: bytes) -> dict:
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})


def to_lonlat(z: int, x: int, y: int, px: float, py: float, extent: int = 4096) -> tuple[float, float]:
    n = 1 << z
    lon = (x + px / extent) / n * 360 - 180
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + py / extent) / n))))
    return lon, lat


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot((a[0] - b[0]) / M_LON, (a[1] - b[1]) / M_LAT)


@dataclass
class World:
    pid: int
    admin: object
    police: int
    council: int
    hub_agency: int
    dataset: int
    council_dataset: int
    people: dict[str, Caller]


async def build_world(db, make_caller, client) -> World:
    admin = await make_caller("alpha", "admin")
    hub_partnership = (await make_caller("county", "admin")).partnership_id
    other = await make_caller("beta", "viewer")
    pid = admin.partnership_id
    police = await agency(db, pid, "Police", "police")
    council = await agency(db, pid, "Council", "council")
    hub = await agency(db, hub_partnership, "County hub", "other")
    await streets(db, pid, STREETS, highway="primary")
    ds = await dataset(db, pid, "police-crime", agency_id=police)
    # The council keeps its own data to itself unless it grants it.
    council_ds = await dataset(db, pid, "council-asb", "none", agency_id=council)
    r = await client.post("/api/sharing/refresh-anonymous-points", headers=admin.headers)
    assert r.status_code == 200 and r.json()["anonymous_points"] > 5
    one_by_one = [(lon, lat, cat, "2024-01", g) for lon, lat, cat, n in EXACT + [DOMESTIC] for g in range(1, n + 1)]
    await add_incidents(db, pid, ds, [row[:4] for row in one_by_one], location_text="On or near 12 Secret Lane",
                        lsoa_name="Manchester 054C", external_ref=[f"ref-{row[4]}" for row in one_by_one])
    # the council's own data: one incident, never granted to the hub
    await add_incidents(db, pid, council_ds, [(LON + 300 * M_LON, LAT - 200 * M_LAT, "Noise", "2024-01")])
    people = {
        "police": await person(db, pid, "viewer", agency_id=police, name="police viewer"),
        "council": await person(db, pid, "viewer", agency_id=council, name="council viewer"),
        "viewer": await person(db, pid, "viewer", name="plain viewer"),
        "analyst": await person(db, pid, "analyst", name="analyst"),
        "hub": await person(db, hub_partnership, "analyst", agency_id=hub, name="hub analyst"),
        "beta": other,
    }
    r = await client.put(f"/api/datasets/{ds}/sharing", headers=admin.headers, json={"rules": [
        {"grantee_agency": council, "level": "sanitised"},
        {"grantee_role": "viewer", "level": "aggregate"},
        {"grantee_agency": hub, "level": "sanitised"},
    ]})
    assert r.status_code == 200, r.text
    return World(pid, admin, police, council, hub, ds, council_ds, people)


@pytest.fixture
async def world(db, make_caller, client) -> World:
    return await build_world(db, make_caller, client)


async def anon_points(db) -> list[tuple[float, float]]:
    rows = (await db.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM anon_point"))).all()
    return [(r[0], r[1]) for r in rows]


def exact_points() -> list[tuple[float, float]]:
    return [(lon, lat) for lon, lat, *_ in EXACT + [DOMESTIC]]


async def incidents(client, who: Caller, **params) -> dict:
    r = await client.get("/api/incidents", headers=who.headers, params=params)
    assert r.status_code == 200, r.text
    return r.json()


async def tile(client, who: Caller, z: int, lon: float = LON, lat: float = LAT):
    x, y = lonlat_to_tile(lon, lat, z)
    r = await client.get(f"/tiles/incidents/{z}/{x}/{y}.mvt", headers=who.headers)
    assert r.status_code in (200, 204), r.text
    features = decode(r.content).get("incidents", {}).get("features", []) if r.status_code == 200 else []
    points = [(to_lonlat(z, x, y, *f["geometry"]["coordinates"]), f["properties"]) for f in features]
    return r, points


async def tiles_over(client, who: Caller, z: int, spots) -> list:
    """The features of every tile at zoom z holding one of the spots (each tile once)."""
    out = []
    for xy in sorted({lonlat_to_tile(lon, lat, z) for lon, lat in spots}):
        lon, lat = to_lonlat(z, xy[0], xy[1], 2048, 2048)
        out += (await tile(client, who, z, lon, lat))[1]
    return out


# -- levels ----------------------------------------------------------------------------------------
async def test_two_agencies_see_one_data_set_at_different_levels(client, world, db):
    police = await incidents(client, world.people["police"])
    council = await incidents(client, world.people["council"])
    assert police["numberMatched"] == TOTAL + DOMESTIC[3]
    assert council["numberMatched"] == TOTAL + DOMESTIC[3] + 1  # and its own noise report, exactly
    assert {f["properties"]["level"] for f in police["features"]} == {"exact"}
    assert {(f["properties"]["dataset"], f["properties"]["level"]) for f in council["features"]} == {
        ("police-crime", "sanitised"), ("council-asb", "exact")}
    council["features"] = [f for f in council["features"] if f["properties"]["dataset"] == "police-crime"]
    exact = exact_points()
    assert {tuple(f["geometry"]["coordinates"]) for f in police["features"]} == set(exact)

    anon = await anon_points(db)
    for f in council["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert all(abs(lon - ex) > 1e-9 and abs(lat - ey) > 1e-9 for ex, ey in exact)
        assert (lon, lat) in anon  # an anonymous street point, nothing else
        assert f["properties"]["location_text"].startswith("On or near ")
        assert "Secret Lane" not in f["properties"]["location_text"]
        assert f["properties"]["external_ref"] is None
    # The owning agency's data as seen by an analyst with no rule: the data set's default (exact).
    analyst = await incidents(client, world.people["analyst"])
    assert {f["properties"]["level"] for f in analyst["features"]} == {"exact"}


async def test_same_incident_always_lands_on_the_same_point(client, world, db):
    first = {f["id"]: f["geometry"]["coordinates"] for f in (await incidents(client, world.people["council"]))["features"]}
    r = await client.post("/api/sharing/refresh-anonymous-points", headers=world.admin.headers)
    assert r.status_code == 200
    again = {f["id"]: f["geometry"]["coordinates"] for f in (await incidents(client, world.people["council"]))["features"]}
    assert first == again
    # Incidents at one exact spot share one anonymous point; each is the nearest one to it.
    rows = (await db.execute(text(
        "SELECT count(DISTINCT geom_anon::text) AS n, ST_AsText(geom) AS g FROM incident "
        "WHERE dataset_id = :d GROUP BY geom"), {"d": world.dataset})).all()
    assert all(r.n == 1 for r in rows)
    far = (await db.execute(text(
        "SELECT count(*) FROM incident i WHERE dataset_id = :d AND EXISTS (SELECT 1 FROM anon_point a "
        "WHERE ST_Distance(a.geom_m, ST_Transform(i.geom, 27700)) < "
        "ST_Distance(ST_Transform(i.geom_anon, 27700), ST_Transform(i.geom, 27700)) - 0.001)"),
        {"d": world.dataset})).scalar_one()
    assert far == 0


async def test_a_point_with_no_street_nearby_goes_to_its_grid_cell_centre(client, world, db):
    lon, lat = LON + 3000 * M_LON, LAT + 3000 * M_LAT  # 4 km from any street
    await add_incidents(db, world.pid, world.dataset, [(lon, lat, "Robbery", "2024-01")])
    body = await incidents(client, world.people["council"], category="Robbery")
    (f,) = body["features"]
    assert f["properties"]["location_text"] == "Near grid cell"
    x, y = (await db.execute(text(
        "SELECT ST_X(g), ST_Y(g) FROM (SELECT ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 27700) g) s"),
        {"lon": f["geometry"]["coordinates"][0], "lat": f["geometry"]["coordinates"][1]})).one()
    assert abs(x % 100 - 50) < 0.01 and abs(y % 100 - 50) < 0.01  # the centre of a 100 m cell
    assert metres(tuple(f["geometry"]["coordinates"]), (lon, lat)) > 1


# -- no exact coordinate in any sanitised response -------------------------------------------------
async def test_sanitised_tiles_at_every_zoom_hold_no_exact_coordinate(client, world, db):
    anon = await anon_points(db)
    exact = exact_points()
    # The hub sees the police data sanitised and nothing else.
    hub, police = world.people["hub"], world.people["police"]
    # Every tile holding one of the anonymous points in use, at every zoom.
    spots = {tuple(f["geometry"]["coordinates"]) for f in (await incidents(client, hub))["features"]}
    for z in range(8, 21):
        points = await tiles_over(client, hub, z, spots)
        assert points, f"z{z}: the sanitised viewer sees something"
        for (lon, lat), props in points:
            assert all(metres((lon, lat), e) > 5 for e in exact), f"z{z}: a point near an exact location"
            if z >= 16:  # one feature per incident, at its anonymous point (MVT quantisation < 1 m)
                assert props["level"] == "sanitised"
                assert min(metres((lon, lat), a) for a in anon) < 1
            else:        # cells at the mean of anonymous points, never fewer than 5 incidents
                assert props["count"] >= 5
    # The check can fail: the exact viewer's high-zoom features sit on the exact spots.
    points = await tiles_over(client, police, 18, exact)
    assert points and all(min(metres(p, e) for e in exact) < 1 for p, _ in points)


async def test_tilejson_bounds_and_the_overview_page_are_of_anonymous_points(client, world, db):
    anon = await anon_points(db)
    anon_values = {v for p in anon for v in p}
    exact_values = {v for p in exact_points() for v in p}
    # (Extents may be float4-rounded boxes: 1e-6 degrees is ~0.1 m, far below the 25 m the
    # exact spots lie from any anonymous point.)
    r = await client.get("/tiles/incidents.json", headers=world.people["hub"].headers)
    assert r.status_code == 200
    bounds = r.json()["bounds"]
    for v in bounds:
        assert all(abs(v - e) > 1e-6 for e in exact_values)
        assert any(abs(v - a) < 1e-6 for a in anon_values)
    r = await client.get("/tiles/incidents.json", headers=world.people["police"].headers)
    assert any(abs(v - e) < 1e-6 for v in r.json()["bounds"] for e in exact_values)

    page = await client.get("/maps/overview", headers=world.people["hub"].headers)
    if page.status_code == 200:  # the page itself is another helper's; its bounds are ours
        for v in exact_values:
            assert repr(v) not in page.text


# -- counts only and suppression -------------------------------------------------------------------
async def test_aggregate_level_gets_counts_only_with_small_cells_suppressed(client, world):
    viewer, police = world.people["viewer"], world.people["police"]
    assert (await incidents(client, viewer))["features"] == []
    for z in (16, 18):
        _, points = await tile(client, viewer, z)
        assert points == []  # no individual feature at any zoom
    cells = await tiles_over(client, viewer, 15, exact_points())
    assert cells and all(p["count"] >= 5 for _, p in cells)
    exact_cells = await tiles_over(client, police, 15, exact_points())
    assert sum(p["count"] for _, p in exact_cells) == TOTAL + DOMESTIC[3]  # the exact viewer: all
    assert any(p["count"] < 5 for _, p in exact_cells)
    assert sum(p["count"] for _, p in cells) < TOTAL + DOMESTIC[3]

    body = (await client.get("/api/categories", headers=viewer.headers)).json()
    by_name = {c["name"]: c for c in body["categories"]}
    assert by_name["Burglary"]["count"] is None and by_name["Burglary"]["suppressed"] is True
    assert by_name["Anti-social behaviour"]["count"] == 18
    exact = {c["name"]: c for c in (await client.get("/api/categories", headers=police.headers)).json()["categories"]}
    assert exact["Burglary"]["count"] == 3 and exact["Burglary"]["suppressed"] is False


async def test_a_sensitive_category_is_hidden_from_a_viewer_but_not_an_analyst(client, world):
    r = await client.put("/api/sharing/sensitive-categories", headers=world.admin.headers,
                         json={"categories": [{"category": "Domestic abuse", "least_role": "analyst"}]})
    assert r.status_code == 200
    police, analyst = world.people["police"], world.people["analyst"]
    cats = lambda body: {f["properties"]["category"] for f in body["features"]}  # noqa: E731
    assert "Domestic abuse" not in cats(await incidents(client, police))
    assert "Domestic abuse" in cats(await incidents(client, analyst))
    names = {c["name"] for c in (await client.get("/api/categories", headers=police.headers)).json()["categories"]}
    assert "Domestic abuse" not in names
    _, points = await tile(client, police, 18, DOMESTIC[0], DOMESTIC[1])
    assert all(p["category"] != "Domestic abuse" for _, p in points)


# -- across partnerships ---------------------------------------------------------------------------
async def test_a_county_hub_sees_only_what_is_granted_to_it(client, world):
    hub, beta = world.people["hub"], world.people["beta"]
    body = await incidents(client, hub)
    assert body["numberMatched"] == TOTAL + DOMESTIC[3]
    assert {f["properties"]["dataset"] for f in body["features"]} == {"police-crime"}  # not council-asb
    assert {f["properties"]["level"] for f in body["features"]} == {"sanitised"}
    assert (await incidents(client, beta))["features"] == []
    r, points = await tile(client, hub, 17)
    assert points
    # Withdrawn: the hub's tile changes at once, and is empty.
    r2 = await client.put(f"/api/datasets/{world.dataset}/sharing", headers=world.admin.headers,
                          json={"rules": [{"grantee_agency": world.council, "level": "sanitised"}]})
    assert r2.status_code == 200
    r3, points = await tile(client, hub, 17)
    assert r3.headers["etag"] != r.headers["etag"] and points == []
    assert (await incidents(client, hub))["features"] == []


# -- changes take effect at once, by admins only, audited ------------------------------------------
async def test_changing_a_rule_changes_tile_etags_and_content_at_once(client, world):
    council = world.people["council"]
    before, points = await tile(client, council, 17)
    assert {p["level"] for _, p in points} == {"sanitised"}
    x, y = lonlat_to_tile(LON, LAT, 17)
    r = await client.put(f"/api/datasets/{world.dataset}/sharing", headers=world.admin.headers,
                         json={"rules": [{"grantee_agency": world.council, "level": "exact"}]})
    assert r.status_code == 200
    again = await client.get(f"/tiles/incidents/17/{x}/{y}.mvt",
                             headers={**council.headers, "If-None-Match": before.headers["etag"]})
    assert again.status_code == 200 and again.headers["etag"] != before.headers["etag"]
    _, points = await tile(client, council, 17)
    assert {p["level"] for _, p in points} == {"exact"}
    # Two viewers of one role, different agencies, different tiles (and ETags).
    other, _ = await tile(client, world.people["viewer"], 17)
    assert other.headers["etag"] != again.headers["etag"]


async def test_only_admins_change_rules(client, world, make_caller):
    body = {"rules": [{"grantee_role": "viewer", "level": "exact"}]}
    for who in ("analyst", "police", "council"):
        r = await client.put(f"/api/datasets/{world.dataset}/sharing", headers=world.people[who].headers, json=body)
        assert r.status_code == 403
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.patch(f"/api/datasets/{world.dataset}", headers=world.people["analyst"].headers,
                           json={"sharing_level": "exact"})
    assert r.status_code == 403
    # Another partnership's admin cannot see or change this data set.
    stranger = await client.put(f"/api/datasets/{world.dataset}/sharing",
                                headers=(await make_caller("county", "admin")).headers, json=body)
    assert stranger.status_code == 404


async def test_bad_rules_are_clear_4xx(client, world):
    url = f"/api/datasets/{world.dataset}/sharing"
    for body in ({"rules": [{"grantee_agency": world.council, "grantee_role": "viewer", "level": "exact"}]},
                 {"rules": [{"level": "exact"}]},
                 {"rules": [{"grantee_role": "viewer", "level": "everything"}]},
                 {"rules": [{"grantee_agency": 999999, "level": "exact"}]},
                 {"rules": [{"grantee_role": "viewer", "level": "exact"}, {"grantee_role": "viewer", "level": "none"}]},
                 {"rules": "all"}):
        r = await client.put(url, headers=world.admin.headers, json=body)
        assert 400 <= r.status_code < 500, body
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (await client.put("/api/datasets/999999/sharing", headers=world.admin.headers,
                             json={"rules": []})).status_code == 404


async def test_rule_changes_and_exact_views_are_audited(client, world, db):
    r = await client.patch(f"/api/datasets/{world.dataset}", headers=world.admin.headers,
                           json={"sharing_level": "sanitised"})
    assert r.status_code == 200 and r.json()["sharing_level"] == "sanitised"
    rows = (await db.execute(text(
        "SELECT target, detail FROM audit_event WHERE action = 'sharing.update' ORDER BY id"))).all()
    assert len(rows) == 2  # the rules set up by the fixture, then this default
    assert rows[0].detail["before"] == [] and len(rows[0].detail["after"]) == 3
    assert rows[1].detail == {"before": {"sharing_level": "exact"}, "after": {"sharing_level": "sanitised"}}

    police = world.people["police"]
    await client.get("/api/incidents", headers=police.headers, params={"bbox": "-2.26,53.47,-2.23,53.49"})
    await incidents(client, world.people["hub"])  # sanitised: not an exact view
    for z in (17, 18, 18):
        assert await tiles_over(client, police, z, exact_points()[:1])
    views = (await db.execute(text(
        "SELECT principal_id, target, detail FROM audit_event WHERE action = 'view.exact' ORDER BY id"))).all()
    assert [v.principal_id for v in views] == [police.principal_id, police.principal_id]
    assert views[0].target == "api/incidents" and views[0].detail["bbox"] == [-2.26, 53.47, -2.23, 53.49]
    assert views[1].target == "tiles/incidents" and len(views[1].detail["bbox"]) == 4  # once a minute


async def test_the_sharing_function_is_inlined_so_tiles_use_the_spatial_indexes(world, db):
    """If the planner could not inline safermap_visible_incidents, every tile would scan every
    incident visible to the caller: the plan must reach both GiST indexes through it."""
    await db.execute(text("SET LOCAL enable_seqscan = off"))  # the test tables are tiny
    plan = "\n".join(r[0] for r in (await db.execute(text(
        "EXPLAIN SELECT count(*) FROM safermap_visible_incidents(:p, 'viewer', :a, 'exact') AS t "
        "WHERE t.geom && ST_Transform(ST_TileEnvelope(17, 65000, 43000), 4326)"),
        {"p": world.pid, "a": world.council})).all())
    await db.rollback()
    assert "Function Scan" not in plan
    # (partitions' copies of them: incident is partitioned by data set and month, migration 0018)
    assert re.search(r"incident\w*_geom_idx", plan) and re.search(r"incident\w*_geom_anon_idx", plan)


# -- data sets listed -------------------------------------------------------------------------------
async def test_a_hub_is_told_of_the_data_sets_granted_to_it_but_its_own_analyses_list_only_its_own(world, db):
    """Exports say which data sets their rows come from (any partnership's the rules show the
    caller); hotspot analyses read only the caller's own partnership's (app.sharing.datasets_query)."""
    from datetime import date
    from types import SimpleNamespace

    from app.sharing import datasets_query

    async def listed(who, scope, *period) -> list[tuple]:
        sql, params = datasets_query(who, scope, *period)
        rows = (await db.execute(text(sql), params)).all()
        return [(r.key, r.partnership, r.level, r.first, r.last) for r in rows]

    hub = SimpleNamespace(partnership_id=world.people["hub"].partnership_id, role="analyst", agency_id=world.hub_agency)
    jan = date(2024, 1, 1)
    assert await listed(hub, "visible") == [("police-crime", "alpha", "sanitised", jan, jan)]
    assert await listed(hub, "own") == []
    police = SimpleNamespace(partnership_id=world.pid, role="viewer", agency_id=world.police)
    # the police's own data set, exactly; not the council's, which it is not granted
    assert await listed(police, "own") == await listed(police, "visible") == [
        ("police-crime", "alpha", "exact", jan, jan)]
    assert await listed(police, "own", date(2024, 2, 1), None) == [("police-crime", "alpha", "exact", None, None)]
