"""Vector tiles of the catalog's layers: `/tiles/{layer}/{z}/{x}/{y}.mvt`, TileJSON at
`/tiles/{layer}.json`, and the list of layers at `/tiles`.

The routes only resolve their dependencies (the caller, the layer they may see, the tile, the
filters) and hand a tile request to the pipeline (app/tiles/pipeline.py), which names every tile
with an ETag from the data versions it depends on: `If-None-Match` is answered with 304 and a
repeated tile comes from the in-process cache without drawing it again. Tiles are private: they
belong to one partnership and are only served behind its authentication.
"""
from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from app.api.deps import CatalogDep, LayerFilters, SessionDep, TileDep, TilesDep, Viewer, VisibleLayer
from app.tiles.http import respond
from app.tiles.pipeline import MVT, TileRequest
from app.tiles.tilejson import tile_url
from app.writer import after_answer

router = APIRouter(prefix="/tiles", tags=["tiles"])

IfNoneMatch = Annotated[str | None, Header()]


@router.get("", summary="The tile layers you may see, with their TileJSON")
async def list_layers(request: Request, principal: Viewer, catalog: CatalogDep) -> dict:
    base = str(request.base_url).rstrip("/")
    return {"layers": [
        {"id": l.id, "title": l.title, "description": l.description, "geometry": l.geometry,
         "minzoom": l.minzoom, "maxzoom": l.maxzoom,
         "clustered_to_zoom": l.cluster.max_zoom if l.cluster else None,
         "filters": [n for n, col in (("from", l.filters.date), ("to", l.filters.date),
                                      ("category", l.filters.category)) if col],
         "tilejson": f"{base}/tiles/{l.id}.json",
         "tiles": tile_url(l, base)}
        for l in catalog.visible_to(principal.role)]}


@router.get("/{layer_id}.json", summary="TileJSON 3.0.0 for a layer, with the bounds of your data",
            response_class=Response, responses={200: {"content": {"application/json": {}}},
                                                304: {"description": "not modified"}})
async def tilejson(layer: VisibleLayer, filters: LayerFilters, request: Request, session: SessionDep,
                   principal: Viewer, tiles: TilesDep, if_none_match: IfNoneMatch = None) -> Response:
    return respond(await tiles.tilejson(session, principal, layer, filters, str(request.base_url), if_none_match))


@router.get("/{layer_id}/{z}/{x}/{y}.mvt", summary="A Mapbox Vector Tile of a layer",
            response_class=Response, responses={200: {"content": {MVT: {}}}, 204: {"description": "empty tile"},
                                                304: {"description": "not modified"}})
async def tile(layer: VisibleLayer, xyz: TileDep, filters: LayerFilters, request: Request, session: SessionDep,
               principal: Viewer, tiles: TilesDep, if_none_match: IfNoneMatch = None) -> Response:
    ip = request.client.host if request.client else None
    return respond(await tiles.layer_tile(session, principal, TileRequest(layer, xyz, filters), if_none_match, ip,
                                          after=partial(after_answer, request.scope)))
