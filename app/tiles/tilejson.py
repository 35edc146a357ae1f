"""TileJSON 3.0.0 for a catalog layer: what a client needs to draw it, from the catalog and the
bounds of the caller's data."""
from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote, urlencode

from app.catalog import Layer
from app.tiles.sql import TileFilters

TYPE_NAMES = {"string": "String", "number": "Number", "boolean": "Boolean"}
WORLD = [-180.0, -85.0511, 180.0, 85.0511]  # no data yet: the whole world


def tile_url(layer: Layer, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/tiles/{layer.id}/{{z}}/{{x}}/{{y}}.mvt"


def tilejson_body(layer: Layer, filters: TileFilters, bounds: list[float] | None, base_url: str) -> dict[str, Any]:
    bounds = bounds or WORLD
    span = max(bounds[2] - bounds[0], bounds[3] - bounds[1], 1e-6)
    zoom = min(max(int(math.log2(360 / span)), layer.minzoom), layer.maxzoom)
    # The filters are kept in the tile URLs, so the client's tiles show what it asked for.
    query = {"from": filters.date_from and filters.date_from.isoformat(),
             "to": filters.date_to and filters.date_to.isoformat(),
             "category": ",".join(filters.categories) or None}
    qs = urlencode({k: v for k, v in query.items() if v}, quote_via=quote)
    fields = {name: TYPE_NAMES[kind] for name, kind in layer.fields.items()}
    description = layer.description
    if layer.cluster:
        description += (f" Up to zoom {layer.cluster.max_zoom}, features are cells carrying 'count'"
                        + (" and 'top_category'" if layer.filters.category else "") + ".")
        fields["count"] = "Number"
        if layer.filters.category:
            fields["top_category"] = "String"
    return {
        "tilejson": "3.0.0",
        "name": layer.title,
        "description": description,
        "version": "1.0.0",
        "scheme": "xyz",
        "tiles": [tile_url(layer, base_url) + (f"?{qs}" if qs else "")],
        "minzoom": layer.minzoom,
        "maxzoom": layer.maxzoom,
        "bounds": bounds,
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, zoom],
        "vector_layers": [{"id": layer.id, "description": layer.title, "fields": fields,
                           "minzoom": layer.minzoom, "maxzoom": layer.maxzoom}],
        "attribution": layer.attribution,
    }
