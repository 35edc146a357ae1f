"""The tasking page /maps/hotspots: a hotspot map a meeting can read off a projector.

The server embeds what the page needs to open on the right period without a round trip: the
default period (the latest month with data for this caller), the months on offer, the data sets the
caller may see and at which sharing level (so the page can say when sanitised data is shown), the
background layers from the catalog, and the URLs of the hotspot endpoints. Everything else (legend,
top hotspots, Gi*, change) the page script fetches for the filters chosen, from the same endpoints
the print export and any other client use.

The data-set summary is also what the print's sanitisation note is made from.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.analysis.hotspot_data import HotspotFilter, resolve_period, study_extent
from app.catalog import Catalog
from app.pages.base import full_map_page
from app.pages.overview import partnership_name

BACKGROUND_LAYERS = ("buildings", "streets")  # drawn bottom to top
LEVEL_WORDS = {"exact": "exact positions", "sanitised": "anonymous points", "aggregate": "counts only"}
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")


@dataclass(frozen=True)
class DatasetAccess:
    """One data set as this caller sees it: its key (the `dataset` filter value), name and level."""
    key: str
    name: str
    level: str
    police_uk: bool
    synthetic: bool
    first: date | None
    last: date | None


async def visible_datasets(session: AsyncSession, principal: Any, flt: HotspotFilter | None = None,
                           *, with_data_only: bool = True) -> list[DatasetAccess]:
    """The caller's own partnership's data sets they may see, at their level. With a filter, only
    the data sets it selects that hold incidents in its period (what a surface of it is made of)."""
    date_from = flt.date_from.replace(day=1) if flt and flt.date_from else None
    # the partnership's own only: hotspot analyses read only its own incidents
    sql, params = sharing.datasets_query(principal, "own", date_from, flt.date_to if flt else None)
    rows = (await session.execute(text(sql), params)).all()
    out = [DatasetAccess(r.key, r.name, r.level, r.police_uk, r.synthetic, r.first, r.last) for r in rows]
    if flt and flt.datasets:
        out = [d for d in out if d.key in flt.datasets]
    return [d for d in out if d.first is not None] if with_data_only else out


def sharing_notes(datasets: list[DatasetAccess], unplaced: int = 0) -> list[str]:
    """Plain sentences on what the map is made of: which sharing levels were used, what is held
    back and what is counted but not drawn. The page and the print say the same."""
    by_level: dict[str, list[str]] = {}
    for d in datasets:
        by_level.setdefault(d.level, []).append(d.name)
    notes = []
    if by_level.get("sanitised"):
        notes.append("Sanitised data: incidents from " + ", ".join(by_level["sanitised"])
                     + " are placed at anonymous points (along named streets, about every 175 m), "
                       "not at their exact places.")
    if by_level.get("exact"):
        notes.append("Exact positions: " + ", ".join(by_level["exact"]) + ".")
    if by_level.get("aggregate"):
        notes.append("Counts only: " + ", ".join(by_level["aggregate"])
                     + " may be counted but not placed, so it is not in the surface.")
    if unplaced:
        notes.append(f"{unplaced:,} incidents are counted but not mapped (counts-only sharing or no location).")
    if set(by_level) - {"exact"}:
        notes.append(f"Counts below {sharing.suppress_below()} are held back, as you do not see every "
                     "counted incident exactly.")
    if any(d.police_uk for d in datasets):
        notes.append("police.uk publishes positions already snapped to anonymous map points.")
    if any(d.synthetic for d in datasets):
        notes.append("Demonstration data: " + ", ".join(d.name for d in datasets if d.synthetic)
                     + " is synthetic, not real crime.")
    notes.append("The density surface is an aggregate: no single incident can be read from it.")
    return notes


def month_label(value: date) -> str:
    return f"{MONTHS[value.month - 1]} {value.year}"


def period_label(flt: HotspotFilter) -> str:
    """'March 2024', 'January – March 2024', or ISO dates when the period is not whole months."""
    start, end = flt.date_from, flt.date_to
    if start is None or end is None:
        return "All months"
    next_day = date.fromordinal(end.toordinal() + 1)
    if start.day != 1 or next_day.day != 1:
        return f"{start.isoformat()} – {end.isoformat()}"
    if (start.year, start.month) == (end.year, end.month):
        return month_label(start)
    if start.year == end.year:
        return f"{MONTHS[start.month - 1]} – {month_label(end)}"
    return f"{month_label(start)} – {month_label(end)}"


def iso_month(value: date | None) -> str | None:
    return f"{value.year:04d}-{value.month:02d}" if value else None


async def lonlat_bounds(session: AsyncSession, principal: Any,
                        flt: HotspotFilter) -> list[list[float]] | None:
    """[[south, west], [north, east]] of the caller's placed incidents (A's study extent, which
    is metric, back to WGS84), for the page to open fitted to the data."""
    extent = await study_extent(session, principal, flt)
    if extent is None:
        return None
    to_wgs84 = Transformer.from_crs(principal.srid, 4326, always_xy=True)
    west, south, east, north = to_wgs84.transform_bounds(*extent)
    return [[south, west], [north, east]]


def background_config(catalog: Catalog, role: str) -> list[dict[str, Any]]:
    """The app's own streets and buildings vector tiles: the background when there is no base map."""
    out = []
    for layer_id in BACKGROUND_LAYERS:
        layer = catalog.get(layer_id)
        if layer is None or layer not in catalog.visible_to(role):
            continue
        out.append({"id": layer.id, "title": layer.title, "geometry": layer.geometry,
                    "tiles": f"/tiles/{layer.id}/{{z}}/{{x}}/{{y}}.mvt", "minzoom": layer.minzoom,
                    "maxzoom": layer.maxzoom, "style": layer.style.model_dump(),
                    "attribution": layer.attribution})
    return out


def request_filter(flt: HotspotFilter) -> dict[str, Any]:
    """The filter as the page's query parameters carry it."""
    return {"from": flt.date_from.isoformat() if flt.date_from else None,
            "to": flt.date_to.isoformat() if flt.date_to else None,
            "categories": list(flt.categories), "datasets": list(flt.datasets)}


async def page_config(session: AsyncSession, principal: Any, catalog: Catalog,
                      flt: HotspotFilter) -> dict[str, Any]:
    """Everything the page opens with; `flt` is the request's filter (its period may be empty)."""
    period = await resolve_period(session, principal, flt)
    latest = await resolve_period(session, principal, HotspotFilter(None, None, flt.categories, flt.datasets))
    datasets = await visible_datasets(session, principal)
    firsts = [d.first for d in datasets if d.first]
    lasts = [d.last for d in datasets if d.last]
    incidents = catalog.get("incidents")
    return {
        "page": "hotspots",
        "partnership": {"name": await partnership_name(session, principal), "slug": principal.partnership_slug},
        "user": {"name": principal.name, "role": principal.role},
        "bounds": await lonlat_bounds(session, principal, period),
        "filter": request_filter(period),
        "latest": iso_month(latest.date_to),
        "months": [iso_month(min(firsts)), iso_month(max(lasts))] if firsts else None,
        "datasets": [{"key": d.key, "name": d.name, "level": d.level, "synthetic": d.synthetic}
                     for d in datasets],
        "suppress_below": sharing.suppress_below(),
        "background": background_config(catalog, principal.role),
        "attribution": incidents.attribution if incidents else "",
        "links": {
            "tiles": "/tiles/hotspots/{z}/{x}/{y}.png",
            "legend": "/api/hotspots/legend",
            "top": "/api/hotspots/top",
            "gistar": "/api/hotspots/gistar",
            "change": "/api/hotspots/change",
            "categories": "/api/categories",
            "printPng": "/maps/hotspots/print.png",
            "printPdf": "/maps/hotspots/print.pdf",
            "session": "/auth/session",
            "signIn": "/maps/sign-in?next=/maps/hotspots",
        },
    }


def hotspots_html(static_dir: Path, config: dict[str, Any]) -> tuple[str, str]:
    """The page and its Content-Security-Policy."""
    return full_map_page(static_dir, config, scripts=["safermap-common.js", "safermap-hotspots.js"], styles=["safermap.css", "safermap-hotspots.css"],
                         start="SaferMapHotspots.start", title="SaferMap: hotspots for tasking")
