"""The control-room page /maps/coverage: every camera and what it covers, faults, who could have seen
a place, the walking path between related incidents, and the coverage gaps.

The server embeds only what the page opens with: the catalog layers it draws (with their styles,
from the same `layer_config` as the overview), where to fit the map, what the caller's role may do
and the URLs of the endpoints. Everything that changes while a control room watches (the camera
list, faults, gap figures, footage lists) the page script fetches from the JSON API, and it checks
the layers' TileJSON ETags every half minute so the map is never stale.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.analysis import footage
from app.auth import Principal
from app.catalog import Catalog, Layer
from app.pages.base import full_map_page
from app.pages.overview import LayerSummary, layer_config, partnership_name, summarise
from app.roles import at_least

# Drawn bottom to top: the background, then coverage under the cameras.
BACKGROUND_LAYERS = ("buildings", "streets")
OVERLAY_LAYERS = ("coverage_union", "coverage", "coverage_bands", "gaps", "cameras")
# The map opens fitted to the cameras and their coverage, else to the streets.
FIT_LAYERS = ("cameras", "coverage")
REFRESH_SECONDS = 30       # how often the page asks whether any layer's data changed
DUE_SOON_DAYS = 3          # a footage deadline this close is marked amber
DEFAULT_MARGIN_MINUTES = 15
SITING_K = 5


def _layers(catalog: Catalog, role: str, ids: tuple[str, ...]) -> list[Layer]:
    visible = {l.id for l in catalog.visible_to(role)}
    return [layer for i in ids if i in visible and (layer := catalog.get(i)) is not None]


async def page_config(session: AsyncSession, principal: Principal, catalog: Catalog) -> dict[str, Any]:
    overlays = _layers(catalog, principal.role, OVERLAY_LAYERS)
    background = _layers(catalog, principal.role, BACKGROUND_LAYERS)
    fit = [l for l in overlays if l.id in FIT_LAYERS]
    summary = await summarise(session, principal, catalog, fit)
    bounds = summary.bounds
    if bounds is None and background:  # no cameras yet: open on the streets
        bounds = (await summarise(session, principal, catalog, background)).bounds
    return {
        "page": "coverage",
        "partnership": {"name": await partnership_name(session, principal), "slug": principal.partnership_slug},
        "user": {"name": principal.name, "role": principal.role},
        "bounds": bounds,
        "synthetic": summary.synthetic,
        "layers": [layer_config(l, LayerSummary()) for l in overlays],
        "background": [layer_config(l, LayerSummary()) for l in background],
        "can": {"site": at_least(principal.role, "operator"), "add_camera": at_least(principal.role, "pcso")},
        "suppress_below": sharing.suppress_below(),
        "refresh_seconds": REFRESH_SECONDS,
        "due_soon_days": DUE_SOON_DAYS,
        "path": {"min": footage.MIN_INCIDENTS, "max": footage.MAX_INCIDENTS,
                 "margin_minutes": DEFAULT_MARGIN_MINUTES, "snap_max_m": footage.SNAP_MAX_M},
        "siting_k": SITING_K,
        "links": {
            "cameras": "/api/cameras",
            "at": "/api/coverage/at",
            "path": "/api/coverage/path",
            "gaps": "/api/coverage/gaps",
            "siting": "/api/coverage/siting",
            "tilejson": "/tiles/{layer}.json",
            "footageRequest": "/maps/coverage/footage-request",
            "footagePack": "/maps/coverage/footage-pack",
            "overview": "/maps/overview",
            "session": "/auth/session",
            "signIn": "/maps/sign-in?next=/maps/coverage",
        },
    }


# The page script in parts, one per panel, as plain scripts in this order: each registers itself on
# `SaferMapCoverage` and uses only parts loaded before it; safermap-coverage.js wires them together.
SCRIPTS = (
    "safermap-common.js", "safermap-layers.js",
    *(f"coverage/{part}.js" for part in ("format", "widgets", "bar", "filters", "freshness",
                                         "faults", "footage", "path", "gaps", "siting")),
    "safermap-coverage.js",
)


def coverage_html(static_dir: Path, config: dict[str, Any]) -> tuple[str, str]:
    """The page and its Content-Security-Policy."""
    return full_map_page(static_dir, config, scripts=list(SCRIPTS), styles=["safermap.css", "safermap-coverage.css"],
                         start="SaferMapCoverage.start", title="SaferMap: CCTV control room")
