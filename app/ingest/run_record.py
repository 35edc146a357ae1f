"""Liveness of import_run rows: a run is 'running' only while a process holds it.

The importing process inserts its run row on a connection of its own (autocommit, apart from the
data transaction) and, in the same transaction as the insert, takes the session-level advisory lock
(LOCK_NAMESPACE, run id). The lock lives exactly as long as that connection: a killed process loses
its connection and so its lock, with no chance to write anything. Readers therefore judge a
'running' row by pg_locks: no holder means the run was interrupted.

SIGINT/SIGTERM are turned into task cancellation by the CLI (app.cli); the import then drops the data
connection (the server rolls its transaction back) and marks the run 'cancelled' on the run
connection, which is idle and healthy.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from app.db import raw_connection
from app.settings import Settings

# First key of the two-int4 advisory lock; the second is import_run.id. Any constant of our own.
LOCK_NAMESPACE = 0x5AFE
RUN_LOCK = f"SELECT pg_advisory_lock({LOCK_NAMESPACE}, $1)"
RUN_UNLOCK = f"SELECT pg_advisory_unlock({LOCK_NAMESPACE}, $1)"
# Cheap heartbeat: how far the run got, and when it was last known alive.
RUN_PROGRESS = "UPDATE import_run SET rows_total = $2, progress_at = now() WHERE id = $1 AND status = 'running'"
RUN_CANCELLED = """
    UPDATE import_run SET status = 'cancelled', rows_total = $2, rows_loaded = 0, rows_rejected = $3,
           message = $4, finished_at = now()
    WHERE id = $1 AND status = 'running'
"""
# A run's lock is held (pg_locks shows granted advisory locks of every session; the database
# matters because run ids of different databases on one server collide).
LOCK_HELD = f"""
    EXISTS (SELECT 1 FROM pg_locks l
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.classid = {LOCK_NAMESPACE} AND l.objid::bigint = {{run}})
"""
INTERRUPTED_MESSAGE = ("interrupted: the importing process ended without finishing (killed, or its "
                       "database connection was lost) after {rows} rows; nothing of this file was loaded")
# Run at the start of every import. The pg_locks test is read after the row snapshot; a run that
# finished in between was updated meanwhile, so the status recheck of UPDATE skips it.
MARK_INTERRUPTED = f"""
    UPDATE import_run r SET status = 'interrupted', finished_at = COALESCE(r.progress_at, r.started_at),
           message = replace($1, '{{rows}}', to_char(r.rows_total, 'FM999,999,999,990'))
    WHERE r.status = 'running' AND NOT {LOCK_HELD.format(run='r.id')}
"""
# For GET /api/imports (read-only): which of these 'running' runs nobody holds.
UNHELD_RUNS = f"""
    SELECT r.id FROM import_run r
    WHERE r.id = ANY(:ids) AND r.status = 'running' AND NOT {LOCK_HELD.format(run='r.id')}
"""
# Re-read after the lock check: a run still 'running' now but unheld at the check never finished.
RUNS_STILL_RUNNING = "SELECT * FROM import_run WHERE id = ANY(:ids)"


async def mark_interrupted(conn: asyncpg.Connection) -> int:
    """Mark every 'running' run that no process holds as interrupted; how many."""
    return int((await conn.execute(MARK_INTERRUPTED, INTERRUPTED_MESSAGE)).split()[-1])


class RunRecorder:
    """The run connection: inserts run rows holding their lock, heartbeats, finishes them."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def start(self, sql: str, *args: Any) -> int:
        """Insert a 'running' row with `sql` (RETURNING id) and hold its lock, in one transaction:
        no reader ever sees the row committed without its lock."""
        async with self.conn.transaction():
            run_id = await self.conn.fetchval(sql, *args)
            await self.conn.execute(RUN_LOCK, run_id)
        return run_id

    async def progress(self, run_id: int, rows: int) -> None:
        await self.conn.execute(RUN_PROGRESS, run_id, rows)

    async def finish(self, run_id: int, sql: str, *args: Any) -> None:
        """Write the outcome, then let go of the lock (in that order, so a run is never unheld
        while still 'running')."""
        await self.conn.execute(sql, run_id, *args)
        await self.conn.execute(RUN_UNLOCK, run_id)

    async def cancelled(self, run_id: int, rows: int, rejected: int, message: str) -> None:
        await self.finish(run_id, RUN_CANCELLED, rows, rejected, message)


@asynccontextmanager
async def run_recorder(settings: Settings) -> AsyncIterator[RunRecorder]:
    """A RunRecorder on its own connection, having first marked abandoned runs interrupted."""
    async with raw_connection(settings) as conn:
        await mark_interrupted(conn)
        yield RunRecorder(conn)


async def commit_through_cancel(tx: Any) -> asyncio.CancelledError | None:
    """COMMIT `tx` to its end even if the task is cancelled meanwhile; the cancellation, if one came.

    Once the load is done a signal must not leave the outcome unknown: cancelled mid-COMMIT, the
    server may already have committed, and a run recorded 'cancelled' would then lie. So the COMMIT
    always finishes, the caller records what really happened and then stops as it was told."""
    commit = asyncio.ensure_future(tx.commit())
    cancelled: asyncio.CancelledError | None = None
    while True:
        try:
            await asyncio.shield(commit)
            return cancelled
        except asyncio.CancelledError as e:
            if commit.done() and commit.cancelled():
                raise
            cancelled = cancelled or e  # a second signal changes nothing: wait for the COMMIT


def cancel_reason(e: BaseException) -> str:
    """'SIGINT' from CancelledError('SIGINT') (the CLI's signal handler), else a plain word."""
    return str(e.args[0]) if e.args and e.args[0] else "a cancellation"
