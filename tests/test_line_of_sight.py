"""Line-of-sight coverage in the database: kept by the camera API, the register import and the
OpenStreetMap import; EN 62676-4 ranges and nested quality bands; assumed values flagged."""
from __future__ import annotations

import io
import json
import math

import pytest
from rich.console import Console
from sqlalchemy import text

from app.analysis.camera_rule import camera_rule, plain_coverage
from app.analysis.coverage import refresh_coverage
from app.db import raw_connection
from app.ingest.camera_register import import_register
from app.ingest.osm_extract import bundled_helsinki
from app.ingest.osm_import import import_osm
from tests.factories import camera, camera_feature

LON, LAT = -2.2400, 53.4800  # central Manchester; buildings are laid out in metres on 27700

# Boxes in metres relative to the camera, drawn on British National Grid around (LON, LAT).
ADD_BOX = text("""
    WITH c AS (SELECT ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 27700) AS g)
    INSERT INTO building (partnership_id, name, geom)
    SELECT :p, :name, ST_Multi(ST_Transform(ST_SetSRID(ST_MakeEnvelope(
        ST_X(c.g) + :x0, ST_Y(c.g) + :y0, ST_X(c.g) + :x1, ST_Y(c.g) + :y1), 27700), 4326)) FROM c
""")
# Is the point (dx, dy) metres from the camera inside its coverage / a band?
COVERS = text("""
    WITH c AS (SELECT ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 27700) AS g)
    SELECT ST_Covers(cc.geom, ST_Transform(ST_SetSRID(ST_MakePoint(ST_X(c.g) + :dx, ST_Y(c.g) + :dy), 27700), 4326))
    FROM camera_coverage cc, c WHERE cc.camera_id = :id
""")
COVERAGE = text("""
    SELECT ST_Area(ST_Transform(geom, 27700)) AS area, line_of_sight, assumed, range_m, bands, purpose
    FROM camera_coverage WHERE camera_id = :id
""")
BANDS = text("""
    SELECT b.band, b.distance_m, ST_Area(ST_Transform(b.geom, 27700)) AS area,
           ST_Covers(ST_Buffer(cc.geom, 1e-7), b.geom) AS inside_coverage
    FROM camera_coverage_band b JOIN camera_coverage cc ON cc.camera_id = b.camera_id
    WHERE b.camera_id = :id ORDER BY b.distance_m
""")


async def street_canyon(db, pid: int) -> None:
    """Terraces 6 m either side of the camera's street (running north), a side street at y 20..26."""
    for name, x0, y0, x1, y1 in [("west", -30, -60, -6, 20), ("west 2", -30, 26, -6, 80),
                                 ("east", 6, -60, 30, 20), ("east 2", 6, 26, 30, 80)]:
        await db.execute(ADD_BOX, {"p": pid, "name": name, "lon": LON, "lat": LAT,
                                   "x0": x0, "y0": y0, "x1": x1, "y1": y1})
    await db.commit()


async def covers(db, camera_id: int, dx: float, dy: float) -> bool:
    return (await db.execute(COVERS, {"id": camera_id, "lon": LON, "lat": LAT, "dx": dx, "dy": dy})).scalar_one()


async def test_the_api_keeps_coverage_to_what_the_camera_can_see(client, make_caller, db):
    caller = await make_caller(role="pcso")
    await street_canyon(db, caller.partnership_id)
    r = await client.post("/api/cameras", headers=caller.headers,
                          json=camera_feature("CAM-1", (LON, LAT), bearing=90, fov=90, range_m=60, camera_type="fixed"))
    assert r.status_code == 201, r.text
    cam = r.json()
    assert cam["properties"]["line_of_sight"] is True
    cid = cam["id"]
    assert await covers(db, cid, 4, 0)              # across the street
    assert not await covers(db, cid, 15, 0)         # inside the east terrace
    assert not await covers(db, cid, 40, 2)         # behind it
    cov = (await db.execute(COVERAGE, {"id": cid})).one()
    plain = math.pi * 60 ** 2 / 4
    assert cov.line_of_sight and cov.area < 0.3 * plain

    # Turned to look up the street, it sees far along it, and still not into the buildings.
    r = await client.patch(f"/api/cameras/{cid}", headers=caller.headers,
                           json={"properties": {"bearing": 0, "version": cam["properties"]["version"]}})
    assert r.status_code == 200, r.text
    assert await covers(db, cid, 0, 50)
    assert not await covers(db, cid, -10, 50)
    assert (await db.execute(COVERAGE, {"id": cid})).one().line_of_sight


async def test_recomputing_one_camera_is_repeatable(settings, make_caller, db):
    # What the API runs for one edited camera, repeated: the same coverage each time. Its speed (the
    # issue's budget of 100 ms) is measured by `make bench` (coverage: one_camera_p50_ms), not here.
    caller = await make_caller()
    await street_canyon(db, caller.partnership_id)
    for i in range(40):  # a denser block behind: more walls to consider
        await db.execute(ADD_BOX, {"p": caller.partnership_id, "name": f"b{i}", "lon": LON, "lat": LAT,
                                   "x0": -90 + 4 * i, "y0": 90, "x1": -88 + 4 * i, "y1": 95})
    cid = await camera(db, caller.partnership_id, "C", (LON, LAT), bearing=0, fov=90, range_m=120)
    async with raw_connection(settings) as conn:
        async with conn.transaction():
            await refresh_coverage(conn, caller.partnership_id, [cid])  # warm up the statements
        areas = set()
        for _ in range(5):
            async with conn.transaction():
                await refresh_coverage(conn, caller.partnership_id, [cid])
            areas.add(round((await conn.fetchval(
                "SELECT ST_Area(ST_Transform(geom, 27700)) FROM camera_coverage WHERE camera_id = $1", cid)), 6))
    assert len(areas) == 1
    cov = (await db.execute(COVERAGE, {"id": cid})).one()
    assert cov.line_of_sight and 0 < cov.area < 3.1416 * 120 ** 2 / 4


async def test_range_and_nested_bands_follow_resolution_and_purpose(client, make_caller, db):
    caller = await make_caller(role="pcso")
    r = await client.post("/api/cameras", headers=caller.headers,
                          json=camera_feature("CAM-1", (LON, LAT), bearing=0, fov=60, resolution_px=1920))
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    cov = (await db.execute(COVERAGE, {"id": cid})).one()
    tan = math.tan(math.radians(30))
    expected = {band: 1920 / (density * 2 * tan) for band, density in
                (("detect", 25), ("observe", 62.5), ("recognise", 125), ("identify", 250))}
    assert cov.range_m == pytest.approx(expected["detect"], abs=0.01)  # no purpose: as far as it detects
    assert cov.assumed is False                                         # nothing taken from defaults
    bands = (await db.execute(BANDS, {"id": cid})).all()
    assert [b.band for b in bands] == ["identify", "recognise", "observe", "detect"]
    for b in bands:
        assert b.distance_m == pytest.approx(expected[b.band], abs=0.01)
        assert b.area == pytest.approx(math.pi * b.distance_m ** 2 / 6, rel=0.01)  # open ground
        assert b.inside_coverage
    areas = [b.area for b in bands]
    assert areas == sorted(areas)  # nested: each band inside the next

    # Bought for recognition: the useful range is the recognise distance.
    r = await client.patch(f"/api/cameras/{cid}", headers=caller.headers,
                           json={"properties": {"purpose": "recognise", "version": 1}})
    assert r.status_code == 200, r.text
    assert (await db.execute(COVERAGE, {"id": cid})).one().range_m == pytest.approx(expected["recognise"], abs=0.01)
    bands = (await db.execute(BANDS, {"id": cid})).all()
    assert [b.band for b in bands] == ["identify", "recognise", "observe", "detect"]
    assert all(b.area <= math.pi * expected["recognise"] ** 2 / 6 * 1.01 for b in bands)


async def test_defaults_are_assumed_and_a_survey_is_not(client, make_caller, db):
    caller = await make_caller(role="pcso")
    guessed = (await client.post("/api/cameras", headers=caller.headers, json=camera_feature("G", (LON, LAT)))).json()
    surveyed = (await client.post("/api/cameras", headers=caller.headers,
                                  json=camera_feature("S", (LON, LAT), bearing=10, fov=70, range_m=40))).json()
    assert guessed["properties"]["coverage_assumed"] is True
    assert surveyed["properties"]["coverage_assumed"] is False
    r = await client.post("/api/cameras", headers=caller.headers, json=camera_feature("X", (LON, LAT), purpose="sharp"))
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    r = await client.post("/api/cameras", headers=caller.headers, json=camera_feature("Y", (LON, LAT), resolution_px=5))
    assert r.status_code == 422


async def test_a_register_with_resolutions_gets_bands_and_line_of_sight(settings, make_caller, db, tmp_path):
    caller = await make_caller()
    await street_canyon(db, caller.partnership_id)
    register = tmp_path / "register.csv"
    register.write_text("Reference,Latitude,Longitude,Bearing,Field of view,Resolution,Purpose\n"
                        f"R1,{LAT},{LON},90,90,1920x1080,Recognition\n"
                        f"R2,{LAT},{LON},0,60,,\n")
    assert await import_register(settings, register, caller.slug, Console(file=io.StringIO()))
    rows = (await db.execute(text(
        "SELECT c.reference, c.resolution_px, c.purpose, cc.line_of_sight, "
        "(SELECT count(*) FROM camera_coverage_band b WHERE b.camera_id = c.id) AS bands "
        "FROM camera c JOIN camera_coverage cc ON cc.camera_id = c.id ORDER BY c.reference"))).all()
    assert [(r.reference, r.resolution_px, r.purpose, r.line_of_sight, r.bands) for r in rows] == [
        ("R1", 1920, "recognise", True, 4), ("R2", None, None, True, 0)]
    r1 = (await db.execute(text("SELECT id FROM camera WHERE reference = 'R1'"))).scalar_one()
    assert not await covers(db, r1, 40, 2)


async def test_helsinki_cameras_never_see_into_or_through_buildings(settings, make_caller, db):
    """Real geography: every OpenStreetMap camera's coverage after the import stays out of every
    building, and a camera put in a street canyon does not list a point behind the buildings."""
    caller = await make_caller("los-helsinki")
    result = await import_osm(settings, bundled_helsinki(), caller.slug, Console(file=io.StringIO()))
    assert result.coverage_cameras == result.cameras > 100
    inside = (await db.execute(text("""
        SELECT count(*) AS cameras, coalesce(sum(overlap), 0) AS overlap, sum(area) AS area FROM (
            SELECT ST_Area(ST_Transform(cc.geom, 32635)) AS area,
                   (SELECT coalesce(sum(ST_Area(ST_Intersection(ST_Transform(cc.geom, 32635),
                                                                ST_Transform(b.geom, 32635)))), 0)
                    FROM building b WHERE b.partnership_id = cc.partnership_id AND b.geom && cc.geom) AS overlap
            FROM camera_coverage cc WHERE cc.partnership_id = :p AND cc.line_of_sight) AS s
    """), {"p": caller.partnership_id})).one()
    assert inside.cameras == result.cameras
    assert inside.overlap < 1e-4 * inside.area

    # A spot in the middle of a street with a building 3-12 m away; the camera faces into the
    # building, and the target is 10 m beyond the building's far wall on the same sight line,
    # outside every building, within range: a straight line to it crosses the building.
    spot = (await db.execute(text("""
        WITH s AS (
            SELECT ST_Transform(ST_LineInterpolatePoint(geom, 0.5), 32635) AS p
            FROM street WHERE partnership_id = :p AND highway IN ('residential', 'tertiary', 'secondary',
                                                                  'pedestrian', 'living_street')),
        aim AS (
            SELECT s.p, b.g, ST_Azimuth(s.p, ST_PointOnSurface(b.g)) AS az
            FROM s JOIN LATERAL (
                SELECT ST_Transform(b.geom, 32635) AS g FROM building b WHERE b.partnership_id = :p
                ORDER BY ST_Transform(b.geom, 32635) <-> s.p LIMIT 1) b ON true
            WHERE ST_Distance(s.p, b.g) BETWEEN 3 AND 12
              AND NOT EXISTS (SELECT 1 FROM building o WHERE o.partnership_id = :p
                              AND ST_Intersects(ST_Transform(o.geom, 32635), ST_Buffer(s.p, 2)))),
        target AS (
            SELECT a.*, ST_Translate(a.p, sin(a.az) * d.far, cos(a.az) * d.far) AS t
            FROM aim a, LATERAL (SELECT ST_MaxDistance(a.p, ST_Intersection(ST_MakeLine(a.p,
                        ST_Translate(a.p, sin(a.az) * 300, cos(a.az) * 300)), a.g)) + 10 AS far) d)
        SELECT ST_X(ST_Transform(p, 4326)) AS lon, ST_Y(ST_Transform(p, 4326)) AS lat,
               degrees(az) AS bearing, ST_X(ST_Transform(t, 4326)) AS tlon, ST_Y(ST_Transform(t, 4326)) AS tlat
        FROM target
        WHERE ST_Distance(p, t) < 140
          AND ST_Length(ST_Intersection(ST_MakeLine(p, t), g)) > 3
          AND NOT EXISTS (SELECT 1 FROM building o WHERE o.partnership_id = :p
                          AND ST_DWithin(ST_Transform(o.geom, 32635), t, 1))
        ORDER BY p LIMIT 1
    """), {"p": caller.partnership_id})).one()
    cid = await camera(db, caller.partnership_id, "CANYON", (spot.lon, spot.lat), bearing=spot.bearing % 360,
                       fov=60, range_m=150, source="register")
    async with raw_connection(settings) as conn:
        async with conn.transaction():
            await refresh_coverage(conn, caller.partnership_id, [cid])
    seen = (await db.execute(text(
        "SELECT ST_Covers(geom, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)) FROM camera_coverage "
        "WHERE camera_id = :id"), {"lon": spot.tlon, "lat": spot.tlat, "id": cid})).scalar_one()
    assert not seen  # behind the building
    plain = math.pi * 150 ** 2 / 6
    area = (await db.execute(text("SELECT ST_Area(ST_Transform(geom, 32635)) FROM camera_coverage "
                                  "WHERE camera_id = :id"), {"id": cid})).scalar_one()
    assert area < 0.5 * plain


# Cameras inserted straight into the table (so the trigger's plain wedge is kept, not cut to line of
# sight): (type, bearing, fov, range_m, height_m, resolution_px, purpose).
PLAIN_CASES = [
    ("fixed", 30, None, None, 5, None, None),          # the type's angle, 7 m per metre of height
    ("anpr", None, None, None, None, None, None),      # no bearing: a disc; no height: the assumed one
    ("dome", None, None, None, 0, None, None),         # a height of 0 is not known either
    ("ptz", 120, None, 25, 6, None, None),             # a disc of the given range
    ("fixed", 90, 60, None, 4, 1920, None),            # from the resolution, at detect density
    ("redeployable", 200, 80, None, 4, 2560, "recognise"),
    ("fixed", 10, 190, None, 4, 4000, "observe"),      # a fisheye: pixels spread over the angle
    ("fixed", 10, 40, 30, 8, 4000, "identify"),        # a given range caps every band
]
INSERT_PLAIN = text("""
    INSERT INTO camera (partnership_id, reference, geom, camera_type, bearing, fov, range_m, height_m,
                        resolution_px, purpose)
    VALUES (:p, :reference, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), :camera_type, :bearing, :fov, :range_m,
            :height_m, :resolution_px, :purpose)
    RETURNING id
""")


async def test_the_camera_rule_is_the_one_the_trigger_draws_by(make_caller, db):
    """app.analysis.camera_rule reads the rule's numbers from SQL (safermap_camera_rule), and the
    trigger's stored coverage follows those numbers; plain_coverage() gives what the trigger stores."""
    rule = await camera_rule(db)
    assert rule.as_json() == json.loads((await db.execute(text("SELECT safermap_camera_rule()::text"))).scalar_one())
    assert rule.fov_deg_by_type["fixed"] == 57 and rule.fov_deg_by_type["dome"] == 360
    assert rule.range_m_per_height_m == 7 and rule.assumed_height_m == 4
    assert rule.density_px_per_m == {"detect": 25, "observe": 62.5, "recognise": 125, "identify": 250}

    caller = await make_caller(role="admin")
    for i, (kind, bearing, fov, range_m, height_m, px, purpose) in enumerate(PLAIN_CASES):
        values = dict(camera_type=kind, bearing=bearing, fov=fov, range_m=range_m, height_m=height_m,
                      resolution_px=px, purpose=purpose)
        cid = (await db.execute(INSERT_PLAIN, {"p": caller.partnership_id, "reference": f"P{i}", "lon": LON,
                                               "lat": LAT, **values})).scalar_one()
        stored = (await db.execute(COVERAGE, {"id": cid})).one()
        stored_fov = (await db.execute(text("SELECT fov FROM camera_coverage WHERE camera_id = :id"),
                                       {"id": cid})).scalar_one()
        # The numbers, worked out here from the rule as read by Python.
        eff_fov = 360 if bearing is None else (fov or rule.fov_deg_by_type[kind])
        if px is None:
            bands = {}
        else:
            half = math.radians(eff_fov) / 2
            bands = {b: round(min(px / (d * 2 * math.tan(half)) if eff_fov < rule.fisheye_from_fov_deg
                                  else px / (d * math.radians(eff_fov)), range_m or rule.max_range_m), 2)
                     for b, d in rule.density_px_per_m.items()}
        expected_range = range_m or bands.get(purpose or rule.purpose_when_unknown) \
            or rule.range_m_per_height_m * (height_m or rule.assumed_height_m)
        assert stored_fov == eff_fov, values
        assert stored.range_m == pytest.approx(expected_range, abs=0.011), values  # (2 decimals)
        assert stored.bands == pytest.approx(bands, abs=0.011), values
        assert stored.line_of_sight is False
        assert stored.assumed is ((range_m is None and px is None) or (fov is None and eff_fov < 360)
                                  or (bearing is None and rule.fov_deg_by_type[kind] < 360)), values
        # ...and the preview's way in gives the same coverage.
        preview = await plain_coverage(db, lon=LON, lat=LAT, srid=27700, **values)
        assert (preview.fov, preview.range_m, preview.bands, preview.assumed) == \
            (stored_fov, stored.range_m, stored.bands, stored.assumed)
        area = (await db.execute(text("SELECT ST_Area(ST_Transform(ST_GeomFromGeoJSON(:g), 27700))"),
                                 {"g": preview.geojson})).scalar_one()
        assert area == pytest.approx(stored.area, rel=1e-4)
        sector = eff_fov / 360 * math.pi * expected_range ** 2
        assert stored.area == pytest.approx(sector, rel=0.01)
    await db.rollback()
