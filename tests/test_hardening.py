"""Hardening: security headers on every answer, CORS only for configured origins, body size limits,
rate limits, and refusal of NUL bytes — each answered as a problem a client can act on."""
from __future__ import annotations

from contextlib import asynccontextmanager

import httpx
from sqlalchemy import text

from tests.factories import camera_feature

INTRANET = "https://intranet.rochdale.gov.uk"


@asynccontextmanager
async def client_of(settings, **changes):
    """A client on an app built with other settings (same database)."""
    from app.main import create_app
    app = create_app(settings.model_copy(update=changes))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
            yield c


async def test_security_headers_on_api_answers_and_pages_keep_their_own_policy(client, make_caller):
    caller = await make_caller(role="viewer")
    for r in (await client.get("/health"), await client.get("/api/cameras", headers=caller.headers),
              await client.get("/api/cameras")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert "geolocation=(self)" in r.headers["permissions-policy"]
        assert "camera=()" in r.headers["permissions-policy"]
        assert "strict-transport-security" not in r.headers  # plain HTTP: no HSTS
    page = await client.get("/sign-in")
    assert "form-action 'self'" in page.headers["content-security-policy"]  # the page's own policy
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    docs = await client.get("/docs")
    assert "script-src 'self' 'sha256-" in docs.headers["content-security-policy"]


async def test_hsts_only_over_https(app):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as c:
        r = await c.get("/health")
    assert r.headers["strict-transport-security"].startswith("max-age=")


async def test_no_cors_by_default_and_only_the_configured_origin_when_set(client, settings):
    preflight = {"Origin": INTRANET, "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}
    r = await client.get("/health", headers={"Origin": INTRANET})
    assert not any(h.startswith("access-control-") for h in r.headers)
    r = await client.options("/api/cameras", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    async with client_of(settings, cors_origins=INTRANET) as c:
        r = await c.get("/health", headers={"Origin": INTRANET})
        assert r.headers["access-control-allow-origin"] == INTRANET
        r = await c.options("/api/cameras", headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == INTRANET
        r = await c.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers


async def test_oversized_bodies_are_413_and_change_nothing(client, make_caller, db):
    caller = await make_caller(role="pcso")
    huge = camera_feature("BIG-1", notes="x" * (1024 * 1024 + 10))
    r = await client.post("/api/cameras", json=huge, headers=caller.headers)
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 413

    async def chunks():  # no Content-Length: the limit is counted as the body streams in
        yield b'{"type": "Feature", "properties": {"reference": "BIG-2", "notes": "'
        for _ in range(20):
            yield b"y" * 65536
        yield b'"}, "geometry": {"type": "Point", "coordinates": [-2.24, 53.48]}}'
    r = await client.post("/api/cameras", content=chunks(),
                          headers={**caller.headers, "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["status"] == 413
    assert (await db.execute(text("SELECT count(*) FROM camera"))).scalar_one() == 0
    await db.commit()
    # A normal body still works.
    assert (await client.post("/api/cameras", json=camera_feature("OK-1"), headers=caller.headers)).status_code == 201


async def test_rate_limit_per_token_answers_429_with_retry_after(settings, make_caller):
    busy = await make_caller(role="viewer")
    calm = await make_caller(role="viewer")
    async with client_of(settings, rate_limit_per_minute=5) as c:
        statuses = [(await c.get("/api/cameras", headers=busy.headers)).status_code for _ in range(5)]
        assert statuses == [200] * 5
        r = await c.get("/api/cameras", headers=busy.headers)
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["content-type"].startswith("application/problem+json")
        # Another caller has its own budget; tiles have their own, larger one.
        assert (await c.get("/api/cameras", headers=calm.headers)).status_code == 200
        assert (await c.get("/health")).status_code == 200


async def test_embedded_maps_are_rate_limited_by_address(settings, make_caller):
    """An embed key sits in an intranet page's HTML: whoever has it may ask for its tiles, but not
    without limit. Its tiles count against the address as tiles do, its page as an API call."""
    admin = await make_caller(role="admin")
    async with client_of(settings, tile_rate_limit_per_minute=4, rate_limit_per_minute=30) as c:
        r = await c.post("/api/embeds", json={"title": "t", "layers": ["cameras"], "precision": "aggregate",
                                              "allowed_origins": ["https://intranet.example"]}, headers=admin.headers)
        assert r.status_code == 201, r.text
        embed = r.json()
        key = embed["url"].split("key=")[1]
        tile = f"/embed/{embed['public_id']}/tiles/cameras/12/2020/1316.mvt?key={key}"
        fetch = {"Sec-Fetch-Dest": "empty", "Sec-Fetch-Site": "same-origin"}
        statuses = [(await c.get(tile, headers=fetch)).status_code for _ in range(5)]
        assert statuses[:4] == [204] * 4 and statuses[4] == 429
        page = await c.get(f"/embed/{embed['public_id']}?key={key}", headers={"Sec-Fetch-Dest": "iframe"})
        assert page.status_code == 200  # the page's own budget is the API's


async def test_nul_in_the_query_string_is_a_400(client, make_caller):
    caller = await make_caller(role="viewer")
    for url in ("/api/cameras?q=%00", "/api/incidents?category=a%00b", "/maps/sign-in?next=/maps/%00"):
        r = await client.get(url, headers=caller.headers)
        assert r.status_code == 400, url
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "NUL" in r.json()["detail"]


async def test_errors_never_carry_sql_or_tracebacks(client, make_caller):
    caller = await make_caller(role="pcso")
    r = await client.post("/api/cameras", content=b"{not json", headers={**caller.headers, "Content-Type": "application/json"})
    assert 400 <= r.status_code < 500
    assert "Traceback" not in r.text and "SELECT" not in r.text
