"""The sign-in page: email and password (a plain form post), or an access token for those who
were given one (traded for the session cookie by static/safermap-signin.js).

Not a map, so plain HTML rather than folium; its script lives in static/ so the page needs no
inline script at all. Every value is escaped.
"""
from __future__ import annotations

import html
import re
from pathlib import Path

from app.pages.base import page_head

DEFAULT_NEXT = "/maps/overview"
# Only our own map, admin and capture pages: never an absolute URL or //host (an open redirect).
SAFE_NEXT = re.compile(r"^/((maps|admin)/[a-z0-9/_-]*|capture)(\?[A-Za-z0-9=&%._-]*)?$")

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def safe_next(value: str | None) -> str:
    if not value or not SAFE_NEXT.match(value) or "/sign-in" in value or "//" in value:
        return DEFAULT_NEXT
    return value


def sign_in_html(static_dir: Path, next_url: str, message: str = "", *, csrf_token: str = "",
                 email: str = "") -> str:
    """The page. Without `csrf_token` the script copies it from the CSRF cookie into the form."""
    e = html.escape
    return f"""{page_head(static_dir, "Sign in", script="safermap-signin.js")}
<body class="sm-sign-in">
<main>
  <h1>SaferMap</h1>
  <p id="sm-password-message" role="alert">{e(message)}</p>
  <form id="sm-password-sign-in" method="post" action="/sign-in">
    <input type="hidden" name="csrf_token" value="{e(csrf_token)}">
    <input type="hidden" name="next" value="{e(next_url)}">
    <label for="sm-email">Email</label>
    <input id="sm-email" name="email" type="email" autocomplete="username" value="{e(email)}"
           maxlength="254" required>
    <label for="sm-password">Password</label>
    <input id="sm-password" name="password" type="password" autocomplete="current-password"
           maxlength="1024" required>
    <button type="submit">Sign in</button>
  </form>
  <details>
    <summary>Sign in with an access token</summary>
    <form id="sm-sign-in" data-next="{e(next_url)}">
      <label for="sm-token">Access token</label>
      <input id="sm-token" name="token" type="password" autocomplete="off"
             spellcheck="false" required>
      <button type="submit">Sign in with token</button>
      <p id="sm-sign-in-message" role="alert"></p>
    </form>
  </details>
</main>
</body>
</html>
"""
