"""The OpenAPI page at /docs works offline: Swagger UI from static/vendor, nothing from a CDN."""
from __future__ import annotations

from urllib.parse import urlsplit

from tests.factories import browser_page


async def test_openapi_document_lists_the_api(client):
    spec = (await client.get("/openapi.json")).json()
    for path in ("/api/cameras", "/api/cameras/{camera_id}", "/api/incidents", "/api/imports",
                 "/tiles/{layer_id}/{z}/{x}/{y}.mvt", "/tiles/{layer_id}.json", "/health"):
        assert path in spec["paths"], path


async def test_docs_page_renders_offline_in_chromium(live_server, chromium_path):
    async with browser_page(live_server, chromium_path=chromium_path) as watched:
        await watched.page.goto(f"{live_server}/docs")
        await watched.page.get_by_text("/api/cameras", exact=True).first.wait_for(timeout=15000)
    hosts = {urlsplit(u).hostname or u.split(":")[0] for u in watched.requests}
    assert hosts <= {"127.0.0.1", "data"}, hosts
    assert not watched.page_errors()
