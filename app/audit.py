"""The audit trail: one append-only row per sensitive action (sign-ins, exact views, exports,
imports, camera changes, changes of users, rules and embeds). The app's database role can only
INSERT and SELECT it (migration 0004).

Most events are written in the transaction of the change they describe. Views of exact incident
locations are the exception (`ExactViews` for tiles, `record_after_answer` for pages of incidents
from /api/incidents and /ogc): the answer does not wait for them; the background writer
(app/writer.py) records them within moments, the request ends only once they are written, and on
shutdown the writer writes what is queued before it stops."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from app.auth import Principal
from app.writer import Writer, after_answer

INSERT_EVENT = text("""
    INSERT INTO audit_event (partnership_id, principal_id, principal_name, action, target, detail, ip)
    VALUES (:partnership_id, :principal_id, :principal_name, :action, :target, CAST(:detail AS jsonb), :ip)
""")


async def record(session: AsyncSession, action: str, *, principal: Principal | None = None,
                 partnership_id: int | None = None, target: str = "", detail: dict[str, Any] | None = None,
                 ip: str | None = None) -> None:
    """Add an event in the caller's transaction: it commits (or rolls back) with the change it
    describes, so the trail never claims a change that did not happen."""
    await session.execute(INSERT_EVENT, _event(action, principal, partnership_id, target, detail, ip))


def _event(action: str, principal: Principal | None, partnership_id: int | None, target: str,
           detail: dict[str, Any] | None, ip: str | None) -> dict[str, Any]:
    """INSERT_EVENT's parameters."""
    return {"partnership_id": principal.partnership_id if principal else partnership_id,
            "principal_id": principal.id if principal else None,
            "principal_name": principal.name if principal else None,
            "action": action, "target": target, "detail": json.dumps(detail or {}, default=str), "ip": ip}


def record_after_answer(writer: Writer, scope: MutableMapping[str, Any], action: str, *, principal: Principal,
                        target: str = "", detail: dict[str, Any] | None = None, ip: str | None = None) -> bool:
    """Queue an event of a read to the background writer: written in the writer's next batch, and
    waited for once the answer has gone (app.writer.after_answer), so the reader's answer does not
    wait for the audit's commit. False (nothing queued) when the writer is not running; the caller
    then records it in its own transaction."""
    params = _event(action, principal, None, target, detail, ip)

    async def job(conn: AsyncConnection) -> None:
        await conn.execute(INSERT_EVENT, params)
    done = writer.submit(job)
    if done is None:
        return False
    after_answer(scope, done)
    return True


INSERT_EVENT_ASYNCPG = """
    INSERT INTO audit_event (partnership_id, principal_id, principal_name, action, target, detail)
    VALUES ($1, $2, $3, $4, $5, $6::jsonb)
"""


async def record_raw(conn, action: str, *, partnership_id: int, target: str = "",
                     detail: dict[str, Any] | None = None, principal_name: str | None = None) -> None:
    """The same for the CLI's plain asyncpg connections (imports)."""
    await conn.execute(INSERT_EVENT_ASYNCPG, partnership_id, None, principal_name, action, target,
                       json.dumps(detail or {}, default=str))


# -- exact views, written off the answer's path -------------------------------------------------------

# One statement: record the view unless the caller already has one for this target in the last
# minute (in any worker), and say how old the newest one is (0 when this one was added).
RECORD_EXACT_VIEW = text("""
    WITH recent AS (
        SELECT max(at) AS at FROM audit_event
        WHERE action = 'view.exact' AND principal_id = :principal_id AND target = :target
          AND at > now() - interval '1 minute'
    ), added AS (
        INSERT INTO audit_event (partnership_id, principal_id, principal_name, action, target, detail, ip)
        SELECT :partnership_id, :principal_id, :principal_name, 'view.exact', :target, CAST(:detail AS jsonb), :ip
        FROM recent WHERE recent.at IS NULL
        RETURNING at
    )
    SELECT CAST(GREATEST(0, COALESCE(EXTRACT(EPOCH FROM now() - (SELECT at FROM recent)), 0)) AS float8)
""")


class ExactViews:
    """Who looked at exact incident locations: one 'view.exact' per caller and target a minute, as
    strict as before (checked in the database, so every worker agrees), but queued to the background
    writer instead of written before the answer. A worker that has just seen the newest event keeps
    quiet until that event is a minute old, so a map panning through tiles queues nothing more."""

    WINDOW_S = 60.0

    def __init__(self, writer: Writer, generation: Callable[[], int] = lambda: 0, max_keys: int = 50_000) -> None:
        self.writer = writer
        # The live state's generation (app/live_state.py): when it moves (principals truncated, the
        # listener lost), what this worker remembers of the trail is checked in the database again.
        self.generation = generation
        self.max_keys = max_keys
        self._quiet_until: dict[tuple[int, str], tuple[float, int]] = {}
        self._pending: set[tuple[int, str]] = set()

    @property
    def running(self) -> bool:
        return self.writer.running

    def seen(self, principal: Principal, target: str, detail: dict[str, Any],
             ip: str | None) -> asyncio.Future[bool] | None:
        """Queue the view unless it is known to be recorded; the future says when it was written."""
        key = (principal.id, target)
        generation = self.generation()
        until, known_in = self._quiet_until.get(key, (0.0, generation))
        if key in self._pending or (until > time.monotonic() and known_in == generation):
            return None
        params = {"partnership_id": principal.partnership_id, "principal_id": principal.id,
                  "principal_name": principal.name, "target": target,
                  "detail": json.dumps(detail, default=str), "ip": ip}
        age: list[float] = []

        async def job(conn: AsyncConnection) -> None:
            age.append(float((await conn.execute(RECORD_EXACT_VIEW, params)).scalar_one()))

        done = self.writer.submit(job)
        if done is None:
            return None
        self._pending.add(key)

        def written(fut: asyncio.Future[bool]) -> None:
            self._pending.discard(key)
            if not fut.cancelled() and fut.result() and age:  # recorded (now or by someone within the minute): quiet till it ages
                if len(self._quiet_until) >= self.max_keys:
                    self._prune()
                self._quiet_until[key] = (time.monotonic() + max(0.0, self.WINDOW_S - age[0]), generation)

        done.add_done_callback(written)
        return done

    def _prune(self) -> None:
        now = time.monotonic()
        for key in [k for k, (until, _) in self._quiet_until.items() if until <= now]:
            del self._quiet_until[key]
        while len(self._quiet_until) >= self.max_keys:
            del self._quiet_until[next(iter(self._quiet_until))]
