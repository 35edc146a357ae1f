"""Every route answers each role the way the README's Roles table promises.

Each route's least role is read from its dependencies (the `least_role` attribute that
app.api.deps.least_role and page_role put on the dependency callable; a bare principal dependency
means any signed-in person, i.e. viewer). The README table must name every route with that role,
and a route with no role dependency must be on PUBLIC below — so a new route fails here until
someone decides who may use it. Then every route is called with every role (and with an embed
key used as a bearer token): a role below the least gets 403, the embed key 401, a role at or above
anything but 401/403 (404/409/422/428 for made-up ids and empty bodies count as admitted).
"""
from __future__ import annotations

import re

from fastapi.routing import APIRoute, iter_route_contexts

from app.api.deps import get_principal
from app.roles import PRINCIPAL_ROLES, RANK, Role
from app.settings import ROOT

# Routes anyone may call: they check nothing, or check their own secret (a sign-in link code, an
# embed key) rather than a role.
PUBLIC = {
    ("GET", "/health"), ("GET", "/openapi.json"), ("GET", "/docs"),
    ("GET", "/maps/sign-in"), ("GET", "/sign-in"), ("POST", "/sign-in"), ("POST", "/sign-out"),
    ("DELETE", "/auth/session"), ("GET", "/auth/link/{code}"),
    ("GET", "/embed/{public_id}"), ("GET", "/embed/{public_id}/tiles/{layer_id}/{z}/{x}/{y}.mvt"),
    ("GET", "/capture/sw.js"), ("GET", "/capture/manifest.webmanifest"),  # code and a description, no data
    ("GET", "/capture/icon-{size}.png"),
}
PATH_VALUES = {"layer_id": "cameras", "z": "14", "x": "8093", "y": "5301", "code": "not-a-code",
               "public_id": "AAAAAAAAAAAA"}
ROW = re.compile(r"^\|\s*`(?P<method>[A-Z]+) (?P<path>[^`]+)`\s*\|\s*(?P<role>[a-z ]+?)\s*\|")


def readme_table() -> dict[tuple[str, str], str]:
    """(method, path) -> least role (or 'public') from the README's "Roles" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Roles", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = ROW.match(line)
        if m:
            rows[(m["method"], m["path"])] = m["role"]
    return rows


def least_roles(call_tree) -> list[str]:
    found = []
    for dep in call_tree.dependencies:
        role = getattr(dep.call, "least_role", None)
        if role is not None:
            found.append(role)
        elif dep.call is get_principal:
            found.append(Role.viewer.value)  # any signed-in person
        found += least_roles(dep)
    return found


def routes(app) -> dict[tuple[str, str], str | None]:
    """(method, path) -> least role, or None when the route has no role dependency."""
    out: dict[tuple[str, str], str | None] = {}
    for ctx in iter_route_contexts(app.router.routes):
        route = ctx.route
        for method in sorted(getattr(route, "methods", None) or ()):
            if method == "HEAD":
                continue
            roles = least_roles(route.dependant) if isinstance(route, APIRoute) else []
            out[(method, ctx.path)] = max(roles, key=lambda r: RANK[Role(r)]) if roles else None
    return out


def test_every_route_has_a_least_role_or_is_public_and_the_readme_says_which(app):
    table = readme_table()
    found = routes(app)
    assert found, "no routes found"
    undecided = sorted(k for k, role in found.items() if role is None and k not in PUBLIC)
    assert undecided == [], f"routes with no role dependency that are not on the public list: {undecided}"
    for key, role in found.items():
        assert key in table, f"README's Roles table does not list {key[0]} {key[1]}"
        assert table[key] == (role or "public"), f"{key}: README says {table[key]!r}, the code {role or 'public'!r}"
    stale = sorted(set(table) - set(found))
    assert stale == [], f"README lists routes that do not exist: {stale}"
    # The OpenAPI document describes the same routes.
    for path, methods in app.openapi()["paths"].items():
        for method in methods:
            assert (method.upper(), path) in found, f"{method} {path} is in OpenAPI but not routed"


async def test_every_route_answers_every_role_as_the_table_promises(app, client, make_caller):
    callers = {role.value: await make_caller("roles-csp", role.value) for role in PRINCIPAL_ROLES}
    admin = callers["admin"]
    r = await client.post("/api/embeds", headers=admin.headers, json={
        "title": "Roles", "layers": ["cameras"], "allowed_origins": ["https://intranet.example"]})
    assert r.status_code == 201
    embed_key = r.json()["url"].split("key=", 1)[1]
    tokens = {**{role: c.token for role, c in callers.items()}, "embed": embed_key}

    # Form routes check a CSRF token before acting; send a valid one, so that only roles decide.
    csrf = getattr(app.state, "csrf", None)
    csrf_token = csrf.new() if csrf else ""
    table = readme_table()
    checked = 0
    for (method, path), least in routes(app).items():
        if table.get((method, path)) == "public":
            continue
        url = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m[1], "999999"), path)
        for role, token in tokens.items():
            client.cookies.clear()
            if csrf_token:
                client.cookies.set("safermap_csrf", csrf_token)
            body = {} if method in ("POST", "PUT", "PATCH") else None
            r = await client.request(method, url, json=body,
                                     headers={"Authorization": f"Bearer {token}", "Accept": "application/json",
                                              "X-CSRF-Token": csrf_token})
            if role == "embed":
                expected = "401"
                ok = r.status_code == 401
            elif RANK[Role(role)] < RANK[Role(least)]:
                expected = "403"
                ok = r.status_code == 403
            else:
                expected = "admitted"
                ok = r.status_code not in (401, 403, 429) and r.status_code < 500
            assert ok, f"{role} on {method} {url}: expected {expected}, got {r.status_code} {r.text[:200]}"
            checked += 1
    client.cookies.clear()
    assert checked >= 6 * 15
