"""The overview map page: what it embeds, who may open it, and how it behaves in a real browser.

The browser test drives Debian's Chromium through Playwright against the app under uvicorn, and
checks what a control-room user depends on: the map opens on the partnership's data with nothing
fetched from the internet, the layers can be switched, a camera's popup names it and its owner,
coverage wedges point where the cameras point, and a hostile camera name stays text.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.factories import (
    XSS_NAME,
    add_incidents,
    browser_page,
    camera_feature,
    config_of,
)

# Three cameras about 150 m apart in Rochdale town centre, pointing east, south and all round.
CAM_EAST = (-2.1561, 53.6158)
CAM_SOUTH = (-2.1540, 53.6150)
CAM_DOME = (-2.1575, 53.6140)


# -- the page as HTML -----------------------------------------------------------------------------

async def test_browser_without_session_is_sent_to_sign_in_and_api_clients_get_401(client):
    r = await client.get("/maps/overview", headers={"Accept": "text/html,application/xhtml+xml"})
    assert r.status_code == 303
    assert r.headers["location"] == "/maps/sign-in?next=/maps/overview"
    r = await client.get("/maps/overview", headers={"Accept": "application/json"})
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.get("/maps/sign-in?next=/maps/overview")
    assert r.status_code == 200 and 'id="sm-token"' in r.text


async def test_sign_in_page_never_redirects_off_site(client):
    for evil in ("//evil.example/x", "https://evil.example/", "/maps/overview\"><script>", "/auth/link/x"):
        r = await client.get("/maps/sign-in", params={"next": evil})
        assert r.status_code == 200
        assert 'data-next="/maps/overview"' in r.text
        assert "evil" not in r.text and "<script>" not in r.text.split("<body", 1)[1]


async def test_page_loads_nothing_from_elsewhere_and_embeds_only_own_partnership(client, make_caller, db):
    mine = await make_caller("rochdale-csp", role="pcso")
    other = await make_caller("bury-csp", role="admin")
    for i, lonlat in enumerate((CAM_EAST, CAM_SOUTH)):
        r = await client.post("/api/cameras", json=camera_feature(f"R-{i}", lonlat, owner_agency="Rochdale Council"),
                              headers=mine.headers)
        assert r.status_code == 201, r.text
    r = await client.post("/api/cameras", json=camera_feature("B-SECRET", (-2.30, 53.59), name="Bury secret camera",
                                                      owner_agency="Bury Council"), headers=other.headers)
    assert r.status_code == 201
    await add_incidents(db, other.partnership_id, "Synthetic incidents (demo)", "demo:synthetic",
                        [(-2.30, 53.59, "Burglary", "2024-03")])

    r = await client.get("/maps/overview", headers=mine.headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    # Every script and style sheet is served by us.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "cdn" not in html.lower()
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]
    assert r.headers["cache-control"] == "no-store"

    config = config_of(html)
    assert {l["id"] for l in config["layers"]} >= {"cameras", "coverage", "incidents"}
    cameras = next(l for l in config["layers"] if l["id"] == "cameras")
    assert cameras["tiles"] == "/tiles/cameras/{z}/{x}/{y}.mvt"
    assert cameras["popup"]["title"] == "reference" and "owner_agency" in cameras["popup"]["fields"]
    # Fitted to our cameras (and their coverage), not to the other partnership's.
    (south, west), (north, east) = config["bounds"]
    assert west < CAM_EAST[0] < east and south < CAM_SOUTH[1] < north
    assert west > -2.2 and south > 53.6
    assert config["synthetic"] == []
    assert "Bury" not in html and "B-SECRET" not in html

    r = await client.get("/maps/overview", headers=other.headers)
    assert config_of(r.text)["synthetic"] == ["Synthetic incidents (demo)"]
    assert "Rochdale" not in r.text


async def test_layers_above_the_callers_role_are_left_out(tmp_path, settings):
    from app.auth import Principal
    from app.catalog import Catalog
    from app.pages.overview import Summary, overview_config

    for f in settings.layers_dir.glob("*.toml"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "incidents.toml").write_text(
        (tmp_path / "incidents.toml").read_text().replace('least_role = "viewer"', 'least_role = "analyst"'))
    catalog = Catalog.load(tmp_path)
    viewer = Principal(1, "V", "viewer", 1, "p", 27700, None)
    config = overview_config(viewer, "P", catalog.visible_to("viewer"), Summary({}, []))
    assert "incidents" not in {l["id"] for l in config["layers"]}
    # Nothing else about the layer either (other layers' descriptions may say "incidents").
    assert "Incidents" not in {l.get("title") for l in config["layers"]}
    assert "Incidents" not in json.dumps({k: v for k, v in config.items() if k != "layers"})


# -- the page in Chromium ---------------------------------------------------------------------------

def container_point_js(lonlat: tuple[float, float]) -> str:
    return f"(() => {{ const p = saferMap.map.latLngToContainerPoint([{lonlat[1]}, {lonlat[0]}]); return [p.x, p.y]; }})()"


async def open_popup_at(page, lonlat: tuple[float, float]) -> str:
    """Clicks a point feature and returns the popup's title."""
    await page.evaluate("saferMap.map.closePopup()")
    await page.locator(".leaflet-popup").wait_for(state="detached", timeout=5000)  # it fades out
    x, y = await page.evaluate(container_point_js(lonlat))
    box = await page.locator(".folium-map").bounding_box()
    await page.mouse.click(box["x"] + x, box["y"] + y)
    title = page.locator(".leaflet-popup-content .sm-popup-title")
    await title.wait_for(timeout=5000)
    return await title.text_content()


async def load_and_time(page, url: str) -> dict[str, float]:
    """Opens the page; milliseconds from navigation start to each stage, up to cameras on screen."""
    await page.goto(url, wait_until="load")
    await page.wait_for_function("() => window.saferMap && saferMap.map")
    # The cameras' vector tiles are drawn when their circles are in the DOM.
    await page.locator(".leaflet-sm-point-pane path.leaflet-interactive").first.wait_for(timeout=10000)
    return await page.evaluate("""(() => {
        const n = performance.getEntriesByType('navigation')[0];
        return {html: n.responseEnd - n.requestStart, dcl: n.domContentLoadedEventEnd,
                load: n.loadEventEnd, drawn: performance.now()}; })()""")


async def test_overview_in_chromium(live_server, make_caller, db, chromium_path, tmp_path):
    caller = await make_caller("rochdale-csp", role="operator")
    async with httpx.AsyncClient(base_url=live_server, headers=caller.headers, timeout=10) as api:
        for feature in (
            camera_feature("CAM-EAST", CAM_EAST, name="Town Hall east", owner_agency="Rochdale Council",
                   owner_agency_kind="council", camera_type="fixed", bearing=90, fov=60, range_m=60,
                   verified=True),
            camera_feature("CAM-XSS", CAM_SOUTH, name=XSS_NAME, owner_agency="Corner Shop Ltd",
                   owner_agency_kind="private", bearing=180, height_m=6),  # no fov/range: assumed
            camera_feature("CAM-DOME", CAM_DOME, owner_agency="Rochdale Council", camera_type="dome",
                   status="faulty", range_m=40),
        ):
            r = await api.post("/api/cameras", json=feature)
            assert r.status_code == 201, r.text
    # Forty incidents on one anonymised point and a few around it, as police.uk publishes them.
    points = [(-2.1552, 53.6147, "Anti-social behaviour", "2024-01")] * 40
    points += [(-2.1566, 53.6155, "Burglary", "2024-02"), (-2.1548, 53.6160, "Shoplifting", "2024-03")]
    await add_incidents(db, caller.partnership_id, "Synthetic incidents (demo)", "demo:synthetic", points)

    tiles: dict[str, list[int]] = {}
    async with browser_page(live_server, caller, chromium_path=chromium_path,
                            viewport={"width": 1280, "height": 800}) as watched:
        page, requests, problems, dialogs = watched.page, watched.requests, watched.problems, watched.dialogs
        page.on("response", lambda res: tiles.setdefault(
            urlsplit(res.url).path.split("/")[2], []).append(res.status)
            if urlsplit(res.url).path.startswith("/tiles/") else None)

        cold = await load_and_time(page, f"{live_server}/maps/overview")
        await page.wait_for_load_state("networkidle")

        # Nothing but this server was asked for anything.
        elsewhere = [u for u in requests if not u.startswith("data:") and urlsplit(u).hostname != "127.0.0.1"]
        assert elsewhere == []
        assert problems == []

        # The Leaflet map is there, fitted to the cameras, with the catalog's layers to switch.
        assert await page.locator(".leaflet-container").count() == 1
        zoom = await page.evaluate("saferMap.map.getZoom()")
        assert zoom >= 15
        overlays = await page.locator(".leaflet-control-layers-overlays").inner_text()
        for title in ("CCTV cameras", "Camera coverage", "Incidents"):
            assert title in overlays
        assert "Legend" in await page.locator(".sm-legend").inner_text()
        # The other map pages are a click away (an operator may also use the PCSO's capture page).
        assert await page.locator(".sm-brand-page").evaluate_all("links => links.map(a => a.pathname)") == [
            "/maps/coverage", "/maps/hotspots", "/maps/routes", "/capture"]
        note = page.locator("#sm-synthetic-note")
        assert await note.is_visible() and "synthetic" in (await note.inner_text()).lower()

        # Vector tiles came from our tile server, with the session cookie.
        for layer in ("cameras", "coverage", "incidents"):
            assert 200 in tiles.get(layer, []), f"no 200 tile for {layer}: {tiles.get(layer)}"

        # Each camera's popup names it and its owner.
        assert await open_popup_at(page, CAM_EAST) == "CAM-EAST"
        popup = await page.locator(".leaflet-popup-content").inner_text()
        assert "Rochdale Council" in popup and "Town Hall east" in popup and "operational" in popup
        assert "Last verified" in popup and "never" not in popup

        # A hostile name is shown as text: no element made, no script run.
        assert await open_popup_at(page, CAM_SOUTH) == "CAM-XSS"
        content = page.locator(".leaflet-popup-content")
        assert XSS_NAME in await content.inner_text()
        assert await content.locator("img").count() == 0
        assert "Corner Shop Ltd" in await content.inner_text()

        # Wedges point the way their cameras do: east of CAM-EAST, south of CAM-XSS (dashed, as its
        # field of view and range are assumed).
        wedges = await page.evaluate("""(() => {
            const out = {};
            for (const tile of Object.values(saferMap.layers.coverage._vectorTiles)) {
                for (const f of Object.values(tile._features)) {
                    const r = f.feature._path.getBoundingClientRect();
                    out[f.feature.properties.reference] = {
                        x: r.left + r.width / 2, y: r.top + r.height / 2, w: r.width, h: r.height,
                        dashed: f.feature._path.getAttribute('stroke-dasharray')};
                }
            }
            return out; })()""")
        east = await page.evaluate(container_point_js(CAM_EAST))
        south = await page.evaluate(container_point_js(CAM_SOUTH))
        assert wedges["CAM-EAST"]["x"] > east[0] + 10 and abs(wedges["CAM-EAST"]["y"] - east[1]) < 10
        assert wedges["CAM-XSS"]["y"] > south[1] + 10 and abs(wedges["CAM-XSS"]["x"] - south[0]) < 10
        assert wedges["CAM-XSS"]["dashed"] and not wedges["CAM-EAST"]["dashed"]

        shot = tmp_path / "overview.png"
        await page.wait_for_timeout(300)  # the popup's fade-in
        await page.screenshot(path=str(shot))
        if os.environ.get("SAFERMAP_SCREENSHOTS"):
            shutil.copy(shot, Path(os.environ["SAFERMAP_SCREENSHOTS"]) / "overview.png")

        # Zoomed out, the forty incidents on one point are one circle carrying its count.
        await page.evaluate("saferMap.map.setZoom(14, {animate: false})")
        await page.locator(".sm-counts text", has_text="40").first.wait_for(timeout=10000)
        if os.environ.get("SAFERMAP_SCREENSHOTS"):
            await page.screenshot(path=str(Path(os.environ["SAFERMAP_SCREENSHOTS"]) / "overview-z14.png"))

        # The period filter asks for the incident tiles again, with the months.
        await page.locator(".sm-filters input[name=from]").fill("2024-02")
        await page.locator(".sm-filters input[name=from]").dispatch_event("change")
        await page.wait_for_function(
            "() => Object.values(saferMap.layers.incidents._tiles).length > 0 && saferMap.layers.incidents._url.includes('from=2024-02')")
        async with page.expect_response(lambda res: "/tiles/incidents/" in res.url and "from=2024-02" in res.url):
            await page.evaluate("saferMap.map.setZoom(13, {animate: false})")

        # Page load time, opened again now that the server and the browser's cache are warm.
        warm = await load_and_time(page, f"{live_server}/maps/overview")
        for name, t in (("first", cold), ("again", warm)):
            print(f"\noverview in Chromium ({name}): HTML {t['html']:.0f} ms, DOMContentLoaded {t['dcl']:.0f} ms, "
                  f"load {t['load']:.0f} ms, cameras drawn {t['drawn']:.0f} ms")
        # Printed, not asserted: load times belong to a benchmark, not to a test on a busy machine.

        assert dialogs == []
        assert problems == []


# tests/test_embeds.py and tests/test_coverage_page.py still import these from here; they go once
# those modules take them from tests/factories.py.
