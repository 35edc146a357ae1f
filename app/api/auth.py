"""Turning a bearer token or a one-time link into a signed, HttpOnly session cookie."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from app.api.deps import CurrentPrincipal, SessionDep, SettingsDep
from app.auth import SESSION_COOKIE, use_sign_in_link

router = APIRouter(prefix="/auth", tags=["auth"])


def _set_cookie(response: Response, request: Request, value: str, settings) -> None:
    response.set_cookie(
        SESSION_COOKIE, value, max_age=settings.session_max_age_s, httponly=True, samesite="lax",
        secure=settings.cookie_secure or request.url.scheme == "https", path="/")


@router.post("/session", status_code=204, summary="Exchange a bearer token for a session cookie")
async def start_session(request: Request, principal: CurrentPrincipal, settings: SettingsDep) -> Response:
    response = Response(status_code=204)
    cookie = request.app.state.sessions.encode(principal.id, principal.token_id)
    _set_cookie(response, request, cookie, settings)
    return response


@router.delete("/session", status_code=204, summary="Sign out: forget the session cookie")
async def end_session() -> Response:
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/link/{code}", summary="Use a one-time sign-in link", include_in_schema=True)
async def sign_in_link(code: str, request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    principal_id = await use_sign_in_link(session, code)
    await session.commit()
    response = RedirectResponse("/maps/overview", status_code=303)
    _set_cookie(response, request, request.app.state.sessions.encode(principal_id, None), settings)
    return response
