"""Signing in and out: email and password on the sign-in page, a bearer token or a one-time link
traded for the signed, HttpOnly session cookie; and each caller's own API tokens."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import text

from app import audit
from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep, Viewer
from app.auth import (
    SESSION_COOKIE,
    SIGN_IN_FAILED,
    Principal,
    end_sessions,
    issue_token,
    password_sign_in,
    principal_by_id,
    principal_from_session,
    use_sign_in_link,
)
from app.errors import NotFound, Unauthorized, problem
from app.pages import sign_in
from app.security import check_csrf, client_ip, page_csrf_token, set_csrf_cookie
from app.settings import Settings

router = APIRouter(tags=["auth"])
tokens_router = APIRouter(prefix="/api/tokens", tags=["tokens"])

PAGE_HEADERS = {"Cache-Control": "no-store", "Content-Security-Policy": sign_in.CSP}
CSRF_FAILED = "The form has expired or did not come from this site; reload the page and try again."


def _secure(request: Request, settings: Settings) -> bool:
    return settings.cookie_secure or request.url.scheme == "https"


def _set_cookie(response: Response, request: Request, value: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE, value, max_age=settings.session_max_age_s, httponly=True, samesite="lax",
        secure=_secure(request, settings), path="/")
    # A new session gets a new CSRF token: one planted before sign-in is worthless after it.
    set_csrf_cookie(response, request.app.state.csrf.new(), _secure(request, settings))


def _session_response(response: Response, request: Request, principal: Principal, settings: Settings) -> Response:
    cookie = request.app.state.sessions.encode(principal.id, principal.token_id, principal.session_epoch)
    _set_cookie(response, request, cookie, settings)
    return response


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


# -- the sign-in page --------------------------------------------------------------------------------

def _page(request: Request, settings: Settings, next_url: str, message: str = "", status: int = 200,
          email: str = "", headers: dict[str, str] | None = None) -> HTMLResponse:
    body = sign_in.sign_in_html(settings.static_dir, sign_in.safe_next(next_url), message,
                                csrf_token=page_csrf_token(request), email=email)
    return HTMLResponse(body, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})


def _refuse(request: Request, settings: Settings, status: int, title: str, detail: str, next_url: str,
            email: str = "", retry_after: int = 0) -> Response:
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    if wants_html(request):
        return _page(request, settings, next_url, detail, status, email, headers)
    response = problem(request, status, title, detail)
    response.headers.update(headers)
    return response


@router.get("/sign-in", response_class=HTMLResponse, summary="The sign-in page (email and password, or a token)")
async def sign_in_page(request: Request, settings: SettingsDep,
                       next: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    return _page(request, settings, next or "")


@router.post("/sign-in", summary="Sign in with email and password (a form post; needs the CSRF token)",
             status_code=303, response_class=RedirectResponse)
async def sign_in_post(request: Request, session: SessionDep, settings: SettingsDep,
                       email: Annotated[str, Form(max_length=254)] = "",
                       password: Annotated[str, Form(max_length=1024)] = "",
                       csrf_token: Annotated[str, Form(max_length=200)] = "",
                       next: Annotated[str, Form(max_length=500)] = "") -> Response:
    if not check_csrf(request, csrf_token):
        return _refuse(request, settings, 403, "Not allowed", CSRF_FAILED, next, email)
    ip = client_ip(request.scope)
    wait = request.app.state.sign_in_limiter.take(ip)
    if wait:
        return _refuse(request, settings, 429, "Too many requests",
                       f"Too many sign-in attempts from this address; try again in {wait} seconds.",
                       next, email, wait)
    outcome = await password_sign_in(session, email, password, max_failures=settings.sign_in_max_failures,
                                     lock_cap_minutes=settings.sign_in_lock_cap_minutes)
    if outcome.principal_id is None:
        # The address tried is recorded, never the password.
        await audit.record(session, "sign-in-failed", partnership_id=outcome.partnership_id,
                           target=email.strip().lower()[:254],
                           detail={"email": email.strip()[:254], "reason": outcome.reason}, ip=ip)
        await session.commit()
        if outcome.retry_after:
            minutes = -(-outcome.retry_after // 60)
            return _refuse(request, settings, 429, "Too many requests",
                           f"Too many failed sign-ins for this email; try again in {minutes} "
                           f"minute{'s' if minutes != 1 else ''}.", next, email, outcome.retry_after)
        return _refuse(request, settings, 401, "Not signed in", SIGN_IN_FAILED, next, email)
    principal = await principal_by_id(session, outcome.principal_id)
    await audit.record(session, "sign-in", principal=principal, target=f"principal:{principal.id}",
                       detail={"method": "password"}, ip=ip)
    await session.commit()
    return _session_response(RedirectResponse(sign_in.safe_next(next), status_code=303),
                             request, principal, settings)


@router.post("/sign-out", summary="Sign out: end this user's sessions everywhere (needs the CSRF token)",
             status_code=303, response_class=RedirectResponse)
async def sign_out(request: Request, session: SessionDep, settings: SettingsDep,
                   csrf_token: Annotated[str, Form(max_length=200)] = "") -> Response:
    if not check_csrf(request, csrf_token):
        return _refuse(request, settings, 403, "Not allowed", CSRF_FAILED, "")
    return await _end_session(request, session, settings, RedirectResponse("/sign-in", status_code=303))


async def _end_session(request: Request, session, settings: Settings, response: Response) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            principal = await principal_from_session(session, request.app.state.sessions.decode(cookie))
        except Unauthorized:
            principal = None  # already ended: just forget the cookie
        if principal is not None:
            # The signed cookie cannot be recalled, so its epoch is made stale instead.
            await end_sessions(session, principal.id)
            await audit.record(session, "sign-out", principal=principal, target=f"principal:{principal.id}",
                               ip=client_ip(request.scope))
            await session.commit()
    response.delete_cookie(SESSION_COOKIE, path="/")
    set_csrf_cookie(response, request.app.state.csrf.new(), _secure(request, settings))
    return response


# -- API clients -------------------------------------------------------------------------------------

@router.post("/auth/session", status_code=204, summary="Exchange a bearer token for a session cookie")
async def start_session(request: Request, session: SessionDep, principal: CurrentPrincipal,
                        settings: SettingsDep) -> Response:
    await audit.record(session, "sign-in", principal=principal, target=f"principal:{principal.id}",
                       detail={"method": "token", "token_id": principal.token_id}, ip=client_ip(request.scope))
    await session.commit()
    return _session_response(Response(status_code=204), request, principal, settings)


@router.delete("/auth/session", status_code=204, summary="Sign out: end this user's sessions everywhere")
async def end_session(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    return await _end_session(request, session, settings, Response(status_code=204))


@router.get("/auth/link/{code}", summary="Use a one-time sign-in link", include_in_schema=True,
            status_code=303, response_class=RedirectResponse)
async def sign_in_link(code: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    principal_id = await use_sign_in_link(session, code)
    principal = await principal_by_id(session, principal_id)
    await audit.record(session, "sign-in", principal=principal, target=f"principal:{principal.id}",
                       detail={"method": "link"}, ip=client_ip(request.scope))
    await session.commit()
    return _session_response(RedirectResponse("/maps/overview", status_code=303), request, principal, settings)


# -- your own API tokens -----------------------------------------------------------------------------

OWN_TOKENS = text("""
    SELECT id, name, created_at, last_used_at, expires_at, revoked_at FROM api_token
    WHERE principal_id = :p ORDER BY id DESC LIMIT 200
""")
REVOKE_OWN_TOKEN = text("""
    UPDATE api_token SET revoked_at = now()
    WHERE id = :id AND principal_id = :p AND revoked_at IS NULL RETURNING id
""")


class TokenOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(BaseModel):
    id: int
    token: str = Field(description="the secret: shown this once, never again")
    expires_days: int


class TokenIn(BaseModel):
    name: str = Field("", max_length=200)
    expires_days: int | None = Field(None, ge=1, le=3650, description="Default: SAFERMAP_USER_TOKEN_DAYS (90)")


@tokens_router.get("", summary="Your API tokens (never their secrets)", response_model=list[TokenOut])
async def list_tokens(session: SessionDep, principal: Viewer) -> list[TokenOut]:
    rows = (await session.execute(OWN_TOKENS, {"p": principal.id})).mappings().all()
    return [TokenOut(**r) for r in rows]


@tokens_router.post("", status_code=201, summary="Create an API token for yourself; the secret is shown once",
                    response_model=TokenCreated)
async def create_own_token(body: TokenIn, request: Request, session: SessionDep, principal: Viewer,
                           settings: SettingsDep) -> JSONResponse:
    days = body.expires_days or settings.user_token_days
    token_id, secret = await issue_token(session, principal.id, body.name, days)
    await audit.record(session, "token.create", principal=principal, target=f"token:{token_id}",
                       detail={"name": body.name, "expires_days": days}, ip=client_ip(request.scope))
    await session.commit()
    return JSONResponse({"id": token_id, "token": secret, "expires_days": days}, status_code=201,
                        headers={"Cache-Control": "no-store"})


@tokens_router.delete("/{token_id}", status_code=204, summary="Revoke one of your API tokens")
async def revoke_own_token(token_id: int, request: Request, session: SessionDep, principal: Viewer) -> Response:
    if (await session.execute(REVOKE_OWN_TOKEN, {"id": token_id, "p": principal.id})).first() is None:
        raise NotFound("You have no active token with that id.")
    await audit.record(session, "token.revoke", principal=principal, target=f"token:{token_id}",
                       ip=client_ip(request.scope))
    await session.commit()
    return Response(status_code=204)
