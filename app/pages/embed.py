"""The embedded map page: a read-only folium (Leaflet) map of an embed's layers, nothing else.

No sign-out, no filters, no user: the page carries only the embed's title, its partnership's name,
its bounds and its layers' tile URLs (with the embed key). Its Content-Security-Policy is the
overview page's (this origin only, inline scripts by hash) with `frame-ancestors` naming only the
embed's allowed origins.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from app.catalog import Layer
from app.pages.base import LocalMap, PageConfig, csp, render
from app.pages.overview import EMPTY_TEXT, GEOMETRY_ORDER, label


def layer_config(layer: Layer, tiles: str, *, aggregate: bool, max_zoom: int, min_count: int) -> dict[str, Any]:
    """What safermap-layers.js (the map pages' shared layer script) needs to draw one layer: the
    overview's layer shape without filters. Aggregated layers have cells only, each with a count."""
    fields = {} if aggregate else layer.fields
    return {
        "id": layer.id,
        "title": layer.title,
        "geometry": layer.geometry,
        "minzoom": layer.minzoom,
        "maxzoom": min(layer.maxzoom, max_zoom),
        "tiles": tiles,
        "style": layer.style.model_dump(),
        "popup": {"title": None, "fields": []} if aggregate else layer.popup.model_dump(),
        "fields": fields,
        "labels": {f: label(f) for f in fields},
        "empty": {f: t for f, t in EMPTY_TEXT.items() if f in fields},
        "dashed_by": "assumed" if fields.get("assumed") == "boolean" else None,
        "aggregate": aggregate,
        "min_count": min_count if aggregate else None,
        "attribution": layer.attribution,
    }


def embed_config(title: str, partnership: str, bounds: list[list[float]] | None,
                 layers: list[dict[str, Any]], max_zoom: int) -> dict[str, Any]:
    return {
        "page": "embed",
        "title": title,
        "partnership": partnership,
        "bounds": bounds,
        "max_zoom": max_zoom,
        "layers": sorted(layers, key=lambda l: GEOMETRY_ORDER[l["geometry"]]),
    }


def frame_ancestors(policy: str, origins: tuple[str, ...]) -> str:
    """The page policy with frame-ancestors replaced by exactly the allowed origins."""
    kept = [d.strip() for d in policy.split(";") if d.strip() and not d.strip().startswith("frame-ancestors")]
    return "; ".join(kept + ["frame-ancestors " + " ".join(origins)])


def embed_html(static_dir: Path, config: dict[str, Any], origins: tuple[str, ...]) -> tuple[str, str]:
    """The page and its Content-Security-Policy."""
    bounds = config["bounds"]
    centre = ([(bounds[0][0] + bounds[1][0]) / 2, (bounds[0][1] + bounds[1][1]) / 2]
              if bounds else [54.0, -2.5])
    # The same layer-drawing script as the other map pages (safermap-layers.js), not a copy.
    fmap = LocalMap(static_dir, scripts=["safermap-common.js", "safermap-layers.js", "safermap-embed.js"],
                    styles=["safermap.css"],
                    location=centre, zoom_start=13 if bounds else 6, min_zoom=3,
                    max_zoom=config["max_zoom"], control_scale=True)
    fmap.add_child(PageConfig(config, start="SaferMapEmbed.start"))
    html = render(fmap, config["title"])
    return html, frame_ancestors(csp(html), origins)
