"""The PCSO capture page /capture, as a PCSO uses it, in Chromium against the real app and PostGIS.

What the page is for, checked the way the issue says it will be checked:
- on a tablet with an emulated GPS fix: a camera is placed at the device's position and turned by
  dragging the direction handle (the wedge follows the drag); with no signal the page reloads from
  the device, two more cameras are added and one verified; back online exactly three cameras and one
  verification reach the server, oldest first; the same outbox sent again from its backup file
  still leaves three (every entry's Idempotency-Key is replayed, not re-applied);
- on a phone: a stale edit comes back as a conflict showing both values, and the PCSO's choice is
  sent on the current version; a photo's GPS position is gone when it is downloaded; a file that is
  not an image is refused with a 4xx the PCSO can see; a fix worse than 25 m asks to confirm or tap;
- the live preview is the wedge the database stores (within 1 % of its area), in a grid whose north
  is turned from true north, for each kind of camera;
- the page itself: PCSO and above only, no inline script (script-src 'self'), the manifest and the
  service worker scoped to /capture, sign-in coming back to /capture.
"""
from __future__ import annotations

import io
import json
import re
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from sqlalchemy import text

from tests.factories import CHROMIUM_ARGS
from tests.scenes import add_streets, ll

TABLET, PHONE = (768, 1024), (390, 844)
HERE = ll(100, 100)            # Manchester, British National Grid metres from the scene origin
STREETS = {"Quay": [(0, 60), (300, 60)], "Dock": [(100, -50), (100, 300)]}
GPS_EXIF = 0x8825


def config_of(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="safermap-config">(.*?)</script>', html, re.S)
    assert m
    return json.loads(m.group(1))


def camera(reference: str, lonlat: tuple[float, float], **props) -> dict:
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": list(lonlat)},
            "properties": {"reference": reference, **props}}


# -- the page as HTTP ---------------------------------------------------------------------------------

async def test_page_is_for_pcsos_and_above_with_no_inline_script(client, make_caller):
    r = await client.get("/capture", headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"] == "/maps/sign-in?next=/capture"
    assert (await client.get("/capture", headers={"Accept": "application/json"})).status_code == 401
    viewer = await make_caller("capture-http", "viewer")
    assert (await client.get("/capture", headers=viewer.headers)).status_code == 403
    pcso = await make_caller("capture-http", "pcso")
    r = await client.get("/capture", headers=pcso.headers)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    policy = dict(d.strip().split(" ", 1) for d in r.headers["content-security-policy"].split(";"))
    assert policy["script-src"] == "'self'" and "unsafe" not in r.headers["content-security-policy"]
    # Every script is a file of this server; the one inline block is JSON, not code.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", r.text, re.S)
    assert all('src="/static/' in attrs or ('application/json' in attrs) for attrs, _ in scripts)
    assert not re.search(r'(src|href)="(https?:)?//', r.text)
    assert 'capture="environment"' in r.text and 'accept="image/*"' in r.text
    config = config_of(r.text)
    assert config["grid"] == {"lon0": -2.0, "k0": 0.9996012717}  # British National Grid
    assert config["limits"] == {"accuracy_warn_m": 25, "duplicate_m": 10, "nearby_radius_m": 300}
    assert all(a.startswith("/static/") and "?v=" in a for a in config["assets"])

    manifest = await client.get("/capture/manifest.webmanifest")
    assert manifest.status_code == 200 and manifest.headers["content-type"].startswith("application/manifest+json")
    m = manifest.json()
    assert (m["start_url"], m["scope"], m["display"]) == ("/capture", "/capture", "standalone")
    sizes = set()
    for icon in m["icons"]:
        got = await client.get(icon["src"])
        assert got.status_code == 200 and got.headers["content-type"] == icon["type"]
        if icon["type"] == "image/png":
            assert Image.open(io.BytesIO(got.content)).size == tuple(map(int, icon["sizes"].split("x")))
            sizes.add(icon["sizes"])
    assert sizes == {"192x192", "512x512"}  # what Chrome wants to install an app
    assert (await client.get("/capture/icon-64.png")).status_code == 404
    sw = await client.get("/capture/sw.js")
    assert sw.status_code == 200 and sw.headers["content-type"].startswith("text/javascript")
    assert sw.headers["service-worker-allowed"] == "/capture"
    assert sw.headers["content-security-policy"] == "default-src 'self'"

    # The overview links to it for those who may open it.
    links = [p["href"] for p in config_of((await client.get("/maps/overview", headers=pcso.headers)).text)["pages"]]
    assert "/capture" in links
    links = [p["href"] for p in config_of((await client.get("/maps/overview", headers=viewer.headers)).text)["pages"]]
    assert "/capture" not in links

    # Signing in again from the page comes back to it; nothing else new is followed.
    r = await client.get("/sign-in", params={"next": "/capture"})
    assert 'name="next" value="/capture"' in r.text
    r = await client.get("/sign-in", params={"next": "/capturex"})
    assert 'name="next" value="/maps/overview"' in r.text


# -- in Chromium ----------------------------------------------------------------------------------------

async def open_capture(browser, base: str, caller, size: tuple[int, int], *, at=HERE, accuracy: float = 6):
    context = await browser.new_context(
        viewport={"width": size[0], "height": size[1]}, has_touch=True, is_mobile=size == PHONE,
        geolocation={"longitude": at[0], "latitude": at[1], "accuracy": accuracy},
        permissions=["geolocation"], accept_downloads=True)
    assert (await context.request.post(f"{base}/auth/session", headers=caller.headers)).status == 204
    page = await context.new_page()
    seen: dict[str, list] = {"problems": [], "requests": []}
    page.on("console", lambda m: seen["problems"].append(f"{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["problems"].append(f"page error: {e}"))
    page.on("request", lambda r: seen["requests"].append(r.url))
    await page.goto(f"{base}/capture", wait_until="load")
    await ready(page)
    return context, page, seen


async def ready(page) -> None:
    await page.wait_for_function("() => window.saferCapture && saferCapture.ready && saferCapture.fix", timeout=20000)


async def screen(page, lat: float, lon: float) -> tuple[float, float]:
    """Where a point of the map is on the page."""
    x, y = await page.evaluate(f"""(() => {{ const v = saferCapture.view.map;
        const p = v.latLngToContainerPoint([{lat}, {lon}]); return [p.x, p.y]; }})()""")
    box = await page.locator("#cap-map").bounding_box()
    return box["x"] + x, box["y"] + y


async def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    await page.mouse.move(*start)
    await page.mouse.down()
    for i in range(1, 11):
        await page.mouse.move(start[0] + (end[0] - start[0]) * i / 10, start[1] + (end[1] - start[1]) * i / 10)
    await page.mouse.up()


async def drag_handle(page, towards: tuple[float, float]) -> None:
    """Drags the direction handle to point along (dx, dy) on the screen from the camera."""
    handle = await page.locator(".cap-mark-handle").bounding_box()
    start = (handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    d = await page.evaluate("saferCapture.form.draft || saferCapture.survey.moving")
    cx, cy = await screen(page, d["lat"], d["lon"])
    await drag(page, start, (cx + towards[0], cy + towards[1]))


async def wait_outbox(page, count: int) -> None:
    """Until the outbox holds `count` entries: a save is written to IndexedDB after its click returns."""
    await page.wait_for_function(f"() => saferCapture.outbox.list().then(l => l.length === {count})",
                                 polling=100, timeout=20000)


async def wait_sent(page, count: int) -> None:
    """Until the page has had `count` entries accepted since it opened, and the outbox is empty."""
    await page.wait_for_function(f"""() => saferCapture.sentCount >= {count} &&
        saferCapture.outbox.list().then(l => l.length === 0)""", polling=200, timeout=20000)


async def cameras_on_server(api: httpx.AsyncClient) -> list[dict]:
    r = await api.get("/api/cameras")
    assert r.status_code == 200
    return r.json()["features"]


async def events(db, pid: int, action: str) -> int:
    value = (await db.execute(text("SELECT count(*) FROM audit_event WHERE partnership_id = :p AND action = :a"),
                              {"p": pid, "a": action})).scalar_one()
    await db.commit()
    return value


async def add_here(page, *, at: tuple[float, float] | None = None, notes: str = "") -> None:
    """Places a camera (by tapping `at`, else at the GPS position), fills a few fields and saves."""
    await page.locator("#cap-tab-add-button").click()
    if at is None:
        await page.locator("#cap-use-gps").click()
    else:
        await page.mouse.click(*await screen(page, at[1], at[0]))
    await page.locator("#cap-type").select_option("fixed")
    if notes:
        await page.locator("#cap-notes").fill(notes)
    await page.locator("#cap-save").click()


async def test_tablet_adds_turns_works_offline_and_never_duplicates(live_server, make_caller, db, chromium_path,  # noqa: F811
                                                                    tmp_path):
    from playwright.async_api import async_playwright

    pcso = await make_caller("capture-tablet", "pcso")
    await add_streets(db, pcso.partnership_id, STREETS)
    await db.commit()
    async with httpx.AsyncClient(base_url=live_server, headers=pcso.headers, timeout=30) as api, \
            async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context, page, seen = await open_capture(browser, live_server, pcso, TABLET)
        await page.wait_for_function("() => saferCapture.shellKept && navigator.serviceWorker.controller", timeout=20000)
        cdp = await context.new_cdp_session(page)
        # An installable app: nothing in the way but the test browser's private (incognito) profile.
        errors = (await cdp.send("Page.getInstallabilityErrors"))["installabilityErrors"]
        assert [e["errorId"] for e in errors if e["errorId"] != "in-incognito"] == []

        # 1. A camera at the device's position, turned east by dragging its handle: the wedge follows.
        await page.locator("#cap-use-gps").click()
        assert await page.locator("#cap-accuracy-warning").is_hidden()  # 6 m is good enough
        before = await page.evaluate("saferCapture.view.editor.preview()")
        assert len(before) == 64  # no direction yet: drawn all round, as the server would
        await drag_handle(page, (120, 0))
        bearing = await page.evaluate("saferCapture.form.draft.bearing")
        grid = await page.evaluate("saferCapture.geo.gridAt(saferCapture.config.grid, saferCapture.fix.lat, saferCapture.fix.lon)")
        assert abs(bearing + grid["gamma"] - 90) < 2  # east on the screen is east on the ground
        wedge = await page.evaluate("saferCapture.view.editor.preview()")
        assert len(wedge) > 4 and all(p[1] >= HERE[0] - 1e-7 for p in wedge)  # all of it east of the camera
        assert "east" not in (await page.locator("#cap-direction").inner_text()).lower()
        assert "from north" in await page.locator("#cap-direction").inner_text()
        await page.locator("#cap-save").click()
        await wait_sent(page, 1)
        [first] = await cameras_on_server(api)
        p = first["properties"]
        assert abs(p["bearing"] - bearing) < 0.05 and p["location_accuracy_m"] == 6
        assert p["camera_type"] == "fixed" and p["fov"] is None  # the type's usual view: left to the rule
        await page.wait_for_function(f"() => saferCapture.survey.cameras.some(c => c.id === {first['id']})")

        # 2. No signal: the page still opens (from the device), with the camera kept.
        await context.set_offline(True)
        await page.reload(wait_until="load")
        await ready(page)
        assert await page.evaluate("fetch('/health', {cache: 'no-store'}).then(() => 'reached', () => 'offline')") == "offline"
        await page.locator("#cap-net", has_text="No signal").wait_for(timeout=5000)
        assert await page.evaluate("saferCapture.rule && saferCapture.rule.range_m_per_height_m") == 7
        assert await page.evaluate("saferCapture.options.retention_days.length") > 0

        # 3. Two more cameras and a verification, all waiting in the outbox.
        await add_here(page, at=ll(140, 100), notes="Above the chemist's door")
        await add_here(page, at=ll(100, 150))
        await wait_outbox(page, 2)
        await page.locator("#cap-tab-nearby-button").click()
        item = page.locator(f'#cap-nearby li[data-camera="{first["id"]}"]')
        await item.get_by_role("button", name="Verified").click()
        await wait_outbox(page, 3)
        await page.locator("#cap-outbox-button").click()
        summary = await page.locator("#cap-outbox-summary").inner_text()
        assert summary.startswith("3 entries wait") and "oldest" in summary
        assert "Outbox 3" in await page.locator("#cap-outbox-button").inner_text()
        assert await page.locator(".cap-entry-error").count() == 0 or \
            "signal" in (await page.locator(".cap-entry-error").first.inner_text())
        async with page.expect_download() as download:
            await page.locator("#cap-export").click()
        backup = tmp_path / "outbox.json"
        await (await download.value).save_as(backup)
        saved = json.loads(backup.read_text())
        assert saved["format"] == "safermap-outbox" and [e["kind"] for e in saved["entries"]] == ["create", "create", "survey"]
        assert len(await cameras_on_server(api)) == 1  # nothing reached the server

        # 4. Signal again: the outbox empties by itself, oldest first.
        await context.set_offline(False)
        await wait_sent(page, 3)
        cameras = await cameras_on_server(api)
        assert len(cameras) == 3
        notes = {c["properties"]["reference"]: c["properties"]["notes"] for c in cameras}
        assert "Above the chemist's door" in notes.values()
        verified = [c for c in cameras if c["properties"]["verified_at"]]
        assert [c["id"] for c in verified] == [first["id"]] and verified[0]["properties"]["verified_by"] == "pcso of capture-tablet"
        assert await events(db, pcso.partnership_id, "camera.create") == 3
        assert await events(db, pcso.partnership_id, "camera.survey") == 1
        ids = {c["properties"]["notes"]: c["id"] for c in cameras if c["id"] != first["id"]}
        assert ids["Above the chemist's door"] < ids[""]  # sent in the order they were made

        # 5. The same outbox sent again (restored from its backup): the same answers, nothing new.
        await page.locator("#cap-outbox-button").click()
        await page.locator("#cap-import").set_input_files(str(backup))
        await wait_sent(page, 6)  # three more answers: the first ones, replayed
        assert len(await cameras_on_server(api)) == 3
        assert await events(db, pcso.partnership_id, "camera.create") == 3
        assert await events(db, pcso.partnership_id, "camera.survey") == 1

        # 6. The first camera moved a few metres and turned to face south, by dragging.
        await page.locator("#cap-tab-nearby-button").click()
        await page.locator(f'#cap-nearby li[data-camera="{first["id"]}"] .cap-item-title').click()
        await page.get_by_role("button", name="Move or turn").click()
        m = await page.evaluate("saferCapture.survey.moving")
        start = await screen(page, m["lat"], m["lon"])
        await drag(page, start, (start[0] + 20, start[1]))
        await drag_handle(page, (0, 120))
        await page.get_by_role("button", name="Save move and turn").click()
        await wait_sent(page, 7)
        moved = (await api.get(f"/api/cameras/{first['id']}")).json()
        assert moved["properties"]["version"] == 3  # created, verified, moved and turned
        assert abs(moved["properties"]["bearing"] + grid["gamma"] - 180) < 2
        east_m = (moved["geometry"]["coordinates"][0] - first["geometry"]["coordinates"][0]) * 111_320 * 0.595
        assert 4 < east_m < 10 and abs(moved["geometry"]["coordinates"][1] - first["geometry"]["coordinates"][1]) < 2e-5
        assert await events(db, pcso.partnership_id, "camera.update") == 1
        # The one failed request is the test's own check that the network was gone.
        assert [p for p in seen["problems"] if "ERR_INTERNET_DISCONNECTED" not in p] == [], seen["problems"]
        assert {urlsplit(u).hostname for u in seen["requests"]} == {"127.0.0.1"}
        await browser.close()


def photo_with_gps() -> bytes:
    """A JPEG whose EXIF says where it was taken (as a phone's camera writes it)."""
    img = Image.new("RGB", (640, 480), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif.get_ifd(GPS_EXIF).update({1: "N", 2: (53.0, 28.0, 45.5), 3: "W", 4: (2.0, 15.0, 20.0)})
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    assert Image.open(io.BytesIO(buf.getvalue())).getexif().get_ifd(GPS_EXIF)  # it has one to lose
    return buf.getvalue()


async def test_phone_conflict_photo_refusal_and_a_poor_fix(live_server, make_caller, db, chromium_path,  # noqa: F811
                                                          tmp_path):
    from playwright.async_api import async_playwright

    pcso = await make_caller("capture-phone", "pcso")
    colleague = await make_caller("capture-phone", "pcso")
    async with httpx.AsyncClient(base_url=live_server, timeout=30) as api, async_playwright() as pw:
        r = await api.post("/api/cameras", headers=pcso.headers, json=camera(
            "BUS-STOP", ll(110, 100), bearing=90, notes="Pole by the bus stop", owner_agency="Bus company"))
        assert r.status_code == 201
        cam = r.json()
        browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context, page, seen = await open_capture(browser, live_server, pcso, PHONE, accuracy=40)

        # A fix of ±40 m: the page says so, and saving waits for a confirmation or a tap on the spot.
        assert "not good enough" in await page.locator("#cap-fix").inner_text()
        await page.locator("#cap-use-gps").click()
        warning = page.locator("#cap-accuracy-warning")
        assert "±40 m" in await warning.inner_text() and "25 m" in await warning.inner_text()
        await page.locator("#cap-save").click()
        assert "Confirm the position" in await page.locator("#cap-form-message").inner_text()
        await wait_outbox(page, 0)
        await page.mouse.click(*await screen(page, *reversed(ll(100, 130))))
        assert await warning.is_hidden()
        assert await page.evaluate("saferCapture.form.draft.accuracy") < 10  # a fingertip at this zoom
        await page.locator("#cap-clear").click()

        # Standing under a camera the page keeps (4 m away): offered as the same camera before it is
        # saved, with no signal needed; chosen, that camera is verified instead of a second one added.
        under = ll(114, 100)
        await context.set_geolocation({"longitude": under[0], "latitude": under[1], "accuracy": 5})
        await page.wait_for_function("() => saferCapture.fix.accuracy === 5")
        await page.locator("#cap-use-gps").click()
        await page.locator("#cap-save").click()
        same = page.locator("#cap-duplicates")
        assert "BUS-STOP" in await same.inner_text() and "Is it this one?" in await same.inner_text()
        await same.get_by_role("button", name="This is the same camera").click()
        await wait_sent(page, 1)
        now = (await api.get(f"/api/cameras/{cam['id']}", headers=pcso.headers)).json()["properties"]
        assert now["verified_by"] == "pcso of capture-phone" and now["version"] == 2

        # One the page did not know (added since it looked): the server's 409 shows it, the same choice.
        r = await api.post("/api/cameras", headers=colleague.headers, json=camera("SHOP", ll(160, 100)))
        assert r.status_code == 201
        shop = r.json()
        await page.mouse.click(*await screen(page, *reversed(ll(163, 100))))
        await page.locator("#cap-save").click()
        dialog = page.locator("#cap-dialog")
        await dialog.get_by_text("This camera may already be recorded").wait_for(timeout=15000)
        assert "SHOP" in await dialog.inner_text()
        await dialog.get_by_role("button", name="This is the same camera").click()
        await wait_sent(page, 2)
        assert [c["properties"]["reference"] for c in (await api.get("/api/cameras", headers=pcso.headers)).json()["features"]] \
            == ["BUS-STOP", "SHOP"]
        assert (await api.get(f"/api/cameras/{shop['id']}", headers=pcso.headers)).json()["properties"]["verified_at"]

        # A stale edit: a colleague changed the notes since the page read the camera.
        await page.locator("#cap-tab-nearby-button").click()
        await page.locator(f'#cap-nearby li[data-camera="{cam["id"]}"] .cap-item-title').click()
        r = await api.patch(f"/api/cameras/{cam['id']}", headers=colleague.headers, json={
            "type": "Feature", "properties": {"version": 2, "notes": "Pole by the bus stop; camera replaced"}})
        assert r.status_code == 200, r.text
        await page.locator("#cap-selected-notes").fill("Pole by the bus stop; lens cracked")
        await page.get_by_role("button", name="Save notes").click()
        await dialog.get_by_text("Someone else changed this camera").wait_for(timeout=15000)
        shown = await dialog.inner_text()
        assert "Yours: Pole by the bus stop; lens cracked" in shown
        assert "Now on the server: Pole by the bus stop; camera replaced" in shown
        assert "Before both changes: Pole by the bus stop" in shown
        await page.screenshot(path=str(tmp_path / "conflict.png"))
        await dialog.get_by_role("button", name="Send with these choices").click()
        await wait_sent(page, 3)
        now = (await api.get(f"/api/cameras/{cam['id']}", headers=pcso.headers)).json()["properties"]
        assert now["notes"] == "Pole by the bus stop; lens cracked" and now["version"] == 4

        # The session ends (signed out elsewhere): the outbox waits and asks to sign in again,
        # dropping nothing; signed in again, "Send now" sends it.
        csrf = next(c["value"] for c in await context.cookies() if c["name"] == "safermap_csrf")
        r = await context.request.delete(f"{live_server}/auth/session", headers={"X-CSRF-Token": csrf})
        assert r.status == 204
        await page.locator("#cap-tab-nearby-button").click()
        await page.locator(f'#cap-nearby li[data-camera="{cam["id"]}"]').get_by_role("button", name="Verified").click()
        await page.locator("#cap-sign-in").wait_for(timeout=15000)
        assert await page.locator("#cap-sign-in-link").get_attribute("href") == "/sign-in?next=/capture"
        assert "sign in again" in (await page.locator("#cap-alert").inner_text()).lower()
        await wait_outbox(page, 1)
        assert (await context.request.post(f"{live_server}/auth/session", headers=pcso.headers)).status == 204
        await page.locator("#cap-send").click()
        await wait_sent(page, 4)
        assert (await api.get(f"/api/cameras/{cam['id']}", headers=pcso.headers)).json()["properties"]["verified_at"]

        # A photo from the device's camera: its GPS position is gone when it is downloaded.
        original = tmp_path / "IMG_0001.jpg"
        original.write_bytes(photo_with_gps())
        await page.locator("#cap-tab-nearby-button").click()
        await page.locator("#cap-selected-photo").set_input_files(str(original))
        await wait_sent(page, 5)
        photos = (await api.get(f"/api/cameras/{cam['id']}/photos", headers=pcso.headers)).json()["photos"]
        assert len(photos) == 1
        got = await api.get(photos[0]["url"], headers=pcso.headers)
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert not Image.open(io.BytesIO(got.content)).getexif().get_ifd(GPS_EXIF)

        # A file that is not an image (whatever its name says): refused, and the PCSO is shown why.
        fake = tmp_path / "IMG_0002.jpg"
        fake.write_text("these are my notes, not a photo")
        await page.locator("#cap-selected-photo").set_input_files(str(fake))
        await dialog.get_by_text("The server refused this").wait_for(timeout=15000)
        assert "415" in await dialog.inner_text()
        await dialog.get_by_role("button", name="Close").click()
        entry = page.locator("#cap-outbox li.cap-entry-failed")
        assert "415" in await entry.locator(".cap-entry-error").inner_text()
        assert await entry.is_visible()
        assert "need" in await page.locator("#cap-outbox-summary").inner_text()
        assert "cap-pill-bad" in (await page.locator("#cap-outbox-button").get_attribute("class"))
        await page.screenshot(path=str(tmp_path / "refused.png"))
        assert len((await api.get(f"/api/cameras/{cam['id']}/photos", headers=pcso.headers)).json()["photos"]) == 1
        # What the console says is the refusals the test provoked, nothing else.
        assert [p for p in seen["problems"] if not re.search(r"status of (401|409|415)", p)] == [], seen["problems"]
        await browser.close()


# -- one definition of a camera's plain coverage ------------------------------------------------------

WEDGES = [  # reference, properties: every way the rule picks an angle and a range
    ("DEFAULT", dict(camera_type="fixed", bearing=30)),
    ("SET", dict(camera_type="fixed", bearing=200, fov=90, range_m=40)),
    ("HIGH", dict(camera_type="anpr", bearing=300, height_m=8)),
    ("DOME", dict(camera_type="dome", range_m=25)),
    ("NO-BEARING", dict(camera_type="fixed", range_m=30)),
    ("RESOLVED", dict(camera_type="fixed", bearing=120, fov=70, resolution_px=1920, purpose="recognise")),
    ("FISHEYE", dict(camera_type="ptz", bearing=10, fov=200, resolution_px=2560)),
]
# The preview against what camera_coverage holds (the trigger's wedge redrawn by the line-of-sight
# pass, with no building in the way) and against the trigger's own plain wedge for the camera.
COMPARE = text("""
    SELECT ST_Area(s.geom) AS stored, ST_Area(v.geom) AS preview, ST_Area(ST_SymDifference(s.geom, v.geom)) AS apart,
           ST_Area(ST_SymDifference(pl.geom, v.geom)) / ST_Area(pl.geom) AS apart_from_plain
    FROM camera c
    JOIN partnership p ON p.id = c.partnership_id
    JOIN camera_coverage cc ON cc.camera_id = c.id
    CROSS JOIN LATERAL (SELECT ST_Transform(cc.geom, p.srid) AS geom) AS s
    CROSS JOIN LATERAL (SELECT ST_Transform(ST_GeomFromGeoJSON(:preview), p.srid) AS geom) AS v
    CROSS JOIN LATERAL (SELECT ST_Transform(pc.geom, p.srid) AS geom FROM safermap_plain_coverage(
        c.geom, p.srid, c.camera_type, c.bearing, c.fov, c.range_m, c.height_m, c.resolution_px, c.purpose) AS pc) AS pl
    WHERE c.id = :id
""")


@pytest.mark.parametrize("slug, srid, origin", [
    ("capture-bng", 27700, ll(100, 100)),                 # Manchester: grid north 0.2° off true north
    ("capture-norwich", 27700, (1.2985, 52.6309)),         # far east of the grid's meridian: 2.6° off
    ("capture-helsinki", 32635, (24.9410, 60.1699)),       # UTM 35N, as the demo: 1.8° the other way
])
async def test_preview_is_the_wedge_the_database_stores(live_server, make_caller, db, chromium_path,  # noqa: F811
                                                        slug, srid, origin):
    from playwright.async_api import async_playwright

    pcso = await make_caller(slug, "pcso", srid=srid)
    async with httpx.AsyncClient(base_url=live_server, headers=pcso.headers, timeout=30) as api, \
            async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        context, page, seen = await open_capture(browser, live_server, pcso, TABLET, at=origin)
        for i, (ref, props) in enumerate(WEDGES):
            lon, lat = origin[0] + 0.002 * i, origin[1]
            r = await api.post("/api/cameras", json=camera(ref, (lon, lat), **props))
            assert r.status_code == 201, r.text
            values = {**props, "lat": lat, "lon": lon}
            ring = await page.evaluate("""(v) => { const g = saferCapture.geo, c = g.plain(saferCapture.rule, v);
                return g.shape(saferCapture.config.grid, v.lat, v.lon, v.bearing, c.fov, c.range_m); }""", values)
            preview = json.dumps({"type": "Polygon", "coordinates": [[[p[1], p[0]] for p in ring + ring[:1]]]})
            row = (await db.execute(COMPARE, {"preview": preview, "id": r.json()["id"]})).one()
            await db.commit()
            assert abs(row.preview / row.stored - 1) < 0.01, (ref, row.preview, row.stored)
            assert row.apart / row.stored < 0.01, (ref, row.apart / row.stored)  # the same place, not only the same size
            assert row.apart_from_plain < 0.001, (ref, row.apart_from_plain)  # the trigger's construction, vertex for vertex
        await browser.close()
