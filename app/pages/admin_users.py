"""The users page for administrators: plain server-rendered HTML forms, every value escaped.

Each form carries the CSRF token; static/safermap-admin.js only asks before destructive actions.
"""
from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

from app.pages.base import page_head

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

e = html.escape


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "never"


def _form(action: str, csrf: str, button: str, fields: str = "", confirm: str = "") -> str:
    data = f' data-confirm="{e(confirm)}"' if confirm else ""
    return (f'<form method="post" action="{e(action)}" class="sm-inline"{data}>'
            f'<input type="hidden" name="csrf_token" value="{e(csrf)}">{fields}'
            f'<button type="submit">{e(button)}</button></form>')


def _role_select(name: str, roles: Iterable[str], selected: str) -> str:
    options = "".join(f'<option value="{e(r)}"{" selected" if r == selected else ""}>{e(r)}</option>'
                      for r in roles)
    return f'<select name="{e(name)}" aria-label="role">{options}</select>'


def admin_users_html(static_dir: Path, *, csrf: str, me_id: int, me_name: str, partnership: str,
                     users: list[Mapping], tokens: list[Mapping], roles: Iterable[str],
                     message: str = "", secret: tuple[str, str] | None = None) -> str:
    """`secret` is (label, value) shown once: a new user's or a reset password."""
    roles = list(roles)
    rows = []
    for u in users:
        uid = u["id"]
        status = "disabled" if u["disabled_at"] else ("locked" if u["locked"] else "active")
        actions = [_form(f"/admin/users/{uid}/role", csrf, "Change role", _role_select("role", roles, u["role"])),
                   _form(f"/admin/users/{uid}/reset-password", csrf, "Reset password",
                         confirm=f"Reset the password of {u['name']}?"),
                   _form(f"/admin/users/{uid}/sign-out", csrf, "Sign out everywhere")]
        if u["disabled_at"]:
            actions.append(_form(f"/admin/users/{uid}/enable", csrf, "Enable"))
        elif uid != me_id:
            actions.append(_form(f"/admin/users/{uid}/disable", csrf, "Disable",
                                 confirm=f"Disable {u['name']}? They are signed out at once."))
        rows.append(
            f"<tr><td>{e(u['name'])}</td><td>{e(u['email'] or '')}</td><td>{e(u['agency'] or '')}</td>"
            f"<td>{e(u['role'])}</td><td>{e(status)}</td><td>{e(_when(u['last_sign_in_at']))}</td>"
            f"<td>{''.join(actions)}</td></tr>")
    token_rows = []
    for t in tokens:
        state = "revoked" if t["revoked_at"] else "active"
        if not t["revoked_at"] and t["expires_at"] and t["expires_at"] <= datetime.now(t["expires_at"].tzinfo):
            state = "expired"
        action = _form(f"/admin/tokens/{t['id']}/revoke", csrf, "Revoke",
                       confirm="Revoke this token? Programs using it stop working.") if state == "active" else ""
        token_rows.append(
            f"<tr><td>{t['id']}</td><td>{e(t['name'] or '')}</td><td>{e(t['owner'])}</td>"
            f"<td>{e(_when(t['created_at']))}</td><td>{e(_when(t['last_used_at']))}</td>"
            f"<td>{e(_when(t['expires_at']) if t['expires_at'] else 'no expiry')}</td><td>{e(state)}</td>"
            f"<td>{action}</td></tr>")
    shown = ""
    if secret:
        shown = (f'<div class="sm-secret" role="status"><p>{e(secret[0])} (shown once; pass it on securely):</p>'
                 f'<p><code id="sm-secret">{e(secret[1])}</code></p></div>')
    return f"""{page_head(static_dir, "Users", script="safermap-admin.js", csrf=csrf)}
<body class="sm-admin">
<header>
  <h1>Users of {e(partnership)}</h1>
  <p>Signed in as {e(me_name)}. <a href="/maps/overview">Map</a></p>
  {_form("/sign-out", csrf, "Sign out")}
</header>
<main>
  <p id="sm-admin-message" role="alert">{e(message)}</p>
  {shown}
  <h2>Add a user</h2>
  <form method="post" action="/admin/users" id="sm-add-user">
    <input type="hidden" name="csrf_token" value="{e(csrf)}">
    <label>Name <input name="name" required maxlength="200"></label>
    <label>Email <input name="email" type="email" required maxlength="254"></label>
    <label>Agency <input name="agency" maxlength="200"></label>
    <label>Role {_role_select("role", roles, "viewer")}</label>
    <button type="submit">Add user</button>
  </form>
  <h2>Users</h2>
  <table id="sm-users">
    <thead><tr><th>Name</th><th>Email</th><th>Agency</th><th>Role</th><th>Status</th><th>Last sign-in</th><th></th></tr></thead>
    <tbody>{''.join(rows)}</tbody>
  </table>
  <h2>API tokens</h2>
  <table id="sm-tokens">
    <thead><tr><th>Id</th><th>Name</th><th>Owner</th><th>Created</th><th>Last used</th><th>Expires</th><th>State</th><th></th></tr></thead>
    <tbody>{''.join(token_rows)}</tbody>
  </table>
</main>
</body>
</html>
"""
