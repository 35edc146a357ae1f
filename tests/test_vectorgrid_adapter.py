"""The VectorGrid adapter (static/safermap-vectorgrid.js) in Chromium: each override of
Leaflet.VectorGrid's private members does what its comment says.

On the overview page (which draws every layer through the adapter), with real tiles from PostGIS:
- `_createLayer`: a click on a small point feature has the feature's own position (plain VectorGrid
  gives Leaflet nothing and the click throws), so its popup opens on the camera;
- `_getVectorTilePromise` and `createTile`: each decoded tile reaches `onTileDecoded` before it is
  drawn and `onTileDrawn` after, with its <svg>, before Leaflet hears the tile loaded; that is how
  forty incidents on one point become one circle carrying "40";
- `restyle` (VectorGrid's private `_vectorTiles`, `_features` and `_updateStyles`): drawn features
  take a changed style without a tile being fetched, and nothing is pinned for later tiles;
- a tile whose fetch fails ends in `tileerror` and the layer still fires `load`, with no unhandled
  rejection.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CAM_A = (-2.1561, 53.6158)
CAM_B = (-2.1548, 53.6152)
STACK = (-2.1552, 53.6147)  # forty incidents on one anonymised point, as police.uk publishes them
ZOOM = 17                   # past the incidents' clusters (max_zoom 15): single incidents, stacked
# (A feature near a tile's edge is drawn in each tile it reaches, hence the set.)
BOTH_CAMERAS_DRAWN = """() => new Set(SaferMapVectorGrid.drawnFeatures(saferMap.layers.cameras)
    .map(f => f.properties.reference)).size === 2"""


def container_point(lonlat: tuple[float, float]) -> str:
    return f"(() => {{ const p = saferMap.map.latLngToContainerPoint([{lonlat[1]}, {lonlat[0]}]); return [p.x, p.y]; }})()"


async def add_stack(db, partnership_id: int, lonlat: tuple[float, float], n: int) -> None:
    ds = (await db.execute(text(
        "INSERT INTO dataset (partnership_id, source_key, name) VALUES (:p, 'test:stack', 'Stack') RETURNING id"),
        {"p": partnership_id})).scalar_one()
    await db.execute(text(
        "INSERT INTO incident (partnership_id, dataset_id, category, month, geom, location_text) "
        "SELECT :p, :d, 'Burglary', :m, ST_SetSRID(ST_MakePoint(:lon, :lat), 4326), 'On or near High Street' "
        "FROM generate_series(1, :n)"),
        {"p": partnership_id, "d": ds, "m": date(2024, 1, 1), "lon": lonlat[0], "lat": lonlat[1], "n": n})
    await db.commit()


@pytest.fixture
async def overview(live_server, make_caller, db) -> AsyncIterator[tuple[object, dict[str, list[str]]]]:
    """The overview page at zoom 17 on two cameras and a stack of incidents, and what it logged."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); the browser tests need it")
    from playwright.async_api import async_playwright

    caller = await make_caller("vectorgrid-adapter", "operator")
    async with httpx.AsyncClient(base_url=live_server, headers=caller.headers, timeout=10) as api:
        for ref, lonlat in (("CAM-A", CAM_A), ("CAM-B", CAM_B)):
            r = await api.post("/api/cameras", json={
                "type": "Feature", "geometry": {"type": "Point", "coordinates": list(lonlat)},
                "properties": {"reference": ref, "camera_type": "dome", "range_m": 20}})
            assert r.status_code == 201, r.text
    await add_stack(db, caller.partnership_id, STACK, 40)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 1200, "height": 800})
        assert (await context.request.post(f"{live_server}/auth/session", headers=caller.headers)).status == 204
        page = await context.new_page()
        seen: dict[str, list[str]] = {"errors": [], "console": [], "tiles": []}
        page.on("pageerror", lambda err: seen["errors"].append(str(err)))
        page.on("console", lambda msg: seen["console"].append(f"{msg.type}: {msg.text}"))
        page.on("request", lambda req: seen["tiles"].append(req.url)
                if urlsplit(req.url).path.startswith("/tiles/") else None)
        await page.goto(f"{live_server}/maps/overview", wait_until="load")
        await page.wait_for_function("() => window.saferMap && saferMap.map")
        centre = ((CAM_A[1] + STACK[1]) / 2, (CAM_A[0] + CAM_B[0]) / 2)
        await page.evaluate(f"saferMap.map.setView([{centre[0]}, {centre[1]}], {ZOOM}, {{animate: false}})")
        await page.wait_for_function(BOTH_CAMERAS_DRAWN)
        await page.wait_for_load_state("networkidle")
        yield page, seen
        await browser.close()


async def test_a_click_on_a_point_has_the_points_own_position(overview):
    page, seen = overview
    await page.evaluate("saferMap.map.on('popupopen', e => { window.popupAt = e.popup.getLatLng(); })")
    x, y = await page.evaluate(container_point(CAM_A))
    frame = await page.locator(".folium-map").bounding_box()
    # Three pixels off the camera's centre (about 2 m here), still on its circle.
    await page.mouse.click(frame["x"] + x + 3, frame["y"] + y)
    await page.locator(".leaflet-popup-content .sm-popup-title", has_text="CAM-A").wait_for(timeout=5000)
    lat, lon = await page.evaluate("[popupAt.lat, popupAt.lng]")
    # The camera's position (tiles keep it to a few centimetres), not the mouse's 3 px east of it.
    assert abs(lon - CAM_A[0]) < 1e-5 and abs(lat - CAM_A[1]) < 1e-5
    assert seen["errors"] == []


async def test_each_tile_is_decoded_then_drawn_then_loaded_and_stacks_carry_their_count(overview):
    page, seen = overview
    # The shared layer script marks stacked incidents as each tile is decoded, and writes the count
    # on the drawn tile: one circle carrying "40", whose popup lists the stack.
    count = page.locator(".sm-counts text", has_text="40")
    await count.wait_for(timeout=10000)
    assert await count.count() == 1
    await page.evaluate("saferMap.layers.cameras.remove()")  # so the click meets the stack, not a camera
    box = await count.bounding_box()
    await page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    title = page.locator(".leaflet-popup-content .sm-popup-title")
    await title.wait_for(timeout=5000)
    assert await title.inner_text() == "40 incidents at this point"

    # The hooks themselves, on a grid of the camera tiles: per tile, decoded, then drawn (with the
    # tile's own <svg>, holding its features), then loaded.
    log = await page.evaluate("""() => new Promise((resolve, reject) => {
        const log = [];
        const key = c => c.z + '/' + c.x + '/' + c.y;
        const grid = SaferMapVectorGrid.grid('/tiles/cameras/{z}/{x}/{y}.mvt', {
            fetchOptions: {credentials: 'same-origin'},
            vectorTileLayerStyles: {cameras: {radius: 5}},
            onTileDecoded: (tile, c) => log.push(['decoded', key(c), (tile.layers.cameras || {features: []}).features.length]),
            onTileDrawn: (svg, tile, c) => log.push(['drawn', key(c), svg.querySelectorAll('path').length,
                                                    svg.tagName, tile.layers.cameras ? 'data' : 'none']),
        });
        grid.on('tileload', e => log.push(['loaded', key(e.coords), e.tile.isConnected]));
        // (Removed a moment later: Leaflet still needs the map right after firing `load`.)
        grid.on('load', () => { setTimeout(() => grid.remove(), 0); resolve(log); });
        setTimeout(() => reject(new Error('no load: ' + JSON.stringify(log))), 10000);
        grid.addTo(saferMap.map);
    })""")
    tiles = {entry[1] for entry in log}
    assert tiles, log
    drawn_cameras = 0
    for tile in tiles:
        steps = [entry for entry in log if entry[1] == tile]
        assert [s[0] for s in steps] == ["decoded", "drawn", "loaded"], steps
        decoded, drawn, loaded = steps
        assert drawn[2] == decoded[2] and drawn[3] == "svg" and loaded[2] is True
        drawn_cameras += drawn[2]
    assert drawn_cameras >= 2
    assert seen["errors"] == []


async def test_restyle_repaints_what_is_drawn_without_fetching_and_pins_nothing(overview):
    page, seen = overview
    paint = """() => Object.fromEntries(SaferMapVectorGrid.drawnFeatures(saferMap.layers.cameras).map(
        f => [f.properties.reference, f.element.getAttribute('fill')]))"""
    before = await page.evaluate(paint)
    assert set(before) == {"CAM-A", "CAM-B"} and "none" not in before.values()
    tiles_before = len(seen["tiles"])
    hide_b = """((p, z) => p.reference === 'CAM-B' ? {...catalogStyle(p, z), fill: false, stroke: false}
                                              : catalogStyle(p, z))"""
    hidden = await page.evaluate(f"""() => {{
        const grid = saferMap.layers.cameras;
        window.catalogStyle = grid.options.vectorTileLayerStyles.cameras;
        grid.options.vectorTileLayerStyles.cameras = {hide_b};
        SaferMapVectorGrid.restyle(grid);
        return ({paint})(); }}""")
    assert hidden == {"CAM-A": before["CAM-A"], "CAM-B": "none"}
    await page.evaluate("""() => { saferMap.layers.cameras.options.vectorTileLayerStyles.cameras = catalogStyle;
                                   SaferMapVectorGrid.restyle(saferMap.layers.cameras); }""")
    assert await page.evaluate(paint) == before
    assert len(seen["tiles"]) == tiles_before  # no tile was asked for again
    # Hidden again, then the catalog style put back and the tiles drawn afresh: they take the style
    # function as it is now, as nothing was pinned to CAM-B (VectorGrid's setFeatureStyle would).
    await page.evaluate(f"""() => {{
        saferMap.layers.cameras.options.vectorTileLayerStyles.cameras = {hide_b};
        SaferMapVectorGrid.restyle(saferMap.layers.cameras); }}""")
    assert (await page.evaluate(paint))["CAM-B"] == "none"
    await page.evaluate("""() => { saferMap.layers.cameras.options.vectorTileLayerStyles.cameras = catalogStyle;
                                   saferMap.layers.cameras.redraw(); }""")
    await page.wait_for_function(BOTH_CAMERAS_DRAWN)
    assert await page.evaluate(paint) == before
    assert seen["errors"] == []


async def test_a_tile_that_cannot_be_fetched_ends_in_tileerror_not_an_unhandled_rejection(overview):
    page, seen = overview
    await page.route("**/tiles/cameras/**", lambda route: route.abort())
    errors = await page.evaluate("""() => new Promise((resolve, reject) => {
        const grid = saferMap.layers.cameras;
        const errors = [];
        grid.on('tileerror', e => errors.push(String(e.error)));
        grid.once('load', () => resolve(errors));
        setTimeout(() => reject(new Error('the layer never finished loading')), 10000);
        grid.redraw();
    })""")
    assert errors and all("Failed to fetch" in e for e in errors), errors
    await page.wait_for_timeout(200)  # an unhandled rejection is reported after the microtasks run
    assert seen["errors"] == []
    assert not [m for m in seen["console"] if "Uncaught" in m]
    # Back on the network, the layer draws again.
    await page.unroute("**/tiles/cameras/**")
    await page.evaluate("saferMap.layers.cameras.redraw()")
    await page.wait_for_function(BOTH_CAMERAS_DRAWN)
