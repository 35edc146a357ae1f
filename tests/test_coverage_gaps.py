"""Gap analysis as a control room and a tasking meeting meet it: the figures agree with an
independent computation in shapely (points in or out of the cameras' discs and wedges, street
lengths inside them), planned cameras show their effect side by side, small counts are held back
from a viewer without exact access (whose figures are those of the anonymous points), the tiles
of both layers decode and change with the cameras, partnerships stay apart, bad input is a 4xx."""
from __future__ import annotations

import math
from collections import Counter, defaultdict

import mapbox_vector_tile
import numpy as np
import psycopg
import pytest
from pyproj import Transformer
from shapely.geometry import LineString, Point, Polygon
from shapely.ops import unary_union
from sqlalchemy import text

from app.tiles.sql import lonlat_to_tile
from tests.factories import agency, camera, camera_feature, dataset, incidents, person, streets

LON, LAT = -2.2426, 53.4808  # Manchester; the partnership's metric CRS is 27700
TO_M = Transformer.from_crs(4326, 27700, always_xy=True)
TO_LL = Transformer.from_crs(27700, 4326, always_xy=True)
E0, N0 = TO_M.transform(LON, LAT)
CATEGORIES = ["Burglary", "Robbery", "Vehicle crime", "Anti-social behaviour"]
MARGIN_M = 1.5  # random incidents keep this far from any coverage edge (polygon vs. circle)


def ll(x: float, y: float) -> tuple[float, float]:
    """Metres east/north of the origin -> lon, lat."""
    return TO_LL.transform(E0 + x, N0 + y)


def disc(x: float, y: float, r: float) -> Polygon:
    return Point(x, y).buffer(r, quad_segs=512)


def wedge(x: float, y: float, bearing: float, fov: float, r: float) -> Polygon:
    t = np.radians(bearing - fov / 2 + fov * np.arange(2001) / 2000)
    return Polygon([(x, y), *zip(x + r * np.sin(t), y + r * np.cos(t))])


# Cameras: (reference, x, y, type, bearing, fov, range, status); shapes in metres about the origin.
CAMERAS = [
    ("A", 0, 0, "dome", None, 360, 40, "operational"),
    ("B", 30, 0, "fixed", 90, 90, 50, "operational"),     # overlaps A: the union must not count twice
    ("C", -100, 0, "dome", None, 360, 40, "faulty"),      # not working: covers nothing
    ("D", 0, 100, "dome", None, 360, 40, "planned"),
    ("E", 100, 100, "dome", None, 360, 40, "decommissioned"),
]
SHAPES = {"A": disc(0, 0, 40), "B": wedge(30, 0, 90, 90, 50), "C": disc(-100, 0, 40),
          "D": disc(0, 100, 40), "E": disc(100, 100, 40)}
WORKING = unary_union([SHAPES["A"], SHAPES["B"]])
WITH_PLANNED = unary_union([SHAPES["A"], SHAPES["B"], SHAPES["D"]])
STREETS = [("Market Street", [(-150, 0), (150, 0)]), ("High Street", [(0, -80), (0, 160)]),
           ("Canal Street", [(-150, -60), (120, 150)])]


def scene_camera(ref, x, y, kind, bearing, fov, r, status) -> dict:
    """A camera of the scene (metres about the origin) as the API takes it."""
    props = {"camera_type": kind, "fov": fov, "range_m": r, "status": status}
    if bearing is not None:
        props["bearing"] = bearing
    return camera_feature(ref, ll(x, y), **props)


def random_incidents(seed: int = 7, n: int = 260) -> list[dict]:
    """Incident positions scattered over the scene, none within MARGIN_M of a coverage edge."""
    rng = np.random.default_rng(seed)
    edges = [s.boundary for s in SHAPES.values()]
    out = []
    while len(out) < n:
        x, y = rng.uniform(-150, 150), rng.uniform(-80, 160)
        if any(e.distance(Point(x, y)) < MARGIN_M for e in edges):
            continue
        out.append({"x": x, "y": y, "category": CATEGORIES[int(rng.integers(len(CATEGORIES)))],
                    "month": f"2024-0{int(rng.integers(1, 4))}", "n": int(rng.integers(1, 4)),
                    "lsoa": ("E01000001", "Manchester 001A") if x < 0 else ("E01000002", "Manchester 001B")})
    return out


async def add_incidents(db, pid: int, ds: int, rows: list[dict]) -> None:
    """Scene incidents: dicts of x, y (metres about the origin), category, month, n and lsoa."""
    await incidents(db, pid, ds, [(*ll(r["x"], r["y"]), r["category"], r["month"], r["n"]) for r in rows],
                    lsoa_code=[r["lsoa"][0] for r in rows], lsoa_name=[r["lsoa"][1] for r in rows],
                    location_text="On or near Market Street")


async def add_streets(db, pid: int) -> None:
    await streets(db, pid, {name: [ll(x, y) for x, y in pts] for name, pts in STREETS}, highway="primary")


async def build_scene(client, db, admin) -> list[dict]:
    for cam in CAMERAS:
        r = await client.post("/api/cameras", json=scene_camera(*cam), headers=admin.headers)
        assert r.status_code == 201, r.text
    await add_streets(db, admin.partnership_id)
    rows = random_incidents()
    ds = await dataset(db, admin.partnership_id, "police-uk:test", kind="police_uk")
    await add_incidents(db, admin.partnership_id, ds, rows)
    await incidents(db, admin.partnership_id, ds, [(None, None, "Burglary", "2024-01"),  # two with no location
                                                   (None, None, "Robbery", "2024-02")])
    return rows


def expected(rows: list[dict], coverage, months: set[str] | None = None, cats: set[str] | None = None) -> dict:
    """The figures computed independently: shapely point-in-polygon on the metric positions."""
    tot, by_cat, by_area = Counter(), defaultdict(Counter), defaultdict(Counter)
    for r in rows:
        if (months and r["month"] not in months) or (cats and r["category"] not in cats):
            continue
        inside = coverage.contains(Point(r["x"], r["y"]))
        for c in (tot, by_cat[r["category"]], by_area[r["lsoa"][0]]):
            c["placed"] += r["n"]
            c["covered"] += r["n"] if inside else 0
    return {"totals": tot, "by_category": by_cat, "by_area": by_area}


def street_length(coverage) -> tuple[float, float]:
    lines = [LineString(pts) for _, pts in STREETS]
    return sum(l.length for l in lines), sum(l.intersection(coverage).length for l in lines)


async def test_gap_figures_match_an_independent_shapely_computation(client, db, make_caller):
    admin = await make_caller("gaps-a", "admin")
    rows = await build_scene(client, db, admin)
    r = await client.get("/api/coverage/gaps", params={"planned": "true"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["coverage"]["operational_cameras"] == 2 and body["coverage"]["planned_cameras"] == 1
    assert body["coverage"]["faulty_cameras"] == 1
    assert body["coverage"]["covered_area_m2"] == pytest.approx(WORKING.area, rel=0.01)
    assert body["coverage"]["planned_adds_m2"] == pytest.approx(WITH_PLANNED.area - WORKING.area, rel=0.01)

    for section, shape in (("current", WORKING), ("with_planned", WITH_PLANNED)):
        want = expected(rows, shape)
        assert 20 < want["totals"]["covered"] < want["totals"]["placed"] - 20  # a scene that tells
        got = body[section]
        t = got["totals"]
        assert t["placed"] == want["totals"]["placed"]
        assert t["incidents"] == want["totals"]["placed"] + 2 and t["no_location"] == 2
        assert t["unknown_position"] == 0
        assert t["covered"] == want["totals"]["covered"], section
        assert t["uncovered"] == t["placed"] - t["covered"]
        assert t["share_covered"] == pytest.approx(t["covered"] / t["placed"], abs=1e-4)
        assert {c["category"]: (c["placed"], c["covered"]) for c in got["by_category"]} == {
            cat: (c["placed"], c["covered"]) for cat, c in want["by_category"].items()}
        areas = {a["code"]: (a["placed"], a["covered"]) for a in got["by_area"]["areas"] if a["code"]}
        assert areas == {code: (c["placed"], c["covered"]) for code, c in want["by_area"].items()}
        total_m, covered_m = street_length(shape)
        assert got["streets"]["length_m"] == pytest.approx(total_m, abs=0.5)
        assert got["streets"]["covered_m"] == pytest.approx(covered_m, abs=1.0)
    # planned cameras only ever add
    assert body["with_planned"]["totals"]["covered"] > body["current"]["totals"]["covered"]
    # categories are listed with the most uncovered first
    uncovered = [c["uncovered"] for c in body["current"]["by_category"]]
    assert uncovered == sorted(uncovered, reverse=True)


async def test_filters_by_month_and_category(client, db, make_caller):
    admin = await make_caller("gaps-a", "admin")
    rows = await build_scene(client, db, admin)
    r = await client.get("/api/coverage/gaps", params=[("from", "2024-02"), ("to", "2024-03"),
                                                       ("category", "robbery"), ("category", "Burglary")],
                         headers=admin.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["from"] == "2024-02-01" and body["to"] == "2024-03-31"
    assert body["categories"] == ["Burglary", "Robbery"]
    want = expected(rows, WORKING, months={"2024-02", "2024-03"}, cats={"Burglary", "Robbery"})
    t = body["current"]["totals"]
    assert (t["placed"], t["covered"]) == (want["totals"]["placed"], want["totals"]["covered"])
    assert t["no_location"] == 1  # the Robbery of February without a location
    assert "with_planned" not in body


async def test_densest_uncovered_clusters(client, db, make_caller):
    admin = await make_caller("gaps-a", "admin")
    for cam in CAMERAS:
        await client.post("/api/cameras", json=scene_camera(*cam), headers=admin.headers)
    ds = await dataset(db, admin.partnership_id, "police-uk:test", kind="police_uk")
    lsoa = ("E01000001", "Manchester 001A")
    await add_incidents(db, admin.partnership_id, ds, [
        # a tight group far from any working camera: 9 robberies and 3 burglaries within 10 m
        {"x": -60 + dx, "y": 130 + dy, "category": cat, "month": "2024-01", "n": 3, "lsoa": lsoa}
        for dx, dy, cat in ((0, 0, "Robbery"), (6, 2, "Robbery"), (3, -5, "Robbery"), (-4, 4, "Burglary"))
    ] + [
        # a looser group of 6 at one police.uk point
        {"x": 120, "y": -60, "category": "Vehicle crime", "month": "2024-01", "n": 6, "lsoa": lsoa},
        # as many again inside camera A's disc: covered, so never a gap cluster
        {"x": 5, "y": 5, "category": "Burglary", "month": "2024-01", "n": 20, "lsoa": lsoa},
        # two lone incidents: below min_points
        {"x": -140, "y": -70, "category": "Drugs", "month": "2024-01", "n": 1, "lsoa": lsoa},
        {"x": 140, "y": 150, "category": "Drugs", "month": "2024-01", "n": 1, "lsoa": lsoa},
    ])
    r = await client.get("/api/coverage/gaps", params={"eps_m": 20, "min_points": 5}, headers=admin.headers)
    clusters = r.json()["current"]["clusters"]
    assert [c["count"] for c in clusters] == [12, 6]
    top = clusters[0]
    x, y = TO_M.transform(top["lon"], top["lat"])
    assert math.hypot(x - E0 - (-60 + 5 / 4), y - N0 - (130 + 1 / 4)) < 0.5  # the weighted centre
    assert top["top_category"] == "Robbery" and top["radius_m"] < 10 and top["level"] == "exact"
    # exact cluster centres were shown: audited
    audited = (await db.execute(text(
        "SELECT count(*) FROM audit_event WHERE action = 'view.exact' AND target = 'api/coverage/gaps'"))).scalar_one()
    assert audited == 1


async def test_viewer_without_exact_access_gets_anonymous_points_and_suppressed_counts(client, db, make_caller):
    admin = await make_caller("gaps-a", "admin")
    pid = admin.partnership_id
    await client.post("/api/cameras", json=scene_camera(*CAMERAS[0]), headers=admin.headers)
    await add_streets(db, pid)
    police = await agency(db, pid, "Police", "police")
    crime = await dataset(db, pid, "police-crime", "sanitised", agency_id=police, kind="police_uk")
    council = await dataset(db, pid, "council-asb", "aggregate", kind="police_uk")
    assert (await client.post("/api/sharing/refresh-anonymous-points", headers=admin.headers)).status_code == 200
    lsoa = ("E01000001", "Manchester 001A")
    await add_incidents(db, pid, crime, [
        {"x": 12, "y": 25, "category": "Burglary", "month": "2024-01", "n": 8, "lsoa": lsoa},
        {"x": -70, "y": 45, "category": "Burglary", "month": "2024-01", "n": 9, "lsoa": lsoa},
        {"x": 90, "y": 20, "category": "Robbery", "month": "2024-01", "n": 3, "lsoa": lsoa},  # a small group
    ])
    await add_incidents(db, pid, council, [
        {"x": 0, "y": 10, "category": "Anti-social behaviour", "month": "2024-01", "n": 6, "lsoa": lsoa}])
    viewer = (await person(db, pid, "viewer")).headers

    seen = (await client.get("/api/coverage/gaps", headers=viewer)).json()["current"]
    full = (await client.get("/api/coverage/gaps", headers=admin.headers)).json()["current"]
    cats = {c["category"]: c for c in seen["by_category"]}
    assert cats["Robbery"]["placed"] is None and cats["Robbery"]["covered"] is None
    assert cats["Robbery"]["suppressed"] is True and cats["Robbery"]["share_covered"] is None
    assert {c["category"]: c for c in full["by_category"]}["Robbery"]["placed"] == 3  # the admin sees all
    # the council's rows may only be counted: an unknown position, never placed
    asb = cats["Anti-social behaviour"]
    assert asb["unknown_position"] == 6 and asb["placed"] == 0 and asb["covered"] == 0
    assert seen["totals"]["unknown_position"] == 6 and seen["totals"]["placed"] == 20

    # the viewer's figures are those of the anonymous points it is given, computed independently
    anon = (await db.execute(text(
        "SELECT ST_X(geom_anon), ST_Y(geom_anon), category FROM incident WHERE dataset_id = :d"), {"d": crime})).all()
    covered = Counter()
    for lon, lat, cat in anon:
        x, y = TO_M.transform(lon, lat)
        covered[cat] += SHAPES["A"].contains(Point(x - E0, y - N0))
    assert cats["Burglary"]["placed"] == 17
    want = covered["Burglary"]
    small = lambda n: 0 < n < 5  # noqa: E731
    assert cats["Burglary"]["covered"] == (None if small(want) or small(17 - want) else want)
    # no anonymous point is an exact position: the gap clusters of the viewer never sit on one
    exact = {(round(r["x"], 1), round(r["y"], 1)) for r in [{"x": 12, "y": 25}, {"x": -70, "y": 45}, {"x": 90, "y": 20}]}
    for c in seen["clusters"]:
        x, y = TO_M.transform(c["lon"], c["lat"])
        assert (round(x - E0, 1), round(y - N0, 1)) not in exact
        assert c["level"] == "sanitised"


async def test_partnerships_see_only_their_own_cameras_and_incidents(client, db, make_caller):
    a = await make_caller("gaps-a", "admin")
    b = await make_caller("gaps-b", "admin")
    rows = await build_scene(client, db, a)
    # b puts a camera over a's uncovered incidents: it must not change a's figures
    before = (await client.get("/api/coverage/gaps", headers=a.headers)).json()["current"]["totals"]
    r = await client.post("/api/cameras", json=scene_camera("B1", -100, 100, "dome", None, 360, 80, "operational"),
                          headers=b.headers)
    assert r.status_code == 201
    after = (await client.get("/api/coverage/gaps", headers=a.headers)).json()["current"]["totals"]
    assert after == before and after["covered"] == expected(rows, WORKING)["totals"]["covered"]
    theirs = (await client.get("/api/coverage/gaps", headers=b.headers)).json()
    assert theirs["current"]["totals"]["incidents"] == 0 and theirs["current"]["clusters"] == []
    assert theirs["coverage"]["operational_cameras"] == 1
    assert theirs["current"]["streets"]["length_m"] == 0
    # and their tiles hold nothing of a's: no gaps at all, only their own camera's coverage
    for mx, my in ((0, 0), (-100, 100), (100, 0)):
        gaps, _ = await get_tile(client, b, "gaps", 16, mx, my)
        assert gaps.status_code == 204
        union, key = await get_tile(client, b, "coverage_union", 16, mx, my)
        if union.status_code == 200:
            for f in decode(union.content)["coverage_union"]["features"]:
                assert f["properties"]["kind"] == "working"
                rings = f["geometry"]["coordinates"]
                rings = [r for poly in rings for r in poly] if f["geometry"]["type"] == "MultiPolygon" else rings
                for px, py in (p for ring in rings for p in ring):
                    x, y = TO_M.transform(*tile_lonlat(*key, px, py))
                    assert math.hypot(x - E0 + 100, y - N0 - 100) < 81


def decode(body: bytes) -> dict:
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})


def tile_lonlat(z: int, x: int, y: int, px: float, py: float, extent: int = 4096) -> tuple[float, float]:
    n = 1 << z
    lon = (x + px / extent) / n * 360 - 180
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + py / extent) / n))))
    return lon, lat


async def get_tile(client, caller, layer: str, z: int, mx: float, my: float, **kw):
    x, y = lonlat_to_tile(*ll(mx, my), z)
    return await client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt", headers={**caller.headers, **kw.pop("headers", {})},
                            **kw), (z, x, y)


async def test_gap_and_union_tiles_decode_and_follow_the_cameras(client, db, make_caller):
    admin = await make_caller("gaps-a", "admin")
    rows = await build_scene(client, db, admin)
    uncovered = sum(r["n"] for r in rows if not WORKING.contains(Point(r["x"], r["y"])))

    # low zoom: cells carrying counts, every uncovered incident counted once
    r, (z, x, y) = await get_tile(client, admin, "gaps", 12, 0, 0)
    assert r.status_code == 200, r.text
    cells = decode(r.content)["gaps"]["features"]
    assert sum(c["properties"]["count"] for c in cells) == uncovered
    # high zoom: one feature per uncovered incident, none inside working coverage
    total = 0
    z = 17
    seen_tiles = set()
    for mx, my in ((-100, 0), (100, 0), (-100, 120), (100, 120)):
        r, key = await get_tile(client, admin, "gaps", z, mx, my)
        if key in seen_tiles or r.status_code == 204:
            continue
        seen_tiles.add(key)
        for f in decode(r.content)["gaps"]["features"]:
            lon, lat = tile_lonlat(*key, *f["geometry"]["coordinates"])
            px, py = TO_M.transform(lon, lat)
            assert not WORKING.buffer(-1).contains(Point(px - E0, py - N0))
            assert f["properties"]["level"] == "exact"
            total += 1
    assert total > 0

    # the union: working and planned pieces, drawn where the cameras are
    kinds = set()
    for mx, my in ((-40, -40), (80, -40), (-40, 140), (80, 140)):
        r, key = await get_tile(client, admin, "coverage_union", 16, mx, my)
        assert r.status_code == 200
        feats = decode(r.content)["coverage_union"]["features"]
        assert all(f["geometry"]["type"] in ("Polygon", "MultiPolygon") for f in feats)
        kinds |= {f["properties"]["kind"] for f in feats}
    assert kinds == {"working", "planned"}
    tj = (await client.get("/tiles/coverage_union.json", headers=admin.headers)).json()
    west, south, east, north = tj["bounds"]
    (w0, _s0), (_e0, n0) = ll(-40, -40), ll(80, 140)
    assert west == pytest.approx(w0, abs=1e-4) and north == pytest.approx(n0, abs=1e-4)
    assert (await client.get("/tiles/gaps.json", headers=admin.headers)).status_code == 200

    # ETags change when a camera changes, and the new camera's incidents leave the gaps
    gap_tile, key = await get_tile(client, admin, "gaps", z, -100, 120)
    union_tile, ukey = await get_tile(client, admin, "coverage_union", 16, 0, 0)
    n_before = len(decode(gap_tile.content)["gaps"]["features"])
    r = await client.post("/api/cameras", json=scene_camera("F", -100, 120, "dome", None, 360, 60, "operational"),
                          headers=admin.headers)
    assert r.status_code == 201
    gap_after = await client.get("/tiles/gaps/{}/{}/{}.mvt".format(*key),
                                 headers={**admin.headers, "If-None-Match": gap_tile.headers["etag"]})
    union_after = await client.get("/tiles/coverage_union/{}/{}/{}.mvt".format(*ukey),
                                   headers={**admin.headers, "If-None-Match": union_tile.headers["etag"]})
    assert union_after.status_code == 200 and union_after.headers["etag"] != union_tile.headers["etag"]
    assert gap_after.status_code in (200, 204) and gap_after.headers["etag"] != gap_tile.headers["etag"]
    n_after = len(decode(gap_after.content)["gaps"]["features"]) if gap_after.status_code == 200 else 0
    assert n_after < n_before


async def test_faulty_and_back_again_changes_the_union(client, db, make_caller):
    admin = await make_caller("gaps-a", "admin")
    await build_scene(client, db, admin)
    cams = (await client.get("/api/cameras", headers=admin.headers)).json()["features"]
    a = next(c for c in cams if c["properties"]["reference"] == "A")
    share = lambda: client.get("/api/coverage/gaps", headers=admin.headers)  # noqa: E731
    before = (await share()).json()
    r = await client.patch(f"/api/cameras/{a['id']}", headers=admin.headers,
                           json={"properties": {"status": "faulty", "version": a["properties"]["version"]}})
    assert r.status_code == 200, r.text
    # rebuilt at commit: no cell is left dirty, and the union is fresh before anyone reads it
    fresh = (await db.execute(text(
        "SELECT safermap_coverage_union_fresh(:p), (SELECT count(*) FROM coverage_union_dirty)"),
        {"p": admin.partnership_id})).one()
    assert tuple(fresh) == (True, 0)
    faulty = (await share()).json()
    assert faulty["coverage"]["operational_cameras"] == 1
    assert faulty["coverage"]["covered_area_m2"] == pytest.approx(SHAPES["B"].area, rel=0.01)
    assert faulty["current"]["totals"]["covered"] < before["current"]["totals"]["covered"]


@pytest.mark.parametrize("query", [
    "from=2024-13", "from=yesterday", "from=2024-03&to=2024-01", "eps_m=0", "eps_m=nan", "min_points=1",
    "clusters=1000", "areas=-1", "planned=maybe", "category=" + "x" * 300,
])
async def test_bad_gap_queries_are_clear_problems(client, make_caller, query):
    viewer = await make_caller("gaps-a", "viewer")
    r = await client.get(f"/api/coverage/gaps?{query}", headers=viewer.headers)
    assert 400 <= r.status_code < 500, (query, r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["detail"]


async def test_gaps_need_a_signed_in_caller(client):
    r = await client.get("/api/coverage/gaps")
    assert r.status_code == 401


# -- the union is kept per grid cell: an edit rebuilds only the cells it reaches ------------------------

CELL_M = 250.0  # the grid of migration 0012 (safermap_coverage_cell_m)


async def pieces_by_cell(db, pid: int) -> dict[tuple[int, int], set[int]]:
    rows = (await db.execute(text("SELECT cx, cy, id FROM coverage_union WHERE partnership_id = :p"),
                             {"p": pid})).all()
    out: dict[tuple[int, int], set[int]] = defaultdict(set)
    for cx, cy, piece in rows:
        out[(cx, cy)].add(piece)
    return out


def cells_of_disc(x: float, y: float, r: float) -> set[tuple[int, int]]:
    """The grid cells (27700) whose squares the disc's bounding box reaches; x, y about the origin."""
    x0, x1 = math.floor((E0 + x - r) / CELL_M), math.floor((E0 + x + r) / CELL_M)
    y0, y1 = math.floor((N0 + y - r) / CELL_M), math.floor((N0 + y + r) / CELL_M)
    return {(cx, cy) for cx in range(x0, x1 + 1) for cy in range(y0, y1 + 1)}


async def edit_camera(client, caller, ref: str, props: dict | None = None, at: tuple[float, float] | None = None):
    cams = (await client.get("/api/cameras", headers=caller.headers)).json()["features"]
    cam = next(c for c in cams if c["properties"]["reference"] == ref)
    body: dict = {"properties": {**(props or {}), "version": cam["properties"]["version"]}}
    if at is not None:
        body["geometry"] = {"type": "Point", "coordinates": list(ll(*at))}
    r = await client.patch(f"/api/cameras/{cam['id']}", json=body, headers=caller.headers)
    assert r.status_code == 200, r.text
    return cam["id"]


async def union_state(db, pid: int):
    return (await db.execute(text(
        "SELECT built_at, synced_at, srid, safermap_coverage_union_fresh(:p) AS fresh FROM coverage_union_state "
        "WHERE partnership_id = :p"), {"p": pid})).one()


async def test_one_camera_edit_rebuilds_only_the_cells_it_reaches(client, db, make_caller):
    admin = await make_caller("gaps-a", "admin")
    pid = admin.partnership_id
    for cam in [("NEAR", 0, 0, "dome", None, 360, 40, "operational"),
                ("FAR", 1000, 800, "dome", None, 360, 40, "operational"),
                ("FAR-W", -900, 600, "fixed", 45, 90, 60, "planned")]:
        assert (await client.post("/api/cameras", json=scene_camera(*cam), headers=admin.headers)).status_code == 201
    before = await pieces_by_cell(db, pid)
    state = await union_state(db, pid)
    near = cells_of_disc(0, 0, 40) | cells_of_disc(25, 10, 40)  # where it was and where it goes
    far = {cell for cell in before if cell not in near}
    assert len(far) >= 2 and all(before[c] for c in far)  # the far cameras' pieces are there

    await edit_camera(client, admin, "NEAR", at=(25, 10))
    after = await pieces_by_cell(db, pid)
    for cell in far:  # untouched: the very same rows
        assert after[cell] == before[cell], cell
    rebuilt = {cell for cell in after if cell in near}
    assert rebuilt and all(not (after[c] & before.get(c, set())) for c in rebuilt)
    again = await union_state(db, pid)
    assert again.fresh and again.built_at == state.built_at and again.synced_at > state.synced_at
    # and the moved disc is where the pieces say
    area = (await db.execute(text(
        "SELECT sum(ST_Area(geom_m)), ST_Distance(ST_Centroid(ST_Union(geom_m)), "
        "ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 27700)) FROM coverage_union "
        "WHERE partnership_id = :p AND kind = 'working' AND ST_DWithin(geom_m, "
        "ST_Transform(ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 27700), 45)"),
        {"p": pid, "lon": ll(25, 10)[0], "lat": ll(25, 10)[1]})).one()
    assert area[0] == pytest.approx(disc(0, 0, 40).area, rel=0.01) and area[1] < 0.5


# One piece's geometry for the checks below: each kind's pieces dissolved, and the same union made
# at once from the cameras' own coverage (as the union was before it had a grid).
UNION_CHECK = text("""
    WITH pieces AS (
        SELECT kind, ST_Union(geom_m) AS g FROM coverage_union WHERE partnership_id = :p GROUP BY kind
    ), cams AS (
        SELECT c.status, ST_Transform(cc.geom, 27700) AS g
        FROM camera_coverage cc JOIN camera c ON c.id = cc.camera_id WHERE cc.partnership_id = :p
    ), direct AS (
        SELECT ST_Union(g) FILTER (WHERE status = 'operational') AS working,
               ST_Union(g) FILTER (WHERE status IN ('operational', 'planned')) AS both FROM cams
    )
    SELECT ST_Area(ST_SymDifference((SELECT g FROM pieces WHERE kind = 'working'), d.working)) AS working_diff,
           ST_Area(ST_SymDifference(ST_Union((SELECT g FROM pieces WHERE kind = 'working'),
                                             (SELECT g FROM pieces WHERE kind = 'planned')), d.both)) AS both_diff,
           (SELECT count(*) FROM coverage_union WHERE partnership_id = :p
            AND NOT ST_CoveredBy(geom_m, ST_Expand(safermap_coverage_cell(cx, cy, 27700), 1e-6))) AS outside_cell,
           (SELECT ST_AsBinary(ST_Union(geom_m)) FROM coverage_union WHERE partnership_id = :p AND kind = 'working') AS working,
           (SELECT ST_AsBinary(ST_Union(geom_m)) FROM coverage_union WHERE partnership_id = :p AND kind = 'planned') AS planned
    FROM direct d
""")


async def test_incremental_union_equals_a_full_rebuild_after_many_edits(client, db, make_caller):
    import shapely
    admin = await make_caller("gaps-a", "admin")
    pid = admin.partnership_id
    await build_scene(client, db, admin)
    # cameras on the grid's lines: the nearest grid corner east and north of the origin
    gx, gy = math.ceil(E0 / CELL_M) * CELL_M - E0, math.ceil(N0 / CELL_M) * CELL_M - N0
    for cam in [("G", gx, gy, "dome", None, 360, 60, "operational"),
                ("H", gx - 10, gy - 100, "fixed", 90, 90, 50, "operational")]:
        assert (await client.post("/api/cameras", json=scene_camera(*cam), headers=admin.headers)).status_code == 201

    # a working day of edits: moves, turns, status changes, a new camera, removals
    await edit_camera(client, admin, "B", {"bearing": 45}, at=(60, -30))
    await edit_camera(client, admin, "A", {"status": "faulty"})
    await edit_camera(client, admin, "D", {"status": "operational"})
    cams = {c["properties"]["reference"]: c["id"]
            for c in (await client.get("/api/cameras", headers=admin.headers)).json()["features"]}
    assert (await client.delete(f"/api/cameras/{cams['G']}", headers=admin.headers)).status_code == 204
    r = await client.post("/api/cameras", json=scene_camera("P", gx + 5, gy - 5, "dome", None, 360, 50, "planned"),
                          headers=admin.headers)
    assert r.status_code == 201
    await edit_camera(client, admin, "H", {"status": "decommissioned"})
    await edit_camera(client, admin, "A", {"status": "operational"})
    await edit_camera(client, admin, "A", at=(15, -5))
    await edit_camera(client, admin, "E", {"status": "operational"})
    # two cameras turned in one transaction, straight in SQL (as an import does)
    await db.execute(text("UPDATE camera SET bearing = 200, fov = 120 WHERE partnership_id = :p AND reference IN ('B', 'P')"),
                     {"p": pid})
    await db.commit()
    # a camera kept as its plain wedge (no line of sight): a status change leaves its shape as it was,
    # so only the status decides which set it is in
    await camera(db, pid, "S", ll(-60, 60), bearing=0, fov=60, range_m=45)
    await db.execute(text("UPDATE camera SET status = 'planned' WHERE partnership_id = :p AND reference = 'S'"), {"p": pid})
    await db.commit()

    assert (await union_state(db, pid)).fresh
    check = (await db.execute(UNION_CHECK, {"p": pid})).one()
    # the pieces are the union of the cameras' coverage done at once, each inside its cell
    assert check.working_diff < 1e-3 and check.both_diff < 1e-3 and check.outside_cell == 0
    incremental = (await client.get("/api/coverage/gaps", params={"planned": "true"}, headers=admin.headers)).json()

    state = await union_state(db, pid)
    assert (await db.execute(text("SELECT safermap_refresh_coverage_union(:p, true)"), {"p": pid})).scalar_one() > 0
    await db.commit()
    assert (await union_state(db, pid)).built_at > state.built_at  # it did rebuild every cell
    full = (await client.get("/api/coverage/gaps", params={"planned": "true"}, headers=admin.headers)).json()
    assert full == incremental
    rebuilt = (await db.execute(UNION_CHECK, {"p": pid})).one()
    for kind in ("working", "planned"):
        a, b = shapely.from_wkb(getattr(check, kind)), shapely.from_wkb(getattr(rebuilt, kind))
        assert a.symmetric_difference(b).area < 1e-3, kind
    assert full["current"]["totals"]["covered"] > 0 and full["coverage"]["planned_adds_m2"] > 0


async def test_two_transactions_editing_the_same_cells_both_count(app, client, db, make_caller, database_url):
    """Two camera edits of one partnership in flight at once: each commit rebuilds its cells from
    what is committed by then (the later one queuing behind the earlier on the partnership's rows
    where they meet), so neither overlapping edit is lost, in whichever order they commit."""
    import asyncio
    admin = await make_caller("gaps-a", "admin")
    pid = admin.partnership_id
    await build_scene(client, db, admin)
    move = text("UPDATE camera SET geom = ST_SetSRID(ST_MakePoint(:lon, :lat), 4326) "
                "WHERE partnership_id = :p AND reference = :ref")
    # The second transaction seen from outside: waiting on a lock the first holds.
    blocked = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'"
    second_pid: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def second_edit() -> None:
        async with app.state.sessionmaker() as second:
            second_pid.set_result((await second.execute(text("SELECT pg_backend_pid()"))).scalar_one())
            await second.execute(move, {"p": pid, "ref": "B", **dict(zip(("lon", "lat"), ll(10, -20)))})
            await second.execute(text("UPDATE camera SET status = 'faulty' WHERE partnership_id = :p "
                                      "AND reference = 'B'"), {"p": pid})
            await second.commit()

    async with app.state.sessionmaker() as first:
        await first.execute(move, {"p": pid, "ref": "A", **dict(zip(("lon", "lat"), ll(-20, 10)))})
        waiting = asyncio.create_task(second_edit())
        # The first commits only once the second is under way and queued behind it (or, should the
        # two never meet on a lock, done): both edits are really in flight together, with no sleep.
        other = await asyncio.wait_for(second_pid, 30)
        # Watched as the database owner (the app's role may not read other sessions' waits), one
        # statement a transaction (pg_stat_activity is one snapshot per transaction).
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as watcher:
            while not waiting.done() and not (await (await watcher.execute(blocked, (other,))).fetchone())[0]:
                await asyncio.sleep(0.01)
        queued = not waiting.done()
        await first.commit()
    await asyncio.wait_for(waiting, 30)
    assert queued  # the second edit waited for the first: the partnership's edits are serialised
    check = (await db.execute(UNION_CHECK, {"p": pid})).one()
    assert check.working_diff < 1e-3 and check.both_diff < 1e-3
    area = (await db.execute(text("SELECT sum(ST_Area(geom_m)) FROM coverage_union WHERE partnership_id = :p "
                                  "AND kind = 'working'"), {"p": pid})).scalar_one()
    assert area == pytest.approx(disc(0, 0, 40).area, rel=0.01)  # A alone: B is faulty now
    assert (await union_state(db, pid)).fresh


async def test_a_street_along_a_grid_line_counts_once(client, db, make_caller):
    # Web Mercator puts the Greenwich meridian exactly on x = 0, a grid line: a street running
    # along it lies on the edge between the pieces of two cells.
    admin = await make_caller("gaps-greenwich", "admin", srid=3857)
    pid = admin.partnership_id
    r = await client.post("/api/cameras", headers=admin.headers, json={
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [0.0, 51.4779]},
        "properties": {"reference": "G", "camera_type": "dome", "fov": 360, "range_m": 40}})
    assert r.status_code == 201
    await streets(db, pid, {"Meridian Walk": [(0, 51.4760), (0, 51.4800)]}, highway="footway")
    ds = await dataset(db, pid, "police-uk:greenwich", kind="police_uk")
    await incidents(db, pid, ds, [(0, 51.4779 + k * 0.00004, "Robbery", "2024-01") for k in range(-3, 4)])
    sides = (await db.execute(text(
        "SELECT array_agg(DISTINCT u.cx ORDER BY u.cx) FROM coverage_union u JOIN street s ON s.partnership_id = u.partnership_id "
        "AND ST_Intersects(u.geom_m, ST_Transform(s.geom, 3857)) WHERE u.partnership_id = :p"), {"p": pid})).scalar_one()
    assert sides == [-1, 0]  # the street is on the edge of both cells' pieces
    want = (await db.execute(text(
        "SELECT ST_Length(ST_Intersection(ST_Transform(s.geom, 3857), ST_Transform(cc.geom, 3857))) "
        "FROM street s JOIN camera_coverage cc ON cc.partnership_id = s.partnership_id WHERE s.partnership_id = :p"),
        {"p": pid})).scalar_one()
    body = (await client.get("/api/coverage/gaps", headers=admin.headers)).json()["current"]
    assert want == pytest.approx(80, abs=0.5)
    assert body["streets"]["covered_m"] == pytest.approx(want, abs=0.01)
    # incidents on the line are inside coverage, whichever side's piece holds them
    assert body["totals"]["placed"] == 7 and body["totals"]["covered"] == 7


async def test_a_new_metric_crs_rebuilds_every_cell_at_commit(client, db, make_caller):
    admin = await make_caller("gaps-a", "admin")
    pid = admin.partnership_id
    await build_scene(client, db, admin)
    before = (await client.get("/api/coverage/gaps", headers=admin.headers)).json()["current"]
    old_ids = {i for ids in (await pieces_by_cell(db, pid)).values() for i in ids}
    # UTM 30N also works in metres here; no camera changed, yet the grid moved with the CRS
    await db.execute(text("UPDATE partnership SET srid = 32630 WHERE id = :p"), {"p": pid})
    await db.commit()
    state = await union_state(db, pid)
    assert state.srid == 32630 and state.fresh
    pieces = (await db.execute(text(
        "SELECT id, ST_SRID(geom_m) AS srid, ST_CoveredBy(geom_m, ST_Expand(safermap_coverage_cell(cx, cy, 32630), 1e-6)) "
        "AS in_cell FROM coverage_union WHERE partnership_id = :p"), {"p": pid})).all()
    assert pieces and not ({p.id for p in pieces} & old_ids)
    assert all(p.srid == 32630 and p.in_cell for p in pieces)
    r = await client.get("/api/coverage/gaps", headers=admin.headers)
    assert r.status_code == 200, r.text
    after = r.json()["current"]
    assert after["totals"] == before["totals"]
    assert after["streets"]["length_m"] == pytest.approx(before["streets"]["length_m"], rel=0.002)  # both metric
    assert after["streets"]["covered_m"] == pytest.approx(before["streets"]["covered_m"], rel=0.005)


async def test_the_reading_side_still_rebuilds_a_union_left_behind(client, db, make_caller):
    """A union whose state says another CRS (a commit that skipped the triggers, or a database
    restored from elsewhere) is rebuilt by the first reader."""
    admin = await make_caller("gaps-a", "admin")
    pid = admin.partnership_id
    await build_scene(client, db, admin)
    before = (await client.get("/api/coverage/gaps", headers=admin.headers)).json()["current"]
    await db.execute(text("UPDATE coverage_union_state SET srid = 4326 WHERE partnership_id = :p"), {"p": pid})
    await db.commit()
    assert not (await union_state(db, pid)).fresh
    after = (await client.get("/api/coverage/gaps", headers=admin.headers)).json()["current"]
    assert after == before
    assert (await union_state(db, pid)).srid == 27700
