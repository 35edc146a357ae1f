"""Every page at phone (390 x 844) and tablet (768 x 1024) size, in Chromium: the overview, the control
room, the hotspots, the capture page, an embedded map, the sign-in page and the users page; the
overview at a desk's 1440 px too (its page links once overlapped the user's name there).

Each page is screenshotted (into $SAFERMAP_SCREENSHOTS when set, to look at; else a temporary
directory) and checked for what a screenshot shows going wrong: the page scrolls sideways, map
controls or panels lie on top of each other, a line of text is drawn over another, a control is too
small for a finger (the capture page: 44 px), or the console reports an error.
"""
from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from tests.factories import CHROMIUM_ARGS
from tests.scenes import HOT, X0, Y0, build_world, lonlat

PHONE, TABLET, DESK = (390, 844), (768, 1024), (1440, 900)
LONG_NAME = "Alexandra Montgomery-Whitworth"
PAGES = {  # path -> what says the page has drawn itself
    "/maps/overview": "() => window.saferMap && document.querySelector('.sm-brand')",
    "/maps/coverage": "() => window.saferCoverage && saferCoverage.state.cameras.length > 0",
    "/maps/hotspots": "() => window.saferHotspots && saferHotspots.map",
    "/capture": "() => window.saferCapture && saferCapture.ready",
    "/admin/users": "() => document.querySelector('table, main')",
    "/sign-in": "() => document.querySelector('form')",
}

# Boxes that must not overlap: the map's controls and the panels laid over the map.
OVERLAP_JS = """(selector) => {
    const boxes = [...document.querySelectorAll(selector)].filter(e => {
        const r = e.getBoundingClientRect(), s = getComputedStyle(e);
        return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none';
    }).map(e => ({name: (e.className && e.className.baseVal === undefined ? e.className : e.tagName)
                         .toString().slice(0, 60), r: e.getBoundingClientRect()}));
    const out = [];
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
        const a = boxes[i].r, b = boxes[j].r;
        const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
        const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
        if (w > 1 && h > 1) out.push(boxes[i].name + ' / ' + boxes[j].name);
    }
    return out;
}"""

# Lines of text drawn over each other: the boxes of text nodes' lines, within one container.
TEXT_OVERLAP_JS = """(selector) => {
    const out = [];
    for (const root of document.querySelectorAll(selector)) {
        const lines = [];
        const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
            const node = walker.currentNode;
            if (!node.textContent.trim()) continue;
            const el = node.parentElement, s = getComputedStyle(el);
            if (s.visibility === 'hidden' || el.closest('[hidden], details:not([open]) > :not(summary)')) continue;
            // What is drawn of the text: its line boxes cut to every ancestor that clips (an
            // ellipsis, a scrolling panel).
            let clip = {left: -1e9, top: -1e9, right: 1e9, bottom: 1e9};
            for (let p = el; p; p = p.parentElement) {
                const ps = getComputedStyle(p);
                if (ps.overflowX !== 'visible' || ps.overflowY !== 'visible') {
                    const c = p.getBoundingClientRect();
                    clip = {left: Math.max(clip.left, c.left), top: Math.max(clip.top, c.top),
                            right: Math.min(clip.right, c.right), bottom: Math.min(clip.bottom, c.bottom)};
                }
            }
            const range = document.createRange();
            range.selectNodeContents(node);
            for (const q of range.getClientRects()) {
                const r = {left: Math.max(q.left, clip.left), top: Math.max(q.top, clip.top),
                           right: Math.min(q.right, clip.right), bottom: Math.min(q.bottom, clip.bottom)};
                if (r.right - r.left > 0 && r.bottom - r.top > 0) lines.push({node, t: node.textContent.trim().slice(0, 30), r});
            }
        }
        for (let i = 0; i < lines.length; i++) for (let j = i + 1; j < lines.length; j++) {
            if (lines[i].node === lines[j].node) continue;
            const a = lines[i].r, b = lines[j].r;
            const w = Math.min(a.right, b.right) - Math.max(a.left, b.left);
            const h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
            if (w > 2 && h > 3) out.push(lines[i].t + ' / ' + lines[j].t);
        }
    }
    return out;
}"""

SMALL_TARGETS_JS = """(minimum) => [...document.querySelectorAll(
        'button, select, textarea, input:not([type=hidden]):not([type=file]), a.cap-link, summary, .leaflet-control-zoom a')]
    .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && !e.closest('[hidden]'); })
    .map(e => { const r = e.getBoundingClientRect();
                const box = e.type === 'checkbox' || e.type === 'radio' ? e.closest('label').getBoundingClientRect() : r;
                return {what: (e.id || e.textContent || e.tagName).trim().slice(0, 30), w: box.width, h: box.height}; })
    .filter(t => t.h < minimum || t.w < minimum)"""

SIDEWAYS_JS = "() => document.scrollingElement.scrollWidth - window.innerWidth"


@pytest.fixture
def shots(tmp_path) -> Path:
    where = Path(os.environ.get("SAFERMAP_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


async def scene(db, make_caller, client, live_server) -> tuple[object, dict]:
    world = await build_world(db, make_caller, client, slug="sizes-csp")
    admin = world.admin
    await db.execute(text("UPDATE principal SET name = :n WHERE partnership_id = :p AND role = 'admin'"),
                     {"n": LONG_NAME, "p": admin.partnership_id})
    await db.execute(text("UPDATE partnership SET name = 'Greater Manchester Community Safety Partnership' "
                          "WHERE id = :p"), {"p": admin.partnership_id})
    await db.commit()
    async with httpx.AsyncClient(base_url=live_server, headers=admin.headers, timeout=30) as api:
        for i, (dx, dy, status) in enumerate(((500, 960, "operational"), (560, 990, "faulty"), (450, 900, "operational"))):
            lon, lat = lonlat(HOT[0] - 525 + dx, HOT[1] - 975 + dy)
            r = await api.post("/api/cameras", json={"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                                                     "properties": {"reference": f"SZ-{i}", "name": f"Market Street camera {i}",
                                                                    "status": status, "bearing": 90 * i, "owner_agency": "Police"}})
            assert r.status_code == 201, r.text
        (w, s), (e, n) = lonlat(X0, Y0), lonlat(X0 + 1500, Y0 + 1500)
        r = await api.post("/api/embeds", json={"title": "Town centre map", "layers": ["cameras", "coverage"],
                                                "area": [w, s, e, n], "allowed_origins": [live_server]})
        assert r.status_code == 201, r.text
        embed = r.json()
    return admin, embed


async def check(page, name: str, size: tuple[int, int], shots: Path, problems: list[str]) -> None:
    await page.wait_for_timeout(600)  # tiles and fonts settle
    await page.screenshot(path=str(shots / f"{name}-{size[0]}x{size[1]}.png"))
    sideways = await page.evaluate(SIDEWAYS_JS)
    if sideways > 1:
        problems.append(f"{name} at {size}: scrolls sideways by {sideways} px")
    for overlap in await page.evaluate(OVERLAP_JS, ".leaflet-control, .sm-note, .cap-map-tools"):
        problems.append(f"{name} at {size}: overlapping {overlap}")
    for overlap in await page.evaluate(TEXT_OVERLAP_JS, ".leaflet-control, header, .sm-cov-bar, .sm-hs-bar, main, aside, .cap-bar"):
        problems.append(f"{name} at {size}: text over text: {overlap}")


async def test_every_page_at_phone_and_tablet_size(live_server, make_caller, db, client, chromium_path, shots):  # noqa: F811
    from playwright.async_api import async_playwright

    admin, embed = await scene(db, make_caller, client, live_server)
    problems: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        here = lonlat(HOT[0], HOT[1])
        for size in (PHONE, TABLET, DESK):
            context = await browser.new_context(
                viewport={"width": size[0], "height": size[1]}, has_touch=size != DESK, is_mobile=size == PHONE,
                geolocation={"longitude": here[0], "latitude": here[1], "accuracy": 6}, permissions=["geolocation"])
            assert (await context.request.post(f"{live_server}/auth/session", headers=admin.headers)).status == 204
            page = await context.new_page()
            errors: list[str] = []
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            paths = ["/maps/overview"] if size == DESK else list(PAGES)
            for path in paths:
                await page.goto(f"{live_server}{path}", wait_until="load")
                await page.wait_for_function(PAGES[path], timeout=15000)
                name = path.strip("/").replace("/", "-")
                await check(page, name, size, shots, problems)
                if path == "/maps/overview":
                    # The brand's lines (title, partnership, page links, user, sign out) one under another.
                    for overlap in await page.evaluate(OVERLAP_JS, ".sm-brand > :not(nav), .sm-brand-page"):
                        problems.append(f"{name} at {size}: brand {overlap}")
                if path == "/capture":
                    for small in await page.evaluate(SMALL_TARGETS_JS, 44):
                        problems.append(f"{name} at {size}: too small for a finger: {small}")
            if size != DESK:
                # The embed as a partner's intranet page shows it: a frame across the page.
                host = f"{live_server}/intranet.html"
                await page.route(host, lambda route: route.fulfill(content_type="text/html", body=(
                    "<!DOCTYPE html><meta name=viewport content='width=device-width'>"
                    "<body style='margin:0'><iframe src='" + embed["url"] + "' style='border:0;width:100vw;height:100vh'>"
                    "</iframe></body>")))
                await page.goto(host, wait_until="load")
                frame = page.frame_locator("iframe")
                await frame.locator(".leaflet-container").wait_for(timeout=10000)
                await page.wait_for_timeout(800)
                await page.screenshot(path=str(shots / f"embed-{size[0]}x{size[1]}.png"))
                inner = next(f for f in page.frames if "/embed/" in f.url)
                for overlap in await inner.evaluate(OVERLAP_JS, ".leaflet-control, .sm-note"):
                    problems.append(f"embed at {size}: overlapping {overlap}")
                if await inner.evaluate(SIDEWAYS_JS) > 1:
                    problems.append(f"embed at {size}: scrolls sideways")
            problems += [f"console at {size}: {e}" for e in errors]
            await context.close()
        await browser.close()
    assert problems == [], "\n".join(problems)
