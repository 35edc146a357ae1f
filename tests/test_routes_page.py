"""The route page /maps/routes on a phone (390 x 844) in Chromium: it loads nothing from elsewhere,
a link with the request reopens the same routes drawn side by side with their figures, a street
name typed is matched offline, a click sets an end; and the printable A4 route sheet."""
from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

from tests.factories import CHROMIUM_ARGS
from tests.route_scenes import at, streets

LADDER = [
    ("South Street", "residential", "no", [(0, 0), (200, 0), (400, 0)]),
    ("North Street", "residential", "yes", [(0, 60), (200, 60), (400, 60)]),
    ("West Lane", "footway", None, [(0, 0), (0, 60)]),
    ("Mid Lane", "footway", None, [(200, 0), (200, 60)]),
    ("East Lane", "footway", None, [(400, 0), (400, 60)]),
]
QUERY = {"from": at(0, 0), "to": at(400, 0), "profile": "safest", "max_detour": "1.3", "time": "2026-01-15T23:00"}
A4_WIDTH_PT, A4_HEIGHT_PT = 595.3, 841.9
MEDIA_BOX = re.compile(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]")


async def test_browser_without_session_is_sent_to_sign_in(client):
    r = await client.get("/maps/routes", headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"].startswith("/maps/sign-in?next=/maps/routes")


async def test_page_and_sheet_are_served_with_their_policies(client, db, make_caller):
    c = await make_caller("rt-page", "analyst")
    await streets(db, c.partnership_id, LADDER)
    r = await client.get("/maps/routes", headers={**c.headers, "Accept": "text/html"})
    assert r.status_code == 200
    csp = r.headers["content-security-policy"]
    assert "'unsafe-eval'" not in csp and "script-src 'self'" in csp
    for script in ("routes/format.js", "routes/search.js", "routes/results.js", "routes/published.js",
                   "safermap-routes.js"):
        assert f"/static/{script}?v=" in r.text
    assert '"publish":true' in r.text
    sheet = await client.get("/maps/routes/print?" + urlencode(QUERY), headers={**c.headers, "Accept": "text/html"})
    assert sheet.status_code == 200
    assert "script-src 'none'" in sheet.headers["content-security-policy"]
    text = sheet.text
    assert "<svg class=\"sm-map\"" in text and "Avoids 400 m of unlit South Street" in text
    assert "Start along West Lane" in text and "Turn right onto North Street" in text
    assert "/maps/routes?from=" in text  # the link that reopens it
    bad = await client.get("/maps/routes/print?from=x&to=y", headers={**c.headers, "Accept": "text/html"})
    assert bad.status_code == 400


async def test_route_page_on_a_phone(live_server, make_caller, db, chromium_path, tmp_path):  # noqa: F811
    from playwright.async_api import async_playwright

    caller = await make_caller("rt-phone", "viewer")
    await streets(db, caller.partnership_id, LADDER)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        assert (await context.request.post(f"{live_server}/auth/session", headers=caller.headers)).status == 204
        page = await context.new_page()
        requests: list[str] = []
        problems: list[str] = []
        page.on("request", lambda req: requests.append(req.url))
        page.on("console", lambda msg: problems.append(f"{msg.type}: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda err: problems.append(f"page error: {err}"))

        # A link with the request reopens the same routes.
        await page.goto(f"{live_server}/maps/routes?{urlencode(QUERY)}", wait_until="networkidle")
        cards = page.locator(".sm-rt-card")
        await cards.nth(1).wait_for()
        assert await cards.count() == 2
        assert (await cards.nth(0).inner_text()).startswith("Shortest")
        assert "1.30×" in await cards.nth(1).inner_text(), page.url
        assert await page.locator(".sm-rt-card.sm-rt-chosen").inner_text() == await cards.nth(1).inner_text()
        assert (await page.locator(".sm-rt-explanation").inner_text()).startswith("Avoids 400 m of unlit South Street")
        steps = await page.locator(".sm-rt-steps li").all_inner_texts()
        assert steps[0].startswith("Start along West Lane") and len(steps) == 3
        # Usable at phone size: nothing wider than the screen, the map above the panel.
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        box_map = await page.locator(".folium-map").bounding_box()
        box_side = await page.locator(".sm-rt-side").bounding_box()
        assert box_map["width"] == 390 and box_side["y"] >= box_map["y"] + box_map["height"] - 1
        sheet = await page.locator("a", has_text="Print A4 sheet").get_attribute("href")
        assert sheet.startswith("/maps/routes/print?from=")
        reopen = await page.locator("a.sm-rt-reopen").get_attribute("href")
        assert reopen.startswith("/maps/routes?from=") and "time=2026-01-15T23%3A00" in reopen

        # A street typed is matched against the partnership's own streets; the match sets the start.
        await page.locator("#sm-rt-from").fill("north")
        await page.locator(".sm-rt-match", has_text="North Street").click()
        await page.wait_for_function("document.querySelector('.sm-rt-card') && "
                                     "location.search.indexOf('from=') > 0 && "
                                     "window.saferRoutes.ends.from.label === 'North Street'")
        # A tap on the map sets the end being edited.
        await page.locator("#sm-rt-to").focus()
        box = await page.locator(".folium-map").bounding_box()
        await page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.wait_for_function("window.saferRoutes.ends.to.label === null")

        assert [u for u in requests if urlsplit(u).hostname != "127.0.0.1"] == []
        assert problems == []

        # The sheet prints on one A4 page.
        await page.goto(f"{live_server}/maps/routes/print?{urlencode(QUERY)}", wait_until="networkidle")
        await page.emulate_media(media="print")
        pdf = tmp_path / "route.pdf"
        await page.pdf(path=str(pdf), prefer_css_page_size=True)
        boxes = [tuple(float(v) for v in m.groups()) for m in MEDIA_BOX.finditer(pdf.read_bytes())]
        assert boxes and all(abs(w - A4_WIDTH_PT) < 2 and abs(h - A4_HEIGHT_PT) < 2 for w, h in boxes), boxes
        assert len(boxes) == 1, "one sheet"
        assert problems == []
        await browser.close()
