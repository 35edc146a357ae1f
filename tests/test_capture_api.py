"""The PCSO capture API (issue 11, server side): what a survey stores (position accuracy, owner
contact) and the form's lists; cameras near the device, the survey outcomes and the duplicate guard;
Idempotency-Key (replay, 422, 409 in flight, a dead request leaves nothing behind, kept per
partnership for idempotency_days); merges of changes made on an old version, 409 with both values,
410 for a deleted camera; photos (by content, size-limited while streaming, EXIF and GPS gone,
orientation applied, thumbnailed, stored outside the web root); and the audit of every edit."""
from __future__ import annotations

import asyncio
import io
import uuid

import psycopg
import pytest
from PIL import Image
from pyproj import Geod
from sqlalchemy import text

from app.analysis.camera_rule import camera_rule

LON, LAT = -2.2426, 53.4808  # Manchester, Piccadilly Gardens
GEOD = Geod(ellps="WGS84")


def camera(reference: str = "CAP-1", lon: float = LON, lat: float = LAT, **props) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"reference": reference, **props}}


def east(metres: float, lon: float = LON, lat: float = LAT) -> tuple[float, float]:
    """The point `metres` east of (lon, lat)."""
    e_lon, e_lat, _ = GEOD.fwd(lon, lat, 90, metres)
    return e_lon, e_lat


async def warm(client, caller) -> None:
    """Use the token once: its first use records last_used_at in the request's transaction, where a
    request held in flight would keep that row locked from the next one."""
    assert (await client.get("/api/cameras/rule", headers=caller.headers)).status_code == 200


def keyed(caller, key: str | None = None, **headers: str) -> dict[str, str]:
    return {**caller.headers, "Idempotency-Key": key or str(uuid.uuid4()), **headers}


async def count(db, sql: str, **params) -> int:
    value = (await db.execute(text(sql), params)).scalar_one()
    await db.commit()  # a fresh snapshot for the next read
    return value


async def add(client, caller, reference: str = "CAP-1", lon: float = LON, lat: float = LAT, **props) -> dict:
    r = await client.post("/api/cameras", headers=caller.headers, json=camera(reference, lon, lat, **props))
    assert r.status_code == 201, r.text
    return r.json()


# -- 1. what a survey stores, and the form's lists -------------------------------------------------

async def test_accuracy_owner_contact_and_notes_are_stored_and_returned(client, make_caller, db):
    pcso = await make_caller(role="pcso")
    f = await add(client, pcso, location_accuracy_m=6.5, owner_contact="Shop manager, 0161 496 0000",
                  notes="Above the door", owner_agency="Corner Shop Ltd", owner_agency_kind="private")
    p = f["properties"]
    assert p["id"] == f["id"] and p["version"] == 1 and p["photo_count"] == 0
    assert (p["location_accuracy_m"], p["owner_contact"], p["notes"]) == (6.5, "Shop manager, 0161 496 0000",
                                                                          "Above the door")
    assert p["verified_at"] is None and p["verified_by"] is None and p["merged"] is False
    got = (await client.get(f"/api/cameras/{f['id']}", headers=pcso.headers)).json()["properties"]
    assert got["location_accuracy_m"] == 6.5 and got["owner_contact"].startswith("Shop manager")
    stored = (await db.execute(text("SELECT location_accuracy_m, owner_contact FROM camera WHERE id = :i"),
                               {"i": f["id"]})).one()
    assert tuple(stored) == (6.5, "Shop manager, 0161 496 0000")
    for bad in ({"location_accuracy_m": -1}, {"owner_contact": "x" * 501}):
        r = await client.post("/api/cameras", headers=pcso.headers, json=camera("BAD", **bad))
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")


async def test_the_form_lists_are_the_partnerships_own(client, make_caller):
    ours = await make_caller("capture-lists", role="pcso")
    theirs = await make_caller("capture-other", role="pcso")
    await add(client, ours, "A", owner_agency="Metrolink", owner_agency_kind="transport")
    await add(client, theirs, "B", owner_agency="Their Council", owner_agency_kind="council")
    viewer = await make_caller("capture-lists", role="viewer")
    r = await client.get("/api/cameras/options", headers=viewer.headers)
    assert r.status_code == 200
    options = r.json()
    assert [(a["name"], a["kind"]) for a in options["agencies"]] == [("Metrolink", "transport")]
    assert options["camera_types"] == ["fixed", "ptz", "dome", "anpr", "redeployable"]
    assert "decommissioned" in options["statuses"] and "identify" in options["purposes"]
    assert 31 in options["retention_days"] and "private" in options["agency_kinds"]


async def test_the_coverage_rule_is_the_databases_and_cacheable(client, make_caller, db):
    viewer = await make_caller(role="viewer")
    r = await client.get("/api/cameras/rule", headers=viewer.headers)
    assert r.status_code == 200
    assert r.json() == (await camera_rule(db)).as_json()
    assert r.json()["fov_deg_by_type"]["dome"] == 360
    etag = r.headers["etag"]
    again = await client.get("/api/cameras/rule", headers={**viewer.headers, "If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag and not again.content


# -- 2. nearby, survey, duplicate guard --------------------------------------------------------------

async def test_cameras_near_the_device_come_nearest_first_with_their_distance(client, make_caller):
    pcso = await make_caller(role="pcso")
    for ref, metres in (("far", 250), ("near", 20), ("out", 450), ("mid", 120)):
        await add(client, pcso, ref, *east(metres))
    other = await make_caller("capture-elsewhere", role="pcso")
    await add(client, other, "theirs", *east(5))
    r = await client.get("/api/cameras", headers=pcso.headers, params={"near": f"{LON},{LAT}"})
    assert r.status_code == 200, r.text
    features = r.json()["features"]
    assert [f["properties"]["reference"] for f in features] == ["near", "mid", "far"]  # default radius 300 m
    for f, metres in zip(features, (20, 120, 250), strict=True):
        assert f["properties"]["distance_m"] == pytest.approx(metres, abs=0.05)
    r = await client.get("/api/cameras", headers=pcso.headers, params={"near": f"{LON},{LAT}", "radius_m": 100})
    assert [f["properties"]["reference"] for f in r.json()["features"]] == ["near"]
    assert r.json()["numberMatched"] == 1
    # Without near, no distance, in id order as before.
    plain = (await client.get("/api/cameras", headers=pcso.headers)).json()["features"]
    assert [f["properties"]["distance_m"] for f in plain] == [None] * 4
    assert [f["properties"]["reference"] for f in plain] == ["far", "near", "out", "mid"]
    for params in ({"near": "abc"}, {"near": "1,2,3"}, {"near": "200,50"}, {"near": f"{LON},{LAT}", "radius_m": 2001},
                   {"near": f"{LON},{LAT}", "radius_m": 0}):
        r = await client.get("/api/cameras", headers=pcso.headers, params=params)
        assert 400 <= r.status_code < 500, params


async def test_a_new_camera_within_10_m_is_refused_with_the_nearby_ones_unless_confirmed(client, make_caller, db):
    pcso = await make_caller(role="pcso")
    existing = await add(client, pcso, "EXIST")
    lon, lat = east(7)
    r = await client.post("/api/cameras", headers=pcso.headers,
                          json=camera("NEW", lon, lat, check_duplicates=True))
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    nearby = r.json()["nearby"]
    assert [f["id"] for f in nearby] == [existing["id"]]
    assert nearby[0]["properties"]["distance_m"] == pytest.approx(7, abs=0.05)
    assert await count(db, "SELECT count(*) FROM camera") == 1
    # The PCSO says it is another camera.
    r = await client.post("/api/cameras", headers=pcso.headers,
                          json=camera("NEW", lon, lat, check_duplicates=True, confirm_new=True))
    assert r.status_code == 201
    # 12 m away is not a duplicate; a script that does not ask is not checked.
    assert (await client.post("/api/cameras", headers=pcso.headers,
                              json=camera("FAR", *east(12), check_duplicates=True))).status_code == 409  # NEW is 5 m off
    assert (await client.post("/api/cameras", headers=pcso.headers,
                              json=camera("FAR", *east(25), check_duplicates=True))).status_code == 201
    assert (await client.post("/api/cameras", headers=pcso.headers, json=camera("SCRIPT"))).status_code == 201


async def test_survey_marks_verified_faulty_or_gone(client, make_caller, db):
    pcso = await make_caller(role="pcso")
    a = await add(client, pcso, "A", bearing=90)
    b = await add(client, pcso, "B", *east(50), bearing=90)
    r = await client.post(f"/api/cameras/{a['id']}/survey", headers=pcso.headers, json={"outcome": "verified"})
    assert r.status_code == 200, r.text
    p = r.json()["properties"]
    assert p["verified_at"] and p["verified_by"] == "pcso of test-csp" and p["status"] == "operational"
    assert p["version"] == 2 and p["notes"] == ""
    r = await client.post(f"/api/cameras/{a['id']}/survey", headers=pcso.headers,
                          json={"outcome": "faulty", "note": "Lens smashed", "version": 2})
    assert r.status_code == 200
    p = r.json()["properties"]
    assert p["status"] == "faulty" and p["notes"].endswith("pcso of test-csp: faulty: Lens smashed")
    r = await client.post(f"/api/cameras/{b['id']}/survey", headers=pcso.headers, json={"outcome": "gone"})
    assert r.json()["properties"]["status"] == "decommissioned"
    assert await count(db, "SELECT count(*) FROM camera_coverage WHERE camera_id = :i", i=b["id"]) == 0
    events = (await db.execute(text("SELECT detail FROM audit_event WHERE action = 'camera.survey' ORDER BY id"))).scalars().all()
    assert [e["outcome"] for e in events] == ["verified", "faulty", "gone"]
    assert events[1]["before"]["status"] == "operational" and events[1]["after"]["status"] == "faulty"
    for body in ({"outcome": "stolen"}, {}, {"outcome": "verified", "extra": 1}):
        assert (await client.post(f"/api/cameras/{a['id']}/survey", headers=pcso.headers, json=body)).status_code == 422
    viewer = await make_caller(role="viewer")
    assert (await client.post(f"/api/cameras/{a['id']}/survey", headers=viewer.headers,
                              json={"outcome": "verified"})).status_code == 403


# -- 4. Idempotency-Key ------------------------------------------------------------------------------

async def test_the_same_key_and_body_get_the_first_answer_and_one_camera(client, make_caller, db):
    pcso = await make_caller(role="pcso")
    headers = keyed(pcso)
    body = camera("IDEM", bearing=45, location_accuracy_m=4)
    first = await client.post("/api/cameras", headers=headers, json=body)
    again = await client.post("/api/cameras", headers=headers, json=body)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert await count(db, "SELECT count(*) FROM camera") == 1
    # The same key with another body: 422, nothing made.
    r = await client.post("/api/cameras", headers=headers, json=camera("IDEM", bearing=46))
    assert r.status_code == 422 and r.json()["idempotency_key"] == headers["Idempotency-Key"]
    assert await count(db, "SELECT count(*) FROM camera") == 1
    # A key is not a UUID: 400.
    r = await client.post("/api/cameras", headers=keyed(pcso, "not-a-uuid"), json=camera("X"))
    assert r.status_code == 400
    # Keys are per partnership: another partnership's same key is its own request.
    other = await make_caller("capture-idem-2", role="pcso")
    r = await client.post("/api/cameras", headers=keyed(other, headers["Idempotency-Key"]), json=body)
    assert r.status_code == 201 and r.json()["id"] != first.json()["id"]


async def test_a_refused_request_keeps_no_key_so_the_corrected_one_may_reuse_it(client, make_caller, db):
    pcso = await make_caller(role="pcso")
    await add(client, pcso, "THERE")
    headers = keyed(pcso)
    r = await client.post("/api/cameras", headers=headers, json=camera("HERE", check_duplicates=True))
    assert r.status_code == 409
    r = await client.post("/api/cameras", headers=headers, json=camera("HERE", check_duplicates=True, confirm_new=True))
    assert r.status_code == 201
    assert await count(db, "SELECT count(*) FROM idempotency_key") == 1


async def test_patch_survey_and_delete_replay_too(client, make_caller, db):
    pcso = await make_caller(role="pcso")
    operator = await make_caller(role="operator")
    cid = (await add(client, pcso, bearing=10))["id"]
    headers = keyed(pcso)
    patch = {"properties": {"version": 1, "bearing": 20}}
    first = await client.patch(f"/api/cameras/{cid}", headers=headers, json=patch)
    again = await client.patch(f"/api/cameras/{cid}", headers=headers, json=patch)
    assert first.status_code == again.status_code == 200 and again.json() == first.json()
    assert first.json()["properties"]["version"] == 2  # applied once
    headers = keyed(pcso)
    for _ in range(2):
        r = await client.post(f"/api/cameras/{cid}/survey", headers=headers, json={"outcome": "faulty", "note": "once"})
        assert r.status_code == 200 and r.json()["properties"]["version"] == 3
    assert r.json()["properties"]["notes"].count("once") == 1
    headers = keyed(operator)
    for _ in range(2):
        assert (await client.delete(f"/api/cameras/{cid}", headers=headers)).status_code == 204
    assert await count(db, "SELECT count(*) FROM audit_event WHERE action = 'camera.delete'") == 1
    assert (await client.delete(f"/api/cameras/{cid}", headers=operator.headers)).status_code == 410


async def wait_until_blocked(database_url: str, task: asyncio.Task, query_start: str) -> int:
    """The pid of the app's backend once it waits on a lock running `query_start...` (watched as
    the database owner, one statement a transaction)."""
    sql = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' "
           "AND query ILIKE %s")
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as watcher:
        for _ in range(3000):
            row = await (await watcher.execute(sql, (query_start + "%",))).fetchone()
            if row:
                return row[0]
            assert not task.done(), "the request finished before it was blocked"
            await asyncio.sleep(0.01)
    raise AssertionError("the request never blocked")


async def test_a_key_in_flight_is_409_then_replayed_once_done(client, make_caller, db, database_url):
    pcso = await make_caller(role="pcso")
    await warm(client, pcso)
    headers = keyed(pcso)
    body = camera("FLIGHT")
    # Hold the first request inside its transaction, after it claimed the key: its INSERT waits.
    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        await blocker.execute("LOCK TABLE camera IN SHARE MODE")
        first = asyncio.create_task(client.post("/api/cameras", headers=headers, json=body))
        await wait_until_blocked(database_url, first, "INSERT INTO camera")
        second = await asyncio.wait_for(client.post("/api/cameras", headers=headers, json=body), 30)
        assert second.status_code == 409 and second.json()["in_flight"] is True
        await blocker.rollback()
    first_answer = await asyncio.wait_for(first, 30)
    assert first_answer.status_code == 201
    third = await client.post("/api/cameras", headers=headers, json=body)
    assert third.status_code == 201 and third.json()["id"] == first_answer.json()["id"]
    assert await count(db, "SELECT count(*) FROM camera") == 1


async def test_two_simultaneous_requests_with_one_key_make_one_camera(client, make_caller, db):
    pcso = await make_caller(role="pcso")
    await warm(client, pcso)
    headers = keyed(pcso)
    body = camera("TWIN", bearing=30)
    answers = await asyncio.gather(*(client.post("/api/cameras", headers=headers, json=body) for _ in range(4)))
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {201, 409} and statuses.count(201) >= 1, statuses
    assert len({a.json()["id"] for a in answers if a.status_code == 201}) == 1
    assert await count(db, "SELECT count(*) FROM camera") == 1


async def test_a_request_that_dies_leaves_no_key_and_blocks_nothing(client, make_caller, db, database_url):
    pcso = await make_caller(role="pcso")
    await warm(client, pcso)
    headers = keyed(pcso)
    body = camera("DIES")
    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        await blocker.execute("LOCK TABLE camera IN SHARE MODE")
        first = asyncio.create_task(client.post("/api/cameras", headers=headers, json=body))
        pid = await wait_until_blocked(database_url, first, "INSERT INTO camera")
        # Its database connection dies mid-change (a crashed worker looks the same to the database).
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as killer:
            await killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        died = await asyncio.wait_for(first, 30)
        await blocker.rollback()
    assert died.status_code >= 500
    assert await count(db, "SELECT count(*) FROM idempotency_key") == 0
    retry = await client.post("/api/cameras", headers=headers, json=body)
    assert retry.status_code == 201
    assert await count(db, "SELECT count(*) FROM camera") == 1


async def test_keys_are_kept_for_idempotency_days_then_purged_per_partnership(client, make_caller, db, settings):
    pcso = await make_caller(role="pcso")
    other = await make_caller("capture-purge-2", role="pcso")
    old, recent, theirs = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    store = text("""
        INSERT INTO idempotency_key (partnership_id, key, principal_id, method, path, body_sha256, status,
                                     response, created_at)
        SELECT :p, :k, id, 'POST', '/api/cameras', 'x', 201, '{"id": 0}', now() - make_interval(days => :days)
        FROM principal WHERE partnership_id = :p LIMIT 1""")
    days = settings.idempotency_days
    assert days == 7
    await db.execute(store, {"p": pcso.partnership_id, "k": old, "days": days + 1})
    await db.execute(store, {"p": pcso.partnership_id, "k": recent, "days": days - 1})
    await db.execute(store, {"p": other.partnership_id, "k": theirs, "days": days + 1})
    await db.commit()
    assert (await client.post("/api/cameras", headers=keyed(pcso), json=camera("PURGE"))).status_code == 201
    kept = set((await db.execute(text("SELECT key FROM idempotency_key"))).scalars())
    await db.commit()
    assert old not in kept and recent in kept and theirs in kept


# -- 4. merges, conflicts, deleted cameras -----------------------------------------------------------

async def test_fields_changed_on_one_side_only_are_merged(client, make_caller, db):
    office = await make_caller(role="operator")
    street = await make_caller(role="pcso")
    cid = (await add(client, office, bearing=10, name="Market St", status="operational"))["id"]
    r = await client.patch(f"/api/cameras/{cid}", headers=office.headers,
                           json={"properties": {"version": 1, "bearing": 200, "name": "Market Street"}})
    assert r.json()["properties"]["version"] == 2
    # The PCSO's device still shows version 1: it changes the status, moves it, and sends the name unchanged.
    lon, lat = east(3)
    r = await client.patch(f"/api/cameras/{cid}", headers=street.headers, json={
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"version": 1, "status": "faulty", "name": "Market St"}})
    assert r.status_code == 200, r.text
    p = r.json()["properties"]
    assert p["merged"] is True and p["version"] == 3
    assert (p["bearing"], p["name"], p["status"]) == (200, "Market Street", "faulty")
    assert r.json()["geometry"]["coordinates"] == pytest.approx([lon, lat])
    event = (await db.execute(text("SELECT detail FROM audit_event WHERE action = 'camera.update' "
                                   "ORDER BY id DESC LIMIT 1"))).scalar_one()
    assert event["merged_from_version"] == 1 and event["after"]["status"] == "faulty"
    assert "name" not in event["after"]
    # Both sides made the same change: nothing to choose.
    r = await client.patch(f"/api/cameras/{cid}", headers=street.headers,
                           json={"properties": {"version": 1, "bearing": 200}})
    assert r.status_code == 200 and r.json()["properties"]["version"] == 3


async def test_fields_both_sides_changed_are_a_409_with_both_values(client, make_caller, db):
    office = await make_caller(role="operator")
    street = await make_caller(role="pcso")
    cid = (await add(client, office, bearing=10, owner_agency="Council", owner_agency_kind="council"))["id"]
    await client.patch(f"/api/cameras/{cid}", headers=office.headers, json={
        "properties": {"version": 1, "bearing": 200, "owner_agency": "Transport"}})
    r = await client.patch(f"/api/cameras/{cid}", headers=street.headers, json={
        "properties": {"version": 1, "bearing": 90, "owner_agency": "Corner Shop", "notes": "new"}})
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["current"]["properties"]["version"] == 2 and problem["current_version"] == 2
    assert problem["current"]["properties"]["bearing"] == 200
    assert sorted(problem["conflicts"], key=lambda c: c["field"]) == [
        {"field": "bearing", "yours": 90, "theirs": 200, "base": 10},
        {"field": "owner_agency", "yours": "Corner Shop", "theirs": "Transport", "base": "Council"}]
    # Nothing of the refused change was kept (not even the notes no one else touched).
    now = (await client.get(f"/api/cameras/{cid}", headers=street.headers)).json()["properties"]
    assert (now["version"], now["notes"], now["owner_agency"]) == (2, "", "Transport")
    # The PCSO chooses and sends the choice on the current version.
    r = await client.patch(f"/api/cameras/{cid}", headers=street.headers, json={
        "properties": {"version": 2, "bearing": 90, "notes": "new"}})
    assert r.status_code == 200 and r.json()["properties"]["merged"] is False


async def test_a_move_on_both_sides_conflicts_and_changes_outside_the_api_are_history_too(client, make_caller, db):
    pcso = await make_caller(role="pcso")
    cid = (await add(client, pcso, bearing=10))["id"]
    # An import (or anyone) changes the camera in SQL: the trigger keeps the revision.
    await db.execute(text("UPDATE camera SET geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), "
                          "version = version + 1 WHERE id = :i"), dict(zip(("lon", "lat"), east(30)), i=cid))
    await db.commit()
    revisions = (await db.execute(text("SELECT version, changed_by FROM camera_revision WHERE camera_id = :i "
                                       "ORDER BY version"), {"i": cid})).all()
    await db.commit()
    assert [tuple(r) for r in revisions] == [(1, "pcso of test-csp"), (2, None)]
    r = await client.patch(f"/api/cameras/{cid}", headers=pcso.headers, json={
        "geometry": {"type": "Point", "coordinates": list(east(5))}, "properties": {"version": 1}})
    assert r.status_code == 409
    [conflict] = r.json()["conflicts"]
    assert conflict["field"] == "geometry" and conflict["base"] == pytest.approx([LON, LAT])
    # Without the base revision, every field that differs is a conflict: nothing is overwritten unseen.
    await db.execute(text("DELETE FROM camera_revision WHERE camera_id = :i AND version = 1"), {"i": cid})
    await db.commit()
    r = await client.patch(f"/api/cameras/{cid}", headers=pcso.headers,
                           json={"properties": {"version": 1, "bearing": 11}})
    assert r.status_code == 409 and r.json()["conflicts"] == [
        {"field": "bearing", "yours": 11, "theirs": 10, "base": None}]


async def test_a_deleted_camera_is_410_and_never_recreated(client, make_caller, db):
    pcso = await make_caller(role="pcso")
    operator = await make_caller(role="operator")
    cid = (await add(client, pcso, bearing=10))["id"]
    assert (await client.delete(f"/api/cameras/{cid}", headers=operator.headers)).status_code == 204
    for method, url, kwargs in (
            ("PATCH", f"/api/cameras/{cid}", {"json": {"properties": {"version": 1, "bearing": 20}}}),
            ("POST", f"/api/cameras/{cid}/survey", {"json": {"outcome": "verified"}}),
            ("POST", f"/api/cameras/{cid}/photos", {"files": {"file": ("p.png", png(), "image/png")}})):
        r = await client.request(method, url, headers=keyed(pcso), **kwargs)
        assert r.status_code == 410, (method, url, r.text)
        assert r.json()["deleted"] is True and "operator of test-csp" in r.json()["detail"]
    assert await count(db, "SELECT count(*) FROM camera") == 0
    assert (await client.get(f"/api/cameras/{cid}", headers=pcso.headers)).status_code == 404
    # Another partnership's deleted camera is simply not found.
    other = await make_caller("capture-410", role="pcso")
    r = await client.patch(f"/api/cameras/{cid}", headers=other.headers, json={"properties": {"version": 1}})
    assert r.status_code == 404


# -- 5. photos -------------------------------------------------------------------------------------------

def jpeg_with_gps(width: int = 800, height: int = 400) -> bytes:
    """A phone-like JPEG: red left half, blue right half, stored sideways (EXIF orientation 6:
    turn 90 degrees clockwise to view), with the GPS position and camera make in its EXIF."""
    img = Image.new("RGB", (width, height), (255, 0, 0))
    img.paste((0, 0, 255), (width // 2, 0, width, height))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (53.0, 28.0, 50.88), 3: "W", 4: (2.0, 14.0, 33.36)})
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif, quality=95)
    return out.getvalue()


def png(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, (0, 128, 0, 200)).save(out, "PNG")
    return out.getvalue()


def webp() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (500, 100), (10, 20, 30)).save(out, "WEBP")
    return out.getvalue()


def is_red(px) -> bool:
    return px[0] > 200 and px[1] < 60 and px[2] < 60


def is_blue(px) -> bool:
    return px[2] > 200 and px[0] < 60 and px[1] < 60


async def test_a_photo_loses_its_exif_and_gps_and_is_turned_upright(client, make_caller, settings):
    pcso = await make_caller(role="pcso")
    viewer = await make_caller(role="viewer")
    cid = (await add(client, pcso))["id"]
    original = jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(0x8825)  # the test photo does carry GPS
    r = await client.post(f"/api/cameras/{cid}/photos", headers=keyed(pcso, **{"X-Device-Position": f"{LON},{LAT},8"}),
                          files={"file": ("IMG_0001.jpg", original, "image/jpeg")})
    assert r.status_code == 201, r.text
    photo = r.json()
    assert (photo["width"], photo["height"], photo["format"]) == (400, 800, "jpeg")
    assert r.headers["location"] == photo["url"] == f"/api/cameras/{cid}/photos/{photo['id']}"
    assert photo["thumbnail_url"] == photo["url"] + "/thumbnail"
    got = await client.get(photo["url"], headers=viewer.headers)
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert b"Exif" not in got.content and b"PhoneMaker" not in got.content
    image = Image.open(io.BytesIO(got.content))
    assert len(image.getexif()) == 0 and not image.getexif().get_ifd(0x8825) and "exif" not in image.info
    assert image.size == (400, 800)  # turned upright: the left (red) side is now the top
    assert is_red(image.getpixel((200, 100))) and is_blue(image.getpixel((200, 700)))
    thumb = await client.get(photo["thumbnail_url"], headers=viewer.headers)
    small = Image.open(io.BytesIO(thumb.content))
    assert small.size == (160, 320) and len(small.getexif()) == 0 and b"Exif" not in thumb.content
    # Kept under the photo directory, never the web root.
    stored = settings.photos_path / str(pcso.partnership_id) / str(cid) / f"{photo['id']}.jpg"
    assert stored.read_bytes() == got.content
    assert not stored.resolve().is_relative_to(settings.static_dir.resolve())
    listed = (await client.get(f"/api/cameras/{cid}/photos", headers=viewer.headers)).json()["photos"]
    assert [p["id"] for p in listed] == [photo["id"]] and listed[0]["created_by"] == "pcso of test-csp"
    assert (await client.get(f"/api/cameras/{cid}", headers=viewer.headers)).json()["properties"]["photo_count"] == 1


async def test_png_and_webp_are_kept_in_their_format(client, make_caller):
    pcso = await make_caller(role="pcso")
    cid = (await add(client, pcso))["id"]
    for name, data, fmt, size in (("a.png", png(), "png", (64, 48)), ("b.webp", webp(), "webp", (500, 100))):
        r = await client.post(f"/api/cameras/{cid}/photos", headers=pcso.headers,
                              files={"file": (name, data, "application/octet-stream")})
        assert r.status_code == 201, r.text
        assert (r.json()["format"], r.json()["width"], r.json()["height"]) == (fmt, *size)
        got = await client.get(r.json()["url"], headers=pcso.headers)
        assert got.headers["content-type"] == f"image/{fmt}" and Image.open(io.BytesIO(got.content)).format == fmt.upper()


async def test_what_is_not_an_image_is_415_and_a_broken_one_422(client, make_caller, db):
    pcso = await make_caller(role="pcso")
    cid = (await add(client, pcso))["id"]
    gif = io.BytesIO()
    Image.new("RGB", (10, 10)).save(gif, "GIF")
    for name, data, kind in (("notes.jpg", b"This is not a photo, whatever its name says.\n" * 20, "image/jpeg"),
                             ("anim.gif", gif.getvalue(), "image/gif"),
                             ("empty.jpg", b"", "image/jpeg")):
        r = await client.post(f"/api/cameras/{cid}/photos", headers=pcso.headers, files={"file": (name, data, kind)})
        assert r.status_code == 415, (name, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    truncated = jpeg_with_gps()[:3000]
    r = await client.post(f"/api/cameras/{cid}/photos", headers=pcso.headers,
                          files={"file": ("cut.jpg", truncated, "image/jpeg")})
    assert r.status_code == 422, r.text
    assert (await client.post(f"/api/cameras/{cid}/photos", headers=pcso.headers, json={})).status_code == 415
    r = await client.post(f"/api/cameras/{cid}/photos", headers=pcso.headers,
                          files={"photo": ("a.png", png(), "image/png")})
    assert r.status_code == 422
    assert await count(db, "SELECT count(*) FROM camera_photo") == 0


async def test_a_photo_over_the_limit_is_413_before_it_is_all_read(client, make_caller, db, app, monkeypatch):
    pcso = await make_caller(role="pcso")
    cid = (await add(client, pcso))["id"]
    monkeypatch.setattr(app.state.settings, "max_photo_bytes", 20_000)
    big = Image.effect_noise((300, 300), 100).convert("RGB")
    data = io.BytesIO()
    big.save(data, "PNG")
    assert len(data.getvalue()) > 20_000
    r = await client.post(f"/api/cameras/{cid}/photos", headers=pcso.headers,
                          files={"file": ("big.png", data.getvalue(), "image/png")})
    assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")
    # Streamed with no Content-Length: refused once the count passes the limit, the rest never read.
    boundary = "capture-boundary"
    chunk, chunks, sent = b"\0" * 16_384, 200, 0

    async def body():
        nonlocal sent
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jpg\"\r\n"
               "Content-Type: image/jpeg\r\n\r\n").encode()
        for _ in range(chunks):
            sent += 1
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    r = await client.post(f"/api/cameras/{cid}/photos", content=body(),
                          headers={**pcso.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 413
    assert sent < chunks / 4, f"read {sent} of {chunks} chunks"
    assert await count(db, "SELECT count(*) FROM camera_photo") == 0


async def test_photos_replay_by_content_delete_and_go_with_their_camera(client, make_caller, db, settings):
    pcso = await make_caller(role="pcso")
    viewer = await make_caller(role="viewer")
    operator = await make_caller(role="operator")
    cid = (await add(client, pcso))["id"]
    folder = settings.photos_path / str(pcso.partnership_id) / str(cid)
    # (ids restart with every test's fresh tables; the files of earlier tests' cameras stay on disk)
    earlier = set(folder.iterdir()) if folder.exists() else set()
    headers = keyed(pcso)
    data = jpeg_with_gps(200, 100)
    first = await client.post(f"/api/cameras/{cid}/photos", headers=headers, files={"file": ("a.jpg", data, "image/jpeg")})
    again = await client.post(f"/api/cameras/{cid}/photos", headers=headers, files={"file": ("b.jpg", data, "image/jpeg")})
    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    other = await client.post(f"/api/cameras/{cid}/photos", headers=headers,
                              files={"file": ("c.png", png(), "image/png")})
    assert other.status_code == 422  # the key answered another photo
    assert await count(db, "SELECT count(*) FROM camera_photo") == 1
    photo = first.json()
    assert {p.name for p in set(folder.iterdir()) - earlier} == {f"{photo['id']}.jpg", f"{photo['id']}.thumb.jpg"}
    # Other partnerships see nothing; viewers may not delete.
    stranger = await make_caller("capture-photos-2", role="admin")
    assert (await client.get(photo["url"], headers=stranger.headers)).status_code == 404
    assert (await client.get(f"/api/cameras/{cid}/photos", headers=stranger.headers)).status_code == 404
    assert (await client.delete(photo["url"], headers=viewer.headers)).status_code == 403
    headers = keyed(pcso)
    for _ in range(2):
        assert (await client.delete(photo["url"], headers=headers)).status_code == 204
    assert (await client.get(photo["url"], headers=viewer.headers)).status_code == 404
    assert set(folder.iterdir()) == earlier
    # A camera's deletion takes its photos' files with it.
    r = await client.post(f"/api/cameras/{cid}/photos", headers=pcso.headers, files={"file": ("d.png", png(), "image/png")})
    assert r.status_code == 201
    assert (await client.delete(f"/api/cameras/{cid}", headers=operator.headers)).status_code == 204
    assert not folder.exists()
    actions = (await db.execute(text("SELECT action FROM audit_event WHERE action LIKE 'camera.photo.%' ORDER BY id"))).scalars().all()
    assert actions == ["camera.photo.add", "camera.photo.delete", "camera.photo.add"]


# -- 6. every edit audited: who, when, where the device was, before and after ------------------------------

async def test_every_edit_is_audited_with_who_when_device_position_and_before_after(client, make_caller, db):
    pcso = await make_caller(role="pcso")
    device = {"X-Device-Position": f"{LON},{LAT},12.5"}
    r = await client.post("/api/cameras", headers=keyed(pcso, **device), json=camera("AUD", bearing=5))
    cid = r.json()["id"]
    await client.patch(f"/api/cameras/{cid}", headers=keyed(pcso, **device), json={"properties": {"version": 1, "fov": 70}})
    await client.post(f"/api/cameras/{cid}/survey", headers=keyed(pcso, **device), json={"outcome": "verified"})
    await client.post(f"/api/cameras/{cid}/photos", headers=keyed(pcso, **device), files={"file": ("p.png", png(), "image/png")})
    rows = (await db.execute(text("SELECT action, principal_name, at, detail FROM audit_event WHERE target = :t "
                                  "ORDER BY id"), {"t": f"camera/{cid}"})).all()
    assert [r.action for r in rows] == ["camera.create", "camera.update", "camera.survey", "camera.photo.add"]
    for row in rows:
        assert row.principal_name == "pcso of test-csp" and row.at is not None
        assert row.detail["device"] == {"lon": LON, "lat": LAT, "accuracy_m": 12.5}
        uuid.UUID(row.detail["idempotency_key"])
    assert rows[0].detail["after"]["bearing"] == 5
    assert rows[1].detail["before"] == {"fov": None, "version": 1} and rows[1].detail["after"] == {"fov": 70, "version": 2}
    assert rows[2].detail["after"]["verified_by"] == "pcso of test-csp"
    for bad in ("1,2,3,4", "abc", "200,10,5", "1,2,-3"):
        r = await client.post("/api/cameras", headers={**pcso.headers, "X-Device-Position": bad}, json=camera("BAD"))
        assert r.status_code == 400, bad


def test_photos_may_not_be_kept_in_the_web_root(tmp_path):
    from pydantic import ValidationError

    from app.settings import Settings
    assert Settings(var_dir=tmp_path).photos_path == tmp_path / "photos"
    with pytest.raises(ValidationError, match="web root"):
        Settings(var_dir=tmp_path, static_dir=tmp_path / "static", photo_dir=tmp_path / "static" / "photos")
    with pytest.raises(ValidationError):
        Settings(var_dir=tmp_path, max_photo_bytes=0)
