"""Map pages (HTML). A browser that is not signed in is sent to the sign-in page; other clients
get the usual 401 problem."""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.deps import CatalogDep, SessionDep, SettingsDep, get_principal
from app.auth import Principal
from app.errors import Unauthorized
from app.pages import coverage, overview, sign_in

router = APIRouter(prefix="/maps", tags=["maps"])

PAGE_HEADERS = {
    "Cache-Control": "no-store",  # the page carries this caller's data
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def page_role(role: str) -> Callable[..., object]:
    """Like deps.least_role, but a missing or dead session yields None (the page redirects)."""

    async def dep(request: Request, session: SessionDep) -> Principal | None:
        try:
            principal = await get_principal(request, session)
        except Unauthorized:
            if "text/html" not in request.headers.get("accept", ""):
                raise
            return None
        principal.require(role)
        return principal

    dep.least_role = role  # type: ignore[attr-defined]  # read by the route/role table test
    return dep


PageViewer = Annotated[Principal | None, Depends(page_role("viewer"))]


def _to_sign_in(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/maps/sign-in?next={quote(sign_in.safe_next(target), safe='/')}",
                            status_code=303)


def _html(body: str, csp: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status,
                        headers={**PAGE_HEADERS, "Content-Security-Policy": csp})


@router.get("/overview", response_class=HTMLResponse,
            summary="The overview map: cameras, coverage and incidents the caller may see")
async def overview_page(request: Request, session: SessionDep, catalog: CatalogDep,
                        settings: SettingsDep, principal: PageViewer) -> Response:
    if principal is None:
        return _to_sign_in(request)
    layers = catalog.visible_to(principal.role)
    summary = await overview.summarise(session, principal, catalog, layers)
    name = await overview.partnership_name(session, principal)
    config = overview.overview_config(principal, name, layers, summary)
    body, csp = overview.overview_html(settings.static_dir, config)
    return _html(body, csp)


@router.get("/coverage", response_class=HTMLResponse,
            summary="The CCTV control-room page: cameras, faults, coverage, gaps and footage requests")
async def coverage_page(request: Request, session: SessionDep, catalog: CatalogDep,
                        settings: SettingsDep, principal: PageViewer) -> Response:
    if principal is None:
        return _to_sign_in(request)
    config = await coverage.page_config(session, principal, catalog)
    body, csp = coverage.coverage_html(settings.static_dir, config)
    return _html(body, csp)


@router.get("/sign-in", response_class=HTMLResponse, summary="Sign in with a bearer token")
async def sign_in_page(settings: SettingsDep,
                       next: Annotated[str | None, Query(max_length=500)] = None) -> Response:
    return _html(sign_in.sign_in_html(settings.static_dir, sign_in.safe_next(next)), sign_in.CSP)
