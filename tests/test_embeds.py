"""Embedded maps for partner intranets: what an administrator and an intranet page depend on.

An embed is created, listed and revoked by an admin (audited); its snippet frames a read-only map
whose Content-Security-Policy lets only the allowed origins frame it; the page refuses to load as
a top-level page, with a wrong key, once revoked or expired; its tiles serve only its layers,
clipped to its area, with incidents only as cells of at least five; its key opens nothing else.
In Chromium, a host page on an allowed loopback origin shows the map and one on another origin
shows nothing.
"""
from __future__ import annotations

import asyncio
import functools
import http.server
import re
import threading
from collections.abc import Iterator
from datetime import date
from urllib.parse import parse_qs, urlsplit

import mapbox_vector_tile
import pytest
from sqlalchemy import text

from app.tiles.sql import lonlat_to_tile
from tests.factories import CHROMIUM, CHROMIUM_ARGS, config_of
from tests.factories import camera_feature as camera

FRAMED = {"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
TILE_FETCH = {"Sec-Fetch-Dest": "empty", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors"}
INSIDE = (-2.1561, 53.6158)     # inside the embed's area (Rochdale town centre)
OUTSIDE = (-2.1200, 53.6300)    # a camera outside the area
AREA = [-2.17, 53.60, -2.14, 53.63]
INTRANET = "https://intranet.rochdale.example"


def decode(body: bytes) -> dict:
    return mapbox_vector_tile.decode(body, default_options={"y_coord_down": True})


async def add_incident_points(db, partnership_id: int, points: list[tuple[float, float, int]],
                              sharing: str = "exact", name: str = "Test") -> None:
    ds = (await db.execute(text(
        "INSERT INTO dataset (partnership_id, source_key, name, sharing_level) VALUES (:p, :k, :n, :s) RETURNING id"),
        {"p": partnership_id, "k": f"test:{name}", "n": name, "s": sharing})).scalar_one()
    for lon, lat, n in points:
        await db.execute(text(
            "INSERT INTO incident (partnership_id, dataset_id, category, month, geom, location_text) "
            "SELECT :p, :d, 'Burglary', :m, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'On or near EXACT-LOC' "
            "FROM generate_series(1, :n)"),
            {"p": partnership_id, "d": ds, "m": date(2024, 1, 1), "lon": lon, "lat": lat, "n": n})
    await db.commit()


async def make_embed(client, admin, **overrides) -> dict:
    body = {"title": "Town centre cameras", "layers": ["cameras", "coverage", "incidents"], "area": AREA,
            "precision": "aggregate", "allowed_origins": [INTRANET], **overrides}
    r = await client.post("/api/embeds", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    return r.json()


def page_path(embed: dict) -> str:
    parts = urlsplit(embed["url"])
    return f"{parts.path}?{parts.query}"


def key_of(embed: dict) -> str:
    return parse_qs(urlsplit(embed["url"]).query)["key"][0]


# -- the administrator's API -----------------------------------------------------------------------

async def test_admin_creates_lists_and_revokes_an_embed_and_each_is_audited(client, make_caller, db):
    admin = await make_caller("rochdale-csp", "admin")
    embed = await make_embed(client, admin)
    assert re.fullmatch(r"http://testserver/embed/[A-Za-z0-9_-]+\?key=se_[A-Za-z0-9_-]+", embed["url"])
    assert embed["iframe"].startswith('<iframe src="http://testserver/embed/')
    assert f'src="{embed["url"]}"' in embed["iframe"] and 'title="Town centre cameras"' in embed["iframe"]
    assert embed["allowed_origins"] == [INTRANET] and embed["area"] == AREA and embed["state"] == "active"
    # Only a digest of the key is kept.
    stored = (await db.execute(text("SELECT key_hash FROM embed"))).scalar_one()
    assert key_of(embed).encode() not in bytes(stored)

    listed = (await client.get("/api/embeds", headers=admin.headers)).json()["embeds"]
    assert [e["public_id"] for e in listed] == [embed["public_id"]]
    assert "key" not in str(listed) and "url" not in listed[0]

    r = await client.get(page_path(embed), headers=FRAMED)
    assert r.status_code == 200
    assert (await client.delete(f"/api/embeds/{embed['id']}", headers=admin.headers)).status_code == 204
    listed = (await client.get("/api/embeds", headers=admin.headers)).json()["embeds"]
    assert listed[0]["state"] == "revoked"
    r = await client.get(page_path(embed), headers=FRAMED)
    assert r.status_code == 404 and "Town centre" not in r.text

    actions = [row.action for row in (await db.execute(text(
        "SELECT action FROM audit_event WHERE target = :t ORDER BY id"), {"t": f"embed/{embed['id']}"}))]
    assert actions == ["embed.create", "embed.view", "embed.revoke"]


async def test_only_admins_manage_embeds_and_only_their_own(client, make_caller):
    admin = await make_caller("rochdale-csp", "admin")
    analyst = await make_caller("rochdale-csp", "analyst")
    other = await make_caller("bury-csp", "admin")
    embed = await make_embed(client, admin)
    body = {"title": "x", "layers": ["cameras"], "allowed_origins": [INTRANET]}
    assert (await client.post("/api/embeds", json=body, headers=analyst.headers)).status_code == 403
    assert (await client.get("/api/embeds", headers=analyst.headers)).status_code == 403
    assert (await client.get("/api/embeds", headers=other.headers)).json()["embeds"] == []
    r = await client.delete(f"/api/embeds/{embed['id']}", headers=other.headers)
    assert r.status_code == 404
    assert (await client.get(page_path(embed), headers=FRAMED)).status_code == 200


@pytest.mark.parametrize("change, field", [
    ({"allowed_origins": ["*"]}, "allowed_origins"),
    ({"allowed_origins": ["https://intranet.example/path"]}, "allowed_origins"),
    ({"allowed_origins": ["javascript:alert(1)"]}, "allowed_origins"),
    ({"allowed_origins": ["https://a.example 'unsafe-inline'"]}, "allowed_origins"),
    ({"allowed_origins": ["https://*.example.org"]}, "allowed_origins"),
    ({"allowed_origins": []}, "allowed_origins"),
    ({"layers": ["nope"]}, None),
    ({"layers": []}, "layers"),
    ({"precision": "exact"}, "precision"),
    ({"area": [1, 2, 3]}, "area"),
    ({"area": [-2, 53, -3, 54]}, "area"),
    ({"expires_at": "2000-01-01T00:00:00Z"}, None),
    ({"expires_at": "2099-01-01T00:00:00Z"}, None),
    ({"title": ""}, "title"),
])
async def test_bad_embed_requests_are_clear_4xx_problems(client, make_caller, change, field):
    admin = await make_caller("rochdale-csp", "admin")
    body = {"title": "Map", "layers": ["cameras"], "allowed_origins": [INTRANET], **change}
    r = await client.post("/api/embeds", json=body, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    if field:
        assert r.json()["errors"][0]["field"].startswith(field)
    assert (await client.get("/api/embeds", headers=admin.headers)).json()["embeds"] == []


# -- the embed page ---------------------------------------------------------------------------------

async def test_page_is_a_read_only_map_framed_only_by_the_allowed_origins(client, make_caller):
    admin = await make_caller("rochdale-csp", "admin")
    embed = await make_embed(client, admin, allowed_origins=[INTRANET, "http://127.0.0.1:8081"])
    r = await client.get(page_path(embed), headers=FRAMED)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["frame-ancestors"] == f"{INTRANET} http://127.0.0.1:8081"
    assert "'self'" not in directives["frame-ancestors"]
    assert "'sha256-" in directives["script-src"] and "unsafe-inline" not in directives["script-src"]
    assert r.headers["referrer-policy"] == "no-referrer" and r.headers["cache-control"] == "no-store"
    assert "x-frame-options" not in r.headers
    assert not re.search(r'(src|href)="(https?:)?//', r.text)
    config = config_of(r.text)
    assert [l["id"] for l in config["layers"]] == ["coverage", "cameras", "incidents"]
    incidents = next(l for l in config["layers"] if l["id"] == "incidents")
    assert incidents["aggregate"] and incidents["fields"] == {}
    assert incidents["tiles"] == f"/embed/{embed['public_id']}/tiles/incidents/{{z}}/{{x}}/{{y}}.mvt?key={key_of(embed)}"
    (south, west), (north, east) = config["bounds"]
    assert [west, south, east, north] == AREA
    # Read-only: nothing on the page signs in, out or changes anything.
    assert "/auth/" not in r.text and "/api/" not in r.text and "sign" not in r.text.lower()
    # Its layers are drawn by the map pages' own layer script (and VectorGrid adapter), not a copy.
    scripts = re.findall(r'<script src="/static/([^"?]+)', r.text)
    assert scripts.index("safermap-vectorgrid.js") < scripts.index("safermap-layers.js") < scripts.index("safermap-embed.js")


async def test_page_refuses_top_level_navigation_wrong_keys_expiry_and_other_origins(client, make_caller, db):
    admin = await make_caller("rochdale-csp", "admin")
    embed = await make_embed(client, admin)
    path = page_path(embed)
    # A copied URL opened in a tab (or fetched without saying it is a frame) shows nothing.
    for headers in ({"Sec-Fetch-Dest": "document", "Sec-Fetch-Mode": "navigate"}, {}):
        r = await client.get(path, headers=headers)
        assert r.status_code == 403 and "safermap-config" not in r.text
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    # A Referer naming a site that is not allowed is refused too.
    r = await client.get(path, headers={**FRAMED, "Referer": "https://evil.example/page"})
    assert r.status_code == 403 and "safermap-config" not in r.text
    assert (await client.get(path, headers={**FRAMED, "Referer": INTRANET + "/news"})).status_code == 200
    # Wrong or missing keys, and an unknown embed, all look the same.
    wrong = path.rsplit("=", 1)[0] + "=se_wrong"
    for p in (wrong, path.split("?")[0], "/embed/AAAAAAAAAAAAAAAA?key=" + key_of(embed)):
        r = await client.get(p, headers=FRAMED)
        assert r.status_code == 404 and "safermap-config" not in r.text
    await db.execute(text("UPDATE embed SET expires_at = now() - interval '1 second'"))
    await db.commit()
    assert (await client.get(path, headers=FRAMED)).status_code == 404


async def test_views_are_counted_and_audited_once_a_minute(client, make_caller, db):
    admin = await make_caller("rochdale-csp", "admin")
    embed = await make_embed(client, admin)
    for _ in range(3):
        assert (await client.get(page_path(embed), headers=FRAMED)).status_code == 200
    listed = (await client.get("/api/embeds", headers=admin.headers)).json()["embeds"]
    assert listed[0]["views"] == 3
    n = (await db.execute(text("SELECT count(*) FROM audit_event WHERE action = 'embed.view'"))).scalar_one()
    assert n == 1


# -- the embed's tiles ------------------------------------------------------------------------------

async def embed_tile(client, embed: dict, layer: str, z: int, lonlat: tuple[float, float], key: str | None = None,
                     headers: dict | None = None):
    x, y = lonlat_to_tile(*lonlat, z)
    url = f"/embed/{embed['public_id']}/tiles/{layer}/{z}/{x}/{y}.mvt?key={key or key_of(embed)}"
    return await client.get(url, headers=headers if headers is not None else TILE_FETCH)


async def test_tiles_serve_only_the_embeds_layers_inside_its_area(client, make_caller):
    admin = await make_caller("rochdale-csp", "admin")
    for ref, lonlat in (("IN-1", INSIDE), ("OUT-1", OUTSIDE)):
        r = await client.post("/api/cameras", json=camera(ref, lonlat, bearing=90, fov=60, range_m=50), headers=admin.headers)
        assert r.status_code == 201
    embed = await make_embed(client, admin, layers=["cameras", "coverage"])
    r = await embed_tile(client, embed, "cameras", 12, INSIDE)
    assert r.status_code == 200 and r.headers["etag"]
    refs = {f["properties"]["reference"] for f in decode(r.content)["cameras"]["features"]}
    assert refs == {"IN-1"}  # the same z12 tile holds OUT-1, outside the area
    r2 = await embed_tile(client, embed, "cameras", 12, INSIDE, headers={**TILE_FETCH, "If-None-Match": r.headers["etag"]})
    assert r2.status_code == 304
    r = await embed_tile(client, embed, "coverage", 16, INSIDE)
    assert {f["properties"]["reference"] for f in decode(r.content)["coverage"]["features"]} == {"IN-1"}
    # A layer the embed does not show, a tile outside its area.
    assert (await embed_tile(client, embed, "incidents", 14, INSIDE)).status_code == 404
    assert (await embed_tile(client, embed, "cameras", 16, OUTSIDE)).status_code == 204
    # Tiles are for the embed page's scripts, not for opening in a tab or on another site.
    for headers in ({"Sec-Fetch-Dest": "document"}, {**TILE_FETCH, "Sec-Fetch-Site": "cross-site"}):
        assert (await embed_tile(client, embed, "cameras", 12, INSIDE, headers=headers)).status_code == 403


async def test_incidents_in_an_embed_are_cells_of_at_least_five_never_points(client, make_caller, db):
    admin = await make_caller("rochdale-csp", "admin")
    exact_a, exact_b, lone = (-2.15611, 53.61577), (-2.15312, 53.61421), (-2.1590, 53.6120)
    await add_incident_points(db, admin.partnership_id, [(*exact_a, 7), (*exact_b, 5), (*lone, 3)])
    await add_incident_points(db, admin.partnership_id, [(*exact_a, 40)], sharing="none", name="Not shared")
    embed = await make_embed(client, admin, layers=["incidents"])
    for z in range(12, 19):
        r = await embed_tile(client, embed, "incidents", z, exact_a)
        assert r.status_code in (200, 204)
        features = decode(r.content)["incidents"]["features"] if r.status_code == 200 else []
        counts = sorted(f["properties"]["count"] for f in features)
        assert all(c >= 5 for c in counts), (z, counts)  # the lone 3 never show
        assert set(features[0]["properties"]) == {"count"} if features else True
        assert b"EXACT-LOC" not in r.content and b"Burglary" not in r.content
        assert sum(counts) <= 15  # the 40 of the data set shared with nobody are never counted
        # Each cell is drawn at its centre on the grid, not at the incidents' position.
        n = 16 >> max(0, z - 14)
        unit = 4096 / n
        for f in features:
            px, py = f["geometry"]["coordinates"]
            assert (px / unit - 0.5) == pytest.approx(round(px / unit - 0.5), abs=1e-6)
            assert (py / unit - 0.5) == pytest.approx(round(py / unit - 0.5), abs=1e-6)
    assert (await embed_tile(client, embed, "incidents", 19, exact_a)).status_code == 204


async def test_the_embed_key_opens_nothing_but_the_embed(client, make_caller):
    admin = await make_caller("rochdale-csp", "admin")
    embed = await make_embed(client, admin)
    key = key_of(embed)
    x, y = lonlat_to_tile(*INSIDE, 14)
    for path in ("/api/cameras", "/api/incidents", "/api/embeds", f"/tiles/cameras/14/{x}/{y}.mvt",
                 "/tiles/cameras.json", "/tiles", "/maps/overview"):
        for kwargs in ({"headers": {"Authorization": f"Bearer {key}"}}, {"params": {"key": key}}):
            r = await client.get(path, **kwargs)
            assert r.status_code == 401, (path, kwargs, r.status_code)
    r = await client.post("/auth/session", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401
    # Another embed's tiles with this key: not found.
    other = await make_embed(client, admin, title="Other")
    assert (await embed_tile(client, other, "cameras", 14, INSIDE, key=key)).status_code == 404


# -- in Chromium ------------------------------------------------------------------------------------

class _HostPage(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def host_pages(tmp_path) -> Iterator[tuple[str, str, object]]:
    """Two tiny intranet sites on loopback ports: (origin A, origin B, directory they serve)."""
    servers = []
    for _ in range(2):
        handler = functools.partial(_HostPage, directory=str(tmp_path))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    yield (f"http://127.0.0.1:{servers[0].server_port}", f"http://127.0.0.1:{servers[1].server_port}", tmp_path)
    for server in servers:
        server.shutdown()
        server.server_close()


async def test_embed_in_chromium_shows_only_on_the_allowed_origin(live_server, make_caller, db, host_pages):
    from pathlib import Path
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    import httpx
    from playwright.async_api import async_playwright

    allowed, other, directory = host_pages
    admin = await make_caller("rochdale-csp", "admin")
    async with httpx.AsyncClient(base_url=live_server, headers=admin.headers, timeout=10) as api:
        r = await api.post("/api/cameras", json=camera("CAM-EMBED", INSIDE, bearing=90, fov=60, range_m=60))
        assert r.status_code == 201
        r = await api.post("/api/embeds", json={"title": "Intranet map", "layers": ["cameras", "coverage", "incidents"],
                                                "area": AREA, "allowed_origins": [allowed]})
        assert r.status_code == 201, r.text
        embed = r.json()
    # Seven incidents on one point: one cell of seven in the embed (never the incidents themselves).
    await add_incident_points(db, admin.partnership_id, [(-2.15312, 53.61421, 7)])
    (directory / "index.html").write_text(
        f"<!DOCTYPE html><html><body><h1>Intranet</h1>{embed['iframe']}</body></html>")
    # The lifted copy sends no Referer, so the server serves the page and only the browser's
    # frame-ancestors check stands between it and the map.
    lifted = embed["iframe"].replace("strict-origin-when-cross-origin", "no-referrer")
    (directory / "lifted.html").write_text(f"<!DOCTYPE html><html><body><h1>Elsewhere</h1>{lifted}</body></html>")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page(viewport={"width": 1000, "height": 700})
        requests: list[str] = []
        problems: list[str] = []
        page.on("request", lambda req: requests.append(req.url))
        # (The host pages have no favicon: the intranet's 404 for it is not the embed's problem.)
        page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
                if msg.type in ("error", "warning") and not msg.location.get("url", "").endswith("/favicon.ico")
                else None)
        page.on("pageerror", lambda err: problems.append(f"page error: {err}"))

        # On the allowed origin the map renders inside the frame, camera and all.
        await page.goto(f"{allowed}/index.html", wait_until="load")
        frame = page.frame_locator("iframe")
        await frame.locator(".leaflet-container").wait_for(timeout=10000)
        await frame.locator(".leaflet-sm-point-pane path.leaflet-interactive").first.wait_for(timeout=10000)
        assert "Intranet map" in await frame.locator(".sm-brand").inner_text()
        # The incidents are one cell carrying its count (drawn by the shared layer script), and its
        # popup says how many and why smaller areas are missing.
        count = frame.locator(".sm-counts text", has_text="7")
        await count.wait_for(timeout=10000)
        box = await count.bounding_box()
        await page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        popup = frame.locator(".leaflet-popup-content")
        await popup.wait_for(timeout=5000)
        assert await popup.locator(".sm-popup-title").inner_text() == "7 incidents"
        assert "fewer than 5 are not shown" in await popup.inner_text()
        assert problems == []

        # On another origin the browser refuses to render it (frame-ancestors): nothing inside.
        statuses: list[int] = []
        page_path_only = f"/embed/{embed['public_id']}"
        page.on("response", lambda res: statuses.append(res.status)
                if urlsplit(res.url).path == page_path_only else None)
        async with page.expect_response(lambda res: urlsplit(res.url).path == page_path_only, timeout=30000):
            await page.goto(f"{other}/lifted.html", wait_until="load")
        await asyncio.sleep(1.0)  # time for a map that wrongly rendered to show
        assert statuses == [200]  # served, yet not shown:
        child = page.frames[1] if len(page.frames) > 1 else None
        assert child is None or await child.evaluate("document.querySelector('.leaflet-container')") is None

        # The URL copied into a tab shows nothing.
        r = await page.goto(embed["url"], wait_until="load")
        assert r.status == 403
        assert await page.locator(".leaflet-container").count() == 0

        # Revoked: the allowed intranet page shows nothing either.
        async with httpx.AsyncClient(base_url=live_server, headers=admin.headers, timeout=10) as api:
            assert (await api.delete(f"/api/embeds/{embed['id']}")).status_code == 204
        await page.goto(f"{allowed}/index.html", wait_until="load")
        await asyncio.sleep(1.0)
        child = page.frames[1] if len(page.frames) > 1 else None
        assert child is None or await child.evaluate("document.querySelector('.leaflet-container')") is None

        assert [u for u in requests if urlsplit(u).hostname != "127.0.0.1"] == []
        await browser.close()


async def test_sensitive_categories_never_reach_an_embed_and_a_rule_change_shows_at_once(client, make_caller, db):
    admin = await make_caller("rochdale-csp", "admin")
    await add_incident_points(db, admin.partnership_id, [(*INSIDE, 9)])
    embed = await make_embed(client, admin, layers=["incidents"], precision="sanitised")
    r = await embed_tile(client, embed, "incidents", 14, INSIDE)
    assert r.status_code == 200 and sum(f["properties"]["count"] for f in decode(r.content)["incidents"]["features"]) == 9
    # Burglary marked sensitive (even for viewers): the embed, ranking below every role, loses it.
    await db.execute(text("INSERT INTO sensitive_category (partnership_id, category, least_role) "
                          "VALUES (:p, 'Burglary', 'viewer')"), {"p": admin.partnership_id})
    await db.commit()
    r2 = await embed_tile(client, embed, "incidents", 14, INSIDE, headers={**TILE_FETCH, "If-None-Match": r.headers["etag"]})
    assert r2.status_code == 204


async def test_embed_tiles_come_from_memory_and_a_change_elsewhere_stops_them_within_a_second(
        app, client, make_caller, database_url):
    """An intranet page asks for dozens of tiles at once: after the first, the embed behind the key
    is known to the process's memory, so a cached tile or a 304 makes no database round trip. An
    embed revoked, expired or re-keyed by another process (here another connection) is refused
    within a second, as a revoked token is."""
    import time

    import psycopg
    from sqlalchemy import event
    admin = await make_caller("rochdale-memory", "admin")
    r = await client.post("/api/cameras", json=camera("MEM-1", INSIDE, bearing=90, fov=60, range_m=50),
                          headers=admin.headers)
    assert r.status_code == 201
    deadline = time.monotonic() + 30
    while not app.state.live.ready:
        assert time.monotonic() < deadline, "the live state did not start listening"
        await asyncio.sleep(0.01)

    async def refused_within(embed: dict, change: str) -> float:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(change, {"p": embed["public_id"]})
        started = time.monotonic()
        while (await embed_tile(client, embed, "cameras", 12, INSIDE)).status_code != 404:
            assert time.monotonic() - started < 6, f"still served after {change!r}"
            await asyncio.sleep(0.02)
        return time.monotonic() - started

    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)
    engine = app.state.engine
    for change in ("UPDATE embed SET revoked_at = now() WHERE public_id = %(p)s",
                   "UPDATE embed SET expires_at = now() WHERE public_id = %(p)s",
                   "UPDATE embed SET key_hash = sha256(key_hash) WHERE public_id = %(p)s",
                   "DELETE FROM embed WHERE public_id = %(p)s"):
        embed = await make_embed(client, admin, layers=["cameras"])
        first = await embed_tile(client, embed, "cameras", 12, INSIDE)
        assert first.status_code == 200
        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            statements.clear()
            cached = await embed_tile(client, embed, "cameras", 12, INSIDE)
            not_modified = await embed_tile(client, embed, "cameras", 12, INSIDE,
                                            headers={**TILE_FETCH, "If-None-Match": first.headers["etag"]})
            assert (cached.status_code, cached.content) == (200, first.content) and not_modified.status_code == 304
            assert statements == [], "a cached embed tile or a 304 ran a statement"
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        assert await refused_within(embed, change) < 1.0


async def test_embed_tiles_from_memory_answer_as_the_route_does(app, client, make_caller, db, monkeypatch):
    """The hot path (app/api/hot_tiles.py) answers a known embed's cached tiles and 304s itself: the
    same bytes, status and headers as the route, and the route's refusals still apply."""
    admin = await make_caller("rochdale-hot", "admin")
    await add_incident_points(db, admin.partnership_id, [(INSIDE[0], INSIDE[1], 7)])
    embed = await make_embed(client, admin, layers=["incidents", "cameras"])
    drawn = await embed_tile(client, embed, "incidents", 14, INSIDE)  # drawn by the route; the embed now known
    assert drawn.status_code == 200 and drawn.content
    tag = drawn.headers["etag"]
    requests = [("incidents", 14, INSIDE, TILE_FETCH), ("incidents", 14, INSIDE, {**TILE_FETCH, "If-None-Match": tag}),
                ("cameras", 16, OUTSIDE, TILE_FETCH),                              # outside the area: empty
                ("incidents", 14, INSIDE, {"Sec-Fetch-Dest": "document"}),          # opened in a tab: 403
                ("buildings", 14, INSIDE, TILE_FETCH)]                              # not the embed's layer: 404
    from app.tiles.pipeline import TilePipeline
    route_calls = []
    real = TilePipeline.embed_tile

    async def counted(self, *args, **kwargs):
        route_calls.append(args[3])
        return await real(self, *args, **kwargs)
    monkeypatch.setattr(TilePipeline, "embed_tile", counted)
    hot = [await embed_tile(client, embed, *r[:3], headers=r[3]) for r in requests]
    assert [r.status_code for r in hot] == [200, 304, 204, 403, 404]
    assert route_calls == [], "answered by the route, not from memory"
    monkeypatch.setattr(app.state.live, "known_embed", lambda *_: None)  # memory says nothing: the route
    routed = [await embed_tile(client, embed, *r[:3], headers=r[3]) for r in requests]
    for a, b in zip(hot, routed):
        assert (a.status_code, a.content) == (b.status_code, b.content)
        assert {k: v for k, v in a.headers.items() if k != "date"} == {k: v for k, v in b.headers.items() if k != "date"}
    assert hot[0].content == drawn.content and hot[0].headers["referrer-policy"] == "no-referrer"
