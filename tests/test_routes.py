"""Safe walking routes on small streets drawn in metres: what the safest walk trades for what, after
dark and by day; the detour limit and the camera rule; closed parks; snapping onto junctions and
part-way along segments; incidents a caller may not see never move that caller's route; figures
are suppressed like the rest of the API; and every bad request is a 4xx problem."""
from __future__ import annotations

import math

import pytest
from sqlalchemy import text

from app.analysis import routing_hours
from tests.route_scenes import at, camera, dataset, incidents, park, streets

NIGHT = "2026-01-15T23:00"   # after sunset in Manchester (no offset: Europe/London)
NOON = "2026-01-15T12:00"

# A ladder: South Street unlit, North Street lit, three footpaths between them (untagged: unlit).
LADDER = [
    ("South Street", "residential", "no", [(0, 0), (200, 0), (400, 0)]),
    ("North Street", "residential", "yes", [(0, 60), (200, 60), (400, 60)]),
    ("West Lane", "footway", None, [(0, 0), (0, 60)]),
    ("Mid Lane", "footway", None, [(200, 0), (200, 60)]),
    ("East Lane", "footway", None, [(400, 0), (400, 60)]),
]


async def routes(client, caller, a, b, **params):
    r = await client.get("/api/routes", headers=caller.headers,
                         params={"from": at(*a), "to": at(*b), **params})
    assert r.status_code == 200, r.text
    return r.json()


def names(feature) -> list[str]:
    return [s["street"] for s in feature["properties"]["directions"]]


async def test_after_dark_the_safest_walk_takes_the_lit_street_within_the_detour(client, db, make_caller):
    c = await make_caller("rt-ladder", "viewer")
    await streets(db, c.partnership_id, LADDER)
    night = await routes(client, c, (0, 0), (400, 0), time=NIGHT)
    assert night["time_of_day"] == "night"
    shortest, safest = night["features"][0]["properties"], night["features"][1]["properties"]
    assert (shortest["profile"], safest["profile"], safest["name"]) == ("shortest", "safest", "Safest")
    assert names(night["features"][0]) == ["South Street"] and math.isclose(shortest["length_m"], 400, abs_tol=0.1)
    assert names(night["features"][1]) == ["West Lane", "North Street", "East Lane"]
    assert math.isclose(safest["length_m"], 520, abs_tol=0.1) and math.isclose(safest["detour"], 1.3, abs_tol=1e-3)
    assert (shortest["lit_share"], round(safest["lit_share"], 3)) == (0.0, round(400 / 520, 3))
    assert safest["explanation"].startswith("Avoids 400 m of unlit South Street")
    assert "77 % lit instead of 0 %" in safest["explanation"]
    assert math.isclose(safest["duration_s"], 520 / 1.35, abs_tol=1)
    assert [s["turn"] for s in safest["directions"]] == ["start", "turn right", "turn right"]

    # By day lighting weighs little: the shortest walk is also the safest.
    day = await routes(client, c, (0, 0), (400, 0), time=NOON)
    assert day["time_of_day"] == "day"
    assert names(day["features"][1]) == ["South Street"]
    assert day["features"][1]["properties"]["explanation"].startswith("The shortest walk is also the safest")
    # A tighter detour limit rules the lit street out.
    tight = await routes(client, c, (0, 0), (400, 0), time=NIGHT, max_detour="1.2")
    assert names(tight["features"][1]) == ["South Street"]
    # The shortest profile answers the shortest walk only.
    only = await routes(client, c, (0, 0), (400, 0), time=NIGHT, profile="shortest")
    assert [f["properties"]["profile"] for f in only["features"]] == ["shortest"]


async def test_the_safest_walk_is_never_less_camera_covered_than_the_shortest(client, db, make_caller):
    c = await make_caller("rt-cameras", "viewer")
    await streets(db, c.partnership_id, LADDER)
    await camera(db, c.partnership_id, "S1", 100, 0, range_m=30)   # watches 60 m of South Street
    body = await routes(client, c, (0, 0), (400, 0), time=NIGHT)
    shortest, safest = (f["properties"] for f in body["features"][:2])
    assert math.isclose(shortest["camera_share"], 60 / 400, abs_tol=0.01)
    assert names(body["features"][1]) == ["South Street"]  # the lit street has no camera: not allowed
    assert safest["camera_share"] >= shortest["camera_share"]
    # A camera on the lit street makes it the safest again, and the explanation says so.
    await camera(db, c.partnership_id, "N1", 200, 60, range_m=40)  # 80 m of North Street
    body = await routes(client, c, (0, 0), (400, 0), time=NIGHT)
    safest = body["features"][1]["properties"]
    assert names(body["features"][1]) == ["West Lane", "North Street", "East Lane"]
    assert "15 % under working cameras instead of 15 %" not in safest["explanation"]
    assert safest["camera_share"] >= body["features"][0]["properties"]["camera_share"]


async def test_segment_attributes_follow_cameras_monitoring_and_lamps_at_commit(client, db, make_caller):
    c = await make_caller("rt-incremental", "viewer")
    await streets(db, c.partnership_id, LADDER)
    attrs = text("SELECT e.name, round(e.covered_m) AS covered, round(e.monitored_m) AS monitored, "
                 "round(e.lamp_m) AS lamps, ST_X(ST_StartPoint(e.geom_m)) AS x0 FROM route_edge e "
                 "WHERE e.partnership_id = :p AND e.name = 'South Street' ORDER BY x0")

    async def south():
        return [(r.covered, r.monitored, r.lamps) for r in (await db.execute(attrs, {"p": c.partnership_id})).all()]

    assert await south() == [(0, 0, 0), (0, 0, 0)]
    cam = await camera(db, c.partnership_id, "S1", 100, 0, range_m=30)
    assert await south() == [(60, 0, 0), (0, 0, 0)]
    await db.execute(text("UPDATE camera SET monitored = true WHERE id = :i"), {"i": cam})
    await db.commit()
    assert await south() == [(60, 60, 0), (0, 0, 0)]
    await db.execute(text("UPDATE camera SET status = 'faulty' WHERE id = :i"), {"i": cam})
    await db.commit()
    assert await south() == [(0, 0, 0), (0, 0, 0)]
    # A council lamp lights 25 m of the street on either side of it.
    lon, lat = (float(v) for v in at(300, 5).split(","))
    await db.execute(text("INSERT INTO street_lamp (partnership_id, geom) VALUES (:p, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
                     {"p": c.partnership_id, "x": lon, "y": lat})
    await db.commit()
    (_, _, first), (_, _, second) = await south()
    assert first == 0 and 47 <= second <= 50  # 2 * sqrt(25^2 - 5^2) = 49 m
    # The route's figures follow at once (the network cache is keyed by its data version).
    body = await routes(client, c, (0, 0), (400, 0), time=NOON, profile="shortest")
    assert math.isclose(body["features"][0]["properties"]["lit_share"], 49 / 400, abs_tol=0.01)


async def test_closed_parks_are_not_walked_and_unreadable_hours_are_said(client, db, make_caller):
    c = await make_caller("rt-park", "viewer")
    await streets(db, c.partnership_id, LADDER)
    await park(db, c.partnership_id, "Kaisaniemen puisto", (50, 40, 350, 80), "Mo-Su 07:00-21:00")
    night = await routes(client, c, (0, 60), (400, 60), time=NIGHT, profile="shortest")
    assert night["closed_now"] == ["North Street"]
    assert names(night["features"][0]) == ["West Lane", "South Street", "East Lane"]
    day = await routes(client, c, (0, 60), (400, 60), time=NOON, profile="shortest")
    assert day["closed_now"] == [] and names(day["features"][0]) == ["North Street"]
    # Hours this reader cannot read are reported, and the park is taken as open.
    await db.execute(text("UPDATE park SET opening_hours = 'Mo-Fr 08:00-18:00; PH off'"))
    await db.commit()
    odd = await routes(client, c, (0, 60), (400, 60), time=NIGHT, profile="shortest")
    assert odd["opening_hours_unread"] == ["Mo-Fr 08:00-18:00; PH off"]
    assert names(odd["features"][0]) == ["North Street"]


@pytest.mark.parametrize("value, when, expected", [
    ("24/7", "2026-01-15T03:00", True),
    ("off", "2026-01-15T12:00", False),
    ("Mo-Fr 08:00-18:00", "2026-01-15T12:00", True),          # a Thursday
    ("Mo-Fr 08:00-18:00", "2026-01-17T12:00", False),         # a Saturday
    ("Mo-Fr 08:00-18:00; Sa 10:00-12:00", "2026-01-17T11:00", True),
    ("Mo-Su 07:00-21:00; Su off", "2026-01-18T12:00", False),
    ("Fr-Mo 22:00-02:00", "2026-01-17T01:30", True),          # Friday night into Saturday
    ("Fr-Mo 22:00-02:00", "2026-01-21T01:30", False),         # Tuesday night into Wednesday
    ("sunrise-sunset", "2026-01-15T12:00", True),
    ("sunrise-sunset", "2026-01-15T22:00", False),
    ("Mo-Su 06:00-24:00", "2026-01-15T23:59", True),
])
def test_opening_hours_in_their_simple_forms(value, when, expected):
    from datetime import datetime
    from zoneinfo import ZoneInfo
    moment = datetime.fromisoformat(when).replace(tzinfo=ZoneInfo("Europe/London"))
    assert routing_hours.is_open(value, moment, -2.24, 53.48) is expected


@pytest.mark.parametrize("value", ["Mo-Fr 08:00-18:00; PH off", "Jan-Mar 08:00-18:00", "Mo 25:00-26:00",
                                   "dusk-dawn", 'Mo-Fr 08:00-18:00 "by appointment"', "Mo-Fr 08:00-18:00 || off"])
def test_other_opening_hours_are_not_guessed(value):
    from datetime import datetime
    from zoneinfo import ZoneInfo
    with pytest.raises(routing_hours.Unreadable):
        routing_hours.is_open(value, datetime(2026, 1, 15, 12, tzinfo=ZoneInfo("Europe/London")), -2.24, 53.48)


async def test_ends_snap_onto_junctions_and_part_way_along_segments(client, db, make_caller):
    c = await make_caller("rt-snap", "viewer")
    await streets(db, c.partnership_id, LADDER)
    # Exactly on a junction of three segments (fraction 0 or 1), and 3 mm from one.
    for a in ((200, 0), (200.003, 0)):
        body = await routes(client, c, a, (400, 60), time=NOON, profile="shortest")
        start = body["snapped"]["from"]
        assert start["junction"] is True and start["fraction"] in (0.0, 1.0)
        assert math.isclose(body["features"][0]["properties"]["length_m"], 260, abs_tol=0.1)
    # Part-way, off the street: the nearest point of the nearest segment.
    body = await routes(client, c, (50, 7), (150, -4), time=NOON, profile="shortest")
    start, end = body["snapped"]["from"], body["snapped"]["to"]
    assert (start["junction"], end["junction"]) == (False, False)
    assert start["edge_id"] == end["edge_id"] and start["street"] == "South Street"
    assert math.isclose(start["distance_m"], 7, abs_tol=0.05) and math.isclose(end["distance_m"], 4, abs_tol=0.05)
    assert math.isclose(body["features"][0]["properties"]["length_m"], 100, abs_tol=0.05)
    # Two points on one segment the other way round, and across a junction.
    back = await routes(client, c, (150, 0), (50, 0), time=NOON, profile="shortest")
    assert math.isclose(back["features"][0]["properties"]["length_m"], 100, abs_tol=0.05)
    across = await routes(client, c, (150, 0), (250, 0), time=NOON, profile="shortest")
    assert math.isclose(across["features"][0]["properties"]["length_m"], 100, abs_tol=0.05)
    coords = across["features"][0]["geometry"]["coordinates"]
    assert len(coords) == 3 and len({tuple(p) for p in coords}) == 3


async def test_bad_requests_are_clear_4xx_problems(client, db, make_caller):
    c = await make_caller("rt-bad", "viewer")
    await streets(db, c.partnership_id, [*LADDER, ("Island Walk", "footway", None, [(1000, 0), (1100, 0)])])
    cases = [
        ({"from": "abc", "to": at(400, 0)}, 400, None),
        ({"from": "1,2,3", "to": at(400, 0)}, 400, None),
        ({"from": "-2.24,95", "to": at(400, 0)}, 400, None),
        ({"from": "nan,53.4", "to": at(400, 0)}, 400, None),
        ({"to": at(400, 0)}, 400, None),
        ({"from": at(0, 0), "to": at(400, 0), "profile": "fastest"}, 400, None),
        ({"from": at(0, 0), "to": at(400, 0), "max_detour": "5"}, 400, None),
        ({"from": at(0, 0), "to": at(400, 0), "max_detour": "lots"}, 400, None),
        ({"from": at(0, 0), "to": at(400, 0), "time": "teatime"}, 400, None),
        ({"from": at(0, 0), "to": at(400, 0), "time": "0001-01-01T00:00"}, 400, None),
        ({"from": at(0, 0), "to": at(5000, 5000)}, 422, "outside_area"),
        ({"from": at(-250, 300), "to": at(400, 0)}, 422, "too_far"),
        ({"from": at(0, 0), "to": at(1050, 0)}, 422, "unreachable"),
        ({"from": at(100, 0), "to": at(100, 0.001)}, 422, "same_place"),
    ]
    for params, status, reason in cases:
        r = await client.get("/api/routes", headers=c.headers, params=params)
        assert r.status_code == status, (params, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        problem = r.json()
        assert problem["detail"] and "SQL" not in problem["detail"]
        assert problem.get("reason") == reason, params
    other = await make_caller("rt-empty", "viewer")
    r = await client.get("/api/routes", headers=other.headers, params={"from": at(0, 0), "to": at(400, 0)})
    assert (r.status_code, r.json()["reason"]) == (422, "no_network")
    assert (await client.get("/api/routes", params={"from": at(0, 0), "to": at(400, 0)})).status_code == 401


async def test_incidents_a_caller_may_not_see_never_move_the_route(client, db, make_caller):
    admin = await make_caller("rt-sharing", "admin")
    viewer = await make_caller("rt-sharing", "viewer")
    await streets(db, admin.partnership_id, LADDER)
    before = await routes(client, viewer, (0, 0), (400, 0), time=NIGHT)
    # Sixty robberies along the lit street, in a data set viewers may not see at all.
    hidden = await dataset(db, admin.partnership_id, "police-private", level="none")
    await incidents(db, admin.partnership_id, hidden, [(100, 61), (300, 61)] * 30)
    seen_by_admin = await routes(client, admin, (0, 0), (400, 0), time=NIGHT)
    assert names(seen_by_admin["features"][1]) == ["South Street"]  # the admin's safest avoids them
    assert seen_by_admin["features"][0]["properties"]["incidents_near"] == 0
    after = await routes(client, viewer, (0, 0), (400, 0), time=NIGHT)
    assert [f["geometry"] for f in after["features"]] == [f["geometry"] for f in before["features"]]
    assert [f["properties"]["cost"] for f in after["features"]] == [f["properties"]["cost"] for f in before["features"]]
    assert all(f["properties"]["incidents_near"] == 0 for f in after["features"])
    assert after["incident_window"] is None
    # Three incidents viewers see at their anonymous points: counted, but a small count is held back
    # from them; the admin sees them exactly and gets the number.
    await db.execute(text("SELECT safermap_refresh_anon_points(:p)"), {"p": admin.partnership_id})
    await db.commit()
    shared = await dataset(db, admin.partnership_id, "council-asb", level="sanitised")
    await incidents(db, admin.partnership_id, shared, [(100, 1), (101, 1), (102, 1)], category="Anti-social behaviour")
    mine = await routes(client, admin, (0, 0), (400, 0), time=NOON, profile="shortest")
    assert mine["features"][0]["properties"]["incidents_near"] == 3
    theirs = await routes(client, viewer, (0, 0), (400, 0), time=NOON, profile="shortest")
    p = theirs["features"][0]["properties"]
    assert p["incidents_near"] is None and p["incidents_suppressed"] is True
    assert theirs["incident_window"] == {"from": "2025-02", "to": "2026-01"}


async def test_published_routes_are_a_layer_and_their_figures_follow_the_cameras(client, db, make_caller):
    analyst = await make_caller("rt-published", "analyst")
    viewer = await make_caller("rt-published", "viewer")
    await streets(db, analyst.partnership_id, LADDER)
    body = {"name": "Night-time economy to the station", "from": at(0, 0), "to": at(400, 0),
            "profile": "safest", "max_detour": 1.3, "time": "night"}
    assert (await client.post("/api/routes/published", headers=viewer.headers, json=body)).status_code == 403
    r = await client.post("/api/routes/published", headers=analyst.headers, json=body)
    assert r.status_code == 201, r.text
    route = r.json()
    assert route["properties"]["name"] == body["name"] and route["properties"]["camera_share"] == 0
    assert math.isclose(route["properties"]["length_m"], 520, abs_tol=0.1)  # the lit street, after dark
    listed = (await client.get("/api/routes/published", headers=viewer.headers)).json()
    assert [f["properties"]["name"] for f in listed["features"]] == [body["name"]]

    # A camera on the route: its figures are refreshed at the commit, with no request.
    await camera(db, analyst.partnership_id, "N1", 200, 60, range_m=40)
    share = (await db.execute(text("SELECT camera_share FROM route_published"))).scalar_one()
    assert math.isclose(share, 80 / 520, abs_tol=0.01)

    # The layer: a catalog layer like any other.
    tiles = (await client.get("/tiles", headers=viewer.headers)).json()
    assert "safe_routes" in str(tiles)
    r = await client.get("/tiles/safe_routes.json", headers=viewer.headers)
    assert r.status_code == 200

    for bad in ({**body, "name": ""}, {**body, "time": "dusk"}, {**body, "from": "x"}, {**body, "max_detour": 9}):
        assert (await client.post("/api/routes/published", headers=analyst.headers, json=bad)).status_code in (400, 422)
    route_id = route["id"]
    assert (await client.delete(f"/api/routes/published/{route_id}", headers=viewer.headers)).status_code == 403
    assert (await client.delete(f"/api/routes/published/{route_id}", headers=analyst.headers)).status_code == 204
    assert (await client.delete(f"/api/routes/published/{route_id}", headers=analyst.headers)).status_code == 404


async def test_street_names_are_matched_offline(client, db, make_caller):
    c = await make_caller("rt-streets", "viewer")
    await streets(db, c.partnership_id, LADDER)
    r = await client.get("/api/routes/streets", headers=c.headers, params={"q": "stre"})
    assert [s["name"] for s in r.json()["streets"]] == ["North Street", "South Street"]
    r = await client.get("/api/routes/streets", headers=c.headers, params={"q": "so"})
    assert [s["name"] for s in r.json()["streets"]] == ["South Street"]
    r = await client.get("/api/routes/streets", headers=c.headers, params={"q": "%_"})
    assert r.json()["streets"] == []
    assert (await client.get("/api/routes/streets", headers=c.headers, params={"q": "x"})).status_code == 422


async def test_refresh_and_a_lamp_register(client, db, settings, make_caller, tmp_path):
    from app.analysis.routing_refresh import load_lamps, read_lamps, refresh
    from tests.route_scenes import E0, N0
    analyst = await make_caller("rt-refresh", "analyst")
    await streets(db, analyst.partnership_id, LADDER)
    body = {"name": "To the station", "from": at(0, 0), "to": at(400, 0), "time": "night"}
    assert (await client.post("/api/routes/published", headers=analyst.headers, json=body)).status_code == 201
    # A register in British National Grid metres (the partnership's CRS), one row without numbers.
    register = tmp_path / "lamps.csv"
    register.write_text(f"Unit ID,Easting,Northing\nL1,{E0 + 100:.2f},{N0 + 2:.2f}\nL2,{E0 + 300:.2f},{N0 + 2:.2f}\nL3,,\n")
    assert [r[0] for r in read_lamps(register)] == ["L1", "L2"]
    assert await load_lamps(db, "rt-refresh", register) == 2
    await db.commit()
    lamps = (await db.execute(text("SELECT round(sum(lamp_m)) FROM route_edge WHERE partnership_id = :p"),
                              {"p": analyst.partnership_id})).scalar_one()
    assert 95 <= lamps <= 100  # two lamps, each lighting ~49 m of South Street
    result = await refresh(db, "rt-refresh", settings)
    await db.commit()
    assert (result.edges, result.routes, result.routes_failed) == (7, 1, 0)
    assert 95 <= result.lamps <= 100
    # South Street is now partly lit: the published route is searched again with it.
    bad = tmp_path / "nothing.csv"
    bad.write_text("name,colour\nx,red\n")
    with pytest.raises(ValueError):
        read_lamps(bad)
    with pytest.raises(LookupError):
        await refresh(db, "no-such-partnership", settings)
