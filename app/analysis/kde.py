"""Kernel density surfaces of incidents: a quartic (biweight) kernel on a grid in the partnership's
metric CRS, computed on binned counts with one FFT convolution (never per pixel or per point).

    K(d) = 3 / (pi h^2) * (1 - d^2 / h^2)^2   for d < h, else 0

The kernel is integrated over each grid cell (by supersampling), so it carries each incident's
whole weight even when the bandwidth is only a few cells; a snapped point carrying thousands of
incidents is one large count in one bin. Density is in incidents per km^2.

Defaults follow the guidance UK crime analysts use (Chainey): the cell is the shorter side of
the study area's bounding rectangle divided by 150, the bandwidth five cells.
"""
from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import fftconvolve
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.analysis.hotspot_data import (
    DataContext,
    HotspotFilter,
    HotspotPrincipal,
    autocommits,
    data_context,
    load_bins,
    resolve_period,
    study_extent,
)
from app.analysis.raster_tiles import CLASS_METHODS, class_breaks, class_colours
from app.caches import Bounded
from app.domain_errors import InvalidValue

CELLS_ACROSS = 150        # Chainey: the shorter side of the study area / 150
BANDWIDTH_CELLS = 5       # bandwidth as a multiple of the cell size
MIN_CELL_M, MAX_CELL_M = 5.0, 5000.0
MAX_BANDWIDTH_CELLS = 100  # a wider kernel on the same grid: choose a larger cell
MAX_BANDWIDTH_M = 50_000.0
DEGENERATE_CELL_M = 50.0  # all incidents on one point: no extent to divide
# FFT round-off leaves values around 1e-16 of the peak where no kernel reaches; they must not count
# as "cells with any density" when classing.
ROUND_OFF = 1e-9


def nice(value: float) -> float:
    """Rounded to two significant figures, so a cell size can be read out in a meeting."""
    return float(f"{value:.2g}") if value > 0 else value


def default_cell_and_bandwidth(extent: tuple[float, float, float, float]) -> tuple[float, float]:
    """(cell_m, bandwidth_m) for a study extent in metres: shorter side / 150, and five cells."""
    minx, miny, maxx, maxy = extent
    shorter = min(maxx - minx, maxy - miny)
    cell = nice(shorter / CELLS_ACROSS) if shorter > 0 else DEGENERATE_CELL_M
    cell = min(max(cell, MIN_CELL_M), MAX_CELL_M)
    return cell, cell * BANDWIDTH_CELLS


def check_cell_and_bandwidth(cell_m: float, bandwidth_m: float) -> None:
    if not (math.isfinite(cell_m) and MIN_CELL_M <= cell_m <= MAX_CELL_M):
        raise InvalidValue(f"cell_m must be between {MIN_CELL_M:g} and {MAX_CELL_M:g} metres.")
    if not (math.isfinite(bandwidth_m) and cell_m <= bandwidth_m <= min(MAX_BANDWIDTH_M, cell_m * MAX_BANDWIDTH_CELLS)):
        raise InvalidValue(f"bandwidth_m must be at least the cell size ({cell_m:g} m) and at most "
                         f"{min(MAX_BANDWIDTH_M, cell_m * MAX_BANDWIDTH_CELLS):g} m "
                         f"({MAX_BANDWIDTH_CELLS} cells, {MAX_BANDWIDTH_M / 1000:g} km).")


# A memo of a pure function of two floats (the arrays are read-only, at most ~320 kB): it stays
# functools.lru_cache; the data caches below are keyed by data version.
@lru_cache(maxsize=64)
def quartic_kernel(cell_m: float, bandwidth_m: float) -> np.ndarray:
    """The share of one incident's weight that falls in each cell around it: the kernel averaged
    over each cell (midpoint rule on s x s sub-cells, finer when the kernel spans few cells),
    normalised so that the shares sum to exactly 1. Shape (2r + 1, 2r + 1), r = ceil(h / cell)."""
    h = bandwidth_m / cell_m  # in cells
    r = math.ceil(h)
    s = max(3, 2 * math.ceil(12 / h) + 1)  # sub-cells per cell side (odd: one sits at the centre)
    offsets = (np.arange(s) + 0.5) / s - 0.5
    axis = (np.arange(-r, r + 1)[:, None] + offsets[None, :]).ravel()  # sub-cell centres, in cells
    d2 = (axis[:, None] ** 2 + axis[None, :] ** 2) / (h * h)
    k = np.where(d2 < 1.0, (1.0 - d2) ** 2, 0.0)
    k = k.reshape(2 * r + 1, s, 2 * r + 1, s).sum(axis=(1, 3))
    k /= k.sum()
    k.setflags(write=False)
    return k


def quartic_kde(counts: np.ndarray, cell_m: float, bandwidth_m: float) -> np.ndarray:
    """Density (incidents per km^2) on the same grid as `counts` (incidents per cell). Weight that
    would fall beyond the grid is lost: pad the grid by the bandwidth to keep every incident."""
    if counts.size == 0 or not counts.any():
        return np.zeros(counts.shape, dtype=np.float64)
    spread = fftconvolve(counts, quartic_kernel(float(cell_m), float(bandwidth_m)), mode="same")
    spread[spread < ROUND_OFF * spread.max()] = 0.0
    return spread / (cell_m * cell_m / 1e6)


@dataclass
class Surface:
    srid: int
    x0: float                  # metric lower-left corner of cell [0, 0]
    y0: float
    cell_m: float
    bandwidth_m: float
    density: np.ndarray        # (ny, nx) incidents per km^2, row 0 southernmost
    method: str                # "stddev" | "quantile"
    breaks: list[float]        # lower bound of each class (density)
    colours: list[str]         # "#rrggbb", one per class
    labels: list[str]
    count: int                 # incidents placed on the surface
    unplaced: int              # counted but not placed (aggregate-level data, no location)
    period: HotspotFilter
    version_key: str
    all_exact: bool = True     # the caller sees every counted incident exactly
    sanitised: bool = False    # some placed incidents are at anonymous points, not where they were
    suppressed: bool = False   # too few incidents to show to this caller (sharing.suppress_below)

    @property
    def max_density(self) -> float:
        return float(self.density.max()) if self.density.size else 0.0

    def note(self) -> str:
        """What a reader must know about the data behind the map (legend, print)."""
        parts = []
        if self.suppressed:
            parts.append(f"Fewer than {sharing.suppress_below()} incidents: the surface is held back.")
        if self.sanitised:
            parts.append("Built partly from sanitised locations: incidents you may not see exactly are "
                         "placed at anonymous points (on or near a street), not where they happened.")
        if self.unplaced:
            parts.append(f"{self.unplaced:,} incidents are counted but not mapped (no location, or "
                         "shared with you as counts only).")
        return " ".join(parts)


@dataclass
class _Density:
    """The part of a surface that does not depend on the class method."""
    srid: int
    x0: float
    y0: float
    density: np.ndarray
    count: int
    unplaced: int
    all_exact: bool
    sanitised: bool
    version_key: str


# A county's surface is a few hundred kB; the largest allowed grid (4M cells) is 32 MB.
CACHE_BYTES = 256 * 1024 * 1024
_DENSITIES = Bounded(32, CACHE_BYTES, lambda d: d.density.nbytes)
_SURFACES = Bounded(64, CACHE_BYTES, lambda s: s.density.nbytes)
_LOCKS: dict[tuple, asyncio.Lock] = {}


def padded(extent: tuple[float, float, float, float], margin: float) -> tuple[float, float, float, float]:
    return extent[0] - margin, extent[1] - margin, extent[2] + margin, extent[3] + margin


async def hotspot_surface(session: AsyncSession, principal: HotspotPrincipal, flt: HotspotFilter,
                          cell_m: float | None = None, bandwidth_m: float | None = None,
                          classes: str = "stddev") -> Surface:
    """The density surface of the caller's incidents for a filter (its period resolved first),
    cached by parameters and data version. Concurrent requests for the same surface (a map asks
    for many tiles at once) wait for one computation instead of each starting their own."""
    if classes not in CLASS_METHODS:
        raise InvalidValue(f"classes must be one of {', '.join(CLASS_METHODS)}.")
    # The data context (CRS, data versions) read once, for the period, the extent and the bins.
    context = await data_context(session, principal)
    flt = await resolve_period(session, principal, flt, context)
    extent = await study_extent(session, principal, flt, context)
    if extent is None:
        cell, bandwidth = default_cell_and_bandwidth((0.0, 0.0, 0.0, 0.0))
    else:
        cell, bandwidth = default_cell_and_bandwidth(extent)
    if cell_m is not None:
        cell = float(cell_m)
        bandwidth = cell * BANDWIDTH_CELLS if bandwidth_m is None else bandwidth
    if bandwidth_m is not None:
        bandwidth = float(bandwidth_m)
    check_cell_and_bandwidth(cell, bandwidth)

    key = (context.version_key, flt.key(), cell, bandwidth)
    surface = _SURFACES.get((*key, classes))
    if surface is not None:
        return surface
    lock = _LOCKS.setdefault(key, asyncio.Lock())
    if lock.locked() and await autocommits(session):
        # Another request is computing this surface (a map asks for many tiles at once): wait for
        # it without holding a pooled connection, which the others in the queue need meanwhile. A
        # read session holds nothing else (each statement committed); the next statement, if any,
        # takes a connection again.
        await session.close()
    async with lock:
        dens = _DENSITIES.get(key)
        if dens is None:
            dens = await _density(session, principal, flt, extent, cell, bandwidth, context)
            _DENSITIES.put(key, dens)
            if dens.version_key != context.version_key:  # data changed meanwhile: file it as read
                _DENSITIES.put((dens.version_key, *key[1:]), dens)
    if not lock.locked():
        _LOCKS.pop(key, None)
    surface = _classed(dens, flt, cell, bandwidth, classes)
    _SURFACES.put((*key, classes), surface)
    return surface


async def _density(session: AsyncSession, principal: HotspotPrincipal, flt: HotspotFilter,
                   extent: tuple[float, float, float, float] | None, cell: float, bandwidth: float,
                   context: DataContext) -> _Density:
    if extent is None:
        return _Density(context.srid, 0.0, 0.0, np.zeros((0, 0)), 0, 0, True, False, context.version_key)
    # The grid reaches a bandwidth beyond the outermost incident, so no kernel is cut off.
    bins = await load_bins(session, principal, flt, cell, padded(extent, bandwidth + cell), linear=True,
                           context=context)
    density = quartic_kde(bins.counts, cell, bandwidth)
    return _Density(bins.srid, bins.x0, bins.y0, density, bins.total, bins.unplaced, bins.all_exact,
                    not bins.placed_exact, bins.version_key)


def _classed(dens: _Density, flt: HotspotFilter, cell: float, bandwidth: float, classes: str) -> Surface:
    density = dens.density
    suppressed = sharing.suppressed(dens.count, dens.all_exact)
    if suppressed:  # a blurred handful of incidents still points at them
        density = np.zeros_like(density)
    breaks, labels = class_breaks(density, classes)
    return Surface(srid=dens.srid, x0=dens.x0, y0=dens.y0, cell_m=cell, bandwidth_m=bandwidth, density=density,
                   method=classes, breaks=breaks, colours=class_colours(len(breaks)), labels=labels,
                   count=dens.count, unplaced=dens.unplaced, period=flt, version_key=dens.version_key,
                   all_exact=dens.all_exact, sanitised=dens.sanitised, suppressed=suppressed)
