"""Cameras through the API: create, read, move, verify, optimistic locking, delete; coverage follows."""
from __future__ import annotations

import pytest
from sqlalchemy import text

LON, LAT = -2.2426, 53.4808  # Manchester, Piccadilly Gardens


def camera_feature(reference: str = "MCC-001", lon: float = LON, lat: float = LAT, **props) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"reference": reference, **props}}


async def coverage(db, camera_id: int):
    """The camera's coverage in metres (BNG): area, and the bearing from camera to wedge centroid."""
    return (await db.execute(text("""
        SELECT ST_Area(ST_Transform(cc.geom, 27700)) AS area, cc.assumed, cc.fov, cc.range_m,
               degrees(ST_Azimuth(ST_Transform(c.geom, 27700), ST_Transform(ST_Centroid(cc.geom), 27700))) AS azimuth
        FROM camera_coverage cc JOIN camera c ON c.id = cc.camera_id WHERE cc.camera_id = :id"""),
        {"id": camera_id})).first()


async def test_create_returns_feature_with_documented_properties(client, make_caller, db):
    caller = await make_caller(role="pcso")
    r = await client.post("/api/cameras", headers=caller.headers, json=camera_feature(
        name="Piccadilly Gardens north", owner_agency="Manchester City Council", owner_agency_kind="council",
        camera_type="fixed", bearing=90, fov=60, range_m=50, height_m=6, monitored=True, retention_days=31,
        verified=True))
    assert r.status_code == 201, r.text
    f = r.json()
    assert r.headers["location"] == f"/api/cameras/{f['id']}"
    assert f["geometry"] == {"type": "Point", "coordinates": [LON, LAT]}
    p = f["properties"]
    for key in ("reference", "name", "owner_agency", "camera_type", "status", "bearing", "fov", "range_m",
                "height_m", "monitored", "retention_days", "verified_at", "version"):
        assert key in p
    assert p["owner_agency"] == "Manchester City Council"
    assert p["status"] == "operational" and p["version"] == 1 and p["verified_at"]
    # The wedge: 60 degrees of a 50 m disc, pointing east.
    cov = await coverage(db, f["id"])
    assert cov.area == pytest.approx(3.14159 * 50**2 * 60 / 360, rel=0.02)
    assert cov.azimuth == pytest.approx(90, abs=1)
    assert cov.assumed is False


async def test_defaults_are_flagged_as_assumed(client, make_caller, db):
    caller = await make_caller(role="pcso")
    fixed = (await client.post("/api/cameras", headers=caller.headers,
                               json=camera_feature("F1", bearing=180, height_m=5))).json()
    dome = (await client.post("/api/cameras", headers=caller.headers,
                              json=camera_feature("D1", camera_type="dome", height_m=4))).json()
    cov = await coverage(db, fixed["id"])
    assert cov.fov == 57 and cov.range_m == 35 and cov.assumed
    assert cov.azimuth == pytest.approx(180, abs=1)
    cov = await coverage(db, dome["id"])
    assert cov.fov == 360 and cov.area == pytest.approx(3.14159 * 28**2, rel=0.02)


async def test_move_and_patch_with_version_and_stale_version_conflicts(client, make_caller, db):
    caller = await make_caller(role="pcso")
    f = (await client.post("/api/cameras", headers=caller.headers,
                           json=camera_feature(bearing=0, fov=90, range_m=40))).json()
    cid = f["id"]
    r = await client.patch(f"/api/cameras/{cid}", headers=caller.headers, json={
        "geometry": {"type": "Point", "coordinates": [LON + 0.01, LAT]},
        "properties": {"version": 1, "bearing": 270, "status": "faulty"}})
    assert r.status_code == 200, r.text
    p = r.json()["properties"]
    assert p["version"] == 2 and p["bearing"] == 270 and p["status"] == "faulty"
    cov = await coverage(db, cid)
    assert cov.azimuth == pytest.approx(270, abs=1)
    inside = (await db.execute(text(
        "SELECT ST_Contains(geom, ST_Project(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, 20, radians(270))::geometry) "
        "FROM camera_coverage WHERE camera_id = :id"), {"lon": LON + 0.01, "lat": LAT, "id": cid})).scalar()
    assert inside, "the wedge must follow the camera to its new place"
    # The same stale version again is refused, and nothing changes.
    r = await client.patch(f"/api/cameras/{cid}", headers=caller.headers,
                           json={"properties": {"version": 1, "bearing": 10}})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["current_version"] == 2
    assert (await client.get(f"/api/cameras/{cid}", headers=caller.headers)).json()["properties"]["bearing"] == 270
    # No version at all: 428.
    r = await client.patch(f"/api/cameras/{cid}", headers=caller.headers, json={"properties": {"bearing": 10}})
    assert r.status_code == 428
    # If-Match works as well as properties.version.
    r = await client.patch(f"/api/cameras/{cid}", headers={**caller.headers, "If-Match": '"2"'},
                           json={"properties": {"status": "decommissioned"}})
    assert r.status_code == 200
    assert await coverage(db, cid) is None, "a decommissioned camera covers nothing"


async def test_delete_removes_camera_and_coverage(client, make_caller, db):
    pcso = await make_caller(role="pcso")
    operator = await make_caller(role="operator")
    cid = (await client.post("/api/cameras", headers=pcso.headers, json=camera_feature(bearing=10))).json()["id"]
    assert (await client.delete(f"/api/cameras/{cid}", headers=pcso.headers)).status_code == 403
    assert (await client.delete(f"/api/cameras/{cid}", headers=operator.headers)).status_code == 204
    assert (await client.get(f"/api/cameras/{cid}", headers=operator.headers)).status_code == 404
    assert await coverage(db, cid) is None


async def test_list_filters_by_bbox_and_status_and_pages(client, make_caller):
    caller = await make_caller(role="viewer")
    writer = await make_caller(role="pcso")
    for i in range(5):
        await client.post("/api/cameras", headers=writer.headers,
                          json=camera_feature(f"C{i}", lon=LON + i * 0.01, status="faulty" if i == 4 else "operational"))
    r = await client.get("/api/cameras", headers=caller.headers,
                         params={"bbox": f"{LON - 0.001},{LAT - 0.001},{LON + 0.015},{LAT + 0.001}"})
    assert [f["properties"]["reference"] for f in r.json()["features"]] == ["C0", "C1"]
    r = await client.get("/api/cameras", headers=caller.headers, params={"status": "faulty"})
    assert [f["properties"]["reference"] for f in r.json()["features"]] == ["C4"]
    r = (await client.get("/api/cameras", headers=caller.headers, params={"limit": 2})).json()
    assert r["numberMatched"] == 5 and r["numberReturned"] == 2 and "offset=2" in r["next"]


async def test_partnerships_never_see_each_others_cameras(client, make_caller):
    ours = await make_caller("salford", role="admin")
    theirs = await make_caller("bolton", role="admin")
    cid = (await client.post("/api/cameras", headers=ours.headers, json=camera_feature())).json()["id"]
    assert (await client.get("/api/cameras", headers=theirs.headers)).json()["features"] == []
    assert (await client.get(f"/api/cameras/{cid}", headers=theirs.headers)).status_code == 404
    r = await client.patch(f"/api/cameras/{cid}", headers=theirs.headers, json={"properties": {"version": 1}})
    assert r.status_code == 404
    assert (await client.delete(f"/api/cameras/{cid}", headers=theirs.headers)).status_code == 404
    # The same reference may exist in both partnerships.
    assert (await client.post("/api/cameras", headers=theirs.headers, json=camera_feature())).status_code == 201


@pytest.mark.parametrize("body,why", [
    ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [53.48, -2.24, 0, 1]},
      "properties": {"reference": "X"}}, "too many coordinates"),
    ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [200, 53]}, "properties": {"reference": "X"}},
     "longitude out of range"),
    ({"type": "Feature", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]},
      "properties": {"reference": "X"}}, "not a point"),
    ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [LON, LAT]}, "properties": {}}, "no reference"),
    ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [LON, LAT]},
      "properties": {"reference": "X", "bearing": 400}}, "bearing out of range"),
    ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [LON, LAT]},
      "properties": {"reference": "X", "camera_type": "laser"}}, "unknown type"),
    ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [LON, LAT]},
      "properties": {"reference": "X", "sql": "'; DROP TABLE camera; --"}}, "unknown property"),
    ({"type": "Feature", "geometry": {"type": "Point", "coordinates": ["NaN", LAT]},
      "properties": {"reference": "X"}}, "NaN"),
    ([], "not an object"),
])
async def test_malformed_cameras_are_422_problems_and_change_nothing(client, make_caller, body, why):
    caller = await make_caller(role="pcso")
    r = await client.post("/api/cameras", headers=caller.headers, json=body)
    assert r.status_code == 422, why
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"]
    assert (await client.get("/api/cameras", headers=caller.headers)).json()["numberMatched"] == 0


async def test_duplicate_reference_is_409_and_viewer_cannot_write(client, make_caller):
    pcso = await make_caller(role="pcso")
    viewer = await make_caller(role="viewer")
    assert (await client.post("/api/cameras", headers=pcso.headers, json=camera_feature())).status_code == 201
    r = await client.post("/api/cameras", headers=pcso.headers, json=camera_feature())
    assert r.status_code == 409
    assert (await client.post("/api/cameras", headers=viewer.headers, json=camera_feature("V"))).status_code == 403


async def test_bad_query_parameters_are_4xx(client, make_caller):
    caller = await make_caller(role="viewer")
    for params in ({"bbox": "1,2,3"}, {"bbox": "a,b,c,d"}, {"bbox": "10,10,0,0"}, {"limit": 0},
                   {"limit": 10**6}, {"status": "broken"}):
        r = await client.get("/api/cameras", headers=caller.headers, params=params)
        assert 400 <= r.status_code < 500, params
    assert (await client.get("/api/cameras/abc", headers=caller.headers)).status_code == 422


async def test_out_of_range_ids_are_4xx_not_500(client, make_caller):
    caller = await make_caller(role="admin")
    for cid in ("99999999999999", "-1", "0"):
        assert (await client.get(f"/api/cameras/{cid}", headers=caller.headers)).status_code == 422


async def test_every_camera_change_is_audited_with_before_and_after(client, make_caller, db):
    caller = await make_caller(role="operator")
    cid = (await client.post("/api/cameras", headers=caller.headers,
                             json=camera_feature(bearing=10, name="Market St"))).json()["id"]
    await client.patch(f"/api/cameras/{cid}", headers=caller.headers,
                       json={"properties": {"version": 1, "bearing": 200}})
    # A refused change leaves no trace of a change that did not happen.
    await client.patch(f"/api/cameras/{cid}", headers=caller.headers, json={"properties": {"version": 1, "bearing": 5}})
    await client.delete(f"/api/cameras/{cid}", headers=caller.headers)
    rows = (await db.execute(text(
        "SELECT action, target, principal_name, detail FROM audit_event WHERE target = :t ORDER BY id"),
        {"t": f"camera/{cid}"})).all()
    assert [r.action for r in rows] == ["camera.create", "camera.update", "camera.delete"]
    assert rows[0].detail["after"]["name"] == "Market St"
    assert rows[1].detail == {"before": {"bearing": 10, "version": 1}, "after": {"bearing": 200, "version": 2}}
    assert rows[2].detail["before"]["bearing"] == 200
    assert all(r.principal_name == "operator of test-csp" for r in rows)


async def test_an_owner_agency_is_shared_and_a_given_kind_replaces_its_kind(client, make_caller, db):
    caller = await make_caller(role="pcso")
    for ref, kind in (("A1", "council"), ("A2", None), ("A3", "transport")):
        props = {"owner_agency": "Metrolink", **({"owner_agency_kind": kind} if kind else {})}
        r = await client.post("/api/cameras", headers=caller.headers, json=camera_feature(ref, **props))
        assert r.status_code == 201 and r.json()["properties"]["owner_agency"] == "Metrolink"
        agencies = (await db.execute(text("SELECT name, kind FROM agency WHERE partnership_id = :p"),
                                     {"p": caller.partnership_id})).all()
        assert [tuple(a) for a in agencies] == [("Metrolink", kind or "council")]
        await db.commit()  # (a fresh snapshot for the next read)


async def test_impossible_versions_are_4xx_not_500(client, make_caller):
    caller = await make_caller(role="pcso")
    cid = (await client.post("/api/cameras", headers=caller.headers, json=camera_feature())).json()["id"]
    r = await client.patch(f"/api/cameras/{cid}", headers=caller.headers,
                           json={"properties": {"version": 2**40, "bearing": 5}})
    assert r.status_code == 422
    for tag in ('"99999999999"', '"0"', '"abc"'):
        r = await client.patch(f"/api/cameras/{cid}", headers={**caller.headers, "If-Match": tag},
                               json={"properties": {"bearing": 5}})
        assert r.status_code == 400, tag
        assert r.headers["content-type"].startswith("application/problem+json")
    assert (await client.get(f"/api/cameras/{cid}", headers=caller.headers)).json()["properties"]["version"] == 1


async def test_the_openapi_document_describes_every_camera_answer(client, make_caller):
    caller = await make_caller(role="operator")
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]

    def answer(path: str, method: str, status: str) -> str:
        return spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]

    assert answer("/api/cameras", "get", "200").endswith("/CameraCollection")
    for method, status in (("get", "200"), ("patch", "200")):
        assert answer("/api/cameras/{camera_id}", method, status).endswith("/CameraFeature")
    assert answer("/api/cameras", "post", "201").endswith("/CameraFeature")
    documented = set(schemas["CameraProperties"]["properties"])
    created = (await client.post("/api/cameras", headers=caller.headers, json=camera_feature(bearing=10))).json()
    assert set(created["properties"]) == documented
    listed = (await client.get("/api/cameras", headers=caller.headers)).json()
    assert set(listed) == {"type", "features", "numberMatched", "numberReturned", "links"}  # no next page: no "next"
    assert set(listed["features"][0]["properties"]) == documented
