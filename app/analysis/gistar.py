"""Significant hotspots: Getis-Ord Gi* on a grid of incident counts, corrected for multiple testing.

Gi* comes from PySAL (esda.G_Local with star=True) with binary queen-contiguity weights on the grid
(each cell with its eight neighbours and itself), so a cell is hot when it *and its surroundings*
hold more incidents than the study area's average, not merely when it is busy. With thousands of
cells tested at once, some would look significant by chance; the false discovery rate
(Benjamini-Hochberg, esda.fdr) keeps the expected share of false hot and cold spots under alpha.

p-values are two-sided, from the normal approximation (ArcGIS's Hot Spot Analysis does the same):
permutation p-values would cost thousands of passes over a county-sized grid for the same answer
at these sample sizes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import esda
import numpy as np
from libpysal.graph import Graph
from libpysal.weights import lat2SW, lat2W
from scipy import stats
from sqlalchemy.ext.asyncio import AsyncSession

from app import sharing
from app.analysis.hotspot_cells import area_grid, cell_ids, cell_polygons, period_json, shown
from app.analysis.hotspot_data import HotspotFilter, HotspotPrincipal, SmallCache, load_bins

# Confidence levels reported, highest first, with the FDR level each one means.
CONFIDENCE_LEVELS = ((99, 0.01), (95, 0.05), (90, 0.10))
ALPHAS = (0.01, 0.05, 0.10)
DEFAULT_ALPHA = 0.05


@dataclass
class GiStar:
    """Per cell, same shape as the counts (row 0 southernmost)."""
    z: np.ndarray            # Gi* z-score
    p: np.ndarray            # two-sided p-value
    q: np.ndarray            # Benjamini-Hochberg adjusted p-value (FDR)
    confidence: np.ndarray   # 99, 95, 90, or 0 when not significant at the chosen alpha
    alpha: float

    def hot(self) -> np.ndarray:
        return (self.confidence > 0) & (self.z > 0)

    def cold(self) -> np.ndarray:
        return (self.confidence > 0) & (self.z < 0)


def grid_weights(ny: int, nx: int) -> Graph:
    """Queen contiguity on an ny x nx lattice, in the row-major order of counts.ravel().
    libpysal's sparse lattice and Graph are ~20x faster than building a W dict cell by cell, but the
    sparse builder fails on grids one or two cells wide; those are small, so the W dict serves."""
    if nx < 3:
        return Graph.from_W(lat2W(ny, nx, rook=False))
    return Graph.from_sparse(lat2SW(ny, nx, criterion="queen"))


def gi_star(counts: np.ndarray, alpha: float = DEFAULT_ALPHA) -> GiStar:
    """Gi* of every cell of a 2-D count grid, with FDR-corrected confidence."""
    if alpha not in ALPHAS:
        raise ValueError(f"alpha must be one of {ALPHAS}")
    y = np.asarray(counts, dtype=np.float64)
    shape = y.shape
    flat = y.ravel()
    n = flat.size
    if n < 2 or np.ptp(flat) == 0:
        # No variation (an empty grid, or one cell): nothing can stand out.
        zeros = np.zeros(shape)
        return GiStar(zeros, np.ones(shape), np.ones(shape), np.zeros(shape, dtype=int), alpha)
    # A cell whose neighbourhood is the whole grid (tiny grids) has no variance: z is 0, not NaN.
    with np.errstate(invalid="ignore", divide="ignore"):
        g = esda.G_Local(flat, grid_weights(*shape), transform="B", star=True, permutations=0)
    z = np.nan_to_num(np.asarray(g.Zs, dtype=np.float64))
    p = np.clip(2 * stats.norm.sf(np.abs(z)), 0.0, 1.0)
    q = stats.false_discovery_control(p, method="bh")
    confidence = np.zeros(n, dtype=int)
    for level, level_alpha in reversed(CONFIDENCE_LEVELS):  # 90 first, overwritten by 95, 99
        if level_alpha <= alpha + 1e-12:
            confidence[p <= esda.fdr(p, level_alpha)] = level
    return GiStar(z.reshape(shape), p.reshape(shape), q.reshape(shape), confidence.reshape(shape), alpha)


def cell_class(z: float, confidence: int) -> str:
    if confidence and z > 0:
        return "hot"
    if confidence and z < 0:
        return "cold"
    return "not significant"


# -- the layer: Gi* of the caller's incidents on area cells, as GeoJSON -------------------------------
_RESULTS = SmallCache(64)
WEIGHTS_NOTE = "binary queen contiguity: each cell with its 8 neighbours and itself"
CORRECTION_NOTE = "Benjamini-Hochberg false discovery rate"


async def gistar_layer(session: AsyncSession, principal: HotspotPrincipal, flt: HotspotFilter,
                       cell_m: float | None = None, alpha: float = DEFAULT_ALPHA) -> dict[str, Any]:
    """Hot and cold spots of the period as a GeoJSON FeatureCollection of cells. Only cells with
    incidents or a significant result are listed (an empty, unremarkable cell says nothing);
    counts the caller may not see are null (suppressed)."""
    grid = await area_grid(session, principal, flt, cell_m)
    key = (grid.version_key, grid.flt.key(), grid.cell_m, alpha)
    cached = _RESULTS.get(key)
    if cached is not None:
        return cached
    body: dict[str, Any] = {"type": "FeatureCollection", "features": [], "period": period_json(grid.flt),
                            "cell_m": grid.cell_m, "alpha": alpha, "weights": WEIGHTS_NOTE,
                            "correction": CORRECTION_NOTE, "count": 0, "unplaced": 0,
                            "suppress_below": sharing.suppress_below()}
    if grid.extent is not None and grid.cell_m is not None:  # cell_m is None iff extent is
        bins = await load_bins(session, principal, grid.flt, grid.cell_m, grid.extent)
        gi = gi_star(bins.counts, alpha)
        iy, ix = np.nonzero((bins.counts > 0) | (gi.confidence > 0))
        ids, polygons = cell_ids(bins, iy, ix), cell_polygons(bins, iy, ix)
        features = []
        for k, (row, col) in enumerate(zip(iy, ix)):
            z, conf = float(gi.z[row, col]), int(gi.confidence[row, col])
            features.append({"type": "Feature", "id": ids[k], "geometry": polygons[k], "properties": {
                "id": ids[k], "count": shown(bins.counts[row, col], bins.all_exact),
                "z": round(z, 4), "p": float(f"{gi.p[row, col]:.4g}"), "q": float(f"{gi.q[row, col]:.4g}"),
                "class": cell_class(z, conf), "confidence": conf or None}})
        body.update(features=features, count=shown(bins.total, bins.all_exact),
                    unplaced=shown(bins.unplaced, bins.all_exact),
                    hot=int(gi.hot().sum()), cold=int(gi.cold().sum()), sanitised=not bins.all_exact)
    _RESULTS.put(key, body)
    return body
