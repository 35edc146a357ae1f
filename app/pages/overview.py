"""The overview map: every catalog layer the caller may see, as vector tiles over a plain background.

The server gathers what the page needs in one go (the extent of the partnership's data, the
months and categories on offer, whether the incidents are synthetic) so the map opens fitted to
the data without another request. That summary is cached per partnership and data version: the
extent of a million incidents is a table scan, and the data changes far less often than the page
is opened.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cachetools import LRUCache
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.auth import Principal
from app.catalog import Catalog, Layer
from app.pages.base import full_map_page
from app.roles import at_least
from app.tiles.cache import current_versions

# How popups and the legend name the catalog's fields; others are shown as "Field name".
FIELD_LABELS = {
    "owner_agency": "Owner",
    "camera_type": "Type",
    "verified_at": "Last verified",
    "range_m": "Range (m)",
    "height_m": "Height (m)",
    "fov": "Field of view (°)",
    "bearing": "Bearing (°)",
    "retention_days": "Footage kept (days)",
    "assumed": "Assumed, not surveyed",
    "month_label": "Month",
    "location_text": "Location",
    "lsoa_name": "Area (LSOA)",
    "length_m": "Length (m)",
    "camera_pct": "Under working cameras (%)",
    "lit_pct": "Lit (%)",
    "incidents_near": "Incidents within 25 m",
    "time_of_day": "For",
}
EMPTY_TEXT = {"verified_at": "never"}
GEOMETRY_ORDER = {"polygon": 0, "line": 1, "point": 2}  # drawn bottom to top
SYNTHETIC = "%synthetic%"
MAX_CATEGORIES = 200


def label(field_name: str) -> str:
    return FIELD_LABELS.get(field_name, field_name.replace("_", " ").capitalize())


def _q(identifier: str) -> str:
    """Quotes a catalog identifier (already checked against IDENT when the catalog loaded)."""
    return '"' + identifier.replace('"', '""') + '"'


@dataclass
class LayerSummary:
    extent: tuple[float, float, float, float] | None = None  # minlon, minlat, maxlon, maxlat
    months: tuple[str, str] | None = None                    # first and last YYYY-MM
    categories: list[str] = field(default_factory=list)


@dataclass
class Summary:
    layers: dict[str, LayerSummary]
    synthetic: list[str]  # names of data sets that are synthetic (the demo)

    @property
    def bounds(self) -> list[list[float]] | None:
        """[[south, west], [north, east]] over every layer, as Leaflet's fitBounds takes it."""
        boxes = [s.extent for s in self.layers.values() if s.extent]
        if not boxes:
            return None
        return [[min(b[1] for b in boxes), min(b[0] for b in boxes)],
                [max(b[3] for b in boxes), max(b[2] for b in boxes)]]


CACHE_SIZE = 256
_cache: LRUCache[tuple, Summary] = LRUCache(maxsize=CACHE_SIZE)  # keyed by data versions: never stale


async def summarise(session: AsyncSession, principal: Principal, catalog: Catalog,
                    layers: list[Layer]) -> Summary:
    """What the page needs to know about the partnership's data in `layers` (and nothing else)."""
    pid = principal.partnership_id
    versions: dict[str, Any] = dict((await session.execute(
        text("SELECT source, version FROM data_version WHERE partnership_id = :p"), {"p": pid})).all())
    # Shared layers (incidents) depend on the caller's access and may include partnerships that
    # grant the caller's agency: their versions are read through the same query as the tiles'.
    shared: dict[str, tuple[Any, ...]] = {}
    for l in layers:
        if sharing.is_shared(l.source):
            shared[l.id] = tuple(await current_versions(session, l, principal))
    key = (sharing.access_key(principal), catalog.fingerprint, tuple(
        (l.id, shared.get(l.id) or tuple(versions.get(s) for s in l.versioned_by)) for l in layers),
        versions.get("dataset"))
    if (cached := _cache.get(key)) is not None:
        return cached
    synthetic = list((await session.execute(text(
        "SELECT name FROM dataset WHERE partnership_id = :p AND (name ILIKE :s OR source_key ILIKE :s) "
        "ORDER BY name"), {"p": pid, "s": SYNTHETIC})).scalars())
    summary = Summary({l.id: await _summarise_layer(session, principal, l) for l in layers}, synthetic)

    _cache[key] = summary
    return summary


async def _summarise_layer(session: AsyncSession, principal: Principal, layer: Layer) -> LayerSummary:
    """Extent, months and categories of what this caller may see of the layer: a shared layer is
    read through the sharing function, so its extent is of anonymous points below exact and
    sensitive categories held back from the caller are not named."""
    date_col, cat_col = layer.filters.date, layer.filters.category
    cols = ["ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"]
    inner = ["ST_Extent(geom) AS e"]
    if date_col:
        inner.append(f"to_char(min({_q(date_col)}), 'YYYY-MM') AS first, "
                     f"to_char(max({_q(date_col)}), 'YYYY-MM') AS last")
        cols.append("first, last")
    if cat_col:
        inner.append(f"(array_agg(DISTINCT {_q(cat_col)}::text))[1:{MAX_CATEGORIES}] AS cats")
        cols.append("cats")
    scope = "" if sharing.is_shared(layer.source) else "partnership_id = :p AND "
    row = (await session.execute(text(
        f"SELECT {', '.join(cols)} FROM (SELECT {', '.join(inner)} FROM {sharing.source_sql(layer.source)} "
        f"AS t WHERE {scope}geom IS NOT NULL) AS s"), sharing.access_params(principal))).one()
    summary = LayerSummary()
    if row[0] is not None:
        summary.extent = (row[0], row[1], row[2], row[3])
    if date_col and row[4] is not None:
        summary.months = (row[4], row[5])
    if cat_col:
        summary.categories = sorted(c for c in (row[-1] or []) if c)
    return summary


def layer_config(layer: Layer, summary: LayerSummary) -> dict[str, Any]:
    """One layer as the page script draws it. Only catalog facts and this caller's summary."""
    categories = summary.categories
    if layer.filters.category and layer.style.by == layer.filters.category:
        categories = sorted(set(categories) | set(layer.style.colors))  # the legend's too
    return {
        "id": layer.id,
        "title": layer.title,
        "description": layer.description,
        "geometry": layer.geometry,
        "minzoom": layer.minzoom,
        "maxzoom": layer.maxzoom,
        "tiles": f"/tiles/{layer.id}/{{z}}/{{x}}/{{y}}.mvt",
        "style": layer.style.model_dump(),
        "popup": layer.popup.model_dump(),
        "fields": layer.fields,
        "labels": {f: label(f) for f in layer.fields},
        "empty": {f: t for f, t in EMPTY_TEXT.items() if f in layer.fields},
        # Coverage drawn with a dashed outline where its values are defaults, not a survey.
        "dashed_by": "assumed" if layer.fields.get("assumed") == "boolean" else None,
        "cluster": {"max_zoom": layer.cluster.max_zoom} if layer.cluster else None,
        "filters": {"date": bool(layer.filters.date), "category": bool(layer.filters.category)},
        "months": list(summary.months) if summary.months else None,
        "categories": categories if layer.filters.category else [],
        "attribution": layer.attribution,
        "visible": layer.visible,
    }


async def partnership_name(session: AsyncSession, principal: Principal) -> str:
    return (await session.execute(text("SELECT name FROM partnership WHERE id = :p"),
                                  {"p": principal.partnership_id})).scalar_one()


def overview_config(principal: Principal, partnership: str, layers: list[Layer],
                    summary: Summary) -> dict[str, Any]:
    ordered = sorted(layers, key=lambda l: GEOMETRY_ORDER[l.geometry])
    return {
        "page": "overview",
        "partnership": {"name": partnership, "slug": principal.partnership_slug},
        "user": {"name": principal.name, "role": principal.role},
        "bounds": summary.bounds,
        "synthetic": summary.synthetic,
        "layers": [layer_config(l, summary.layers.get(l.id, LayerSummary())) for l in ordered],
        "links": {"session": "/auth/session", "signIn": "/maps/sign-in?next=/maps/overview"},
        # The other map pages this caller may open (the capture page is for PCSOs and above).
        "pages": [{"title": "CCTV control room", "href": "/maps/coverage"},
                  {"title": "Hotspots for tasking", "href": "/maps/hotspots"},
                  {"title": "Safe walking routes", "href": "/maps/routes"},
                  *([{"title": "Camera capture (PCSO)", "href": "/capture"}] if at_least(principal.role, "pcso") else [])],
    }


def overview_html(static_dir: Path, config: dict[str, Any]) -> tuple[str, str]:
    """The page and its Content-Security-Policy."""
    return full_map_page(static_dir, config, scripts=["safermap-common.js", "safermap-layers.js", "safermap-map.js"], styles=["safermap.css"],
                         start="SaferMap.start", title="SaferMap: overview map")
