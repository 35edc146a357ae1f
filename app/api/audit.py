"""The audit trail for administrators: filter it as JSON, download it as CSV, read it on a page.

Only the caller's partnership is shown. Downloading the trail is itself recorded.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import Field
from sqlalchemy import text

from app import audit, csv_cells
from app.api.deps import Admin, PeriodDep, SessionDep, SettingsDep
from app.api.schemas import ApiModel
from app.pages import audit as page
from app.params import Period

router = APIRouter(tags=["audit"])

MAX_LIMIT = 1_000
MAX_CSV_ROWS = 100_000
EVENTS = """
    SELECT id, at, principal_id, principal_name, action, target, detail, ip
    FROM audit_event
    WHERE partnership_id = :p
      AND (CAST(:since AS timestamptz) IS NULL OR at >= :since)
      AND (CAST(:until AS timestamptz) IS NULL OR at < :until)
      AND (CAST(:action AS text) IS NULL OR action = :action OR action LIKE :action_prefix)
      AND (CAST(:who AS text) IS NULL OR principal_name ILIKE :who_like)
      AND (CAST(:target AS text) IS NULL OR target = :target)
      AND (CAST(:before AS bigint) IS NULL OR id < :before)
    ORDER BY id DESC
    LIMIT :limit
"""
COLUMNS = ("id", "at", "principal_id", "principal_name", "action", "target", "detail", "ip")

ActionQuery = Annotated[str | None, Query(max_length=100, description="an action, or a prefix such as 'camera.'")]
WhoQuery = Annotated[str | None, Query(max_length=200, description="part of the person's name")]
TargetQuery = Annotated[str | None, Query(max_length=200, description="e.g. camera/12")]


class Event(ApiModel):
    id: int
    at: str = Field(description="ISO 8601")
    principal_id: int | None = Field(description="who acted; null for an anonymous attempt (a failed sign-in)")
    principal_name: str | None
    action: str
    target: str
    detail: dict[str, Any]
    ip: str | None


class EventList(ApiModel):
    events: list[Event]
    numberReturned: int


def _params(principal, period: Period, action, who, target, limit, before=None) -> dict:
    """The events' filters; the period's days are UTC days."""
    start, end = period.start, period.end
    like = lambda s: s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")  # noqa: E731
    return {
        "p": principal.partnership_id,
        "since": datetime.combine(start, time.min, UTC) if start else None,
        "until": datetime.combine(end, time.max, UTC) if end else None,
        "action": action or None, "action_prefix": like(action) + "%" if action and action.endswith(".") else None,
        "who": who or None, "who_like": f"%{like(who)}%" if who else None,
        "target": target or None, "before": before, "limit": limit,
    }


def _event(row) -> dict:
    return {"id": row.id, "at": row.at.isoformat(), "principal_id": row.principal_id,
            "principal_name": row.principal_name, "action": row.action, "target": row.target,
            "detail": row.detail, "ip": row.ip}


@router.get("/api/audit", summary="The audit trail, newest first", response_model=EventList)
async def list_events(session: SessionDep, principal: Admin, period: PeriodDep,
                      action: ActionQuery = None, who: WhoQuery = None, target: TargetQuery = None,
                      before: Annotated[int | None, Query(ge=1, le=2**62, description="events older than this id")] = None,
                      limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"at most {MAX_LIMIT}")] = 100) -> dict:
    """Sign-ins, exact views, exports, imports, camera changes and changes of users, rules and
    embeds in your partnership, `from`..`to` in UTC days. Page with `before` = the last id you got."""
    params = _params(principal, period, action, who, target, limit, before)
    rows = (await session.execute(text(EVENTS), params)).all()
    return {"events": [_event(r) for r in rows], "numberReturned": len(rows)}


@router.get("/api/audit.csv", summary="The audit trail as CSV (at most 100,000 events)", response_class=Response,
            responses={200: {"content": {"text/csv": {}}, "description": "One row an event, with a header row"}})
async def export_events(session: SessionDep, principal: Admin, period: PeriodDep,
                        action: ActionQuery = None, who: WhoQuery = None, target: TargetQuery = None) -> Response:
    params = _params(principal, period, action, who, target, MAX_CSV_ROWS)
    rows = (await session.execute(text(EVENTS), params)).all()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for r in rows:
        # names and targets can be anyone's text: defended against spreadsheet formulas (app.csv_cells)
        writer.writerow(csv_cells.row([r.id, r.at.isoformat(), r.principal_id, r.principal_name, r.action, r.target,
                                       json.dumps(r.detail, ensure_ascii=False), r.ip]))
    await audit.record(session, "audit.export", principal=principal, target="audit",
                       detail={"rows": len(rows), "filters": {k: params[k] for k in ("since", "until", "action", "who", "target")}})
    await session.commit()
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": 'attachment; filename="safermap-audit.csv"',
                             "Cache-Control": "no-store"})


@router.get("/admin/audit", summary="The audit trail page", response_class=HTMLResponse)
async def audit_page(request: Request, session: SessionDep, principal: Admin, settings: SettingsDep,
                     period: PeriodDep, action: ActionQuery = None,
                     who: WhoQuery = None, target: TargetQuery = None) -> HTMLResponse:
    params = _params(principal, period, action, who, target, 500)
    rows = (await session.execute(text(EVENTS), params)).all()
    query = request.query_params
    filters = {"from": query.get("from", ""), "to": query.get("to", ""), "action": action or "", "who": who or "",
               "target": target or ""}
    body = page.audit_html(settings.static_dir, events=[_event(r) for r in rows], filters=filters,
                           csv_query=str(request.url.query))
    return HTMLResponse(body, headers={"Cache-Control": "no-store", "Content-Security-Policy": page.CSP})
