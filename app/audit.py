"""The audit trail: one append-only row per sensitive action (sign-ins, exact views, exports,
imports, camera changes, changes of users, rules and embeds). The app's database role can only
INSERT and SELECT it (migration 0004)."""
from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import Principal

INSERT_EVENT = text("""
    INSERT INTO audit_event (partnership_id, principal_id, principal_name, action, target, detail, ip)
    VALUES (:partnership_id, :principal_id, :principal_name, :action, :target, CAST(:detail AS jsonb), :ip)
""")


async def record(session: AsyncSession, action: str, *, principal: Principal | None = None,
                 partnership_id: int | None = None, target: str = "", detail: dict[str, Any] | None = None,
                 ip: str | None = None) -> None:
    """Add an event in the caller's transaction: it commits (or rolls back) with the change it
    describes, so the trail never claims a change that did not happen."""
    await session.execute(INSERT_EVENT, {
        "partnership_id": principal.partnership_id if principal else partnership_id,
        "principal_id": principal.id if principal else None,
        "principal_name": principal.name if principal else None,
        "action": action, "target": target, "detail": json.dumps(detail or {}, default=str), "ip": ip,
    })


INSERT_EVENT_ASYNCPG = """
    INSERT INTO audit_event (partnership_id, principal_id, principal_name, action, target, detail)
    VALUES ($1, $2, $3, $4, $5, $6::jsonb)
"""


async def record_raw(conn, action: str, *, partnership_id: int, target: str = "",
                     detail: dict[str, Any] | None = None, principal_name: str | None = None) -> None:
    """The same for the CLI's plain asyncpg connections (imports)."""
    await conn.execute(INSERT_EVENT_ASYNCPG, partnership_id, None, principal_name, action, target,
                       json.dumps(detail or {}, default=str))
