"""The printable footage-request list in Chromium: it loads nothing from elsewhere, its print styles are
admitted by the page's policy (no console error), expired and due-soon deadlines stand out, and it
prints to A4."""
from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

from tests.factories import browser_page
from tests.scenes import LISTED, STOPS, T0, add_camera, add_streets, ll, scene

A4_WIDTH_PT, A4_HEIGHT_PT = 595.3, 841.9
MEDIA_BOX = re.compile(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]")
PAGE = re.compile(rb"/Type\s*/Page(?![s\w])")


async def test_footage_request_page_in_chromium(live_server, make_caller, db, chromium_path, tmp_path):
    caller = await make_caller("footage-browser", "viewer")
    pid = caller.partnership_id
    await add_streets(db, pid, {"Deansgate": [(-80, 0), (80, 0)]})
    # 20 days ago: 14 days kept is gone, 22 is due within 3 days, the rest are fine.
    await add_camera(db, pid, "GONE-14", xy=(0, 8), range_m=30, retention_days=14)
    await add_camera(db, pid, "SOON-22", xy=(4, 8), range_m=30, retention_days=22)
    for n in range(12):  # enough rows to fill a printed page
        await add_camera(db, pid, f"FINE-{n:02d}", xy=(10 + n, -8), range_m=40, retention_days=None,
                         owner=f"<b>Shop {n}</b>")
    await db.commit()
    lon, lat = ll(0, 0)
    url = f"{live_server}/maps/coverage/footage-request?lon={lon}&lat={lat}&at={T0.isoformat().replace('+', '%2B')}"

    async with browser_page(live_server, caller, chromium_path=chromium_path,
                            viewport={"width": 1280, "height": 900}) as watched:
        page, requests, problems = watched.page, watched.requests, watched.problems
        response = await page.goto(url, wait_until="networkidle")
        assert response.status == 200

        assert [u for u in requests if urlsplit(u).hostname != "127.0.0.1"] == []
        assert problems == []  # the policy admitted the page's own style sheet and element
        rows = page.locator("table.sm-request tbody tr")
        assert await rows.count() == 14
        assert await rows.nth(0).locator("td").nth(1).inner_text() == "GONE-14\nGONE-14 camera\nptz"
        assert "<b>Shop 0</b>" in await page.locator("table.sm-request").inner_text()  # text, not markup
        assert await page.locator("table.sm-request b").count() == 0

        # Expired and due-soon deadlines are coloured; the others are not.
        colours = await page.evaluate("""[...document.querySelectorAll('table.sm-request tbody tr')].map(
            tr => getComputedStyle(tr.querySelector('.sm-deadline')).backgroundColor)""")
        assert colours[0] == "rgb(254, 226, 226)" and colours[1] == "rgb(254, 243, 199)"
        assert set(colours[2:]) == {"rgba(0, 0, 0, 0)"}
        assert "EXPIRED" in await rows.nth(0).inner_text() and "DUE SOON" in await rows.nth(1).inner_text()

        # In print the screen hint goes, and the list prints on A4 with its header row on each page.
        await page.emulate_media(media="print")
        assert not await page.locator(".sm-screen-only").is_visible()
        pdf = tmp_path / "footage-request.pdf"
        await page.pdf(path=str(pdf), prefer_css_page_size=True)
        data = pdf.read_bytes()
        boxes = [tuple(float(v) for v in m.groups()) for m in MEDIA_BOX.finditer(data)]
        pages = len(PAGE.findall(data))
        assert boxes and all(abs(w - A4_WIDTH_PT) < 2 and abs(h - A4_HEIGHT_PT) < 2 for w, h in boxes), boxes
        assert 1 <= pages <= 2, pages  # 14 cameras fit on one or two A4 pages


async def test_path_pack_page_in_chromium(live_server, make_caller, db, chromium_path, tmp_path):
    caller = await make_caller("footage-browser-pack", "viewer")
    await scene(db, caller.partnership_id)
    query = "&".join(f"incident={ll(*xy)[0]},{ll(*xy)[1]},{quote(at.isoformat())},{quote(label)}"
                     for xy, at, label in STOPS)
    async with browser_page(live_server, caller, chromium_path=chromium_path,
                            viewport={"width": 1280, "height": 900}) as watched:
        page, requests, problems = watched.page, watched.requests, watched.problems
        response = await page.goto(f"{live_server}/maps/coverage/footage-pack?{query}", wait_until="networkidle")
        assert response.status == 200
        assert [u for u in requests if urlsplit(u).hostname != "127.0.0.1"] == [] and problems == []
        refs = await page.locator("table.sm-request tbody tr td:nth-child(2) strong").all_inner_texts()
        assert refs == LISTED
        # The sketch is drawn where it should be: the numbered cameras sit in the path's box, and the
        # first incident (A) is left of the last (C), which is above it (north up, east right).
        marks = await page.evaluate("""(() => {
            const r = e => { const b = e.getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; };
            return {stops: [...document.querySelectorAll('svg.sm-sketch rect')].map(r),
                    cams: [...document.querySelectorAll('svg.sm-sketch circle')].map(r)}; })()""")
        (ax, ay), _, (cx, cy) = marks["stops"]
        assert ax < cx and cy < ay and len(marks["cams"]) == len(LISTED)
        await page.emulate_media(media="print")
        pdf = tmp_path / "footage-pack.pdf"
        await page.pdf(path=str(pdf), prefer_css_page_size=True)
        boxes = [tuple(float(v) for v in m.groups()) for m in MEDIA_BOX.finditer(pdf.read_bytes())]
        assert boxes and all(abs(w - A4_WIDTH_PT) < 2 and abs(h - A4_HEIGHT_PT) < 2 for w, h in boxes)
