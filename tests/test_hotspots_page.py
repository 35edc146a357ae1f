"""The tasking page /maps/hotspots: what it embeds, who may open it, and how a meeting uses it in a
real browser (Debian's Chromium through Playwright, against the app under uvicorn).

A tasking meeting depends on: the period and the legend always on screen, the top hotspots beside
the map (a click takes the map there), the filters changing what the hotspot tiles show, print
buttons that carry the filters, nothing fetched from outside, and data shown as text, never markup.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.factories import TO_WGS84, browser_page, config_of
from tests.scenes import HOT, HOT_COUNT, build_world

XSS_CATEGORY = "<img src=x onerror=alert(1)>"


# -- the page as HTML -------------------------------------------------------------------------------

async def test_browser_without_session_is_sent_to_sign_in(client):
    r = await client.get("/maps/hotspots?from=2024-03", headers={"Accept": "text/html"})
    assert r.status_code == 303
    assert r.headers["location"] == "/maps/sign-in?next=/maps/hotspots%3Ffrom%3D2024-03"
    r = await client.get("/maps/hotspots", headers={"Accept": "application/json"})
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")


async def test_page_opens_on_the_latest_month_with_local_assets_only(client, make_caller, db):
    world = await build_world(db, make_caller, client)
    other = await make_caller("other-csp", "admin")
    r = await client.get("/maps/hotspots", headers=world.viewer_headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["cache-control"] == "no-store"
    html = r.text
    assert not re.search(r'(src|href)="(https?:)?//', html) and "cdn" not in html.lower()
    assert "safermap-hotspots.js" in html and "safermap-hotspots.css" in html
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src", 1)[1].split(";")[0]

    config = config_of(html)
    assert config["filter"]["from"] == "2024-03-01" and config["filter"]["to"] == "2024-03-31"
    assert config["latest"] == "2024-03" and config["months"] == ["2024-02", "2024-03"]
    assert config["datasets"] == [{"key": "police-crime", "name": "Police recorded crime",
                                   "level": "sanitised", "synthetic": False}]
    assert [b["id"] for b in config["background"]] == ["buildings", "streets"]
    (south, west), (north, east) = config["bounds"]
    hot_lon, hot_lat = TO_WGS84.transform(*HOT)
    assert west < hot_lon < east and south < hot_lat < north
    assert "Open Government Licence" in config["attribution"]

    # A period asked for in the URL is the one the page opens on; another partnership sees nothing of ours.
    r = await client.get("/maps/hotspots", headers=world.viewer_headers, params={"from": "2024-02", "to": "2024-02"})
    assert config_of(r.text)["filter"]["from"] == "2024-02-01"
    r = await client.get("/maps/hotspots", headers=other.headers)
    mine = config_of(r.text)
    assert mine["latest"] is None and mine["datasets"] == [] and mine["bounds"] is None
    assert "print-csp" not in r.text

    r = await client.get("/maps/hotspots", headers=world.viewer_headers, params={"from": "March"})
    assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")


# -- the page in Chromium ---------------------------------------------------------------------------

async def test_tasking_page_in_chromium(live_server, make_caller, db, chromium_path, tmp_path):
    async with httpx.AsyncClient(base_url=live_server, timeout=30) as api:
        world = await build_world(db, make_caller, api, slug="tasking-csp", category=XSS_CATEGORY)

    async with browser_page(live_server, world.viewer, chromium_path=chromium_path,
                            viewport={"width": 1600, "height": 900}, accept_downloads=True) as watched:
        page, requests, problems, dialogs = watched.page, watched.requests, watched.problems, watched.dialogs

        await page.goto(f"{live_server}/maps/hotspots", wait_until="load")
        await page.wait_for_function("() => window.saferHotspots && saferHotspots.map")
        legend = page.locator("#sm-hs-legend")
        await legend.locator(".sm-hs-legend-row").first.wait_for(timeout=20000)
        top = page.locator("#sm-hs-top .sm-hs-top-item")
        await top.first.wait_for(timeout=20000)
        await page.wait_for_load_state("networkidle")

        if os.environ.get("SAFERMAP_SCREENSHOTS"):
            await page.wait_for_timeout(500)
            await page.screenshot(path=str(Path(os.environ["SAFERMAP_SCREENSHOTS"]) / "hotspots-open.png"))

        # Nothing but this server was asked for anything.
        elsewhere = [u for u in requests if not u.startswith("data:") and urlsplit(u).hostname != "127.0.0.1"]
        assert elsewhere == []

        # The period, big in the bar and in the legend, and the legend with its classes and counts.
        assert await page.locator("#sm-hs-period").inner_text() == "March 2024"
        assert await legend.is_visible()
        text = await legend.inner_text()
        assert "March 2024" in text and "incidents per km²" in text and "standard deviations" in text
        assert f"{HOT_COUNT + 80} incidents mapped" in text
        rows = await legend.locator(".sm-hs-legend-row").count()
        assert rows >= 3
        note = page.locator("#sm-hs-sanitised-note")
        assert await note.is_visible()
        assert "Sanitised data shown" in await note.inner_text()
        assert "Counts below 5 are held back" in await note.inner_text()
        font = await page.eval_on_selector(".sm-hs-legend-period", "e => parseFloat(getComputedStyle(e).fontSize)")
        assert font >= 20  # legible on a projector

        # The hotspot tiles were drawn from our tile server, for March.
        tiles = [u for u in requests if "/tiles/hotspots/" in u]
        assert tiles and all(parse_qs(urlsplit(u).query).get("from") == ["2024-03"] for u in tiles)
        # The background streets came as vector tiles too.
        assert any("/tiles/streets/" in u for u in requests)

        # The top list: the hotspot first, its count, its rise and its category, as text.
        first = await top.first.inner_text()
        assert "1" in first and "▲" in first
        assert XSS_CATEGORY in first
        assert await page.locator("#sm-hs-top img").count() == 0
        box = await page.locator(".sm-hs-side").bounding_box()
        map_box = await page.locator(".folium-map").bounding_box()
        assert box["x"] >= map_box["x"] + map_box["width"] - 1, "the list is beside the map, not over it"

        # Clicking an entry takes the map to its area.
        await page.evaluate("saferHotspots.map.setZoom(13, {animate: false})")
        await top.first.click()
        await page.wait_for_function("() => saferHotspots.map.getZoom() >= 15")
        centre = await page.evaluate("(() => { const c = saferHotspots.map.getCenter(); return [c.lng, c.lat]; })()")
        hot_lon, hot_lat = TO_WGS84.transform(*HOT)
        assert abs(centre[0] - hot_lon) < 0.003 and abs(centre[1] - hot_lat) < 0.002

        # The print buttons carry the filters.
        png = await page.get_attribute("#sm-hs-print-png", "href")
        assert png.startswith("/maps/hotspots/print.png?") and "from=2024-03" in png
        await page.fill(".sm-hs-print input", "Tasking <b>April</b>")
        pdf = await page.get_attribute("#sm-hs-print-pdf", "href")
        assert parse_qs(urlsplit(pdf).query)["title"] == ["Tasking <b>April</b>"]

        shot = tmp_path / "hotspots.png"
        await page.wait_for_timeout(400)  # the zoom animation
        await page.screenshot(path=str(shot))
        if os.environ.get("SAFERMAP_SCREENSHOTS"):
            shutil.copy(shot, Path(os.environ["SAFERMAP_SCREENSHOTS"]) / "hotspots.png")

        # A filter change (the quick pick "Last 3 months") asks for new tiles with the new period,
        # and the period on screen follows.
        async with page.expect_response(lambda res: "/tiles/hotspots/" in res.url and "from=2024-01" in res.url):
            await page.click("#sm-hs-pick-3")
        await page.wait_for_function("() => document.querySelector('#sm-hs-period').textContent === 'January – March 2024'")
        assert "from=2024-01" in await page.evaluate("saferHotspots.hotspots._url")
        assert "from=2024-01" in await page.get_attribute("#sm-hs-print-pdf", "href")
        assert "from=2024-01" in page.url  # the address can be shared

        # A category filter changes the tile URLs again.
        await page.click(".sm-hs-checklist summary")
        async with page.expect_response(lambda res: "/tiles/hotspots/" in res.url and "category=" in res.url):
            await page.locator(".sm-hs-check", has_text="Anti-social behaviour").click()
        assert "category=Anti-social%20behaviour" in await page.evaluate("saferHotspots.hotspots._url")

        # The change in the list can be against the same period last year; the print follows.
        async with page.expect_response(lambda res: "/api/hotspots/top" in res.url and "compare=last_year" in res.url):
            await page.select_option("select[name=compare]", "last_year")
        assert "compare=last_year" in await page.get_attribute("#sm-hs-print-png", "href")
        await page.locator(".sm-hs-side-period", has_text="January – March 2023").wait_for(timeout=20000)

        # Gi* hot spots and change can be laid over it; their legends appear.
        async with page.expect_response(lambda res: "/api/hotspots/gistar" in res.url):
            await page.check("input[name=gistar]")
        await page.locator("#sm-hs-legend-gistar").wait_for(timeout=20000)
        async with page.expect_response(lambda res: "/api/hotspots/change" in res.url):
            await page.check("input[name=change]")
        await page.locator("#sm-hs-legend-change").wait_for(timeout=20000)

        # The PNG download is the A4 sheet.
        await page.fill(".sm-hs-print input", "")
        async with page.expect_download(timeout=60000) as info:
            await page.click("#sm-hs-print-png")
        download = await info.value
        path = tmp_path / "print.png"
        await download.save_as(str(path))
        from PIL import Image
        assert Image.open(path).size == (3508, 2480)

        assert dialogs == []
        assert problems == []
