"""Classes, colours and PNG tiles for a density surface.

A tasking meeting reads a hotspot map by its legend, so the classes are few and stated: either by
standard deviations above the mean of the cells with any density, or by the top shares of those
cells (quantiles). Cells below the first class are transparent, so the map underneath shows.

A tile is drawn by mapping its 256 x 256 pixel centres from Web Mercator to the surface's metric
CRS (pyproj, vectorised), sampling the surface there (bilinear, scipy.ndimage.map_coordinates),
classing and encoding a palette PNG (Pillow): no loop over pixels in Python.
"""
from __future__ import annotations

import io
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from pyproj import Transformer
from scipy.ndimage import map_coordinates

from app.tiles import grid

if TYPE_CHECKING:
    from app.analysis.kde import Surface

TILE_SIZE = grid.TILE_PX
# ColorBrewer YlOrRd, 5 classes: sequential, readable when printed in grey, distinct on a projector.
RAMP = ("#ffffb2", "#fecc5c", "#fd8d3c", "#f03b20", "#bd0026")
LATTICE = 17  # pixels transformed exactly per tile side (the rest interpolated)
ALPHA = 190  # of 255: the streets under a hotspot stay readable
CLASS_METHODS = ("stddev", "quantile")
STDDEV_STEPS = (0.0, 1.0, 2.0, 3.0, 4.0)  # class lower bounds: mean + k standard deviations
STDDEV_LABELS = ("Mean to +1 SD", "+1 to +2 SD", "+2 to +3 SD", "+3 to +4 SD", "Over +4 SD")
QUANTILES = (50.0, 75.0, 90.0, 95.0, 99.0)  # class lower bounds: percentiles of non-zero cells
QUANTILE_LABELS = ("Top 50% to 25%", "Top 25% to 10%", "Top 10% to 5%", "Top 5% to 1%", "Top 1%")


def class_breaks(density: np.ndarray, method: str) -> tuple[list[float], list[str]]:
    """The lower bound of each class and its label, from the cells with any density. Empty when
    the surface is empty (nothing is coloured)."""
    values = density[density > 0]
    if values.size == 0:
        return [], []
    if method == "stddev":
        mean, sd = float(values.mean()), float(values.std())
        breaks = [mean + k * sd for k in STDDEV_STEPS]
        labels = list(STDDEV_LABELS)
    elif method == "quantile":
        breaks = [float(v) for v in np.percentile(values, QUANTILES)]
        labels = list(QUANTILE_LABELS)
    else:
        raise ValueError(f"unknown class method {method!r}")
    # Equal breaks (a flat surface, many equal cells) would make empty classes: keep the first.
    kept = [i for i in range(len(breaks)) if i == 0 or breaks[i] > breaks[i - 1]]
    return [breaks[i] for i in kept], [labels[i] for i in kept]


def class_colours(n: int) -> list[str]:
    """n colours from the ramp, always ending at its darkest (the top class is always dark red)."""
    return list(RAMP[len(RAMP) - n:]) if n else []


def classify(values: np.ndarray, breaks: list[float]) -> np.ndarray:
    """Class index + 1 for each value (0 = below the first class: transparent)."""
    if not breaks:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.searchsorted(np.asarray(breaks), values, side="right").astype(np.uint8)


def palette(colours: list[str]) -> tuple[list[int], bytes]:
    """A PNG palette (index 0 transparent) and its per-index alpha."""
    rgb = [0, 0, 0]
    for c in colours:
        rgb += [int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)]
    return rgb, bytes([0] + [ALPHA] * len(colours))


def encode_png(indices: np.ndarray, colours: list[str]) -> bytes:
    image = Image.fromarray(indices, mode="P")
    rgb, alpha = palette(colours)
    image.putpalette(rgb)
    out = io.BytesIO()
    image.save(out, format="PNG", transparency=alpha, optimize=False, compress_level=6)
    return out.getvalue()


# The two lru_caches here memoise pure functions of small arguments (a constant; a Transformer per
# CRS), not data: they stay functools.lru_cache.
@lru_cache(maxsize=1)
def transparent_tile() -> bytes:
    return encode_png(np.zeros((TILE_SIZE, TILE_SIZE), dtype=np.uint8), [])


@lru_cache(maxsize=32)
def from_web_mercator(srid: int) -> Transformer:
    return Transformer.from_crs(3857, srid, always_xy=True)


def tile_pixel_centres(z: int, x: int, y: int, size: int = TILE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Web Mercator coordinates of each pixel centre of tile z/x/y, rows from the top (north)."""
    left, _, right, top = grid.mercator_bounds(grid.Tile(x, y, z))
    step = (right - left) / size
    xs = left + (np.arange(size) + 0.5) * step
    ys = top - (np.arange(size) + 0.5) * step
    return np.meshgrid(xs, ys)


def pixel_centres_metric(z: int, x: int, y: int, srid: int, size: int = TILE_SIZE,
                         lattice: int = LATTICE) -> tuple[np.ndarray, np.ndarray]:
    """Metric coordinates of every pixel centre of the tile. Only a lattice of pixels is transformed
    exactly (a full tile through pyproj costs ~30 ms); the rest are interpolated bilinearly, which
    over one tile, where the mapping is nearly affine, is off by far less than a pixel."""
    left, _, right, top = grid.mercator_bounds(grid.Tile(x, y, z))
    at = (np.linspace(0, size - 1, lattice) + 0.5) * ((right - left) / size)  # lattice pixel centres
    lx, ly = from_web_mercator(srid).transform(*np.meshgrid(left + at, top - at))
    pos = np.arange(size) * (lattice - 1) / (size - 1)  # each pixel's place on the lattice
    rows, cols = np.meshgrid(pos, pos, indexing="ij")
    return (map_coordinates(lx, [rows, cols], order=1, mode="nearest"),
            map_coordinates(ly, [rows, cols], order=1, mode="nearest"))


def tile_bounds_metric(z: int, x: int, y: int, srid: int) -> tuple[float, float, float, float]:
    """The tile's bounding box in the metric CRS (from points along its edges)."""
    left, _, right, top = grid.mercator_bounds(grid.Tile(x, y, z))
    span = right - left
    t = np.linspace(0, 1, 9)
    ex = np.concatenate([left + t * span, np.full(9, left + span), left + t * span, np.full(9, left)])
    ey = np.concatenate([np.full(9, top), top - t * span, np.full(9, top - span), top - t * span])
    mx, my = from_web_mercator(srid).transform(ex, ey)
    return float(np.min(mx)), float(np.min(my)), float(np.max(mx)), float(np.max(my))


def sample(surface: Surface, z: int, x: int, y: int, size: int = TILE_SIZE) -> np.ndarray | None:
    """The surface's density at each pixel centre of the tile (rows north to south), or None when
    the tile misses the surface altogether."""
    ny, nx = surface.density.shape
    if nx == 0 or ny == 0:
        return None
    minx, miny, maxx, maxy = tile_bounds_metric(z, x, y, surface.srid)
    if (maxx < surface.x0 or maxy < surface.y0 or minx > surface.x0 + nx * surface.cell_m
            or miny > surface.y0 + ny * surface.cell_m):
        return None
    px, py = pixel_centres_metric(z, x, y, surface.srid, size)
    # Fractional grid coordinates: cell (i, j)'s value sits at its centre.
    col = (px - surface.x0) / surface.cell_m - 0.5
    row = (py - surface.y0) / surface.cell_m - 0.5
    return map_coordinates(surface.density, [row, col], order=1, mode="constant", cval=0.0)


def render_tile(surface: Surface, z: int, x: int, y: int) -> bytes:
    """A transparent PNG tile of the surface, coloured by its classes."""
    values = sample(surface, z, x, y)
    if values is None or not surface.breaks:
        return transparent_tile()
    indices = classify(values, surface.breaks)
    if not indices.any():
        return transparent_tile()
    return encode_png(indices, surface.colours)
