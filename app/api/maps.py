"""Map pages (HTML). A browser that is not signed in is sent to the sign-in page; other clients
get the usual 401 problem."""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.deps import CatalogDep, SessionDep, SettingsDep, get_principal
from app.auth import Principal
from app.errors import NotFound, Unauthorized
from app.pages import capture, coverage, overview, sign_in

router = APIRouter(prefix="/maps", tags=["maps"])
# The PCSO capture page lives at /capture, so that its service worker's scope is the page alone.
capture_router = APIRouter(prefix="/capture", tags=["maps"])

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
PagePcso = Annotated[Principal | None, Depends(page_role("pcso"))]


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


@capture_router.get("", response_class=HTMLResponse,
                    summary="The PCSO capture page: add and survey cameras on a tablet or phone, offline too")
async def capture_page(request: Request, session: SessionDep, catalog: CatalogDep,
                       settings: SettingsDep, principal: PagePcso) -> Response:
    if principal is None:
        return _to_sign_in(request)
    config = await capture.page_config(session, principal, catalog, settings.static_dir)
    return _html(capture.capture_html(settings.static_dir, config), capture.CSP)


@capture_router.get("/sw.js", summary="The capture page's service worker (public: code, no data)")
async def capture_service_worker(settings: SettingsDep) -> Response:
    try:
        body = (settings.static_dir / "capture" / "sw.js").read_bytes()
    except OSError as e:
        raise NotFound("The service worker is not installed.") from e
    # Served here, not under /static, so that its scope may be /capture; the header allows exactly that.
    return Response(body, media_type="text/javascript", headers={
        "Service-Worker-Allowed": capture.SCOPE, "Cache-Control": "no-cache",
        "Content-Security-Policy": capture.SW_CSP})


@capture_router.get("/icon-{size}.png", summary="The capture app's icon (public)")
async def capture_icon(size: Annotated[int, Path(description="192 or 512 pixels")]) -> Response:
    if size not in capture.ICON_SIZES:
        raise NotFound("The icon comes in 192 and 512 pixels.")
    return Response(capture.icon_png(size), media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


@capture_router.get("/manifest.webmanifest", summary="The capture page's web app manifest (public)")
async def capture_manifest(settings: SettingsDep) -> Response:
    return Response(capture.manifest_json(settings.static_dir), media_type="application/manifest+json",
                    headers={"Cache-Control": "no-cache"})
