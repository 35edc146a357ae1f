"""People and sign-in: users added from the CLI and the admin page sign in with email and password;
failures are generic, repeated failures lock the email, forms need their CSRF token, sign-out and
changes of role end sessions, tokens expire and can be revoked, and every step is audited."""
from __future__ import annotations

import asyncio
import re
import secrets

import httpx
import pytest
from sqlalchemy import text

from tests.factories import browser_page, camera_feature, partnership

XSS_NAME = "<img src=x onerror=alert(1)>"
PASSWORD = "correct horse battery"


@pytest.fixture
async def web(app):
    """A browser-like client from its own address, so the per-IP sign-in throttle of one test
    does not reach another."""
    ip = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"
    transport = httpx.ASGITransport(app=app, client=(ip, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def add_user(app, slug: str = "rochdale-csp", email: str = "ann@example.gov.uk", role: str = "analyst",
                   name: str = "Ann Analyst", password: str = PASSWORD) -> int:
    from app import users
    async with app.state.sessionmaker() as s:
        pid = await partnership(s, slug)
        uid = await users.add_user(s, pid, name=name, email=email, role=role, agency="Rochdale Council",
                                   password=password)
        await s.commit()
    return uid


async def csrf_of(client: httpx.AsyncClient) -> str:
    if "safermap_csrf" not in client.cookies:
        r = await client.get("/sign-in")
        assert r.status_code == 200
    return client.cookies["safermap_csrf"]


async def sign_in(client: httpx.AsyncClient, email: str, password: str, next_url: str = "/maps/overview",
                  **headers: str) -> httpx.Response:
    return await client.post("/sign-in", headers=headers, data={
        "email": email, "password": password, "csrf_token": await csrf_of(client), "next": next_url})


async def audit_rows(db, action: str):
    rows = (await db.execute(text("SELECT * FROM audit_event WHERE action = :a ORDER BY id"), {"a": action})).all()
    await db.commit()
    return rows


# -- the CLI -----------------------------------------------------------------------------------------

async def test_cli_adds_a_user_who_signs_in_with_the_printed_password(web, database_url, monkeypatch, db):
    from typer.testing import CliRunner

    from app.cli import app as cli
    from app.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli, list(args), catch_exceptions=False)
    try:
        # asyncio.run inside the CLI needs a thread without a running loop.
        assert (await asyncio.to_thread(run, "partnership", "add", "oldham-csp", "Oldham CSP")).exit_code == 0
        r = await asyncio.to_thread(run, "user", "add", "--partnership", "oldham-csp", "--email", "Bob@Example.gov.uk",
                                    "--name", "Bob Operator", "--role", "operator", "--agency", "Oldham Council")
        assert r.exit_code == 0, r.output
        password = re.search(r"password \(shown once\): (\S+)", r.output).group(1)
        # The same email again, in other case, is refused with a message, not a traceback.
        again = await asyncio.to_thread(run, "user", "add", "--partnership", "oldham-csp", "--email",
                                        "bob@example.gov.uk", "--name", "Bob", "--role", "viewer")
        assert again.exit_code == 1 and "already exists" in again.output
        listed = await asyncio.to_thread(run, "user", "list", "--partnership", "oldham-csp")
        assert "Bob@Example.gov.uk" in listed.output and "operator" in listed.output

        r = await sign_in(web, "bob@example.gov.uk", password)
        assert r.status_code == 303 and r.headers["location"] == "/maps/overview"
        assert (await web.get("/api/cameras")).status_code == 200

        made = await asyncio.to_thread(run, "token", "create", "--user", "bob@example.gov.uk", "--name", "qgis")
        assert made.exit_code == 0
        token = made.output.strip().splitlines()[-1]
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await web.get("/api/cameras", headers=bearer)).status_code == 200
        tokens = await asyncio.to_thread(run, "token", "list", "--user", "bob@example.gov.uk")
        assert "qgis" in tokens.output
        expires = (await db.execute(text("SELECT expires_at - created_at FROM api_token WHERE name = 'qgis'"))).scalar_one()
        assert expires.days == 90  # user tokens expire by default
        token_id = (await db.execute(text("SELECT id FROM api_token WHERE name = 'qgis'"))).scalar_one()
        await db.commit()
        assert (await asyncio.to_thread(run, "token", "revoke", str(token_id))).exit_code == 0
        assert (await web.get("/api/cameras", headers=bearer)).status_code == 401

        assert (await asyncio.to_thread(run, "user", "disable", "bob@example.gov.uk")).exit_code == 0
        assert (await web.get("/api/cameras")).status_code == 401  # the session ended with it
    finally:
        get_settings.cache_clear()
    actions = [r.action for r in (await db.execute(text("SELECT action FROM audit_event ORDER BY id"))).all()]
    await db.commit()
    for action in ("user.add", "sign-in", "token.create", "token.revoke", "user.disable"):
        assert action in actions


# -- signing in --------------------------------------------------------------------------------------

async def test_sign_in_with_right_and_wrong_passwords_and_one_message_for_all_failures(web, app, db):
    await add_user(app)
    wrong = await sign_in(web, "ann@example.gov.uk", "not the password")
    unknown = await sign_in(web, "nobody@example.gov.uk", "not the password")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.headers["content-type"].startswith("application/problem+json")
    assert (await web.get("/api/cameras")).status_code == 401

    r = await sign_in(web, "ANN@example.gov.uk", PASSWORD, next_url="//evil.example/")
    assert r.status_code == 303 and r.headers["location"] == "/maps/overview"  # never off site
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("safermap_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert (await web.get("/api/cameras")).status_code == 200

    failed = await audit_rows(db, "sign-in-failed")
    assert [f.detail["email"] for f in failed] == ["ann@example.gov.uk", "nobody@example.gov.uk"]
    assert all("not the password" not in str(f.detail) for f in failed)
    assert len(await audit_rows(db, "sign-in")) == 1


async def test_browser_form_errors_come_back_as_the_page(web, app):
    await add_user(app)
    r = await sign_in(web, "ann@example.gov.uk", "nope", Accept="text/html")
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/html")
    assert "do not match an account" in r.text and 'value="ann@example.gov.uk"' in r.text


async def test_repeated_failures_lock_the_email_with_429_and_retry_after(web, app, db):
    await add_user(app)
    for _ in range(5):
        assert (await sign_in(web, "ann@example.gov.uk", "wrong password")).status_code == 401
    locked = await sign_in(web, "ann@example.gov.uk", PASSWORD)  # even the right password waits
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["retry-after"]) <= 60
    assert locked.json()["status"] == 429
    # An email with no account locks the same way, so a 429 tells nothing about who exists.
    for _ in range(5):
        assert (await sign_in(web, "ghost@example.gov.uk", "wrong password")).status_code == 401
    assert (await sign_in(web, "ghost@example.gov.uk", "wrong password")).status_code == 429

    reasons = [r.detail["reason"] for r in await audit_rows(db, "sign-in-failed")
               if r.detail["email"] == "ann@example.gov.uk"]
    assert reasons == ["wrong-password"] * 5 + ["locked"]

    # Once a lock runs out, each further failure locks again for twice as long (2 minutes); when
    # that runs out the right password works and the count starts again.
    await db.execute(text("UPDATE principal SET locked_until = now() - interval '1 second'"))
    await db.commit()
    assert (await sign_in(web, "ann@example.gov.uk", "wrong password")).status_code == 401
    assert int((await sign_in(web, "ann@example.gov.uk", PASSWORD)).headers["retry-after"]) > 60
    await db.execute(text("UPDATE principal SET locked_until = NULL"))
    await db.commit()
    assert (await sign_in(web, "ann@example.gov.uk", PASSWORD)).status_code == 303
    assert (await db.execute(text("SELECT failed_sign_ins FROM principal"))).scalar_one() == 0
    await db.commit()


async def test_each_address_has_a_sign_in_budget(web, app):
    from app.security import RateLimiter
    # The app's budget on a clock held still: on a slow machine 24 password checks take long
    # enough for the bucket to refill (one sign-in every 3 s), and the test would measure that.
    app.state.sign_in_limiter = RateLimiter(app.state.settings.sign_in_per_ip_per_minute, clock=lambda: 1000.0)
    answers = [await sign_in(web, f"x{i}@example.gov.uk", "wrong password") for i in range(24)]
    assert [a.status_code for a in answers[:20]] == [401] * 20  # 20 a minute by default
    throttled = [a for a in answers[20:] if a.status_code == 429]
    assert throttled and int(throttled[0].headers["retry-after"]) >= 1


async def test_every_form_needs_its_csrf_token(web, app, make_caller):
    await add_user(app)
    for token in ("", "forged", (await csrf_of(web))[:-2] + "xx"):
        r = await web.post("/sign-in", data={"email": "ann@example.gov.uk", "password": PASSWORD,
                                             "csrf_token": token})
        assert r.status_code == 403
    assert (await sign_in(web, "ann@example.gov.uk", PASSWORD)).status_code == 303
    assert (await web.post("/sign-out", data={})).status_code == 403
    assert (await web.get("/api/cameras")).status_code == 200  # still signed in
    admin = await make_caller("rochdale-csp", "admin")
    await web.post("/auth/session", headers=admin.headers)
    r = await web.post("/admin/users", data={"name": "Eve", "email": "eve@example.gov.uk", "role": "admin"})
    assert r.status_code == 403
    assert "eve@" not in (await web.get("/admin/users", headers={"Accept": "text/html"})).text


async def test_cookie_api_writes_need_the_csrf_header_bearer_calls_do_not(web, make_caller):
    pcso = await make_caller("rochdale-csp", "pcso")
    assert (await web.post("/auth/session", headers=pcso.headers)).status_code == 204
    r = await web.post("/api/cameras", json=camera_feature("C-1"))
    assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    r = await web.post("/api/cameras", json=camera_feature("C-1"), headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    r = await web.post("/api/cameras", json=camera_feature("C-1"),
                       headers={"X-CSRF-Token": web.cookies["safermap_csrf"]})
    assert r.status_code == 201
    async with httpx.AsyncClient(transport=web._transport, base_url="http://testserver") as api:
        r = await api.post("/api/cameras", json=camera_feature("C-2"), headers=pcso.headers)
        assert r.status_code == 201


async def test_sign_out_ends_the_session_even_for_a_copied_cookie(web, app, db):
    await add_user(app)
    await sign_in(web, "ann@example.gov.uk", PASSWORD)
    old = web.cookies["safermap_session"]
    r = await web.post("/sign-out", data={"csrf_token": web.cookies["safermap_csrf"]})
    assert r.status_code == 303 and r.headers["location"] == "/sign-in"
    assert "safermap_session" not in web.cookies
    web.cookies.set("safermap_session", old)
    assert (await web.get("/api/cameras")).status_code == 401
    assert len(await audit_rows(db, "sign-out")) == 1
    # Signing in again works.
    web.cookies.clear()
    assert (await sign_in(web, "ann@example.gov.uk", PASSWORD)).status_code == 303
    assert (await web.get("/api/cameras")).status_code == 200


# -- tokens ------------------------------------------------------------------------------------------

async def test_own_tokens_expire_and_can_be_revoked(client, make_caller, db):
    me = await make_caller("rochdale-csp", "viewer")
    other = await make_caller("rochdale-csp", "viewer")
    r = await client.post("/api/tokens", json={"name": "laptop"}, headers=me.headers)
    assert r.status_code == 201
    made = r.json()
    bearer = {"Authorization": f"Bearer {made['token']}"}
    assert (await client.get("/api/cameras", headers=bearer)).status_code == 200
    listed = (await client.get("/api/tokens", headers=me.headers)).json()
    laptop = next(t for t in listed if t["id"] == made["id"])
    assert laptop["name"] == "laptop" and laptop["expires_at"] and laptop["last_used_at"]
    assert all(t["id"] != made["id"] for t in (await client.get("/api/tokens", headers=other.headers)).json())

    # Someone else cannot revoke it; its owner can.
    assert (await client.delete(f"/api/tokens/{made['id']}", headers=other.headers)).status_code == 404
    assert (await client.delete(f"/api/tokens/{made['id']}", headers=me.headers)).status_code == 204
    r = await client.get("/api/cameras", headers=bearer)
    assert r.status_code == 401 and r.headers["content-type"].startswith("application/problem+json")

    await db.execute(text("UPDATE api_token SET expires_at = now() - interval '1 minute' WHERE id <> :id"),
                     {"id": made["id"]})
    await db.commit()
    assert (await client.get("/api/cameras", headers=me.headers)).status_code == 401
    assert [r.target for r in await audit_rows(db, "token.create")] == [f"token:{made['id']}"]
    assert len(await audit_rows(db, "token.revoke")) == 1


# -- the admin page ----------------------------------------------------------------------------------

async def admin_web(web, app, slug: str = "rochdale-csp") -> None:
    await add_user(app, slug, email=f"admin@{slug}.gov.uk", role="admin", name="Ada Admin")
    assert (await sign_in(web, f"admin@{slug}.gov.uk", PASSWORD)).status_code == 303


async def test_admin_page_is_for_admins_and_shows_names_as_text(web, app, client, make_caller):
    r = await client.get("/admin/users", headers={"Accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"] == "/sign-in?next=/admin/users"
    analyst = await make_caller("rochdale-csp", "analyst")
    assert (await client.get("/admin/users", headers=analyst.headers)).status_code == 403
    assert (await client.get("/api/users", headers=analyst.headers)).status_code == 403

    await add_user(app, name=XSS_NAME)
    await add_user(app, "bury-csp", email="other@bury.gov.uk", name="Someone Elsewhere")
    await admin_web(web, app)
    r = await web.get("/admin/users", headers={"Accept": "text/html"})
    assert r.status_code == 200
    assert XSS_NAME not in r.text and "&lt;img src=x onerror=alert(1)&gt;" in r.text
    assert "Someone Elsewhere" not in r.text  # only the admin's own partnership
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "'unsafe-inline'" not in r.headers["content-security-policy"].split("script-src")[1].split(";")[0]


async def test_admin_adds_a_user_who_can_then_sign_in_and_disables_them(web, app, db):
    await admin_web(web, app)
    csrf = web.cookies["safermap_csrf"]
    r = await web.post("/admin/users", data={"csrf_token": csrf, "name": "Pat PCSO", "email": "pat@example.gov.uk",
                                             "role": "pcso", "agency": "Greater Manchester Police"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    password = re.search(r'<code id="sm-secret">([^<]+)</code>', r.text).group(1)
    dup = await web.post("/admin/users", data={"csrf_token": csrf, "name": "Pat", "email": "PAT@example.gov.uk",
                                               "role": "pcso"})
    assert dup.status_code == 409
    async with httpx.AsyncClient(transport=web._transport, base_url="http://testserver") as pat:
        assert (await sign_in(pat, "pat@example.gov.uk", password)).status_code == 303
        assert (await pat.get("/api/cameras")).status_code == 200
        pat_id = (await db.execute(text("SELECT id FROM principal WHERE email = 'pat@example.gov.uk'"))).scalar_one()
        await db.commit()
        r = await web.post(f"/admin/users/{pat_id}/disable", data={"csrf_token": csrf})
        assert r.status_code == 303
        assert (await pat.get("/api/cameras")).status_code == 401
        r = await sign_in(pat, "pat@example.gov.uk", password)
        assert r.status_code == 401 and r.json()["detail"] == (await sign_in(pat, "x@y.zz", password)).json()["detail"]
    assert len(await audit_rows(db, "user.add")) == 1
    assert len(await audit_rows(db, "user.disable")) == 1


async def test_role_change_and_password_reset_end_sessions(web, app, db):
    await admin_web(web, app)
    uid = await add_user(app)
    csrf = web.cookies["safermap_csrf"]
    async with httpx.AsyncClient(transport=web._transport, base_url="http://testserver") as ann:
        await sign_in(ann, "ann@example.gov.uk", PASSWORD)
        assert (await ann.get("/api/cameras")).status_code == 200
        assert (await web.post(f"/admin/users/{uid}/role", data={"csrf_token": csrf, "role": "viewer"})).status_code == 303
        assert (await ann.get("/api/cameras")).status_code == 401
        change = (await audit_rows(db, "user.update"))[-1]
        assert change.detail == {"role": {"before": "analyst", "after": "viewer"}}

        await sign_in(ann, "ann@example.gov.uk", PASSWORD)
        assert (await ann.get("/api/cameras")).status_code == 200
        r = await web.post(f"/admin/users/{uid}/reset-password", data={"csrf_token": csrf})
        new_password = re.search(r'<code id="sm-secret">([^<]+)</code>', r.text).group(1)
        assert (await ann.get("/api/cameras")).status_code == 401
        assert (await sign_in(ann, "ann@example.gov.uk", PASSWORD)).status_code == 401
        assert (await sign_in(ann, "ann@example.gov.uk", new_password)).status_code == 303
    # An admin of another partnership cannot touch this user.
    async with httpx.AsyncClient(transport=web._transport, base_url="http://testserver") as bury:
        await admin_web(bury, app, "bury-csp")
        r = await bury.post(f"/admin/users/{uid}/disable", data={"csrf_token": bury.cookies["safermap_csrf"]})
        assert r.status_code == 404


# -- in a real browser -------------------------------------------------------------------------------

async def test_sign_in_with_email_and_password_in_chromium(live_server, app, chromium_path):
    await add_user(app, email="chris@example.gov.uk", role="operator", name="Chris Control")
    async with browser_page(live_server, chromium_path=chromium_path) as watched:
        page = watched.page
        await page.goto(f"{live_server}/maps/overview")
        assert "/sign-in" in page.url
        await page.fill("#sm-email", "chris@example.gov.uk")
        await page.fill("#sm-password", "a wrong password")
        await page.click("#sm-password-sign-in button")
        await page.wait_for_selector("#sm-password-message:has-text('do not match')")
        await page.fill("#sm-password", PASSWORD)
        await page.click("#sm-password-sign-in button")
        await page.wait_for_url(f"{live_server}/maps/overview", timeout=15000)
        assert await page.title()
    assert not watched.page_errors()
