"""The CCTV control-room page /maps/coverage, on a hand-made scene in real PostGIS, in Chromium.

The scene, in British National Grid metres (tests/test_footage_requests.py's origin in Manchester):
a street along y=0 from x=0 to x=400 and one up x=400, built into the walking network; a camera
on a mast at (100, 100) looking east with a building 30 m in front of it; a corner-shop dome beside
the mast; a dome just beside the street and one 80 m away from it; and a faulty camera of another
owner with a hostile name. What a control room depends on is checked: nothing is fetched from
elsewhere and nothing fails in the console; the fault is listed and leads to the camera; a spot
in front of the mast lists both cameras that saw it, nearest first, with their deadlines marked,
and the spot behind the building lists none; the path between two incidents lists the dome beside
the street and not the one away from it, and a point far from any street is refused with a reason;
the owner filter hides another owner's cameras; a change of camera status reaches the open page;
only operators see camera siting, and a site added as planned shows in the gap figures.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import httpx
from shapely.geometry import box
from sqlalchemy import text

from tests.factories import CHROMIUM_ARGS, XSS_NAME, add_incidents, config_of
from tests.scenes import E0, LONG_AGO, N0, add_streets, ll

UK = ZoneInfo("Europe/London")
STREETS = {"Quay": [(0, 0), (200, 0)], "Quay East": [(200, 0), (400, 0)], "Dock": [(400, 0), (400, 200)]}
OWNER, SHOP_OWNER, OTHER_OWNER = "Salford City Council", "Corner Shop Ltd", "Other Owner Ltd"
# reference: (x, y), properties (POST /api/cameras)
CAMERAS = {
    "MAST": ((100, 100), dict(camera_type="fixed", bearing=90, fov=60, range_m=80, retention_days=30,
                              monitored=True, owner_agency=OWNER, contact="cctv@salford.example")),
    "SHOP": ((110, 90), dict(camera_type="dome", range_m=25, retention_days=14, owner_agency=SHOP_OWNER)),
    "BESIDE": ((250, -15), dict(camera_type="dome", range_m=30, retention_days=31, owner_agency=OWNER)),
    "AWAY": ((250, -80), dict(camera_type="dome", range_m=30, retention_days=31, owner_agency=OWNER)),
    "FAULTY": ((300, 100), dict(camera_type="dome", range_m=20, status="faulty", name=XSS_NAME,
                                owner_agency=OTHER_OWNER)),
}
BUILDING = box(E0 + 130, N0 + 90, E0 + 145, N0 + 110)  # 30 m in front of the mast, 15 x 20 m
IN_FRONT = (120, 100)   # 20 m east of the mast, 14 m from the shop's dome
BEHIND = (165, 100)     # straight behind the building; out of the shop dome's 25 m
FAR_FROM_STREETS = (0, 600)
SCENE = ((-20, -100), (420, 220))  # corners, metres


def camera(reference: str, xy: tuple[float, float], props: dict) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(ll(*xy))},
            "properties": {"reference": reference, **props}}


async def scene(db, api: httpx.AsyncClient, pid: int) -> dict[str, int]:
    await db.execute(text("INSERT INTO building (partnership_id, geom) "
                          "VALUES (:p, ST_Multi(ST_Transform(ST_GeomFromText(:wkt, 27700), 4326)))"),
                     {"p": pid, "wkt": BUILDING.wkt})
    assert await add_streets(db, pid, STREETS) == len(STREETS)
    await db.commit()
    ids = {}
    for ref, (xy, props) in CAMERAS.items():  # through the API: coverage cut to line of sight
        r = await api.post("/api/cameras", json=camera(ref, xy, props))
        assert r.status_code == 201, r.text
        ids[ref] = r.json()["id"]
    # Registered long before the times asked about.
    await db.execute(text("UPDATE camera SET created_at = :t WHERE partnership_id = :p"), {"t": LONG_AGO, "p": pid})
    await db.execute(text("UPDATE camera_status_history SET valid_from = :t WHERE partnership_id = :p"),
                     {"t": LONG_AGO, "p": pid})
    await db.commit()
    return ids


def uk_input(at: datetime) -> str:
    """A datetime-local input's value: UK wall-clock time to the minute."""
    return at.astimezone(UK).strftime("%Y-%m-%dT%H:%M")


# -- the page as HTML -----------------------------------------------------------------------------

async def test_browser_without_session_is_sent_to_sign_in(client):
    r = await client.get("/maps/coverage", headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"] == "/maps/sign-in?next=/maps/coverage"
    r = await client.get("/maps/coverage", headers={"Accept": "application/json"})
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")


async def test_page_embeds_catalog_layers_and_what_the_role_may_do(client, make_caller):
    viewer = await make_caller("coverage-page-html", "viewer")
    operator = await make_caller("coverage-page-html", "operator")
    r = await client.post("/api/cameras", headers=operator.headers,
                          json=camera("C-1", (0, 0), dict(owner_agency=OWNER, camera_type="dome", range_m=20)))
    assert r.status_code == 201

    r = await client.get("/maps/coverage", headers=viewer.headers)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert not re.search(r'(src|href)="(https?:)?//', r.text)
    policy = r.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    config = config_of(r.text)
    assert [l["id"] for l in config["layers"]] == ["coverage_union", "coverage", "coverage_bands", "gaps", "cameras"]
    assert [l["id"] for l in config["background"]] == ["buildings", "streets"]
    coverage = next(l for l in config["layers"] if l["id"] == "coverage")
    assert coverage["dashed_by"] == "assumed" and coverage["tiles"] == "/tiles/coverage/{z}/{x}/{y}.mvt"
    assert config["can"] == {"site": False, "add_camera": False}
    lon, lat = ll(0, 0)
    (south, west), (north, east) = config["bounds"]
    assert west <= lon <= east and south <= lat <= north
    assert config["path"]["max"] == 10 and config["refresh_seconds"] > 0

    config = config_of((await client.get("/maps/coverage", headers=operator.headers)).text)
    assert config["can"] == {"site": True, "add_camera": True}


# -- the page in Chromium ---------------------------------------------------------------------------

# Each drawn feature's SVG paint, by camera reference (through the VectorGrid adapter, the one
# script that knows where VectorGrid keeps drawn features).
CAMERA_PATHS = """(layer => {
    const out = {};
    for (const f of SaferMapVectorGrid.drawnFeatures(saferCoverage.layers[layer])) {
        const p = f.element;
        out[f.properties.reference] = {stroke: p.getAttribute('stroke'), fill: p.getAttribute('fill'),
                                       r: p.getBoundingClientRect().width};
    }
    return out; })"""


async def fit(page, corners: tuple[tuple[float, float], tuple[float, float]]) -> None:
    """Shows the scene's corners (metres), with no animation or popup left to move the map after."""
    (w, s), (e, n) = ll(*corners[0]), ll(*corners[1])
    await page.evaluate(f"""(() => {{ const m = saferCoverage.map; m.closePopup(); m.stop();
        m.fitBounds([[{s}, {w}], [{n}, {e}]], {{animate: false}}); }})()""")
    await page.wait_for_timeout(200)


async def click_at(page, xy: tuple[float, float]) -> None:
    lon, lat = ll(*xy)
    x, y = await page.evaluate(f"(() => {{ const p = saferCoverage.map.latLngToContainerPoint([{lat}, {lon}]); "
                               "return [p.x, p.y]; })()")
    frame = await page.locator(".folium-map").bounding_box()
    await page.mouse.click(frame["x"] + x, frame["y"] + y)


async def open_page(browser, base: str, caller, *, width: int = 1600, height: int = 1000):
    context = await browser.new_context(viewport={"width": width, "height": height})
    r = await context.request.post(f"{base}/auth/session", headers=caller.headers)
    assert r.status == 204
    page = await context.new_page()
    seen = {"requests": [], "problems": [], "dialogs": []}
    page.on("request", lambda req: seen["requests"].append(req.url))
    page.on("console", lambda msg: seen["problems"].append(f"console {msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda err: seen["problems"].append(f"page error: {err}"))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    await page.goto(f"{base}/maps/coverage", wait_until="load")
    await page.wait_for_function("() => window.saferCoverage && saferCoverage.state.cameras.length > 0")
    return context, page, seen


async def test_control_room_in_chromium(live_server, make_caller, db, chromium_path, tmp_path):
    from playwright.async_api import async_playwright

    caller = await make_caller("coverage-room", "operator")
    async with httpx.AsyncClient(base_url=live_server, headers=caller.headers, timeout=30) as api:
        ids = await scene(db, api, caller.partnership_id)

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            context, page, seen = await open_page(browser, live_server, caller)
            await fit(page, SCENE)
            await page.wait_for_function(f"() => Object.keys(({CAMERA_PATHS})('cameras')).length === {len(CAMERAS)}")
            await page.wait_for_load_state("networkidle")

            # Nothing but this server was asked for anything, and nothing failed.
            assert [u for u in seen["requests"] if urlsplit(u).hostname != "127.0.0.1"] == []
            assert seen["problems"] == []
            counts = await page.locator("#sm-cov-counts").inner_text()
            assert "5 cameras" in counts and "4 working" in counts and "1 faulty" in counts
            assert "Live" in await page.locator("#sm-cov-live").inner_text()

            # The fault is listed (its hostile name as text), ringed, drawn larger, and leads to it.
            assert await page.locator("#sm-cov-faults h2").inner_text() == "Faults (1)"
            fault = page.locator("#sm-cov-fault-list button")
            assert await fault.count() == 1
            assert "FAULTY" in await fault.inner_text() and XSS_NAME in await fault.inner_text()
            assert OTHER_OWNER in await fault.inner_text()
            assert await page.locator("#sm-cov-faults img").count() == 0
            drawn = await page.evaluate(f"({CAMERA_PATHS})('cameras')")
            assert drawn["FAULTY"]["r"] > drawn["MAST"]["r"] + 4
            assert drawn["FAULTY"]["stroke"] == "#7f1d1d"
            assert await page.locator(".sm-cov-fault-ring").count() == 1
            await fault.click()
            await page.locator(".leaflet-popup-content .sm-popup-title", has_text="FAULTY").wait_for()
            assert XSS_NAME in await page.locator(".leaflet-popup-content").inner_text()
            assert await page.locator(".leaflet-popup-content img").count() == 0
            assert await page.evaluate("saferCoverage.map.getZoom()") >= 18
            await fit(page, SCENE)

            # Who could have seen it, 28 days ago: the shop's dome (nearest; 14 days kept: expired) and
            # the mast (30 days: due within 3 days), with their owners and deadlines.
            await page.click("#sm-cov-mode-who")
            then = datetime.now(UK) - timedelta(days=28)
            await page.fill("#sm-cov-who input[name=at]", uk_input(then))
            await click_at(page, IN_FRONT)
            items = page.locator("#sm-cov-who-list > li")
            await page.wait_for_function("() => document.querySelectorAll('#sm-cov-who-list > li').length === 2")
            assert [await items.nth(i).locator("strong").inner_text() for i in range(2)] == ["SHOP", "MAST"]
            shop, mast = await items.nth(0).inner_text(), await items.nth(1).inner_text()
            assert SHOP_OWNER in shop and "expired" in shop
            assert OWNER in mast and "cctv@salford.example" in mast and "due soon" in mast
            states = await page.locator("#sm-cov-who-list .sm-cov-deadline").evaluate_all(
                "els => els.map(e => [e.dataset.state, getComputedStyle(e).backgroundColor])")
            assert states == [["expired", "rgb(254, 226, 226)"], ["due-soon", "rgb(254, 243, 199)"]]
            href = await page.locator("#sm-cov-who-print").get_attribute("href")
            assert href.startswith("/maps/coverage/footage-request?") and parse_qs(urlsplit(href).query)["at"] == [uk_input(then)]
            # Behind the building nobody saw it.
            await click_at(page, BEHIND)
            await page.locator("#sm-cov-who .sm-cov-message", has_text="No working camera").wait_for()
            assert await items.count() == 0

            # The path between two incidents: the dome beside the street, not the one 80 m from it.
            await page.click("#sm-cov-mode-path")
            start = datetime.now(UK) - timedelta(days=2)
            await fit(page, SCENE)
            for xy in ((0, 0), (400, 0)):
                await click_at(page, xy)
            # The keyboard's way: move the map, add its centre.
            lon, lat = ll(*FAR_FROM_STREETS)
            await page.evaluate(f"saferCoverage.map.setView([{lat}, {lon}], 17, {{animate: false}})")
            await page.get_by_role("button", name="Add the map centre").click()
            rows = page.locator("#sm-cov-points > li")
            assert await rows.count() == 3
            for i, minutes in enumerate((0, 10, 20)):
                await rows.nth(i).locator("input[type=datetime-local]").fill(uk_input(start + timedelta(minutes=minutes)))
            await rows.nth(0).locator("input[type=text]").fill("robbery")
            await page.click("#sm-cov-build")
            error = page.locator("#sm-cov-path-message.sm-cov-error")
            await error.wait_for()
            assert "from the nearest walkable street" in await error.inner_text()
            assert "sm-cov-error" in await rows.nth(2).get_attribute("class")
            # The refusal is the one thing the browser logged (a failed request is always logged).
            assert [m for m in seen["problems"] if "status of 400" in m] == [seen["problems"].pop()]
            await rows.nth(2).locator(".sm-cov-remove").click()
            await page.click("#sm-cov-build")
            await page.wait_for_function("() => document.querySelectorAll('#sm-cov-path-list > li').length > 0")
            listed = await page.locator("#sm-cov-path-list > li strong").all_inner_texts()
            assert listed == ["BESIDE"]
            beside = await page.locator("#sm-cov-path-list > li").first.inner_text()
            assert "Window" in beside and "Request by" in beside
            pack = await page.locator("#sm-cov-print-pack").get_attribute("href")
            query = parse_qs(urlsplit(pack).query)
            assert urlsplit(pack).path == "/maps/coverage/footage-pack" and len(query["incident"]) == 2
            assert query["incident"][0].endswith(",robbery") and query["margin_minutes"] == ["15"]
            assert await page.locator(".leaflet-sm-cov-marks-pane path").count() >= 2  # the path is drawn

            # The owner filter hides another owner's cameras, coverage and fault.
            await page.click("#sm-cov-mode-browse")
            await page.evaluate(f"""(() => {{
                const s = document.getElementById('sm-cov-owner');
                s.value = [...s.options].find(o => o.text.startsWith({OWNER!r})).value;
                s.dispatchEvent(new Event('change')); }})()""")
            drawn = await page.evaluate(f"({CAMERA_PATHS})('cameras')")
            for ref in ("SHOP", "FAULTY"):
                assert drawn[ref]["stroke"] == "none" and drawn[ref]["fill"] == "none", ref
            for ref in ("MAST", "BESIDE", "AWAY"):
                assert drawn[ref]["fill"] not in (None, "none"), ref
            wedges = await page.evaluate(f"({CAMERA_PATHS})('coverage')")
            assert wedges["SHOP"]["fill"] == "none" and wedges["MAST"]["fill"] not in (None, "none")
            assert await fault.count() == 0
            assert "1 more hidden by the filters" in await page.locator("#sm-cov-faults").inner_text()
            await page.select_option("#sm-cov-owner", "all")
            drawn = await page.evaluate(f"({CAMERA_PATHS})('cameras')")
            assert drawn["SHOP"]["fill"] not in (None, "none") and await fault.count() == 1

            # A camera reported faulty elsewhere reaches the open page at its next check.
            current = (await api.get(f"/api/cameras/{ids['MAST']}")).json()
            r = await api.patch(f"/api/cameras/{ids['MAST']}", json={
                "properties": {"status": "faulty", "version": current["properties"]["version"]}})
            assert r.status_code == 200, r.text
            await page.evaluate("saferCoverage.check()")
            await page.wait_for_function("() => document.querySelector('#sm-cov-faults h2').textContent === 'Faults (2)'")
            await page.wait_for_function(f"() => (({CAMERA_PATHS})('cameras').MAST || {{}}).stroke === '#7f1d1d'")
            assert "Updated" in await page.locator("#sm-cov-live").inner_text()

            await page.screenshot(path=str(tmp_path / "coverage.png"))
            assert seen["dialogs"] == [] and seen["problems"] == []
            await browser.close()


async def test_only_operators_site_cameras_and_a_planned_site_shows_in_the_figures(
        live_server, make_caller, db, chromium_path):
    from playwright.async_api import async_playwright

    viewer = await make_caller("coverage-siting", "viewer")
    operator = await make_caller("coverage-siting", "operator")
    async with httpx.AsyncClient(base_url=live_server, headers=operator.headers, timeout=30) as api:
        await scene(db, api, operator.partnership_id)
    # Twelve incidents 20 m north of the street, seen by no camera.
    await add_incidents(db, operator.partnership_id, "Street crime", "police-uk:test",
                        [(*ll(200, 20), "Robbery", "2024-03")] * 12)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context, page, seen = await open_page(browser, live_server, viewer)
        await page.locator("#sm-cov-share").wait_for()
        assert await page.locator("#sm-cov-suggest").count() == 0
        assert await page.locator("#sm-cov-siting").count() == 0
        assert seen["problems"] == []
        await context.close()

        context, page, seen = await open_page(browser, live_server, operator)
        share = page.locator("#sm-cov-share")
        await share.wait_for()
        assert await share.locator(".sm-cov-figure-now").inner_text() == "0.0%"
        assert await share.locator(".sm-cov-figure-planned").inner_text() == "0.0%"
        await page.select_option("#sm-cov-siting select", "1")
        await page.click("#sm-cov-suggest")
        site = page.locator("#sm-cov-sites > li")
        await site.first.wait_for(timeout=30000)
        assert await site.count() == 1 and "+12 incidents" in await site.first.inner_text()
        assert await page.locator(".sm-cov-mark-site").count() == 1
        await site.first.locator(".sm-cov-add").click()
        await site.first.locator(".sm-cov-add", has_text="Added as SITE-").wait_for()
        # Counted as planned: the figures with planned cameras move, the current ones do not.
        await page.wait_for_function(
            "() => document.querySelector('#sm-cov-share .sm-cov-figure-planned').textContent === '100.0%'")
        assert await share.locator(".sm-cov-figure-now").inner_text() == "0.0%"
        await page.wait_for_function("() => document.querySelector('#sm-cov-counts').textContent.includes('1 planned')")
        planned = (await db.execute(text("SELECT reference, status FROM camera WHERE partnership_id = :p "
                                         "AND reference LIKE 'SITE-%'"), {"p": operator.partnership_id})).all()
        assert [p.status for p in planned] == ["planned"]
        assert seen["problems"] == [] and seen["dialogs"] == []
        await browser.close()
