"""The tasking page and its print exports for the meeting pack.

GET /maps/hotspots is the interactive map (a browser without a session is sent to sign in);
GET /maps/hotspots/print.png and print.pdf draw the same filters on an A4 landscape sheet with
matplotlib. A print is a document that leaves the system, so each one is audited.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit, sharing
from app.analysis.hotspot_data import HotspotFilter, resolve_period
from app.analysis.hotspot_top import top_hotspots
from app.analysis.kde import hotspot_surface
from app.api.deps import CatalogDep, HotspotFilterDep, SessionDep, SettingsDep, Viewer
from app.api.maps import PAGE_HEADERS, PageViewer
from app.auth import Principal
from app.catalog import Catalog
from app.errors import BadRequest
from app.pages import hotspot_print, hotspots, sign_in
from app.pages.overview import partnership_name

router = APIRouter(prefix="/maps", tags=["maps"])

MEDIA = {"png": "image/png", "pdf": "application/pdf"}
MAX_TITLE = 120
TOP_N = 10

ClassesQuery = Annotated[Literal["stddev", "quantile"], Query(description="how the density is classed")]
CellQuery = Annotated[float | None, Query(gt=0, description="grid cell in metres; default from the study area")]
BandwidthQuery = Annotated[float | None, Query(
    gt=0, description="kernel bandwidth in metres; default a multiple of the cell")]
CompareQuery = Annotated[Literal["previous", "last_year"], Query(
    description="the top list's change: against the period just before, or the same period a year earlier")]
TitleQuery = Annotated[str | None, Query(
    max_length=MAX_TITLE, description="the sheet's title; default 'Hotspots — <partnership>'")]


@router.get("/hotspots", response_class=HTMLResponse,
            summary="The tasking page: hotspot map, legend, period and top hotspots, with print exports")
async def hotspots_page(request: Request, session: SessionDep, catalog: CatalogDep, settings: SettingsDep,
                        principal: PageViewer, flt: HotspotFilterDep) -> Response:
    if principal is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/maps/sign-in?next={quote(sign_in.safe_next(target), safe='/')}",
                                status_code=303)
    config = await hotspots.page_config(session, principal, catalog, flt)
    body, csp = hotspots.hotspots_html(settings.static_dir, config)
    return HTMLResponse(body, headers={**PAGE_HEADERS, "Content-Security-Policy": csp})


async def print_sheet(session: AsyncSession, principal: Principal, catalog: Catalog, flt: HotspotFilter,
                      title: str | None, classes: str, cell_m: float | None,
                      bandwidth_m: float | None, compare: str = "previous") -> hotspot_print.Sheet:
    """Everything the sheet shows, gathered from the database for this caller and filter."""
    flt = await resolve_period(session, principal, flt)
    surface = await hotspot_surface(session, principal, flt, cell_m=cell_m, bandwidth_m=bandwidth_m,
                                    classes=classes)
    view = hotspot_print.fitted_view(hotspot_print.view_of(surface), *hotspot_print.MAP_BOX[2:])
    background = await hotspot_print.load_background(session, principal.partnership_id, surface.srid, view)
    datasets = await hotspots.visible_datasets(session, principal, flt)
    name = await partnership_name(session, principal)
    return hotspot_print.Sheet(
        title=(title or "").strip() or f"Hotspots — {name}",
        period=hotspots.period_label(surface.period),
        filters=filters_label(flt, datasets),
        surface=surface, view=view, background=background,
        top=hotspot_print.top_rows(await top_hotspots(session, principal, flt, n=TOP_N, compare=compare),
                                   surface.srid),
        compare=compare,
        notes=print_notes(surface, datasets),
        sources=sources(catalog, datasets, background),
        generated_by=f"{principal.name} ({principal.role})",
        generated_at=datetime.now(UTC),
        crs_label=hotspot_print.crs_label(surface.srid),
    )


def print_notes(surface: Any, datasets: list[hotspots.DatasetAccess]) -> list[str]:
    notes = hotspots.sharing_notes(datasets, surface.unplaced)
    if getattr(surface, "suppressed", False):  # too few incidents for this caller: no surface drawn
        notes.insert(0, f"Fewer than {sharing.suppress_below()} incidents: the surface is held back.")
    elif not surface.count:
        notes.insert(0, "There are no incidents to map for this period and these filters.")
    return notes


def filters_label(flt: HotspotFilter, datasets: list[hotspots.DatasetAccess]) -> str:
    cats = ", ".join(flt.categories) if flt.categories else "all categories"
    names = [d.name for d in datasets]
    sets = ", ".join(names) if flt.datasets and names else "all data sets"
    return f"Categories: {cats} · Data: {sets}"


def sources(catalog: Catalog, datasets: list[hotspots.DatasetAccess],
            background: hotspot_print.Background) -> list[str]:
    """Attribution as the catalog states it (police.uk's Open Government Licence text) and the data
    sets drawn, then the background's when there is one."""
    out = []
    incidents = catalog.get("incidents")
    if datasets:
        out.append("Incidents: " + "; ".join(f"{d.name}, {hotspots.LEVEL_WORDS.get(d.level, d.level)}"
                                             for d in datasets) + ".")
    if incidents and incidents.attribution:
        out.append(incidents.attribution)
    drawn = [catalog.get(layer_id) for layer_id, shapes in (("streets", background.streets),
                                                              ("buildings", background.buildings)) if shapes]
    out += [f"Streets and buildings: {a}" for a in sorted({l.attribution for l in drawn if l and l.attribution})]
    return out


async def print_export(fmt: Literal["png", "pdf"], request: Request, session: AsyncSession,
                       principal: Principal, catalog: Catalog, flt: HotspotFilter, classes: str,
                       cell_m: float | None, bandwidth_m: float | None, compare: str,
                       title: str | None) -> Response:
    if title and any(ord(c) < 32 for c in title):
        raise BadRequest("title must be a single line of text.")
    sheet = await print_sheet(session, principal, catalog, flt, title, classes, cell_m, bandwidth_m, compare)
    # Drawing takes a second or two of CPU: off the event loop, so other requests carry on.
    body = await anyio.to_thread.run_sync(hotspot_print.render, sheet, fmt)
    period = sheet.surface.period
    await audit.record(session, "hotspots.print", principal=principal, target=f"maps/hotspots/print.{fmt}",
                       detail={"format": fmt, "title": sheet.title, "period": hotspots.request_filter(period),
                               "classes": classes, "compare": compare, "cell_m": sheet.surface.cell_m,
                               "bandwidth_m": sheet.surface.bandwidth_m, "count": sheet.surface.count},
                       ip=request.client.host if request.client else None)
    await session.commit()
    stem = "-".join(filter(None, ["hotspots", principal.partnership_slug,
                                  hotspots.iso_month(period.date_from), hotspots.iso_month(period.date_to)]))
    return Response(body, media_type=MEDIA[fmt], headers={
        "Content-Disposition": f'attachment; filename="{stem}.{fmt}"',
        "Cache-Control": "no-store",
    })


@router.get("/hotspots/print.png", response_class=Response, responses={200: {"content": {"image/png": {}}}},
            summary="The hotspot map as an A4 landscape sheet, PNG at 300 dpi (3508 x 2480 px)")
async def print_png(request: Request, session: SessionDep, principal: Viewer, catalog: CatalogDep,
                    flt: HotspotFilterDep, classes: ClassesQuery = "stddev", cell_m: CellQuery = None,
                    bandwidth_m: BandwidthQuery = None, compare: CompareQuery = "previous",
                    title: TitleQuery = None) -> Response:
    return await print_export("png", request, session, principal, catalog, flt, classes, cell_m,
                              bandwidth_m, compare, title)


@router.get("/hotspots/print.pdf", response_class=Response, responses={200: {"content": {"application/pdf": {}}}},
            summary="The hotspot map as a one-page A4 landscape PDF (vector text and lines)")
async def print_pdf(request: Request, session: SessionDep, principal: Viewer, catalog: CatalogDep,
                    flt: HotspotFilterDep, classes: ClassesQuery = "stddev", cell_m: CellQuery = None,
                    bandwidth_m: BandwidthQuery = None, compare: CompareQuery = "previous",
                    title: TitleQuery = None) -> Response:
    return await print_export("pdf", request, session, principal, catalog, flt, classes, cell_m,
                              bandwidth_m, compare, title)
