"""Hotspot statistics on area cells: significant hot and cold spots (Gi*), change against an
earlier period, and the top hotspots list for a tasking meeting.

All three read incidents through the sharing function (via app.analysis.hotspot_data), only of the
caller's own partnership, and hold back counts below SAFERMAP_SUPPRESS_BELOW for anyone who does not
see every counted incident exactly. They return cells and counts, never an incident's position.
"""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import Field

from app.analysis.gistar import ALPHAS, DEFAULT_ALPHA, gistar_layer
from app.analysis.hotspot_cells import MAX_CELL_M, MIN_CELL_M
from app.analysis.hotspot_change import MAX_N, hotspot_change
from app.analysis.hotspot_top import top_hotspots
from app.api.deps import HotspotFilterDep, SessionDep, Viewer
from app.api.schemas import ApiModel, Period
from app.errors import BadRequest

router = APIRouter(prefix="/api/hotspots", tags=["hotspots"])

CellQuery = Annotated[float | None, Query(ge=MIN_CELL_M, le=MAX_CELL_M, description=(
    "area cell size in metres; default about 1/40 of the study area's shorter side, rounded"))]
CompareQuery = Annotated[str, Query(pattern="^(previous|last_year)$", description=(
    "'previous': the same length just before; 'last_year': the same period a year earlier"))]
CountQuery = Annotated[int, Query(ge=1, le=MAX_N, description=f"at most {MAX_N}")]


class CellGeometry(ApiModel):
    type: Literal["Polygon"]
    coordinates: list[list[list[float]]]


class GistarProperties(ApiModel):
    id: str = Field(description="the cell's id: its lower-left corner in the partnership's metric CRS")
    count: int | None = Field(description="null when held back")
    z: float = Field(description="Gi* z-score")
    p: float = Field(description="two-sided p-value")
    q: float = Field(description="p adjusted for the false discovery rate (Benjamini-Hochberg)")
    class_: Literal["hot", "cold", "not significant"] = Field(alias="class")
    confidence: Literal[90, 95, 99] | None


class GistarFeature(ApiModel):
    type: Literal["Feature"]
    id: str
    geometry: CellGeometry
    properties: GistarProperties


class GistarLayer(ApiModel):
    type: Literal["FeatureCollection"]
    features: list[GistarFeature]
    period: Period
    cell_m: float | None = Field(description="null when there are no mapped incidents to grid")
    alpha: float
    weights: str
    correction: str
    count: int | None = Field(description="incidents placed on the grid; null when held back")
    unplaced: int | None = Field(description="counted but not placed (no location, or counts only)")
    suppress_below: int
    hot: int | None = Field(None, description="significant hot cells (given when there is a grid)")
    cold: int | None = Field(None, description="significant cold cells (given when there is a grid)")
    sanitised: bool | None = Field(None, description="some incidents are at anonymous points")


class ChangeProperties(ApiModel):
    id: str
    current: int | None
    previous: int | None
    change: int | None
    change_pct: float | None = Field(description="null from a previous count of 0, or when held back")


class ChangeFeature(ApiModel):
    type: Literal["Feature"]
    id: str
    geometry: CellGeometry
    properties: ChangeProperties


class ChangeLayer(ApiModel):
    type: Literal["FeatureCollection"]
    features: list[ChangeFeature]


class ChangedArea(ChangeProperties):
    label: str = Field(description="the nearest street, or the cell")
    centroid: list[float] = Field(min_length=2, max_length=2, description="lon, lat")


class HotspotChange(ApiModel):
    period: Period
    previous_period: Period | None
    compare: Literal["previous", "last_year"]
    cell_m: float | None
    suppress_below: int
    areas: ChangeLayer
    rose: list[ChangedArea]
    fell: list[ChangedArea]
    count: int | None = None
    previous_count: int | None = None
    unplaced: int | None = None
    sanitised: bool | None = None


class TopCategory(ApiModel):
    category: str
    count: int | None


class TopArea(ApiModel):
    rank: int
    id: str
    label: str
    geometry: CellGeometry
    centroid: list[float] = Field(min_length=2, max_length=2, description="lon, lat")
    count: int | None
    previous_count: int | None
    change: int | None
    change_pct: float | None
    top_categories: list[TopCategory]
    cameras_inside: int = Field(description="operational cameras inside the cell")
    share_in_coverage: float | None = Field(description="share of the cell's mapped incidents inside an "
                                                        "operational camera's coverage")


class TopHotspots(ApiModel):
    period: Period
    previous_period: Period | None
    compare: Literal["previous", "last_year"]
    cell_m: float | None
    suppress_below: int
    areas: list[TopArea]
    count: int | None = None
    sanitised: bool | None = None


@router.get("/gistar", summary="Significant hot and cold spots (Getis-Ord Gi*, FDR-corrected)",
            response_model=GistarLayer, response_model_exclude_unset=True)
async def gistar(session: SessionDep, principal: Viewer, flt: HotspotFilterDep, cell_m: CellQuery = None,
                 alpha: Annotated[float, Query(description="false discovery rate: 0.01, 0.05 or 0.1")]
                 = DEFAULT_ALPHA) -> dict:
    """A GeoJSON FeatureCollection of square cells with `count`, `z` (Gi* z-score), `p` (two-sided),
    `q` (p adjusted for the false discovery rate, Benjamini-Hochberg), `class` ("hot", "cold",
    "not significant") and `confidence` (99, 95, 90 or null). A cell is significant when it stays
    so with the false discovery rate held at that level; `alpha` is the loosest level shown.
    Neighbourhood: each cell with its eight neighbours. Only cells with incidents or a
    significant result are listed."""
    if alpha not in ALPHAS:
        raise BadRequest("alpha must be 0.01, 0.05 or 0.1.")
    return await gistar_layer(session, principal, flt, cell_m, alpha)


@router.get("/change", summary="Change against the previous period, by area",
            response_model=HotspotChange, response_model_exclude_unset=True)
async def change(session: SessionDep, principal: Viewer, flt: HotspotFilterDep, cell_m: CellQuery = None,
                 compare: CompareQuery = "previous", n: CountQuery = 10) -> dict:
    """`areas`: a GeoJSON FeatureCollection of the cells with incidents in either period, with
    `current`, `previous`, `change` and `change_pct` (null from a previous count of 0); `rose` and
    `fell`: the `n` cells that rose and fell most, with a label and centroid."""
    return await hotspot_change(session, principal, flt, compare, cell_m, n)


@router.get("/top", summary="The top hotspots of the period, for a tasking meeting",
            response_model=TopHotspots, response_model_exclude_unset=True)
async def top(session: SessionDep, principal: Viewer, flt: HotspotFilterDep, cell_m: CellQuery = None,
              compare: CompareQuery = "previous", n: CountQuery = 10) -> dict:
    """The `n` cells with most incidents: rank, id, label (the nearest street), outline, centroid,
    count, previous_count, change, top categories, operational cameras inside, and the share of the
    cell's mapped incidents inside an operational camera's coverage."""
    return await top_hotspots(session, principal, flt, n, compare, cell_m)
