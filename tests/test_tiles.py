"""Vector tiles, TileJSON and the tile list, decoded with the independent mapbox_vector_tile."""
from __future__ import annotations

import math
import re
from datetime import date

import mapbox_vector_tile
import pytest
from sqlalchemy import create_engine, text

from app.catalog import Catalog
from app.roles import Role
from app.settings import ROOT, to_sync_url
from app.tiles import grid
from app.tiles.cache import Body, TileCache
from app.tiles.grid import Tile
from app.tiles.sql import Plan, TileFilters, lonlat_to_tile, tile_params, tile_sql

MVT = "application/vnd.mapbox-vector-tile"
LON, LAT = -2.2426, 53.4808  # Manchester


def decode(body: bytes) -> dict:
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})


def to_lonlat(z: int, x: int, y: int, px: float, py: float, extent: int = 4096) -> tuple[float, float]:
    """Lon/lat of a point in tile coordinates (origin at the tile's top left)."""
    left, bottom, right, top = grid.mercator_bounds(Tile(x, y, z))
    at = grid.TMS.lnglat(left + px / extent * (right - left), top - py / extent * (top - bottom))
    return at.x, at.y


def camera_body(lon: float, lat: float, ref: str = "C1", bearing: float = 90) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"reference": ref, "bearing": bearing, "fov": 60, "range_m": 50,
                           "camera_type": "fixed"}}


async def add_incidents(db, partnership_id: int, rows: list[tuple[float, float, str, str, int]]) -> int:
    """rows: (lon, lat, category, month 'YYYY-MM', how many). Returns the dataset id."""
    ds = (await db.execute(text(
        "INSERT INTO dataset (partnership_id, source_key, name, kind) VALUES (:p, 'police-uk:test', 'Test', "
        "'police_uk') ON CONFLICT (partnership_id, source_key) DO UPDATE SET name = EXCLUDED.name RETURNING id"),
        {"p": partnership_id})).scalar_one()
    for lon, lat, cat, month, n in rows:
        await db.execute(text(
            "INSERT INTO incident (partnership_id, dataset_id, category, month, geom, location_text, lsoa_name) "
            "SELECT :p, :d, :c, CAST(:m || '-01' AS date), ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), "
            "'On or near Market Street', 'Manchester 054C' FROM generate_series(1, :n)"),
            {"p": partnership_id, "d": ds, "c": cat, "m": month, "lon": lon, "lat": lat, "n": n})
    await db.commit()
    return ds


async def get_tile(client, caller, layer: str, z: int, lon: float, lat: float, **kw):
    x, y = lonlat_to_tile(lon, lat, z)
    return await client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", headers={**caller.headers, **kw.pop("headers", {})},
                            **kw), (z, x, y)


# -- cameras and coverage --------------------------------------------------------------------------
async def test_camera_tile_carries_the_catalog_fields(client, make_caller, app):
    admin = await make_caller("csp-a", "admin")
    viewer = await make_caller("csp-a", "viewer")
    created = (await client.post("/api/cameras", json=camera_body(LON, LAT), headers=admin.headers)).json()
    r, _ = await get_tile(client, viewer, "cameras", 16, LON, LAT)
    assert r.status_code == 200
    assert r.headers["content-type"] == MVT
    assert r.headers["cache-control"].startswith("private")
    assert "must-revalidate" in r.headers["cache-control"]
    assert "Authorization" in r.headers["vary"]
    tile = decode(r.content)
    assert list(tile) == ["cameras"]
    [feat] = tile["cameras"]["features"]
    assert feat["id"] == created["id"]
    fields = set(app.state.catalog.get("cameras").fields)
    assert set(feat["properties"]) <= fields  # MVT has no null: unset fields are simply absent
    assert feat["properties"]["reference"] == "C1"
    assert feat["properties"]["bearing"] == 90
    assert feat["properties"]["camera_type"] == "fixed"
    assert feat["geometry"]["type"] == "Point"


async def test_coverage_wedge_follows_its_camera(client, make_caller):
    admin = await make_caller("csp-a", "admin")
    z = 16  # a tile ~370 m across: the whole 50 m wedge fits when the camera sits mid-tile
    x, y = lonlat_to_tile(LON, LAT, z)
    lon0, lat0 = to_lonlat(z, x, y, 2048, 2048)
    cam = (await client.post("/api/cameras", json=camera_body(lon0, lat0), headers=admin.headers)).json()

    async def wedge():
        r = await client.get(f"/tiles/coverage/{z}/{x}/{y}.mvt", headers=admin.headers)
        if r.status_code == 204:
            return None, r.headers["etag"]
        [feat] = decode(r.content)["coverage"]["features"]
        assert feat["id"] == cam["id"] and feat["properties"]["reference"] == "C1"
        assert feat["geometry"]["type"] == "Polygon"
        return [to_lonlat(z, x, y, px, py) for px, py in feat["geometry"]["coordinates"][0]], r.headers["etag"]

    def check_east_of(ring, lon, lat):
        lons, lats = [p[0] for p in ring], [p[1] for p in ring]
        # bearing 90, range 50 m: the wedge opens east, ~0.00075 degrees of longitude here
        assert min(lons) == pytest.approx(lon, abs=2e-5)
        assert max(lons) == pytest.approx(lon + 50 / (111_320 * math.cos(math.radians(lat))), abs=5e-5)
        assert min(lats) < lat < max(lats)

    ring, tag1 = await wedge()
    check_east_of(ring, lon0, lat0)

    moved = lon0 + 0.001
    r = await client.patch(f"/api/cameras/{cam['id']}", headers=admin.headers,
                           json={"geometry": {"type": "Point", "coordinates": [moved, lat0]},
                                 "properties": {"version": 1}})
    assert r.status_code == 200, r.text
    ring2, tag2 = await wedge()
    assert tag2 != tag1
    check_east_of(ring2, moved, lat0)

    assert (await client.delete(f"/api/cameras/{cam['id']}", headers=admin.headers)).status_code == 204
    gone, tag3 = await wedge()
    assert gone is None and tag3 not in (tag1, tag2)


async def test_if_none_match_answers_304_and_changes_invalidate(client, make_caller, app):
    admin = await make_caller("csp-a", "admin")
    await client.post("/api/cameras", json=camera_body(LON, LAT), headers=admin.headers)
    r, _ = await get_tile(client, admin, "cameras", 16, LON, LAT)
    tag = r.headers["etag"]
    assert tag.startswith('"') and not tag.startswith("W/")
    again, _ = await get_tile(client, admin, "cameras", 16, LON, LAT, headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    weak, _ = await get_tile(client, admin, "cameras", 16, LON, LAT, headers={"If-None-Match": f'"x", W/{tag}'})
    assert weak.status_code == 304
    hits = app.state.tiles.cache.hits
    cached, _ = await get_tile(client, admin, "cameras", 16, LON, LAT)
    assert cached.content == r.content and app.state.tiles.cache.hits == hits + 1
    # another camera far away in the same partnership still changes the data version
    await client.post("/api/cameras", json=camera_body(LON + 1, LAT, "C2"), headers=admin.headers)
    after, _ = await get_tile(client, admin, "cameras", 16, LON, LAT, headers={"If-None-Match": tag})
    assert after.status_code == 200 and after.headers["etag"] != tag


async def test_other_partnership_sees_nothing(client, make_caller):
    a = await make_caller("csp-a", "admin")
    b = await make_caller("csp-b", "admin")
    await client.post("/api/cameras", json=camera_body(LON, LAT), headers=a.headers)
    mine, _ = await get_tile(client, a, "cameras", 16, LON, LAT)
    theirs, _ = await get_tile(client, b, "cameras", 16, LON, LAT)
    assert mine.status_code == 200
    assert theirs.status_code == 204 and theirs.content == b""
    assert theirs.headers["etag"] != mine.headers["etag"]
    cov, _ = await get_tile(client, b, "coverage", 18, LON, LAT)
    assert cov.status_code == 204


# -- incidents -------------------------------------------------------------------------------------
async def test_low_zoom_cells_count_every_incident(client, make_caller, db):
    caller = await make_caller("csp-a", "viewer")
    rows = [(LON, LAT, "Burglary", "2024-01", 500),           # many incidents on one snapped point
            (LON, LAT, "Drugs", "2024-01", 20),
            (LON + 0.01, LAT + 0.005, "Robbery", "2024-02", 7),
            (LON - 0.02, LAT - 0.01, "Shoplifting", "2024-03", 3)]
    await add_incidents(db, caller.partnership_id, rows)
    r, (z, x, y) = await get_tile(client, caller, "incidents", 12, LON, LAT)
    assert r.status_code == 200
    feats = decode(r.content)["incidents"]["features"]
    assert sum(f["properties"]["count"] for f in feats) == 530
    assert len(feats) <= (256 // 16) ** 2
    big = max(feats, key=lambda f: f["properties"]["count"])
    assert big["properties"] == {"count": 520, "top_category": "Burglary"}
    lon, lat = to_lonlat(z, x, y, *big["geometry"]["coordinates"])
    assert abs(lon - LON) < 0.001 and abs(lat - LAT) < 0.001
    # cells partition tiles: the four children count the same incidents, each exactly once
    total = 0
    for cx, cy in ((2 * x, 2 * y), (2 * x + 1, 2 * y), (2 * x, 2 * y + 1), (2 * x + 1, 2 * y + 1)):
        child = await client.get(f"/tiles/incidents/13/{cx}/{cy}.mvt", headers=caller.headers)
        if child.status_code == 200:
            total += sum(f["properties"]["count"] for f in decode(child.content)["incidents"]["features"])
    assert total == 530


async def test_high_zoom_ships_each_incident_with_its_fields(client, make_caller, db, app):
    caller = await make_caller("csp-a", "viewer")
    await add_incidents(db, caller.partnership_id, [(LON, LAT, "Burglary", "2024-01", 3),
                                                    (LON, LAT, "Drugs", "2024-02", 2)])
    r, _ = await get_tile(client, caller, "incidents", 16, LON, LAT)
    feats = decode(r.content)["incidents"]["features"]
    assert len(feats) == 5
    assert len({f["id"] for f in feats}) == 5
    fields = set(app.state.catalog.get("incidents").fields)
    for f in feats:
        assert set(f["properties"]) <= fields
        assert f["properties"]["dataset"] == "police-uk:test"
        assert f["properties"]["location_text"] == "On or near Market Street"
    assert sorted(f["properties"]["month_label"] for f in feats) == ["2024-01"] * 3 + ["2024-02"] * 2


async def test_filters_change_content_and_etag(client, make_caller, db):
    caller = await make_caller("csp-a", "viewer")
    await add_incidents(db, caller.partnership_id, [(LON, LAT, "Burglary", "2024-01", 4),
                                                    (LON, LAT, "Drugs", "2024-02", 2),
                                                    (LON, LAT, "Robbery", "2024-03", 1)])

    async def counts(params, z=12):
        r, _ = await get_tile(client, caller, "incidents", z, LON, LAT, params=params)
        if r.status_code == 204:
            return 0, r.headers["etag"]
        feats = decode(r.content)["incidents"]["features"]
        return (sum(f["properties"]["count"] for f in feats) if z <= 15 else len(feats)), r.headers["etag"]

    everything, tag_all = await counts({})
    assert everything == 7
    burglary, tag_b = await counts({"category": "Burglary"})
    assert burglary == 4 and tag_b != tag_all
    both, tag_bd = await counts([("category", "Burglary"), ("category", "Drugs")])
    same, tag_same = await counts({"category": "Drugs,Burglary"})
    assert both == same == 6 and tag_bd == tag_same  # repeatable or comma-separated: one filter
    feb_on, tag_feb = await counts({"from": "2024-02"})
    assert feb_on == 3 and tag_feb != tag_all
    to_feb, _ = await counts({"to": "2024-02"})            # a month as upper bound includes it
    assert to_feb == 6
    only_feb, _ = await counts({"from": "2024-02-01", "to": "2024-02-29"}, z=16)
    assert only_feb == 2
    none, _ = await counts({"category": "Nothing like this"})
    assert none == 0
    bad = await client.get("/tiles/incidents/12/0/0.mvt", params={"from": "2024-13"}, headers=caller.headers)
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    backwards = await client.get("/tiles/incidents/12/0/0.mvt", params={"from": "2024-03", "to": "2024-01"},
                                 headers=caller.headers)
    assert backwards.status_code == 400


async def test_tile_query_uses_the_spatial_index(database_url, make_caller):
    caller = await make_caller("csp-a", "viewer")
    catalog = Catalog.load(ROOT / "layers")
    layer = catalog.get("incidents")
    # Deterministic whatever the statistics say: as the tables' owner, in a transaction rolled back,
    # drop the btree indexes and turn sequential scans off. Then only a filter that the GiST index
    # can serve avoids the (disabled) sequential scan; one that transformed the column would not.
    owner = create_engine(to_sync_url(database_url))
    try:
        for clustered in (True, False):
            sql = tile_sql(layer, Plan(cells=clustered, filters=(date(2024, 1, 1), date(2024, 2, 29), True)))
            access = {"p": caller.partnership_id, "role": "admin", "agency": None, "level_cap": "exact"}
            params = tile_params(layer, Tile(8090, 5300, 14), access, cells=16 if clustered else None,
                                 filters=TileFilters(date(2024, 1, 1), date(2024, 2, 29), ("Burglary",)))
            params = {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
            with owner.connect() as conn:
                conn.execute(text("DROP INDEX incident_dataset_month_idx, incident_partnership_month_idx"))
                conn.execute(text("SET LOCAL enable_seqscan = off"))
                plan = "\n".join(r[0] for r in conn.execute(text("EXPLAIN " + sql), params).all())
                conn.rollback()
            # (a partition's copy of it: incident is partitioned by data set and month, migration 0018)
            assert re.search(r"incident\w*_geom_idx", plan), plan
    finally:
        owner.dispose()


# -- access and bad requests -----------------------------------------------------------------------
async def test_role_below_least_role_is_refused(client, make_caller, app):
    viewer = await make_caller("csp-a", "viewer")
    analyst = await make_caller("csp-a", "analyst")
    original = app.state.catalog
    secret = original.get("cameras").model_copy(update={"id": "secret_cameras", "least_role": Role.analyst})
    app.state.catalog = Catalog({**original.layers, "secret_cameras": secret}, original.fingerprint + "x")
    try:
        r = await client.get("/tiles/secret_cameras/16/0/0.mvt", headers=viewer.headers)
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
        assert (await client.get("/tiles/secret_cameras.json", headers=viewer.headers)).status_code == 403
        listed = [l["id"] for l in (await client.get("/tiles", headers=viewer.headers)).json()["layers"]]
        assert "secret_cameras" not in listed and "cameras" in listed
        ok = await client.get("/tiles/secret_cameras/16/0/0.mvt", headers=analyst.headers)
        assert ok.status_code == 204
        listed = [l["id"] for l in (await client.get("/tiles", headers=analyst.headers)).json()["layers"]]
        assert "secret_cameras" in listed
    finally:
        app.state.catalog = original


@pytest.mark.parametrize("path,status", [
    ("/tiles/cameras/25/0/0.mvt", 400),
    ("/tiles/cameras/16/70000/0.mvt", 400),
    ("/tiles/cameras/3/0/8.mvt", 400),
    ("/tiles/cameras/-1/0/0.mvt", 400),
    ("/tiles/cameras/a/b/c.mvt", 422),
    ("/tiles/nowhere/16/0/0.mvt", 404),
    ("/tiles/nowhere.json", 404),
    ("/tiles/cameras/16/0/0.pbf", 404),
])
async def test_bad_tile_requests_are_clear_problems(client, make_caller, path, status):
    caller = await make_caller("csp-a", "viewer")
    r = await client.get(path, headers=caller.headers)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["detail"]


async def test_tiles_need_a_signed_in_caller(client):
    r = await client.get("/tiles/cameras/16/0/0.mvt")
    assert r.status_code == 401


async def test_outside_zoom_range_is_an_empty_tile(client, make_caller):
    caller = await make_caller("csp-a", "viewer")
    r = await client.get("/tiles/cameras/3/0/0.mvt", headers=caller.headers)  # cameras start at z10
    assert r.status_code == 204 and r.content == b"" and r.headers["etag"]
    again = await client.get("/tiles/cameras/3/0/0.mvt", headers={**caller.headers, "If-None-Match": r.headers["etag"]})
    assert again.status_code == 304


# -- TileJSON and the list -------------------------------------------------------------------------
async def test_tilejson_is_valid_and_bounds_cover_the_data(client, make_caller, db):
    caller = await make_caller("csp-a", "viewer")
    empty = (await client.get("/tiles/incidents.json", headers=caller.headers)).json()
    assert empty["bounds"] == [-180.0, -85.0511, 180.0, 85.0511]
    points = [(LON, LAT, "Burglary", "2024-01", 2), (LON + 0.1, LAT + 0.05, "Drugs", "2024-02", 1)]
    await add_incidents(db, caller.partnership_id, points)
    r = await client.get("/tiles/incidents.json", params={"category": "Burglary,Drugs", "from": "2024-01"},
                         headers=caller.headers)
    assert r.status_code == 200 and r.headers["etag"]
    tj = r.json()
    assert tj["tilejson"] == "3.0.0"
    for key in ("name", "description", "tiles", "minzoom", "maxzoom", "bounds", "center", "vector_layers",
                "attribution"):
        assert key in tj
    assert tj["tiles"][0].startswith("http://testserver/tiles/incidents/{z}/{x}/{y}.mvt?")
    assert "category=Burglary%2CDrugs" in tj["tiles"][0] and "from=2024-01-01" in tj["tiles"][0]
    minx, miny, maxx, maxy = tj["bounds"]
    assert minx <= LON and maxx >= LON + 0.1 and miny <= LAT and maxy >= LAT + 0.05
    assert minx < tj["center"][0] < maxx and tj["minzoom"] <= tj["center"][2] <= tj["maxzoom"]
    [vl] = tj["vector_layers"]
    assert vl["id"] == "incidents" and vl["fields"]["category"] == "String" and vl["fields"]["count"] == "Number"
    only_drugs = (await client.get("/tiles/incidents.json", params={"category": "Drugs"},
                                   headers=caller.headers)).json()
    assert only_drugs["bounds"][0] == pytest.approx(LON + 0.1)
    same = await client.get("/tiles/incidents.json", params={"category": "Burglary,Drugs", "from": "2024-01"},
                            headers={**caller.headers, "If-None-Match": r.headers["etag"]})
    assert same.status_code == 304


async def test_tile_list_shows_layers_with_their_tilejson(client, make_caller):
    caller = await make_caller("csp-a", "viewer")
    body = (await client.get("/tiles", headers=caller.headers)).json()
    by_id = {l["id"]: l for l in body["layers"]}
    assert {"cameras", "coverage", "incidents"} <= set(by_id)
    assert by_id["cameras"]["tilejson"] == "http://testserver/tiles/cameras.json"
    assert by_id["incidents"]["filters"] == ["from", "to", "category"]
    tj = await client.get(by_id["coverage"]["tilejson"].removeprefix("http://testserver"), headers=caller.headers)
    assert tj.json()["vector_layers"][0]["id"] == "coverage"


# -- the tile cache ----------------------------------------------------------------------------------
def test_the_tile_cache_keeps_to_its_entry_and_byte_limits():
    def body(i: int, size: int) -> Body:
        return Body(b"x" * size, f'"{i}"', MVT)

    by_entries = TileCache(max_entries=3, max_bytes=10_000)
    for i in range(5):
        by_entries.put(body(i, 10))
    assert len(by_entries) == 3 and by_entries.get('"0"') is None and by_entries.get('"4"') is not None
    by_bytes = TileCache(max_entries=100, max_bytes=1000)   # SAFERMAP_TILE_CACHE_BYTES
    for i in range(10):
        by_bytes.put(body(i, 200))
    assert by_bytes.bytes <= 1000 and len(by_bytes) == 5
    assert by_bytes.get('"9"') is not None and by_bytes.get('"0"') is None  # least recently used went first
    by_bytes.put(body(99, 300))  # over a quarter of the budget: not kept, nothing evicted for it
    assert by_bytes.get('"99"') is None and len(by_bytes) == 5
    off = TileCache(max_entries=0, max_bytes=1000)           # SAFERMAP_TILE_CACHE_ENTRIES=0 turns it off
    off.put(body(1, 0))
    assert len(off) == 0


def test_the_apps_tile_cache_is_sized_by_its_settings(app, settings):
    cache = app.state.tiles.cache
    assert cache.max_bytes == settings.tile_cache_bytes
    assert cache._lru.maxsize == settings.tile_cache_bytes  # charged in bytes, at least bytes/entries a tile
    assert cache._lru.getsizeof(Body(b"", '"e"', MVT)) == settings.tile_cache_bytes / settings.tile_cache_entries
