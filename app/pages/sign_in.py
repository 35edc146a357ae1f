"""A small sign-in page: paste a bearer token, get the session cookie, go back where you were.

Not a map, so plain HTML rather than folium; its script lives in static/ so the page needs no
inline script at all.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from app.pages.base import asset_url

DEFAULT_NEXT = "/maps/overview"
# Only our own map pages: never an absolute URL or //host, which would make this an open redirect.
SAFE_NEXT = re.compile(r"^/maps/[a-z0-9/_-]*(\?[A-Za-z0-9=&%._-]*)?$")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'")


def safe_next(value: str | None) -> str:
    return value if value and SAFE_NEXT.match(value) and "/sign-in" not in value else DEFAULT_NEXT


def sign_in_html(static_dir: Path, next_url: str, message: str = "") -> str:
    e = html.escape
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Sign in: SaferMap</title>
<link rel="stylesheet" href="{e(asset_url(static_dir, 'safermap.css'))}">
<script src="{e(asset_url(static_dir, 'safermap-signin.js'))}" defer></script>
</head>
<body class="sm-sign-in">
<main>
  <h1>SaferMap</h1>
  <p>Sign in with the access token your administrator gave you.</p>
  <form id="sm-sign-in" data-next="{e(next_url)}">
    <label for="sm-token">Access token</label>
    <input id="sm-token" name="token" type="password" autocomplete="current-password"
           spellcheck="false" required>
    <button type="submit">Sign in</button>
    <p id="sm-sign-in-message" role="alert">{e(message)}</p>
  </form>
</main>
</body>
</html>
"""
