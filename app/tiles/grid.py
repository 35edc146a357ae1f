"""Tile maths, from morecantile's WebMercatorQuad (the OGC name of the z/x/y grid every slippy map
uses), so no module keeps its own copy of tile bounds.

morecantile's `bounds` (lon/lat) goes through pyproj, ~70 µs a call; `xy_bounds` (Web Mercator
metres) is plain arithmetic, ~4 µs. Paths taken on every request (the embed-area test) therefore
compare in metres, with the other side transformed once and remembered.
"""
from __future__ import annotations

import math
from functools import lru_cache

import morecantile

TMS = morecantile.tms.get("WebMercatorQuad")
MAX_ZOOM = 24       # the deepest zoom any tile route answers (the catalog's own limit too)
TILE_PX = 256
Tile = morecantile.Tile  # (x, y, z), a NamedTuple

Box = tuple[float, float, float, float]  # minx, miny, maxx, maxy


# Tiles along each side of the (square) grid at each zoom, read once: `TMS.is_valid` builds a
# matrix on every call, a few per cent of a whole cached-tile answer.
ACROSS = tuple(TMS.matrix(z).matrixWidth for z in range(MAX_ZOOM + 1))


def is_tile(z: int, x: int, y: int) -> bool:
    """Whether z/x/y names a tile of the grid up to MAX_ZOOM."""
    return 0 <= z <= MAX_ZOOM and 0 <= x < ACROSS[z] and 0 <= y < ACROSS[z]


def tiles_across(z: int) -> int:
    """Tiles along each side of the grid at zoom z."""
    return ACROSS[z]


def lonlat_bounds(tile: Tile) -> list[float]:
    """[west, south, east, north] in degrees."""
    b = TMS.bounds(tile)
    return [b.left, b.bottom, b.right, b.top]


def mercator_bounds(tile: Tile) -> Box:
    """(minx, miny, maxx, maxy) in Web Mercator metres."""
    b = TMS.xy_bounds(tile)
    return b.left, b.bottom, b.right, b.top


@lru_cache(maxsize=1024)  # a pure function of a few floats: an embed's area, asked on every tile
def mercator_box(area: Box) -> Box:
    """A lon/lat box in Web Mercator metres (latitudes beyond the grid's edge are clamped to it)."""
    west, south = TMS.xy(area[0], area[1], truncate=True)
    east, north = TMS.xy(area[2], area[3], truncate=True)
    return west, south, east, north


def touches(area: Box | None, tile: Tile) -> bool:
    """Whether the tile meets a lon/lat area at all (None: everywhere)."""
    if area is None:
        return True
    x0, y0, x1, y1 = mercator_box(area)
    minx, miny, maxx, maxy = mercator_bounds(tile)
    return minx <= x1 and maxx >= x0 and miny <= y1 and maxy >= y0


def lonlat_to_tile(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The tile (x, y) holding a WGS84 point at zoom z (latitudes beyond the grid clamped to it)."""
    t = TMS.tile(lon, lat, z, truncate=True)
    return t.x, t.y


def metres_per_pixel(z: int, lat: float) -> float:
    """Ground size of a pixel of a 256-pixel tile at zoom z and latitude lat."""
    return TMS.matrix(z).cellSize * math.cos(math.radians(lat))
