"""Footage requests against hand-made scenes in real PostGIS: a small street network in British National
Grid metres (central Manchester), cameras placed by hand beside and away from the walking path, a
building hiding a point from a camera, a camera's status history, and hostile input.

Expected distances and times come from the scene's own geometry (where a camera's disc or wedge meets
a straight street), not from a previous run.
"""
from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import box
from sqlalchemy import text

from app.analysis import footage
from tests.scenes import (
    CAMERAS,
    E0,
    LISTED,
    LONG_AGO,
    N0,
    NOW,
    STOPS,
    STREETS,
    T0,
    TO_BNG,
    add_camera,
    add_streets,
    disc_entry,
    ll,
    scene,
)

MARGIN = 15


def path_body(stops=STOPS, margin=MARGIN) -> dict:
    return {"incidents": [{"lon": ll(*xy)[0], "lat": ll(*xy)[1], "at": at.isoformat(), "label": label}
                          for xy, at, label in stops], "margin_minutes": margin}


def time_at(along: float) -> datetime:
    """The scene's own interpolation: 500 m in the first 10 minutes, 200 m in the next 20."""
    if along <= 500:
        return STOPS[0][1] + (STOPS[1][1] - STOPS[0][1]) * (along / 500)
    return STOPS[1][1] + (STOPS[2][1] - STOPS[1][1]) * ((along - 500) / 200)


def assert_problem(r, status: int = 400, mentions: str = "") -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["detail"]
    assert mentions in body["detail"], body["detail"]
    assert "Traceback" not in r.text and "SELECT" not in r.text


async def test_path_pack_lists_the_cameras_beside_the_path_in_order_with_windows_and_deadlines(client, make_caller, db):
    caller = await make_caller("footage-path", "viewer")
    ids = await scene(db, caller.partnership_id)
    # Another partnership's camera right on the path, with its own streets there: never listed.
    other = await make_caller("footage-path-other", "admin")
    await add_streets(db, other.partnership_id, {"A": STREETS["A1"]})
    await add_camera(db, other.partnership_id, "THEIRS", xy=(100, -5), range_m=50, owner="Other council")
    await db.commit()

    r = await client.post("/api/coverage/path", headers=caller.headers, json=path_body())
    assert r.status_code == 200, r.text
    pack = r.json()

    # The path: along A, up B, from the first incident to the last, 500 m + 200 m.
    assert pack["path"]["type"] == "LineString"
    start, end = pack["path"]["coordinates"][0], pack["path"]["coordinates"][-1]
    assert start == pytest.approx(list(ll(0, 0)), abs=1e-6) and end == pytest.approx(list(ll(400, 300)), abs=1e-6)
    xs, ys = zip(*(TO_BNG.transform(*c) for c in pack["path"]["coordinates"]))
    assert max(y - N0 for y in ys) == pytest.approx(300, abs=0.1) and min(y - N0 for y in ys) > -0.1
    assert all(abs(y - N0) < 0.1 or abs(x - E0 - 400) < 0.1 for x, y in zip(xs, ys))  # on A or B only
    assert pack["length_m"] == pytest.approx(700, abs=0.5)
    assert [(leg["from"], leg["to"]) for leg in pack["legs"]] == [(0, 1), (1, 2)]
    assert [leg["length_m"] for leg in pack["legs"]] == pytest.approx([500, 200], abs=0.5)
    assert datetime.fromisoformat(pack["legs"][1]["start"]) == STOPS[1][1]
    assert datetime.fromisoformat(pack["legs"][1]["end"]) == STOPS[2][1]

    # Exactly the cameras beside the path that worked then, in the order the path meets them.
    assert [c["reference"] for c in pack["cameras"]] == LISTED
    assert [c["reference"] for c in pack["not_operational"]] == ["FAULTY-THEN"]
    assert pack["not_operational"][0]["status_at_time"] == "faulty"
    assert pack["not_operational"][0]["status_now"] == "operational"
    for cam in pack["cameras"]:
        spec = CAMERAS[cam["reference"]]
        assert cam["id"] == ids[cam["reference"]]
        assert cam["distance_along_m"] == pytest.approx(spec["enter"], abs=1.0), cam["reference"]
        window_start = datetime.fromisoformat(cam["window_start"])
        window_end = datetime.fromisoformat(cam["window_end"])
        assert abs(window_start - (time_at(spec["enter"]) - timedelta(minutes=MARGIN))) < timedelta(seconds=3)
        assert abs(window_end - (time_at(spec["leave"]) + timedelta(minutes=MARGIN))) < timedelta(seconds=3)
        days = spec["retention_days"] or footage.DEFAULT_RETENTION_DAYS
        assert cam["retention_days"] == days and cam["retention_assumed"] is (spec["retention_days"] is None)
        request_by = datetime.fromisoformat(cam["request_by"])
        assert request_by == window_start + timedelta(days=days)
        assert cam["expired"] is (request_by < NOW)
        assert cam["status_at_time"] == "operational" and cam["status_known"] is True
        assert cam["owner_agency"] == "Salford City Council"
        assert cam["contact"] == f"cctv+{cam['reference'].lower()}@example.org"
        assert cam["monitored"] is spec.get("monitored", False)
        assert cam["distance_m"] <= spec["range_m"] + 0.5
        assert [cam["lon"], cam["lat"]] == pytest.approx(list(ll(*spec["xy"])), abs=1e-7)
    # 20 days ago: a 14-day camera's footage is gone, a 31-day (assumed) one is not yet.
    by_ref = {c["reference"]: c for c in pack["cameras"]}
    assert by_ref["BESIDE-0"]["expired"] is True and by_ref["BESIDE-1"]["expired"] is False

    # The request was audited with counts, not the places.
    event = (await db.execute(text("SELECT action, detail FROM audit_event WHERE action = 'coverage.path'"))).one()
    assert event.detail["cameras"] == 4 and event.detail["incidents"] == 3
    assert "lon" not in json.dumps(event.detail) and f"{ll(0, 0)[0]:.4f}" not in json.dumps(event.detail)

    # The other partnership, over its own streets on the same spot, sees only its own camera.
    r = await client.post("/api/coverage/path", headers=other.headers,
                          json=path_body([((0, 0), T0, ""), ((200, 0), T0 + timedelta(minutes=3), "")]))
    assert r.status_code == 200, r.text
    assert [c["reference"] for c in r.json()["cameras"]] == ["THEIRS"]


async def test_a_camera_decommissioned_since_still_counts_for_a_time_it_was_working(client, make_caller, db):
    caller = await make_caller("footage-removed", "operator")
    await add_streets(db, caller.partnership_id, STREETS)
    cam = await add_camera(db, caller.partnership_id, "REMOVED", xy=(50, 10), range_m=15, retention_days=31)
    await db.execute(text("UPDATE camera SET status = 'decommissioned' WHERE id = :id"), {"id": cam})
    await db.commit()
    assert (await db.execute(text("SELECT count(*) FROM camera_coverage WHERE camera_id = :id"), {"id": cam})).scalar() == 0

    r = await client.post("/api/coverage/path", headers=caller.headers, json=path_body(STOPS[:2]))
    assert r.status_code == 200, r.text
    [listed] = r.json()["cameras"]
    assert listed["reference"] == "REMOVED" and listed["status_now"] == "decommissioned"
    assert listed["status_at_time"] == "operational" and listed["coverage_assumed"] is True
    assert listed["distance_along_m"] == pytest.approx(disc_entry(0, 50, 10, 15), abs=1.0)
    # ...but not for a time after it was taken down.
    lon, lat = ll(50, 0)
    r = await client.get("/api/coverage/at", headers=caller.headers, params={"lon": lon, "lat": lat})
    assert r.json()["cameras"] == [] and r.json()["not_operational"] == []


async def test_a_point_behind_a_building_does_not_list_the_camera(client, make_caller, db):
    caller = await make_caller("footage-point", "pcso")
    pid = caller.partnership_id
    # A building from x=1020 to 1040 across y=-10..10, east of a camera at (1000, 0) looking east.
    building = box(E0 + 1020, N0 - 10, E0 + 1040, N0 + 10)
    await db.execute(text("INSERT INTO building (partnership_id, geom) "
                          "VALUES (:p, ST_Multi(ST_Transform(ST_GeomFromText(:wkt, 27700), 4326)))"),
                     {"p": pid, "wkt": building.wkt})
    await db.commit()
    # Registered through the API, which cuts the coverage to line of sight and its quality bands:
    # 4K over 90 degrees gives identify to 7.7 m, recognise 15.4, observe 30.7, detect 76.8 (EN 62676-4).
    created = {}
    for ref, lon_lat, props in (
            ("MAST", ll(1000, 0), dict(camera_type="fixed", bearing=90, fov=90, range_m=80, resolution_px=3840,
                                        retention_days=30, monitored=True, owner_agency="Salford City Council")),
            ("SHOP", ll(1060, 20), dict(camera_type="dome", range_m=25, owner_agency="Corner Shop Ltd"))):
        r = await client.post("/api/cameras", headers=caller.headers, json={
            "type": "Feature", "geometry": {"type": "Point", "coordinates": list(lon_lat)},
            "properties": {"reference": ref, **props}})
        assert r.status_code == 201, r.text
        created[ref] = r.json()["id"]

    async def at(x: float, y: float, when: datetime | None = NOW - timedelta(minutes=1)) -> dict:
        lon, lat = ll(x, y)
        params = {"lon": lon, "lat": lat} | ({"at": when.isoformat()} if when else {})
        r = await client.get("/api/coverage/at", headers=caller.headers, params=params)
        assert r.status_code == 200, r.text
        return r.json()

    await db.execute(text("UPDATE camera SET created_at = :t WHERE partnership_id = :p"),
                     {"t": LONG_AGO, "p": pid})  # registered long before the times asked about
    await db.execute(text("UPDATE camera_status_history SET valid_from = :t WHERE partnership_id = :p"),
                     {"t": LONG_AGO, "p": pid})
    await db.commit()
    behind = await at(1060, 0)  # 60 m east, straight behind the building
    assert [c["reference"] for c in behind["cameras"]] == ["SHOP"]
    beside = await at(1060, 40, T0)  # 72 m away, with a clear view past the building's corner
    assert [c["reference"] for c in beside["cameras"]] == ["SHOP", "MAST"]  # nearest first
    mast = beside["cameras"][1]
    assert mast["id"] == created["MAST"]
    assert mast["distance_m"] == pytest.approx(math.hypot(60, 40), abs=0.2)
    assert mast["band"] == "detect" and mast["line_of_sight"] is True and mast["coverage_assumed"] is False
    assert mast["retention_days"] == 30 and mast["retention_assumed"] is False and mast["monitored"] is True
    assert datetime.fromisoformat(mast["request_by"]) == T0 + timedelta(days=30)
    assert mast["expired"] is False and mast["status_known"] is True
    shop = beside["cameras"][0]
    assert shop["id"] == created["SHOP"] and shop["owner_agency"] == "Corner Shop Ltd" and shop["band"] is None
    assert shop["retention_days"] == 31 and shop["retention_assumed"] is True
    assert datetime.fromisoformat(beside["at"]) == T0
    assert [c["band"] for c in (await at(1010, 5))["cameras"]] == ["recognise"]
    assert [c["band"] for c in (await at(1005, 2))["cameras"]] == ["identify"]
    assert (await at(990, 0))["cameras"] == []  # behind the camera
    # Defaults: now, and a naive time is UK local time (1 July: BST, UTC+1).
    # The server's clock, read between two of ours (to the second it reports), not the module's NOW.
    before = datetime.now(UTC).replace(microsecond=0)
    server_now = datetime.fromisoformat((await at(1010, 5, None))["at"])
    after = datetime.now(UTC)
    assert before - timedelta(seconds=1) <= server_now <= after + timedelta(seconds=1)
    lon, lat = ll(1010, 5)
    r = await client.get("/api/coverage/at", headers=caller.headers,
                         params={"lon": lon, "lat": lat, "at": "2025-07-01T22:15"})
    assert datetime.fromisoformat(r.json()["at"]) == datetime(2025, 7, 1, 21, 15, tzinfo=UTC)
    # Every lookup is audited, without the place.
    details = (await db.execute(text("SELECT detail FROM audit_event WHERE action = 'coverage.at' ORDER BY id"))).scalars().all()
    assert [d["cameras"] for d in details[:3]] == [1, 2, 1]
    assert all("lon" not in d and "lat" not in d for d in details)

async def test_status_history_decides_who_worked_at_the_time(client, make_caller, db):
    caller = await make_caller("footage-status", "viewer")
    pid = caller.partnership_id
    fixed = await add_camera(db, pid, "FIXED-LATER", xy=(0, 0), range_m=30, status="faulty")
    await db.commit()
    await db.execute(text("UPDATE camera SET status = 'operational' WHERE id = :id"), {"id": fixed})
    await db.execute(text("UPDATE camera SET name = 'renamed' WHERE id = :id"), {"id": fixed})  # no new period
    await db.commit()
    newcomer = await add_camera(db, pid, "NEW", xy=(10, 0), range_m=30, created_at=NOW)
    await db.commit()

    r = await client.get(f"/api/cameras/{fixed}/status-history", headers=caller.headers)
    assert r.status_code == 200, r.text
    history = r.json()["history"]
    assert [h["status"] for h in history] == ["faulty", "operational"]
    assert datetime.fromisoformat(history[0]["valid_from"]) == LONG_AGO
    assert history[0]["valid_to"] == history[1]["valid_from"] and history[1]["valid_to"] is None

    lon, lat = ll(5, 0)
    then = (await client.get("/api/coverage/at", headers=caller.headers,
                             params={"lon": lon, "lat": lat, "at": T0.isoformat()})).json()
    # Faulty at the time: apart. Registered after the time: listed, but its status then is unknown.
    assert [c["reference"] for c in then["not_operational"]] == ["FIXED-LATER"]
    assert [(c["reference"], c["status_known"]) for c in then["cameras"]] == [("NEW", False)]
    now = (await client.get("/api/coverage/at", headers=caller.headers, params={"lon": lon, "lat": lat})).json()
    assert sorted((c["reference"], c["status_known"]) for c in now["cameras"]) == [("FIXED-LATER", True), ("NEW", True)]
    assert now["not_operational"] == []

    # A camera first recorded as planned, after the time asked: its earliest status, and not listed.
    planned = await add_camera(db, pid, "PLANNED-LATER", xy=(0, 5), range_m=30, status="planned", created_at=NOW)
    await db.commit()
    then = (await client.get("/api/coverage/at", headers=caller.headers,
                             params={"lon": lon, "lat": lat, "at": T0.isoformat()})).json()
    assert "PLANNED-LATER" not in {c["reference"] for c in then["cameras"] + then["not_operational"]}

    # Another partnership's camera: 404, as if it did not exist.
    other = await make_caller("footage-status-other", "admin")
    r = await client.get(f"/api/cameras/{planned}/status-history", headers=other.headers)
    assert_problem(r, 404)
    assert newcomer != planned


@pytest.mark.parametrize("params,mentions", [
    ({"lon": "abc", "lat": "53.4"}, "lon"), ({"lon": "NaN", "lat": "53.4"}, "lon"),
    ({"lon": "-2.2", "lat": "inf"}, "lat"), ({"lon": "200", "lat": "53.4"}, "lon"),
    ({"lon": "-2.2", "lat": "-91"}, "lat"), ({"lat": "53.4"}, "lon"), ({"lon": "1e400", "lat": "1"}, "lon"),
    ({"lon": "-2.2", "lat": "53.4", "at": "yesterday"}, "at"),
    ({"lon": "-2.2", "lat": "53.4", "at": "2026-03-01"}, "time of day"),
    ({"lon": "-2.2", "lat": "53.4", "at": "2999-01-01T00:00:00Z"}, "future"),
    ({"lon": "-2.2", "lat": "53.4", "at": "1066-10-14T09:00:00Z"}, "2000"),
])
async def test_bad_points_and_times_are_400_problems(client, make_caller, params, mentions):
    caller = await make_caller("footage-hostile", "viewer")
    for path in ("/api/coverage/at", "/maps/coverage/footage-request"):
        assert_problem(await client.get(path, headers=caller.headers, params=params), 400, mentions)


async def test_bad_path_requests_are_400_problems_naming_the_incident(client, make_caller, db):
    caller = await make_caller("footage-hostile-path", "viewer")
    await add_streets(db, caller.partnership_id, STREETS)
    await db.commit()

    async def post(body, status=400, mentions=""):
        r = await client.post("/api/coverage/path", headers=caller.headers,
                              **({"content": body} if isinstance(body, str) else {"json": body}))
        assert_problem(r, status, mentions)
        return r.json()

    good = path_body(STOPS[:2])
    one = {"incidents": good["incidents"][:1]}
    await post(one, mentions="incidents")
    eleven = {"incidents": [good["incidents"][0] | {"at": (T0 + timedelta(minutes=m)).isoformat()} for m in range(11)]}
    await post(eleven, mentions="incidents")
    missing_at = {"incidents": [{k: v for k, v in good["incidents"][0].items() if k != "at"}, good["incidents"][1]]}
    await post(missing_at, mentions="incidents.0.at")
    await post(json.dumps(good).replace(str(good["incidents"][1]["lon"]), "NaN"), mentions="incidents.1.lon")
    await post({"incidents": [good["incidents"][0] | {"lat": 95}, good["incidents"][1]]}, mentions="incidents.0.lat")
    await post({"incidents": list(reversed(good["incidents"]))}, mentions="time order")
    await post({"incidents": good["incidents"], "margin_minutes": 10_000}, mentions="margin_minutes")
    await post({"incidents": good["incidents"], "extra": 1}, mentions="extra")
    await post("not json", mentions="JSON")
    await post("[]", mentions="body")
    await post({"incidents": [good["incidents"][0] | {"at": "2999-01-01T00:00Z"}, good["incidents"][1]]},
               mentions="incidents[0].at")
    # 400 m south of every street: named, with how far.
    far = path_body([((0, 0), T0, ""), ((100, -400), T0 + timedelta(minutes=5), "")])
    problem = await post(far, mentions="incidents[1]")
    assert problem["incident"] == 1 and "m from the nearest walkable street" in problem["detail"]
    # Streets that do not join: no route, said so.
    apart = path_body([((0, 0), T0, ""), ((2050, 0), T0 + timedelta(minutes=30), "")])
    assert (await post(apart, 422, "No walking route"))["incident"] == 1
    # A courtyard path joined to nothing, nearer to an incident than the streets: the walk starts
    # from the street network instead (96 m away), not from the courtyard.
    await add_streets(db, caller.partnership_id, {"COURTYARD": [(100, 40), (120, 40)]})
    await db.commit()
    r = await client.post("/api/coverage/path", headers=caller.headers,
                          json=path_body([((110, 35), T0, ""), ((400, 100), T0 + timedelta(minutes=5), "")]))
    assert r.status_code == 200, r.text
    assert r.json()["incidents"][0]["snapped_m"] == pytest.approx(math.hypot(90, 35), abs=0.1)
    assert r.json()["length_m"] == pytest.approx(math.hypot(90, 35) + 200 + 100, abs=0.5)
    # A partnership with no streets at all is told to import them.
    bare = await make_caller("footage-no-streets", "viewer")
    r = await client.post("/api/coverage/path", headers=bare.headers, json=good)
    assert_problem(r, 422, "import")


async def test_printable_footage_request_page(client, make_caller, db):
    caller = await make_caller("footage-page", "viewer")
    pid = caller.partnership_id
    await add_streets(db, pid, {"Mill Lane": [(-50, 0), (50, 0)]})
    # 20 days ago: kept 14 days is gone, 22 days is due in 2, 31 (assumed) has 11 to go.
    await add_camera(db, pid, "GONE-14", xy=(0, 10), range_m=30, retention_days=14, owner="Bus <Company>")
    await add_camera(db, pid, "SOON-22", xy=(5, 10), range_m=30, retention_days=22)
    await add_camera(db, pid, "ASSUMED", xy=(10, 10), range_m=30, retention_days=None, monitored=True)
    await db.commit()
    lon, lat = ll(0, 0)
    r = await client.get("/maps/coverage/footage-request", headers=caller.headers,
                         params={"lon": lon, "lat": lat, "at": T0.isoformat()})
    assert r.status_code == 200, r.text
    page = r.text
    assert "On or near Mill Lane Street" in page
    assert page.index("GONE-14") < page.index("SOON-22") < page.index("ASSUMED")  # nearest first
    assert "Bus &lt;Company&gt;" in page and "<Company>" not in page
    assert page.count('class="sm-expired"') == 1 and "EXPIRED" in page
    assert page.count('class="sm-due-soon"') == 1 and re.search(r"DUE SOON: [12] d \d+ h left", page)
    assert "31 days is assumed" in page and "(assumed*)" in page
    assert "@page" in page and "A4" in page
    csp = r.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "'unsafe-inline'" not in csp and "sha256-" in csp
    assert "http://" not in page and "https://" not in page  # nothing from elsewhere
    assert r.headers["cache-control"] == "no-store"
    # Not signed in, a browser is sent to sign in and back.
    r = await client.get("/maps/coverage/footage-request", params={"lon": lon, "lat": lat},
                         headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"].startswith("/maps/sign-in?next=/maps/coverage/footage-request")


def test_times_are_interpolated_along_each_leg():
    t = datetime(2026, 3, 1, 22, 0, tzinfo=UTC)
    legs = [footage.Leg(0, 500, t, t + timedelta(minutes=10)),
            footage.Leg(500, 0, t + timedelta(minutes=10), t + timedelta(minutes=12)),
            footage.Leg(500, 200, t + timedelta(minutes=12), t + timedelta(minutes=32))]
    assert footage.time_along(0, legs) == t
    assert footage.time_along(250, legs) == t + timedelta(minutes=5)
    assert footage.time_along(500, legs) == t + timedelta(minutes=10)
    assert footage.time_along(600, legs) == t + timedelta(minutes=22)
    assert footage.time_along(800, legs) == t + timedelta(minutes=32)  # past the end: the last time


def test_times_without_an_offset_are_uk_local_time():
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert footage.parse_at("2026-01-10T08:30", now=now) == datetime(2026, 1, 10, 8, 30, tzinfo=UTC)
    assert footage.parse_at("2026-06-10T08:30", now=now) == datetime(2026, 6, 10, 7, 30, tzinfo=UTC)
    assert footage.parse_at("2026-06-10T08:30:00Z", now=now) == datetime(2026, 6, 10, 8, 30, tzinfo=UTC)
    # An unencoded '+' of an offset arrives as a space.
    assert footage.parse_at("2026-06-10T08:30:00 01:00", now=now) == datetime(2026, 6, 10, 7, 30, tzinfo=UTC)


async def test_printable_path_pack_page(client, make_caller, db):
    caller = await make_caller("footage-pack-page", "viewer")
    await scene(db, caller.partnership_id)
    params = [("incident", f"{ll(*xy)[0]},{ll(*xy)[1]},{at.isoformat()},{label}") for xy, at, label in STOPS]
    r = await client.get("/maps/coverage/footage-pack", headers=caller.headers, params=params + [("margin_minutes", "10")])
    assert r.status_code == 200, r.text
    page = r.text
    # The list in the order the path meets the cameras, the faulty one apart, and the same pack as the API.
    body = path_body(margin=10)
    pack = (await client.post("/api/coverage/path", headers=caller.headers, json=body)).json()
    table = page.split('class="sm-request"', 1)[1].split("</table>", 1)[0]
    positions = [table.index(f"<strong>{ref}</strong>") for ref in LISTED]
    assert positions == sorted(positions)
    assert "FAULTY-THEN" in page.split('class="sm-not-operational"', 1)[1]
    assert all(ref not in page for ref in CAMERAS if ref.startswith("AWAY"))
    for cam in pack["cameras"]:
        assert cam["reference"] in table
    assert "phone dumped" in page and page.count("On or near ") == 3
    assert "700 m walking" in page and "widened by 10 minutes" in page
    # The sketch: the path, a numbered circle per listed camera, a letter per incident.
    svg = page.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert svg.count("<polyline") == 1 and svg.count("<circle") == len(LISTED) and svg.count("<rect") == 3
    assert "script-src 'none'" in r.headers["content-security-policy"]
    # Its input is checked like the API's.
    r = await client.get("/maps/coverage/footage-pack", headers=caller.headers, params=params[:1])
    assert_problem(r, 400, "incidents")
    r = await client.get("/maps/coverage/footage-pack", headers=caller.headers,
                         params=[("incident", "1,2"), ("incident", "3,4,5")])
    assert_problem(r, 400, "lon,lat,at")


async def test_a_decommissioned_camera_keeps_the_range_its_resolution_and_purpose_gave(client, make_caller, db):
    """A camera decommissioned since is redrawn by the trigger's own rule: with a resolution (and no
    range), as far as it detects, not 7 m per metre of height; the same wedge as it had when working."""
    caller = await make_caller("footage-removed-resolution", "operator")
    lon, lat = ll(0, 0)
    cam = (await db.execute(text("""
        INSERT INTO camera (partnership_id, reference, geom, camera_type, bearing, fov, height_m, resolution_px,
                            purpose, retention_days, created_at)
        VALUES (:p, 'SHARP', ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'fixed', 90, 60, 4, 1920, 'detect', 31,
                TIMESTAMPTZ '2025-01-01T00:00:00Z')
        RETURNING id"""), {"p": caller.partnership_id, "lon": lon, "lat": lat})).scalar_one()
    await db.commit()
    detect_m = 1920 / (25 * 2 * math.tan(math.radians(30)))  # 66.5 m, where 4 m of height gives 28 m
    working = text("SELECT range_m, line_of_sight, ST_Area(ST_Transform(geom, 27700)) AS area "
                   "FROM camera_coverage WHERE camera_id = :id")
    stored = (await db.execute(working, {"id": cam})).one()
    assert stored.range_m == pytest.approx(detect_m, abs=0.01) and stored.line_of_sight is False

    await db.execute(text("UPDATE camera SET status = 'decommissioned' WHERE id = :id"), {"id": cam})
    await db.commit()
    assert (await db.execute(working, {"id": cam})).one_or_none() is None
    # The footage lookups' own shapes: the redrawn wedge is the one the trigger stored.
    redrawn = (await db.execute(text(f"WITH {footage.COVERAGE_SHAPES} "
                                     "SELECT ST_Area(ST_Transform(geom, 27700)) FROM shape WHERE camera_id = :id"),
                                {"p": caller.partnership_id, "id": cam})).scalar_one()
    assert redrawn == pytest.approx(stored.area, rel=0.01)
    assert redrawn == pytest.approx(math.pi * detect_m ** 2 / 6, rel=0.01)

    # Asked about a time it was working: seen 50 m out along its bearing (east), not beyond its range.
    when = "2025-07-01T22:15"
    for x, listed in ((50, ["SHARP"]), (70, [])):
        lon, lat = ll(x, 0)
        r = await client.get("/api/coverage/at", headers=caller.headers, params={"lon": lon, "lat": lat, "at": when})
        assert r.status_code == 200, r.text
        assert [c["reference"] for c in r.json()["cameras"]] == listed, x
    assert r.json()["not_operational"] == []
