"""Hardening as one pure ASGI middleware: security headers, CSRF for cookie-authenticated API
calls, body size limits, rate limits, and refusal of NUL bytes in query strings.

Pure ASGI (not BaseHTTPMiddleware) so that a body that is too large is refused before it is read,
and so that tile responses stream through untouched apart from their headers.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Callable

from cachetools import TTLCache
from fastapi import HTTPException
from itsdangerous import BadSignature, Signer
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import SESSION_COOKIE
from app.settings import Settings

CSRF_COOKIE = "safermap_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Form routes check the hidden field themselves (app.security.check_csrf); everything else that a
# browser can send with only the session cookie must carry the X-CSRF-Token header.
FORM_PATHS = ("/sign-in", "/sign-out", "/admin/")

DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'"
PERMISSIONS_POLICY = "geolocation=(self), camera=(), microphone=()"


# -- CSRF: a signed double-submit token ------------------------------------------------------------

class Csrf:
    """A random value signed with the app's secret, kept in a cookie that scripts may read
    (it is not a credential) and repeated in a form field or the X-CSRF-Token header. Another
    site can make the browser send the cookie but cannot read it, so it cannot repeat it."""

    def __init__(self, secret: str) -> None:
        self.signer = Signer(secret, salt="safermap-csrf")

    def new(self) -> str:
        return self.signer.sign(secrets.token_urlsafe(24)).decode()

    def valid(self, token: str | None) -> bool:
        if not token or len(token) > 200:
            return False
        try:
            self.signer.unsign(token)
        except BadSignature:
            return False
        return True

    def matches(self, cookie: str | None, submitted: str | None) -> bool:
        return bool(cookie is not None and self.valid(cookie) and submitted
                    and hmac.compare_digest(cookie.encode(), submitted.encode()))


def set_csrf_cookie(response, token: str, secure: bool) -> None:
    """A fresh token (at sign-in and sign-out, so a token known before sign-in is useless after)."""
    response.set_cookie(CSRF_COOKIE, token, httponly=False, samesite="lax", secure=secure, path="/")


# -- rate limits -------------------------------------------------------------------------------------

class RateLimiter:
    """Token buckets keyed by caller: `per_minute` requests a minute with bursts of as many.
    In process memory, so per worker; bounded to the most recently seen keys. A bucket left alone
    for a minute is full again, the same as no bucket, so buckets expire after a minute."""

    REFILL_S = 60.0

    def __init__(self, per_minute: int, max_keys: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(max(per_minute, 1))
        self.rate = self.capacity / self.REFILL_S
        self.clock = clock  # monotonic seconds (a test may hold it still)
        # caller -> (tokens, when last taken), on that clock
        self.buckets: TTLCache = TTLCache(maxsize=max_keys, ttl=self.REFILL_S, timer=clock)

    def take(self, key: str) -> int:
        """0 when allowed, else the seconds to wait."""
        now = self.clock()
        tokens, at = self.buckets.pop(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        if tokens >= 1:
            self.buckets[key] = (tokens - 1, now)
            wait = 0
        else:
            self.buckets[key] = (tokens, now)
            wait = max(1, math.ceil((1 - tokens) / self.rate))
        return wait


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


def _caller_key(scope: Scope, headers: Headers, cookies: dict[str, str]) -> str:
    """Whom a request counts against: its token, else its session, else its address."""
    auth = headers.get("authorization")
    if auth:
        return "t:" + hashlib.sha256(auth.encode()).hexdigest()[:24]
    if cookies.get(SESSION_COOKIE):
        return "s:" + hashlib.sha256(cookies[SESSION_COOKIE].encode()).hexdigest()[:24]
    return "ip:" + client_ip(scope)


# -- the middleware ----------------------------------------------------------------------------------

class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the limit; FastAPI lets HTTPExceptions
    from body reading through, and app.errors answers it as a 413 problem."""


def _problem(status: int, title: str, detail: str, path: str,
             extra_headers: list[tuple[bytes, bytes]] | None = None) -> tuple[Message, Message]:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail,
                       "instance": path}).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode()),
               *(extra_headers or [])]
    return ({"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": body})


class SecurityMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, secret: str) -> None:
        self.app = app
        self.settings = settings
        self.csrf = Csrf(secret)
        self.api_limiter = RateLimiter(settings.rate_limit_per_minute)
        self.tile_limiter = RateLimiter(settings.tile_rate_limit_per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"
        send = self._with_headers(send, https)
        path: str = scope.get("path", "")
        method: str = scope["method"]
        headers = Headers(scope=scope)
        cookies = cookie_parser(headers.get("cookie", ""))

        refusal = self._refuse(scope, path, method, headers, cookies)
        if refusal:
            start, body = refusal
            await send(start)
            await send(body)
            return

        # The page's CSRF token is worked out only when a page asks for it (page_csrf_token) or an
        # HTML answer starts: signing or checking it on every tile cost a tenth of the hot path.
        scope.setdefault("state", {})[_COOKIE_SEEN] = cookies.get(CSRF_COOKIE)
        send = self._with_csrf_cookie(send, scope, self.csrf, https or self.settings.cookie_secure)

        if method in UNSAFE_METHODS:
            receive = self._limited(receive, self._body_limit(headers))
        await self.app(scope, receive, send)

    def _refuse(self, scope: Scope, path: str, method: str, headers: Headers,
                cookies: dict[str, str]) -> tuple[Message, Message] | None:
        """A response that stops the request before the app sees it, or None."""
        query: bytes = scope.get("query_string", b"")
        if b"\x00" in query or b"%00" in query.lower():
            return _problem(400, "Bad request", "The query string contains a NUL character.", path)
        # /ogc pages count as API calls (paging a million incidents at 1,000 a page stays under the limit).
        # Embedded maps have no caller but their address (an intranet's users may share one): their
        # tiles count as tiles, their pages as API calls.
        if path.startswith(("/api/", "/tiles/", "/ogc/", "/embed/")) or path == "/ogc":
            tiles = path.startswith("/tiles/") or (path.startswith("/embed/") and "/tiles/" in path)
            limiter = self.tile_limiter if tiles else self.api_limiter
            wait = limiter.take(_caller_key(scope, headers, cookies))
            if wait:
                return _problem(429, "Too many requests",
                                f"Too many requests; try again in {wait} seconds.", path,
                                [(b"retry-after", str(wait).encode())])
        if method in UNSAFE_METHODS:
            declared = headers.get("content-length")
            limit = self._body_limit(headers)
            if declared and declared.isdigit() and int(declared) > limit:
                return _problem(413, "Request too large",
                                f"The request body is larger than {limit} bytes.", path)
            if (not headers.get("authorization") and cookies.get(SESSION_COOKIE)
                    and not path.startswith(FORM_PATHS)
                    and not self.csrf.matches(cookies.get(CSRF_COOKIE), headers.get(CSRF_HEADER))):
                return _problem(403, "Not allowed",
                                "This request needs the X-CSRF-Token header (the value of the "
                                f"'{CSRF_COOKIE}' cookie), or an Authorization header.", path)
        return None

    def _body_limit(self, headers: Headers) -> int:
        if headers.get("content-type", "").startswith("multipart/form-data"):
            return self.settings.max_upload_bytes
        return self.settings.max_body_bytes

    @staticmethod
    def _limited(receive: Receive, limit: int) -> Receive:
        """Count a streamed (e.g. chunked) body and stop reading once it passes the limit."""
        seen = 0

        async def wrapped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(413, f"The request body is larger than {limit} bytes.")
            return message

        return wrapped

    @staticmethod
    def _with_headers(send: Send, https: bool) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                h.setdefault("x-content-type-options", "nosniff")
                h.setdefault("referrer-policy", "strict-origin-when-cross-origin")
                h.setdefault("permissions-policy", PERMISSIONS_POLICY)
                csp = h.get("content-security-policy")
                if csp is None:
                    h["content-security-policy"] = DEFAULT_CSP
                # A route that sets frame-ancestors (pages, embeds) decides framing itself.
                if csp is None or "frame-ancestors" not in csp:
                    h.setdefault("x-frame-options", "DENY")
                if https:
                    h.setdefault("strict-transport-security", "max-age=31536000; includeSubDomains")
            await send(message)

        return wrapped

    @staticmethod
    def _with_csrf_cookie(send: Send, scope: Scope, csrf: Csrf, secure: bool) -> Send:
        """Give a browser its CSRF cookie with the first page it gets (HTML only: API answers and
        tiles stay free of Set-Cookie, which would defeat shared caches)."""
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                if h.get("content-type", "").startswith("text/html"):
                    token, fresh = _page_token(scope["state"], csrf)
                    already = any(v.startswith(CSRF_COOKIE + "=") for v in h.getlist("set-cookie"))
                    if fresh and not already:
                        h.append("set-cookie", f"{CSRF_COOKIE}={token}; Path=/; SameSite=lax"
                                               + ("; Secure" if secure else ""))
            await send(message)

        return wrapped


_COOKIE_SEEN = "csrf_cookie_seen"


def _page_token(state: dict, csrf: Csrf) -> tuple[str, bool]:
    """(the request's CSRF token, whether it is new): the browser's own while it is valid."""
    if "csrf_token" not in state:
        seen = state.get(_COOKIE_SEEN)
        state["csrf_fresh"] = not csrf.valid(seen)
        state["csrf_token"] = csrf.new() if state["csrf_fresh"] else seen
    return state["csrf_token"], state["csrf_fresh"]


def page_csrf_token(request) -> str:
    """The CSRF token for a form rendered server-side; the page's answer sets it as the cookie
    when the browser has none (or a forged one)."""
    return _page_token(request.scope.setdefault("state", {}), request.app.state.csrf)[0]


def check_csrf(request, submitted: str | None) -> bool:
    """For form routes: the hidden field (or header) repeats the CSRF cookie."""
    csrf: Csrf = request.app.state.csrf
    return csrf.matches(request.cookies.get(CSRF_COOKIE),
                        submitted or request.headers.get(CSRF_HEADER))
