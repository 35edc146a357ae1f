"""Tokens, cookies and partnership scoping of the foundation."""
from __future__ import annotations


async def test_health_needs_no_token_and_reports_postgis(client):
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json()["postgis"].startswith("3.")


async def test_missing_and_wrong_tokens_are_401_problems(client):
    r = await client.get("/api/cameras")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 401
    r = await client.get("/api/cameras", headers={"Authorization": "Bearer sm_nonsense"})
    assert r.status_code == 401
    r = await client.get("/api/cameras", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


async def test_bearer_token_becomes_an_httponly_session_cookie(client, make_caller):
    caller = await make_caller(role="viewer")
    r = await client.post("/auth/session", headers=caller.headers)
    assert r.status_code == 204
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    # The cookie alone now authenticates (httpx kept it).
    r = await client.get("/api/cameras")
    assert r.status_code == 200
    # A tampered cookie does not.
    client.cookies.set("safermap_session", client.cookies["safermap_session"][:-2] + "xx")
    assert (await client.get("/api/cameras")).status_code == 401


async def test_revoked_token_ends_its_session(client, make_caller, db):
    from sqlalchemy import text
    caller = await make_caller(role="viewer")
    await client.post("/auth/session", headers=caller.headers)
    await db.execute(text("UPDATE api_token SET revoked_at = now()"))
    await db.commit()
    assert (await client.get("/api/cameras")).status_code == 401
    assert (await client.get("/api/cameras", headers=caller.headers)).status_code == 401


async def test_one_time_sign_in_link_works_once(client, make_caller, db):
    from sqlalchemy import text

    from app.auth import create_sign_in_link
    await make_caller(role="admin")
    principal_id = (await db.execute(text("SELECT id FROM principal"))).scalar_one()
    code = await create_sign_in_link(db, principal_id)
    await db.commit()
    r = await client.get(f"/auth/link/{code}")
    assert r.status_code == 303 and r.headers["location"] == "/maps/overview"
    assert "safermap_session" in r.headers["set-cookie"]
    client.cookies.clear()
    assert (await client.get(f"/auth/link/{code}")).status_code == 401
