"""OGC API – Features at /ogc: landing, conformance, collections from the catalog, items with bbox,
datetime, limit and keyset paging, CRS by reference, the sharing rules and the exact-view audit."""
from __future__ import annotations

import pytest
from sqlalchemy import text

from tests import factories

BNG = "http://www.opengis.net/def/crs/EPSG/0/27700"
EPSG4326 = "http://www.opengis.net/def/crs/EPSG/0/4326"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


async def _scene(db, make_caller, role="admin", level="exact", n=25):
    """A partnership with one data set of n incidents spread over three months, and a caller."""
    caller = await make_caller("ogc-csp", role)
    police = await factories.agency(db, caller.partnership_id, "Police", "police")
    ds = await factories.dataset(db, caller.partnership_id, "police-crime", level, agency_id=police,
                                 name="Police crime")
    months = ["2024-01", "2024-02", "2024-03"]
    cats = ["Burglary", "Robbery", "Drugs", "Shoplifting", "Vehicle crime"]
    pts = factories.scattered(n, seed=7)
    ids = await factories.incidents(db, caller.partnership_id, ds,
                                    [(x, y, cats[i % 5], months[i % 3]) for i, (x, y) in enumerate(pts)],
                                    location_text="On or near High Street")
    return caller, ds, ids


async def test_landing_conformance_and_api(client, make_caller):
    caller = await make_caller("ogc-csp", "viewer")
    r = await client.get("/ogc", headers=caller.headers)
    assert r.status_code == 200
    rels = {link["rel"]: link["href"] for link in r.json()["links"]}
    assert {"service-desc", "conformance", "data", "self"} <= set(rels)
    r = await client.get("/ogc/conformance", headers=caller.headers)
    assert "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in r.json()["conformsTo"]
    r = await client.get("/ogc/api", headers=caller.headers)
    assert r.headers["content-type"].startswith("application/vnd.oai.openapi+json")
    limit = next(p for p in r.json()["paths"]["/ogc/collections/{collectionId}/items"]["get"]["parameters"]
                 if p["name"] == "limit")
    assert limit["schema"]["maximum"] == 10_000 and limit["schema"]["default"] == 100


async def test_nothing_without_a_caller(client):
    r = await client.get("/ogc/collections")
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


async def test_collections_follow_the_catalog_and_the_data_sets(client, db, make_caller):
    caller, ds, _ = await _scene(db, make_caller)
    r = await client.get("/ogc/collections", headers=caller.headers)
    assert r.status_code == 200
    cols = {c["id"]: c for c in r.json()["collections"]}
    assert {"incidents", "cameras", "coverage", "streets", "buildings", "gaps", "safe_routes",
            f"dataset-{ds}"} <= set(cols)
    inc = cols["incidents"]
    assert inc["storageCrs"] == CRS84 and BNG in inc["crs"] and EPSG4326 in inc["crs"]
    x0, y0, x1, y1 = inc["extent"]["spatial"]["bbox"][0]
    assert -2.4 < x0 <= x1 < -2.1 and 53.4 < y0 <= y1 < 53.6
    assert inc["extent"]["temporal"]["interval"] == [["2024-01-01T00:00:00Z", "2024-04-01T00:00:00Z"]]


async def test_items_page_by_keyset_completely(client, db, make_caller):
    caller, _, ids = await _scene(db, make_caller, n=25)
    r = await client.get("/ogc/collections/incidents/items", params={"limit": 10}, headers=caller.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    assert r.headers["content-crs"] == f"<{CRS84}>"
    body = r.json()
    assert body["numberMatched"] == 25 and body["numberReturned"] == 10
    seen = [f["id"] for f in body["features"]]
    pages = [body]
    while nxt := next((link["href"] for link in body["links"] if link["rel"] == "next"), None):
        # Rows added meanwhile (above every id so far) are found later; none is skipped or repeated.
        assert "offset" not in nxt
        body = (await client.get(nxt, headers=caller.headers)).json()
        pages.append(body)
        seen += [f["id"] for f in body["features"]]
    assert seen == sorted(ids) and len(pages) == 3
    # prev goes back to exactly the page before
    prev = next(link["href"] for link in pages[2]["links"] if link["rel"] == "prev")
    back = (await client.get(prev, headers=caller.headers)).json()
    assert [f["id"] for f in back["features"]] == [f["id"] for f in pages[1]["features"]]


async def test_inserts_while_paging_are_neither_skipped_nor_repeated(client, db, make_caller):
    caller, ds, ids = await _scene(db, make_caller, n=10)
    r = (await client.get("/ogc/collections/incidents/items", params={"limit": 4}, headers=caller.headers)).json()
    # A row inserted below the cursor's key (a lower id cannot be, with a sequence) and rows above it.
    more = await factories.incidents(db, caller.partnership_id, ds, [(-2.24, 53.48, "Drugs", "2024-02", 3)])
    seen = [f["id"] for f in r["features"]]
    while nxt := next((link["href"] for link in r["links"] if link["rel"] == "next"), None):
        r = (await client.get(nxt, headers=caller.headers)).json()
        seen += [f["id"] for f in r["features"]]
    assert seen == sorted(ids + more)


async def test_a_cursor_for_another_selection_is_refused(client, db, make_caller):
    caller, _, _ = await _scene(db, make_caller)
    r = (await client.get("/ogc/collections/incidents/items", params={"limit": 5}, headers=caller.headers)).json()
    nxt = next(link["href"] for link in r["links"] if link["rel"] == "next")
    r = await client.get(nxt + "&filter=category%3D'Drugs'", headers=caller.headers)
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"


async def test_bbox_datetime_and_crs(client, db, make_caller):
    caller, _, _ = await _scene(db, make_caller, n=30)
    every = (await client.get("/ogc/collections/incidents/items", params={"limit": 1000},
                              headers=caller.headers)).json()["features"]
    west = [f for f in every if f["geometry"]["coordinates"][0] < -2.2426]
    r = (await client.get("/ogc/collections/incidents/items",
                          params={"bbox": "-3,53,-2.2426,54", "limit": 1000}, headers=caller.headers)).json()
    assert {f["id"] for f in r["features"]} == {f["id"] for f in west}
    # the same box in EPSG:4326 is latitude first
    r2 = (await client.get("/ogc/collections/incidents/items", params={
        "bbox": "53,-3,54,-2.2426", "bbox-crs": EPSG4326, "limit": 1000}, headers=caller.headers)).json()
    assert {f["id"] for f in r2["features"]} == {f["id"] for f in west}
    # datetime: an instant names its month; intervals may be open
    feb = (await client.get("/ogc/collections/incidents/items", params={"datetime": "2024-02-15T12:00:00Z"},
                            headers=caller.headers)).json()
    assert feb["numberMatched"] == 10 and {f["properties"]["month_label"] for f in feb["features"]} == {"2024-02"}
    later = (await client.get("/ogc/collections/incidents/items", params={"datetime": "2024-02-10T00:00:00Z/.."},
                              headers=caller.headers)).json()
    assert later["numberMatched"] == 20
    early = (await client.get("/ogc/collections/incidents/items", params={"datetime": "../2024-01-31"},
                              headers=caller.headers)).json()
    assert early["numberMatched"] == 10
    # EPSG:27700: metres, easting first; EPSG:4326: latitude first
    one = every[0]
    lon, lat = one["geometry"]["coordinates"]
    bng = (await client.get(f"/ogc/collections/incidents/items/{one['id']}", params={"crs": BNG},
                            headers=caller.headers))
    assert bng.headers["content-crs"] == f"<{BNG}>"
    e, n = bng.json()["geometry"]["coordinates"]
    assert 370_000 < e < 390_000 and 390_000 < n < 405_000
    from pyproj import Transformer
    ex, nx = Transformer.from_crs(4326, 27700, always_xy=True).transform(lon, lat)
    assert abs(ex - e) < 0.05 and abs(nx - n) < 0.05
    latlon = (await client.get(f"/ogc/collections/incidents/items/{one['id']}", params={"crs": EPSG4326},
                               headers=caller.headers)).json()
    assert latlon["geometry"]["coordinates"] == [lat, lon]
    # a bbox in British National Grid metres
    box = f"{ex - 1},{nx - 1},{ex + 1},{nx + 1}"
    r = (await client.get("/ogc/collections/incidents/items", params={"bbox": box, "bbox-crs": BNG},
                          headers=caller.headers)).json()
    assert one["id"] in {f["id"] for f in r["features"]}


async def test_sharing_levels_apply(client, db, make_caller):
    owner, ds, ids = await _scene(db, make_caller, role="admin", level="sanitised", n=6)
    viewer = await make_caller("ogc-csp", "viewer")
    mine = (await client.get("/ogc/collections/incidents/items", headers=owner.headers)).json()
    assert {f["properties"]["level"] for f in mine["features"]} == {"exact"}
    theirs = (await client.get("/ogc/collections/incidents/items", headers=viewer.headers)).json()
    assert {f["properties"]["level"] for f in theirs["features"]} == {"sanitised"}
    # a data set at aggregate (counts only) or none lists nothing, and has no data-set collection
    await db.execute(text("UPDATE dataset SET sharing_level = 'aggregate' WHERE id = :d"), {"d": ds})
    await db.commit()
    r = (await client.get("/ogc/collections/incidents/items", headers=viewer.headers)).json()
    assert r["numberMatched"] == 0 and r["features"] == []
    cols = (await client.get("/ogc/collections", headers=viewer.headers)).json()["collections"]
    assert f"dataset-{ds}" not in {c["id"] for c in cols}
    assert (await client.get(f"/ogc/collections/dataset-{ds}/items", headers=viewer.headers)).status_code == 404
    # another partnership sees none of it
    other = await make_caller("other-csp", "admin")
    r = (await client.get("/ogc/collections/incidents/items", headers=other.headers)).json()
    assert r["features"] == []
    assert (await client.get(f"/ogc/collections/incidents/items/{ids[0]}", headers=other.headers)).status_code == 404


async def test_exact_views_are_audited(client, db, make_caller):
    owner, ds, ids = await _scene(db, make_caller, n=3)
    r = await client.get(f"/ogc/collections/dataset-{ds}/items", headers=owner.headers)
    assert r.status_code == 200 and r.json()["numberReturned"] == 3
    rows = (await db.execute(text("SELECT target, detail FROM audit_event WHERE action = 'view.exact'"))).all()
    assert [row.target for row in rows] == [f"ogc/collections/dataset-{ds}"]
    assert rows[0].detail["returned"] == 3


async def test_html_pages(client, db, make_caller):
    caller, _, _ = await _scene(db, make_caller, n=3)
    for path in ("/ogc", "/ogc/collections", "/ogc/collections/incidents", "/ogc/collections/incidents/items"):
        r = await client.get(path, params={"f": "html"}, headers=caller.headers)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        assert "<script" not in r.text and "script-src" not in r.headers["content-security-policy"]


async def test_other_layers_are_scoped_to_the_partnership(client, db, make_caller):
    caller = await make_caller("ogc-csp", "viewer")
    other = await make_caller("other-csp", "admin")
    await factories.camera(db, caller.partnership_id, "MINE-1")
    await factories.camera(db, other.partnership_id, "THEIRS-1")
    await db.commit()
    r = (await client.get("/ogc/collections/cameras/items", headers=caller.headers)).json()
    assert [f["properties"]["reference"] for f in r["features"]] == ["MINE-1"]
    assert r["features"][0]["geometry"]["type"] == "Point"


async def test_windows_over_sparse_keys_miss_nothing(client, db, make_caller, monkeypatch):
    """Windows of the key that hold few visible rows (another partnership's rows between, a filter)
    widen until the page is full: every row once, in order, both ways."""
    from app.ogc import paging
    monkeypatch.setattr(paging, "FIRST_WINDOW", 1)
    caller, ds, _ = await _scene(db, make_caller, n=0)
    other = await make_caller("other-csp", "admin")
    ods = await factories.dataset(db, other.partnership_id, "theirs", "exact")
    mine: list[int] = []
    for i in range(12):  # interleaved: theirs, mine, theirs x 5, mine ...
        await factories.incidents(db, other.partnership_id, ods, [(-2.24, 53.48, "Drugs", "2024-01", 1 + i % 5)])
        mine += await factories.incidents(db, caller.partnership_id, ds,
                                          [(-2.24, 53.48, "Drugs" if i % 3 else "Robbery", "2024-01")])
    drugs = [m for i, m in enumerate(mine) if i % 3]
    pages, url = [], "/ogc/collections/incidents/items?limit=3&filter=category%3D'Drugs'"
    while url:
        body = (await client.get(url, headers=caller.headers)).json()
        pages.append([f["id"] for f in body["features"]])
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    assert [i for page in pages for i in page] == drugs and all(len(p) == 3 for p in pages[:-1])
    prev = next(link["href"] for link in body["links"] if link["rel"] == "prev")
    back = (await client.get(prev, headers=caller.headers)).json()
    assert [f["id"] for f in back["features"]] == pages[-2]


async def test_incident_cells_count_what_may_be_counted_and_hold_back_small_counts(client, db, make_caller):
    """A viewer whose data set is shared at aggregate lists no incidents but gets squares with counts;
    a square of fewer than the threshold is left out; the owner (exact) sees every square."""
    owner = await make_caller("ogc-csp", "admin")
    ds = await factories.dataset(db, owner.partnership_id, "police-crime", "aggregate")
    # 6 incidents at one place, 2 at another 2 km away (below the default threshold of 5)
    await factories.incidents(db, owner.partnership_id, ds, [(-2.2426, 53.4808, "Drugs", "2024-01", 6),
                                                             (-2.2126, 53.4808, "Robbery", "2024-02", 2)])
    viewer = await make_caller("ogc-csp", "viewer")
    assert (await client.get("/ogc/collections/incidents/items", headers=viewer.headers)).json()["features"] == []
    r = await client.get("/ogc/collections/incident_cells/items", headers=viewer.headers)
    assert r.status_code == 200
    body = r.json()
    assert [f["properties"]["count"] for f in body["features"]] == [6]
    assert body["features"][0]["geometry"]["type"] == "Polygon"
    one = body["features"][0]["id"]
    assert (await client.get(f"/ogc/collections/incident_cells/items/{one}", headers=viewer.headers)).json()[
        "properties"]["count"] == 6
    # a category filter leaves 0 in the first square and 2 in the second: both held back
    r = (await client.get("/ogc/collections/incident_cells/items", params={"filter": "category = 'Robbery'"},
                          headers=viewer.headers)).json()
    assert r["features"] == []
    mine = (await client.get("/ogc/collections/incident_cells/items", headers=owner.headers)).json()
    assert sorted(f["properties"]["count"] for f in mine["features"]) == [2, 6]
    # bbox selects whole squares, in British National Grid too
    r = (await client.get("/ogc/collections/incident_cells/items",
                          params={"bbox": "-2.2427,53.4807,-2.2425,53.4809", "crs": BNG},
                          headers=owner.headers)).json()
    assert [f["properties"]["count"] for f in r["features"]] == [6]
    xs = [x for x, _ in r["features"][0]["geometry"]["coordinates"][0]]
    assert max(xs) - min(xs) == 250
    assert not (await db.execute(text("SELECT count(*) FROM audit_event WHERE action = 'view.exact'"))).scalar_one()


async def test_a_page_read_ahead_is_not_served_after_a_sharing_change(client, app, db, make_caller):
    """A client that follows next links gets the following page read ahead; a change committed
    before it asks for that page (here the data set is no longer shared exactly) still applies."""
    owner, ds, ids = await _scene(db, make_caller, role="admin", n=9)
    viewer = await make_caller("ogc-csp", "viewer")  # the data set's own level: exact
    first = (await client.get("/ogc/collections/incidents/items", params={"limit": 3},
                              headers=viewer.headers)).json()
    second_url = next(link["href"] for link in first["links"] if link["rel"] == "next")
    second = (await client.get(second_url, headers=viewer.headers)).json()
    assert {f["properties"]["level"] for f in first["features"] + second["features"]} == {"exact"}
    await app.state.ogc_ahead.settle()  # the third page has been read ahead, at level exact
    await db.execute(text("UPDATE dataset SET sharing_level = 'sanitised' WHERE id = :d"), {"d": ds})
    await db.commit()
    third_url = next(link["href"] for link in second["links"] if link["rel"] == "next")
    third = (await client.get(third_url, headers=viewer.headers)).json()
    assert third["features"] and {f["properties"]["level"] for f in third["features"]} == {"sanitised"}
    # With nothing changed, pages read ahead are the pages read on the spot: every row once, in order.
    seen, url = [], "/ogc/collections/incidents/items?limit=2"
    while url:
        body = (await client.get(url, headers=owner.headers)).json()
        seen += [f["id"] for f in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    assert seen == sorted(ids)


async def test_extents_of_incidents_cells_and_data_sets_follow_what_each_lists(client, db, make_caller):
    """incidents and dataset-N span the rows shown one by one; incident_cells also those only counted."""
    owner = await make_caller("ogc-csp", "admin")
    shown = await factories.dataset(db, owner.partnership_id, "shown", "exact")
    counted = await factories.dataset(db, owner.partnership_id, "counted", "aggregate")
    await factories.incidents(db, owner.partnership_id, shown, [(-2.30, 53.45, "Drugs", "2024-01"),
                                                                 (-2.25, 53.48, "Drugs", "2024-02")])
    await factories.incidents(db, owner.partnership_id, counted, [(-2.05, 53.55, "Robbery", "2024-05", 6)])
    await db.commit()
    viewer = await make_caller("ogc-csp", "viewer")
    cols = {c["id"]: c["extent"] for c in
            (await client.get("/ogc/collections", headers=viewer.headers)).json()["collections"]}
    assert f"dataset-{counted}" not in cols
    for cid in ("incidents", f"dataset-{shown}"):
        assert cols[cid]["spatial"]["bbox"][0] == pytest.approx([-2.30, 53.45, -2.25, 53.48], abs=1e-6), cid
        assert cols[cid]["temporal"]["interval"] == [["2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z"]], cid
    x0, y0, x1, y1 = cols["incident_cells"]["spatial"]["bbox"][0]
    assert [x0, y0] == pytest.approx([-2.30, 53.45], abs=1e-6) and -2.1 < x1 < -2.0 and 53.5 < y1 < 53.6  # the counted rows' anonymous point
    assert cols["incident_cells"]["temporal"]["interval"] == [["2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z"]]
    single = (await client.get(f"/ogc/collections/dataset-{shown}", headers=viewer.headers)).json()
    assert single["extent"] == cols[f"dataset-{shown}"]
