"""Incidents as GeoJSON, the categories present, and the record of imports.

Every query reads incidents through the sharing function (app/sharing.py, migration 0006): it
scopes to what the caller may see, at the level the rules give (exact, or an anonymous point).
Rows the caller may only count (aggregate) are never listed; counts that include anything not seen
exactly hide groups smaller than SAFERMAP_SUPPRESS_BELOW. Incidents are dated by month (police.uk
gives no day), so a month matches a period when it overlaps it.
"""
from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app import audit, sharing
from app.api.deps import Analyst, CategoriesDep, PeriodDep, SessionDep, Viewer
from app.api.schemas import ApiModel
from app.ingest import run_record
from app.ingest.police_uk_parse import CATEGORIES, slugify
from app.params import date_literal, parse_bbox

router = APIRouter(tags=["incidents"])

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1_000
# numberMatched is counted exactly up to this many; beyond it, only when asked (count=exact).
COUNT_CAP = 100_000
MAX_IMPORTS_LIMIT = 500

VISIBLE = f"safermap_visible_incidents{sharing.FUNCTION_ARGS} AS i"
INCIDENT_SELECT = f"""
    SELECT i.id, ST_X(i.geom) AS lon, ST_Y(i.geom) AS lat, i.category, i.month_label AS month,
           i.location_text, i.lsoa_code, i.lsoa_name, i.outcome, i.external_ref, i.dataset, i.level
    FROM {VISIBLE}
"""
# Only mapped incidents (with a location) that may be shown one by one are in the collection;
# the count agrees with that.
BASE_WHERE = "i.geom IS NOT NULL AND i.level IN ('sanitised', 'exact')"
COUNT_CAPPED = f"SELECT count(*) FROM (SELECT 1 FROM {VISIBLE} WHERE {{where}} LIMIT :cap) AS m"
COUNT_EXACT = f"SELECT count(*) FROM {VISIBLE} WHERE {{where}}"
CATEGORY_COUNTS = f"""
    SELECT i.category, count(*) AS count, count(i.geom) AS mapped, bool_and(i.level = 'exact') AS exact
    FROM {VISIBLE} WHERE true {{period}}
    GROUP BY i.category ORDER BY count(*) DESC, i.category
"""


class IncidentProperties(ApiModel):
    category: str
    month: str = Field(description="YYYY-MM: police.uk dates incidents by month")
    location_text: str | None
    lsoa_code: str | None
    lsoa_name: str | None
    outcome: str | None
    external_ref: str | None
    dataset: str = Field(description="the data set's key")
    level: Literal["exact", "sanitised"] = Field(description="exact, or moved to an anonymous point")


class IncidentGeometry(ApiModel):
    type: Literal["Point"]
    coordinates: list[float] = Field(min_length=2, max_length=2)


class IncidentFeature(ApiModel):
    type: Literal["Feature"]
    id: int
    geometry: IncidentGeometry
    properties: IncidentProperties


class Link(ApiModel):
    rel: str
    href: str
    type: str


class IncidentCollection(ApiModel):
    type: Literal["FeatureCollection"]
    features: list[IncidentFeature]
    numberMatched: int | None = Field(None, description="left out when over 100,000 unless count=exact")
    numberMatchedAtLeast: int | None = Field(None, description="given instead of numberMatched when that is left out")
    numberReturned: int
    links: list[Link]
    next: str | None = Field(None, description="the next page, when there is one")


class CategoryCount(ApiModel):
    name: str
    slug: str
    count: int | None = Field(description="null when held back (below suppress_below)")
    mapped: int | None = Field(description="of these, with a location; null when held back")
    suppressed: bool
    police_uk: bool


class CategoryName(ApiModel):
    name: str
    slug: str


class CategoryList(ApiModel):
    categories: list[CategoryCount]
    suppress_below: int
    police_uk_categories: list[CategoryName]


class ImportRunOut(ApiModel):
    id: int
    kind: str
    file: str
    checksum: str | None
    status: Literal["running", "loaded", "failed", "refused", "cancelled", "interrupted"]
    rows_total: int
    rows_loaded: int
    rows_rejected: int
    rejects: list[dict[str, Any]] = Field(description="rejected rows with their line numbers (at most 1,000)")
    message: str
    started_at: str
    finished_at: str | None


class ImportList(ApiModel):
    imports: list[ImportRunOut]
    limit: int
    offset: int


IMPORT_RUNS = """
    SELECT id, kind, file, checksum, status, rows_total, rows_loaded, rows_rejected, rejects, message,
           started_at, finished_at
    FROM import_run WHERE partnership_id = :p
    ORDER BY id DESC LIMIT :limit OFFSET :offset
"""


def _feature(row) -> dict:
    props = {k: row._mapping[k] for k in ("category", "month", "location_text", "lsoa_code", "lsoa_name",
                                           "outcome", "external_ref", "dataset", "level")}
    return {"type": "Feature", "id": row.id,
            "geometry": {"type": "Point", "coordinates": [row.lon, row.lat]}, "properties": props}


@router.get("/api/incidents", summary="Mapped incidents as a GeoJSON FeatureCollection",
            response_model=IncidentCollection, response_model_exclude_unset=True)
async def list_incidents(
    request: Request, session: SessionDep, principal: Viewer,
    period: PeriodDep, categories: CategoriesDep,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (WGS84)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"at most {MAX_LIMIT}")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    after: Annotated[int | None, Query(description="keyset paging: incidents with id above this "
                                                   "(the `next` link uses it)")] = None,
    count: Annotated[str, Query(pattern="^(capped|exact)$",
                                description=f"'capped' counts up to {COUNT_CAP:,}; 'exact' always counts")] = "capped",
) -> dict:
    """Incidents of your partnership that have a location, ordered by id.

    Incidents with no location ("No location" in police.uk) are stored but are not in this map
    collection, and not in `numberMatched`; `GET /api/categories` counts them. Months match when
    they overlap `from`..`to`. `numberMatched` is exact when this page holds everything or the
    matches number at most 100,000; beyond that it is left out unless `count=exact` is given
    (counting millions on every page is slow), and `numberMatchedAtLeast` says so. Follow the
    `next` link (keyset paging, stable under inserts) for the following page.
    """
    where, params = [BASE_WHERE], sharing.access_params(principal)
    box = parse_bbox(bbox)
    if box:
        where.append("i.geom && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326)")
        params.update(x0=box.minlon, y0=box.minlat, x1=box.maxlon, y1=box.maxlat)
    if (first := period.first_month) is not None:  # literals: a plan for these dates (date_literal)
        where.append(f"i.month >= {date_literal(first)}")
    if period.end:
        where.append(f"i.month <= {date_literal(period.end)}")
    if categories:
        where.append("i.category = ANY(:categories)")
        params["categories"] = list(categories)
    filters = " AND ".join(where)
    page_where = filters + (" AND i.id > :after" if after is not None else "")
    rows = (await session.execute(
        text(f"{INCIDENT_SELECT} WHERE {page_where} ORDER BY i.id LIMIT :lim OFFSET :offset"),
        {**params, "after": after, "lim": limit + 1, "offset": offset})).all()
    more = len(rows) > limit
    rows = rows[:limit]
    body: dict = {"type": "FeatureCollection", "features": [_feature(r) for r in rows]}
    if not more and after is None and (rows or offset == 0):
        matched: int | None = offset + len(rows)  # this page is the end: no count query needed
    else:
        matched = await _count(session, filters, params, count)
    if matched is None:
        body["numberMatchedAtLeast"] = COUNT_CAP + 1
    else:
        body["numberMatched"] = matched
    body["numberReturned"] = len(rows)
    if any(r.level == "exact" for r in rows):
        await audit_exact_view(session, principal, request, box, len(rows))
    body["links"] = []
    if more:
        nxt = str(request.url.remove_query_params("offset").include_query_params(after=rows[-1].id, limit=limit))
        body["links"].append({"rel": "next", "href": nxt, "type": "application/geo+json"})
        body["next"] = nxt
    return body


async def audit_exact_view(session, principal, request: Request, box, returned: int, *,
                           target: str = "api/incidents", layer: str = "incidents") -> None:
    """Who saw exact incident locations, through which query, over which area (also for /ogc):
    one event a page, queued to the background writer so that the page does not wait for its
    commit (in the request's own transaction when no writer runs)."""
    area = [box.minlon, box.minlat, box.maxlon, box.maxlat] if box else None
    detail = {"layer": layer, "query": str(request.url.query), "bbox": area, "returned": returned}
    ip = request.client.host if request.client else None
    if audit.record_after_answer(request.app.state.writer, request.scope, "view.exact", principal=principal,
                                 target=target, detail=detail, ip=ip):
        return
    await audit.record(session, "view.exact", principal=principal, target=target, detail=detail, ip=ip)
    await session.commit()


async def _count(session, filters: str, params: dict, mode: str) -> int | None:
    """The number of matches, or None when over COUNT_CAP and an exact count was not asked for."""
    if mode == "exact":
        return (await session.execute(text(COUNT_EXACT.format(where=filters)), params)).scalar_one()
    n = (await session.execute(text(COUNT_CAPPED.format(where=filters)), {**params, "cap": COUNT_CAP + 1})).scalar_one()
    return n if n <= COUNT_CAP else None


@router.get("/api/categories", summary="Incident categories present, with counts", response_model=CategoryList)
async def list_categories(
    session: SessionDep, principal: Viewer, period: PeriodDep,
) -> dict:
    """The categories of the incidents you may see with their counts (`mapped`: those with a
    location), most frequent first, and the 14 police.uk crime types with their slugs.

    A count that includes incidents you do not see exactly is held back when it is below the
    suppression threshold (`suppress_below`, 5 by default): it is null, with `suppressed: true`."""
    within, params = "", sharing.access_params(principal)
    if (first := period.first_month) is not None:  # as literals (app.params.date_literal)
        within += f" AND i.month >= {date_literal(first)}"
    if period.end:
        within += f" AND i.month <= {date_literal(period.end)}"
    rows = (await session.execute(text(CATEGORY_COUNTS.format(period=within)), params)).all()
    k = sharing.suppress_below()
    categories = []
    for r in rows:
        total: int = r._mapping["count"]  # `r.count` reads as tuple.count to type checkers
        count = None if sharing.suppressed(total, r.exact, k) else total
        mapped = None if count is None or sharing.suppressed(r.mapped, r.exact, k) else r.mapped
        categories.append({"name": r.category, "slug": slugify(r.category), "count": count, "mapped": mapped,
                           "suppressed": count is None or mapped is None,
                           "police_uk": r.category in CATEGORIES})
    return {
        "categories": categories,
        "suppress_below": k,
        "police_uk_categories": [{"name": c, "slug": slugify(c)} for c in CATEGORIES],
    }


async def _judge_running(session: AsyncSession, rows: Sequence[Any]) -> Sequence[Any]:
    """Rows, with each 'running' run that no process holds shown as interrupted (read-only: the next
    import marks it so in the table)."""
    running = [r.id for r in rows if r.status == "running"]
    if not running:
        return rows
    unheld = (await session.execute(text(run_record.UNHELD_RUNS), {"ids": running})).scalars().all()
    if not unheld:
        return rows
    # Read again after the lock check: a run that finished meanwhile shows how it finished.
    fresh = {r.id: r for r in (await session.execute(text(run_record.RUNS_STILL_RUNNING),
                                                      {"ids": list(unheld)})).all()}
    out = []
    for r in rows:
        f = fresh.get(r.id)
        if f is None:
            out.append(r)
        elif f.status != "running":
            out.append(f)
        else:
            out.append(SimpleNamespace(
                **{**f._asdict(), "status": "interrupted", "finished_at": f.progress_at or f.started_at,
                   "message": run_record.INTERRUPTED_MESSAGE.format(rows=f"{f.rows_total:,}")}))
    return out


@router.get("/api/imports", summary="Import runs, newest first", response_model=ImportList)
async def list_imports(
    session: SessionDep, principal: Analyst,
    limit: Annotated[int, Query(ge=1, le=MAX_IMPORTS_LIMIT, description=f"at most {MAX_IMPORTS_LIMIT}")] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> dict:
    """Your partnership's imports: status (running, loaded, failed, refused, cancelled, interrupted),
    counts, and the rejected rows with their line numbers (at most 1,000 listed per run;
    `rows_rejected` counts all). A run is 'running' only while an importing process holds it; one
    whose process died is shown 'interrupted', with `rows_total` as far as it got."""
    rows = (await session.execute(text(IMPORT_RUNS),
                                  {"p": principal.partnership_id, "limit": limit, "offset": offset})).all()
    rows = await _judge_running(session, rows)
    return {"imports": [{
        "id": r.id, "kind": r.kind, "file": r.file, "checksum": r.checksum, "status": r.status,
        "rows_total": r.rows_total, "rows_loaded": r.rows_loaded, "rows_rejected": r.rows_rejected,
        "rejects": r.rejects, "message": r.message, "started_at": r.started_at.isoformat(),
        "finished_at": r.finished_at.isoformat() if r.finished_at else None,
    } for r in rows], "limit": limit, "offset": offset}
