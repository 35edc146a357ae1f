"""Coverage gaps and camera siting: how much crime working cameras cover, where the uncovered
clusters are, and where k new cameras would cover the most (app/analysis/gaps.py, siting.py)."""
from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from app import audit, sharing
from app.analysis.gaps import GapOptions, IncidentFilter, gap_report
from app.analysis.siting import SitingOptions, load_scene, report, search
from app.api.deps import CategoriesDep, Operator, PeriodDep, SessionDep, Viewer
from app.api.schemas import ApiModel, Geometry
from app.params import parse_bbox

router = APIRouter(prefix="/api/coverage", tags=["coverage"])

MAX_AREAS = 1000
MAX_CLUSTERS = 100
MAX_K = 20
PlannedQuery = Annotated[bool, Query(description="also count planned cameras as working")]


class Figures(ApiModel):
    """One group's counts; null when held back (below suppress_below, unless you see every one exactly)."""
    incidents: int | None
    no_location: int | None
    unknown_position: int | None = Field(description="counted but not placed: data you may only count")
    placed: int | None
    covered: int | None
    uncovered: int | None
    share_covered: float | None
    suppressed: bool


class CategoryFigures(Figures):
    category: str


class AreaFigures(Figures):
    code: str | None = Field(description="the LSOA code; null for data sets that carry none")
    name: str | None


class Areas(ApiModel):
    kind: Literal["lsoa"]
    note: str
    total_areas: int
    areas: list[AreaFigures]


class Streets(ApiModel):
    length_m: float
    covered_m: float
    share_covered: float | None


class Cluster(ApiModel):
    count: int
    lon: float
    lat: float
    radius_m: float
    top_category: str | None
    level: Literal["exact", "mixed", "sanitised"]


class Section(ApiModel):
    totals: Figures | None
    by_category: list[CategoryFigures]
    by_area: Areas
    streets: Streets
    clusters: list[Cluster] = Field(description="the densest clusters of uncovered incidents (DBSCAN)")


class CoverageFacts(ApiModel):
    operational_cameras: int
    planned_cameras: int
    faulty_cameras: int
    covered_area_m2: float
    planned_adds_m2: float


class GapReport(ApiModel):
    from_: str | None = Field(alias="from")
    to: str | None
    categories: list[str]
    coverage: CoverageFacts
    suppress_below: int
    current: Section
    with_planned: Section | None = Field(None, description="the same with planned cameras counted (planned=true)")


class Pick(ApiModel):
    rank: int
    lon: float
    lat: float
    bearing: float | None = Field(description="null for a dome (fov 360)")
    fov: float
    range_m: float
    gain: int | None = Field(description="incidents newly covered by this pick; null when held back")
    cumulative_covered: int | None
    share_after: float | None
    suppressed: bool
    coverage: Geometry | None


class SearchFacts(ApiModel):
    candidates: int
    evaluations: int
    line_of_sight: int = Field(description="visibility polygons computed")
    buildings: int
    milliseconds: float


class SitingReport(ApiModel):
    from_: str | None = Field(alias="from")
    to: str | None
    categories: list[str]
    k: int
    range_m: float
    fov: float
    spacing_m: float
    planned_counted: bool
    suppress_below: int
    placed: int | None
    covered_before: int | None
    uncovered_before: int | None
    share_before: float | None
    picks: list[Pick]
    exhausted: bool = Field(description="fewer than k picks: nothing more to cover")
    search: SearchFacts


def incident_filter(period: PeriodDep, categories: CategoriesDep) -> IncidentFilter:
    return IncidentFilter(period.start, period.end, categories)


IncidentFilterDep = Annotated[IncidentFilter, Depends(incident_filter)]


def period(flt: IncidentFilter) -> dict[str, Any]:
    def iso(d: date | None) -> str | None:
        return d.isoformat() if d else None
    return {"from": iso(flt.date_from), "to": iso(flt.date_to), "categories": list(flt.categories)}


@router.get("/gaps", summary="Share of incidents inside working camera coverage, and where the gaps are",
            response_model=GapReport, response_model_exclude_unset=True)
async def coverage_gaps(
    request: Request, session: SessionDep, principal: Viewer, flt: IncidentFilterDep,
    planned: PlannedQuery = False,
    eps_m: Annotated[float, Query(ge=5, le=500, description="cluster reach (DBSCAN eps), metres: incidents this "
                                                           "close join a cluster; larger values chain "
                                                           "dense city streets into one")] = 25,
    min_points: Annotated[int, Query(ge=2, le=1000, description="incidents that make a cluster core")] = 5,
    clusters: Annotated[int, Query(ge=0, le=MAX_CLUSTERS, description=f"how many clusters, at most {MAX_CLUSTERS}")] = 10,
    areas: Annotated[int, Query(ge=0, le=MAX_AREAS, description=f"how many areas, at most {MAX_AREAS}")] = 100,
) -> dict:
    """Of your partnership's incidents (months overlapping `from`..`to`, the categories given):
    how many lie inside the union of operational cameras' coverage, in total, by category and by
    area (the LSOA the incidents carry; no boundary table is loaded yet), the street length covered
    (metres, in the partnership's metric CRS) and the densest clusters of uncovered incidents
    (DBSCAN, `eps_m`, `min_points`). With `planned=true` the same figures are given again with
    planned cameras counted as working (`with_planned`), beside the current ones (`current`).

    Incidents are placed where your sharing level puts them: exactly, or at their anonymous point.
    Those you may only count (aggregate) have an `unknown_position`; those without a location are
    `no_location`. Counts below `suppress_below` are null (`suppressed: true`) unless you see every
    counted incident exactly."""
    opts = GapOptions(include_planned=planned, eps_m=eps_m, min_points=min_points,
                      max_clusters=clusters, max_areas=areas)
    body, exact = await gap_report(session, principal, flt, opts)
    if exact:  # cluster centres of exact positions may sit on one incident's place
        await audit.record(session, "view.exact", principal=principal, target="api/coverage/gaps",
                           detail={"query": str(request.url.query)},
                           ip=request.client.host if request.client else None)
        await session.commit()
    return {**period(flt), **body}


@router.get("/siting", summary="Where k new cameras would cover the most uncovered incidents",
            response_model=SitingReport)
async def coverage_siting(
    session: SessionDep, principal: Operator, flt: IncidentFilterDep,
    k: Annotated[int, Query(ge=1, le=MAX_K, description=f"how many cameras, 1..{MAX_K}")] = 5,
    range_m: Annotated[float, Query(gt=0, le=300, description="useful range of each new camera, metres")] = 30,
    fov: Annotated[float, Query(ge=10, le=360, description="field of view, degrees; 360 is a dome (a disc), "
                                                           "less is a wedge turned to the best bearing")] = 360,
    spacing_m: Annotated[float, Query(ge=5, le=500, description="candidate points every this many metres "
                                                                "along the streets")] = 25,
    planned: PlannedQuery = False,
    bbox: Annotated[str | None, Query(description="only incidents in minlon,minlat,maxlon,maxlat")] = None,
) -> dict:
    """Proposes `k` camera positions on your partnership's streets, each covering the most
    incidents that no working camera (and no earlier pick) covers, with line of sight past the
    buildings. Each pick gives its marginal `gain`, the `cumulative_covered` and the
    `share_after` it, and its coverage polygon. To see a pick's effect on the gap figures, add it
    as a camera with status `planned` (`POST /api/cameras`) and ask `GET /api/coverage/gaps?planned=true`.
    Greedy covering reaches at least 63% (1 - 1/e) of the best possible k positions."""
    box = parse_bbox(bbox)
    opts = SitingOptions(k=k, range_m=range_m, fov=fov, spacing_m=spacing_m, include_planned=planned,
                         bbox=(box.minlon, box.minlat, box.maxlon, box.maxlat) if box else None)
    scene = await load_scene(session, principal, flt, opts)
    result = await run_in_threadpool(search, scene, opts)  # CPU work off the event loop
    return {**period(flt), "k": k, "range_m": range_m, "fov": fov, "spacing_m": spacing_m,
            "planned_counted": planned, "suppress_below": sharing.suppress_below(),
            **report(scene, result, opts, sharing.suppress_below())}
