"""Builds of the incident cells (app/sql/incident_cells.sql), off the answer's path.

A low-zoom incident tile is counted from the per-data-version aggregate when it is current for
every partnership the caller counts; when one is missing or older than its incidents (a new import,
a deletion), that tile is drawn from every point as before, and the rebuild is started here in the
background: one at a time per partnership and process (the database lets one build run per
partnership at all; another process asking meanwhile is told so at once and does not wait).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from functools import partial

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("safermap.tiles")

BUILD = text("SELECT safermap_build_incident_cells(:p)")


class CellBuilds:
    def __init__(self) -> None:
        self._running: dict[int, asyncio.Task[None]] = {}
        self.builds = 0  # finished builds (of this process), for tests and the bench

    def start(self, engine: AsyncEngine, partnerships: Iterable[int]) -> None:
        """Start a rebuild for each partnership that has none running in this process."""
        for p in partnerships:
            if p not in self._running:
                task = asyncio.get_running_loop().create_task(self._build(engine, p))
                self._running[p] = task
                task.add_done_callback(partial(self._done, p))

    def _done(self, partnership: int, _task: asyncio.Task[None]) -> None:
        self._running.pop(partnership, None)

    async def _build(self, engine: AsyncEngine, partnership: int) -> None:
        try:
            async with engine.connect() as conn:
                await conn.execute(BUILD, {"p": partnership})
                await conn.commit()
            self.builds += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the tiles are still right (drawn from every point); tried again next time
            log.warning("building the incident cells of partnership %s failed: %s", partnership, exc)

    async def settle(self) -> None:
        """Wait for the builds running now (tests; shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def close(self) -> None:
        """Stop the builds (their transactions roll back; the next tile asks again)."""
        for task in list(self._running.values()):
            task.cancel()
        await self.settle()
