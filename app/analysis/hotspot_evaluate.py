"""Which hotspot method predicts best: train each method on some months, flag the top share of the
study area, and see how much of a later, held-out period falls inside.

Measures, for each method, on one common grid of evaluation cells:
- hit rate: the share of the test period's incidents inside the flagged cells;
- Prediction Accuracy Index (Chainey, Tompson & Uhlig 2008, "The utility of hotspot mapping for
  predicting spatial patterns of crime", Security Journal 21): hit rate / share of the area flagged;
  1 is no better than chance;
- Recapture Rate Index (Levine 2008, "The 'hottest' part of a hotspot: comments on 'The utility of
  hotspot mapping...'", Security Journal 21; as used by Fan & Leitner, "Using spatial and
  spatial-temporal predictive accuracy measures to assess the performance of crime hotspot mapping
  methods"): (test incidents in the flagged cells / training incidents in them) divided by
  (all test incidents / all training incidents); about 1 when the flagged area keeps its share.

Methods score each evaluation cell from the training period only:
- grid: the cell's training count;
- kde: the project's density surface of the training months (app.analysis.kde.hotspot_surface:
  quartic kernel, its default cell and bandwidth, the same surface the map shows), summed over
  the density cells whose centres fall in the evaluation cell;
- gistar: the Gi* z-score of the cell's training count (app.analysis.gistar).
The study area is the grid over the bounding box of all the partnership's mapped incidents; a
larger box gives every method a higher PAI, so compare methods within one run. Cells tied at the
cut-off are counted in proportion (the expected result of breaking the tie at random), so no
method gains from the order cells happen to be stored in.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from app.analysis.gistar import gi_star
from app.analysis.hotspot_cells import area_cell
from app.analysis.hotspot_data import HotspotFilter, HotspotPrincipal, load_bins, study_extent
from app.analysis.kde import hotspot_surface
from app.domain_errors import InvalidValue, NotEnoughData

METHODS = ("kde", "grid", "gistar")


@dataclass
class MethodResult:
    method: str
    cells: int               # evaluation cells flagged
    area_share: float        # flagged cells / all cells of the study area
    hit_rate: float          # test incidents in the flagged cells / all test incidents
    pai: float               # hit_rate / area_share
    rri: float | None        # (test in / train in) / (test total / train total); None if train in = 0
    captured_test: float     # test incidents in the flagged cells (fractional where tied)
    captured_train: float


@dataclass
class Evaluation:
    train: HotspotFilter
    test: HotspotFilter
    train_total: int
    test_total: int
    cell_m: float            # evaluation cell
    kde_cell_m: float        # the finer grid the density is computed on
    bandwidth_m: float
    cells: int               # evaluation cells in the study area
    area: float              # the share of the study area flagged
    results: list[MethodResult] = field(default_factory=list)


def resample(density: np.ndarray, d_x0: float, d_y0: float, d_cell: float,
             x0: float, y0: float, cell: float, shape: tuple[int, int]) -> np.ndarray:
    """Sum a fine density grid (lower-left corner d_x0, d_y0; cells of d_cell) into the cells of a
    coarser grid (x0, y0, cell, shape), each fine cell going to the coarse cell holding its centre.
    Fine cells outside the coarse grid are dropped."""
    out = np.zeros(shape, dtype=np.float64)
    if density.size == 0:
        return out
    ny, nx = density.shape
    cols = np.floor((d_x0 + (np.arange(nx) + 0.5) * d_cell - x0) / cell).astype(np.int64)
    rows = np.floor((d_y0 + (np.arange(ny) + 0.5) * d_cell - y0) / cell).astype(np.int64)
    keep_c = (cols >= 0) & (cols < shape[1])
    keep_r = (rows >= 0) & (rows < shape[0])
    sub = density[np.ix_(keep_r, keep_c)]
    # Sum columns then rows with np.add.at (unbuffered, so repeated indices add up).
    by_col = np.zeros((sub.shape[0], shape[1]))
    np.add.at(by_col, (slice(None), cols[keep_c]), sub)  # type: ignore[arg-type]  # numpy stubs reject tuple indices
    np.add.at(out, rows[keep_r], by_col)
    return out


def method_scores(method: str, train: np.ndarray, kde_score: np.ndarray | None) -> np.ndarray:
    """Each evaluation cell's training score under `method` (higher is hotter)."""
    if method == "kde":
        if kde_score is None:
            raise ValueError("the kde method needs the density resampled to the evaluation grid")
        return kde_score
    if method == "grid":
        return train
    if method == "gistar":
        return gi_star(train).z
    raise InvalidValue(f"Unknown method '{method}'; use one of {', '.join(METHODS)}.")


def flag_and_measure(method: str, scores: np.ndarray, train: np.ndarray, test: np.ndarray,
                     area: float) -> MethodResult:
    """Flag the top `area` share of cells by score and measure the test period against it."""
    s: np.ndarray
    s, tr, te = scores.ravel().astype(np.float64), train.ravel(), test.ravel()
    top = np.abs(s).max() if s.size else 0.0
    if top > 0:  # equal scores must compare equal, whatever the floating-point noise of a method
        s = np.round(s / top, 10)
    n_cells = s.size
    flagged = min(n_cells, max(1, round(area * n_cells)))
    cut = np.sort(s)[::-1][flagged - 1]
    above, tied = s > cut, s == cut
    share_of_tied = (flagged - above.sum()) / tied.sum()
    captured_test = te[above].sum() + share_of_tied * te[tied].sum()
    captured_train = tr[above].sum() + share_of_tied * tr[tied].sum()
    area_share = flagged / n_cells
    hit_rate = captured_test / te.sum() if te.sum() else 0.0
    rri = ((captured_test / captured_train) / (te.sum() / tr.sum())
           if captured_train > 0 and te.sum() > 0 else None)
    return MethodResult(method, int(flagged), float(area_share), float(hit_rate), float(hit_rate / area_share),
                        None if rri is None else float(rri), float(captured_test), float(captured_train))


def evaluate_arrays(train: np.ndarray, test: np.ndarray, kde_score: np.ndarray | None, methods: list[str],
                    area: float) -> list[MethodResult]:
    """Counts of the training and test periods on the evaluation grid, and the KDE's score there."""
    return [flag_and_measure(m, method_scores(m, train, kde_score), train, test, area) for m in methods]


def parse_area(value: str) -> float:
    """'5%' or '0.05' -> 0.05; the share must be above 0 and below 1."""
    text_value = value.strip()
    try:
        share = float(text_value[:-1]) / 100 if text_value.endswith("%") else float(text_value)
    except ValueError as e:
        raise InvalidValue(f"--area must be a percentage such as 5% (got '{value}').") from e
    if not (0 < share < 1):
        raise InvalidValue("--area must be more than 0% and less than 100% of the study area.")
    return share


def check_methods(methods: list[str]) -> list[str]:
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InvalidValue(f"Unknown method {', '.join(unknown)}; use {', '.join(METHODS)}.")
    return list(dict.fromkeys(methods)) or list(METHODS)


async def evaluate(session: AsyncSession, principal: HotspotPrincipal, train: HotspotFilter, test: HotspotFilter,
                   methods: list[str], area: float, cell_m: float | None = None,
                   bandwidth_m: float | None = None) -> Evaluation:
    """Train on `train`, test on `test`, for each method; counts come binned from the database."""
    methods = check_methods(methods)
    extent = await study_extent(session, principal, train)
    if extent is None:
        raise NotEnoughData("The partnership has no mapped incidents to evaluate on.")
    cell = area_cell(cell_m, extent)
    train_bins = await load_bins(session, principal, train, cell, extent)
    test_bins = await load_bins(session, principal, test, cell, extent)
    if train_bins.total == 0 or test_bins.total == 0:
        which = "training" if train_bins.total == 0 else "test"
        raise NotEnoughData(f"The {which} period has no mapped incidents.")
    surface = await hotspot_surface(session, principal, train, bandwidth_m=bandwidth_m)
    kde_score = resample(surface.density, surface.x0, surface.y0, surface.cell_m,
                         train_bins.x0, train_bins.y0, cell, train_bins.counts.shape)
    results = evaluate_arrays(train_bins.counts, test_bins.counts, kde_score, methods, area)
    return Evaluation(train, test, train_bins.total, test_bins.total, cell, surface.cell_m, surface.bandwidth_m,
                      train_bins.counts.size, area, results)
