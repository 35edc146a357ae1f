"""Hotspot tiles through the one pipeline: the density surface as PNG, and incident counts on grid
cells as MVT. Both are aggregates of the caller's incidents read through the sharing function
(app.analysis.hotspot_data), named by the caller's data context (access + data versions)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis.hotspot_cells import area_cell
from app.analysis.hotspot_data import (
    Bins,
    HotspotFilter,
    HotspotPrincipal,
    data_context,
    load_bins,
    resolve_period,
    study_extent,
)
from app.analysis.kde import hotspot_surface
from app.analysis.raster_tiles import render_tile, tile_bounds_metric
from app.caches import Bounded
from app.tiles import grid
from app.tiles.pipeline import MVT, Answer, Drawn, TilePipeline
from app.tiles.sql import HOTSPOT_CELL_TILE_SQL

PNG = "image/png"
# Count cells are never finer than the 100 m grid the sharing rules anonymise to, so a count never
# pinpoints an incident; at low zooms cells merge (2x2, 4x4, ...) until each is about CELL_PX wide.
MIN_COUNT_CELL_M = 100.0
CELL_PX = 8

_CELL_BINS = Bounded(32)  # count grids by (data context, filter, cell): a map asks for many tiles of one


class _DataContextVersions:
    """Hotspot tiles depend on the caller's data context (access and data versions), one lookup."""
    principal: HotspotPrincipal
    context_key: str = ""

    async def versions(self, session: AsyncSession) -> Sequence[str]:
        self.context_key = (await data_context(session, self.principal)).version_key
        return [self.context_key]

    def known_empty(self) -> bool:
        return False


class SurfaceJob(_DataContextVersions):
    media_type = PNG

    def __init__(self, principal: HotspotPrincipal, tile: grid.Tile, flt: HotspotFilter, classes: str,
                 cell_m: float | None, bandwidth_m: float | None) -> None:
        self.principal, self.tile, self.flt = principal, tile, flt
        self.classes, self.cell_m, self.bandwidth_m = classes, cell_m, bandwidth_m

    def key(self) -> tuple:
        t = self.tile
        return ("hotspots.png", t.z, t.x, t.y, self.flt.key(), self.classes, self.cell_m, self.bandwidth_m)

    async def draw(self, session: AsyncSession) -> Drawn:
        surface = await hotspot_surface(session, self.principal, self.flt, self.cell_m, self.bandwidth_m,
                                        self.classes)
        return Drawn(render_tile(surface, self.tile.z, self.tile.x, self.tile.y), [surface.version_key])


class CellsJob(_DataContextVersions):
    media_type = MVT

    def __init__(self, principal: HotspotPrincipal, tile: grid.Tile, flt: HotspotFilter, cell_m: float | None,
                 k: int) -> None:
        self.principal, self.tile, self.flt, self.cell_m, self.k = principal, tile, flt, cell_m, k

    def key(self) -> tuple:
        t = self.tile
        return ("hotspot-cells.mvt", t.z, t.x, t.y, self.flt.key(), self.cell_m, self.k)

    async def draw(self, session: AsyncSession) -> Drawn:
        bins = await count_bins(session, self.principal, self.flt, self.cell_m)
        if bins is None or not bins.total:
            return Drawn(b"", [self.context_key])
        return Drawn(await cells_tile(session, bins, self.tile, self.k), [bins.version_key])


async def surface_tile(pipeline: TilePipeline, session: AsyncSession, principal: HotspotPrincipal,
                       tile: grid.Tile, flt: HotspotFilter, classes: str, cell_m: float | None,
                       bandwidth_m: float | None, if_none_match: str | None = None) -> Answer:
    """A 256 px PNG of the density surface, coloured by the legend's classes."""
    return await pipeline.serve(session, SurfaceJob(principal, tile, flt, classes, cell_m, bandwidth_m),
                                if_none_match)


async def count_cells_tile(pipeline: TilePipeline, session: AsyncSession, principal: HotspotPrincipal,
                           tile: grid.Tile, flt: HotspotFilter, cell_m: float | None,
                           if_none_match: str | None = None) -> Answer:
    """Incident counts on grid cells as a vector tile (layer `hotspot_cells`)."""
    return await pipeline.serve(session, CellsJob(principal, tile, flt, cell_m, pipeline.suppress_below),
                                if_none_match)


async def count_bins(session: AsyncSession, principal: HotspotPrincipal, flt: HotspotFilter,
                     cell_m: float | None) -> Bins | None:
    """The caller's counts on the area grid (the cells the Gi*, change and top lists use), cached
    by data version."""
    flt = await resolve_period(session, principal, flt)
    extent = await study_extent(session, principal, flt)
    if extent is None:
        return None
    cell = max(area_cell(cell_m, extent), MIN_COUNT_CELL_M)
    context = await data_context(session, principal)
    key = (context.version_key, flt.key(), cell)
    bins = _CELL_BINS.get(key)
    if bins is None:
        bins = await load_bins(session, principal, flt, cell, extent)
        _CELL_BINS.put(key, bins)
    return bins


def merged_cells(bins: Bins, z: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """(size, xs, ys, counts) of the non-empty cells, merged in blocks of 2^k x 2^k so that a cell is
    at least CELL_PX pixels wide at zoom z. Blocks are aligned on the whole CRS grid (not this
    grid's corner), so merged cells line up across periods and filters."""
    iy, ix = np.nonzero(bins.counts)
    counts = bins.counts[iy, ix]
    centre_lat = Transformer.from_crs(bins.srid, 4326, always_xy=True).transform(
        bins.x0 + bins.counts.shape[1] * bins.cell_m / 2, bins.y0 + bins.counts.shape[0] * bins.cell_m / 2)[1]
    factor = 2 ** max(0, math.ceil(math.log2(CELL_PX * grid.metres_per_pixel(z, centre_lat) / bins.cell_m)))
    gx = np.round(bins.x0 / bins.cell_m).astype(np.int64) + ix
    gy = np.round(bins.y0 / bins.cell_m).astype(np.int64) + iy
    blocks, inverse = np.unique(np.stack([gx // factor, gy // factor], axis=1), axis=0, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=counts, minlength=len(blocks))
    size = bins.cell_m * factor
    return size, blocks[:, 0] * size, blocks[:, 1] * size, np.rint(summed).astype(np.int64)


async def cells_tile(session: AsyncSession, bins: Bins, tile: grid.Tile, k: int) -> bytes:
    """The merged cells that meet the tile; cells of fewer than k incidents are left out unless the
    caller sees every incident exactly."""
    size, xs, ys, counts = merged_cells(bins, tile.z)
    minx, miny, maxx, maxy = tile_bounds_metric(tile.z, tile.x, tile.y, bins.srid)
    keep = (xs + size >= minx - size) & (xs <= maxx + size) & (ys + size >= miny - size) & (ys <= maxy + size)
    if not bins.all_exact:
        keep &= counts >= k
    if not keep.any():
        return b""
    data = (await session.execute(text(HOTSPOT_CELL_TILE_SQL), {
        "xs": xs[keep].tolist(), "ys": ys[keep].tolist(), "ns": counts[keep].tolist(), "size": size,
        "srid": bins.srid, "z": tile.z, "x": tile.x, "y": tile.y})).scalar()
    return bytes(data or b"")
