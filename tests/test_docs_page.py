"""The OpenAPI page at /docs works offline: Swagger UI from static/vendor, nothing from a CDN."""
from __future__ import annotations

import shutil
from urllib.parse import urlsplit

import pytest

from tests.test_overview_page import CHROMIUM, CHROMIUM_ARGS


async def test_openapi_document_lists_the_api(client):
    spec = (await client.get("/openapi.json")).json()
    for path in ("/api/cameras", "/api/cameras/{camera_id}", "/api/incidents", "/api/imports",
                 "/tiles/{layer_id}/{z}/{x}/{y}.mvt", "/tiles/{layer_id}.json", "/health"):
        assert path in spec["paths"], path


@pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium is not installed")
async def test_docs_page_renders_offline_in_chromium(live_server):
    from playwright.async_api import async_playwright
    hosts, errors = set(), []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = await browser.new_page()
        page.on("request", lambda r: hosts.add(urlsplit(r.url).hostname or r.url.split(":")[0]))
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{live_server}/docs")
        await page.get_by_text("/api/cameras", exact=True).first.wait_for(timeout=15000)
        await browser.close()
    assert hosts <= {"127.0.0.1", "data"}, hosts
    assert not errors
