"""Writes that no answer waits for: the audit of exact views from tiles and the tokens' "last used".

One task per process drains a queue: whatever is queued when it wakes is written in one transaction
(on one pooled connection), so a burst of tiles costs one round trip, not one each. A job that fails
is tried once more on its own (one bad job must not lose the others) and then logged; `submit` hands
back a future that says whether it was written. `close` (the app's shutdown) writes what is queued.
A request that queued writes waits for them after its answer has gone (`after_answer`, SettleWrites).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("safermap.writer")

Job = Callable[[AsyncConnection], Awaitable[None]]
CLOSE_WAIT_S = 30.0


class Writer:
    def __init__(self) -> None:
        self._engine: AsyncEngine | None = None
        self._queue: asyncio.Queue[tuple[Job, asyncio.Future[bool]]] | None = None
        self._task: asyncio.Task | None = None

    def start(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="safermap-writer")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def submit(self, job: Job) -> asyncio.Future[bool] | None:
        """Queue a job; None when the writer is not running (no app lifespan): nothing is written."""
        if self._queue is None or not self.running:
            return None
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((job, done))
        return done

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._queue is None or self._task is None:
            return
        if self.running:
            try:  # a database that does not answer must not hold the shutdown for ever
                await asyncio.wait_for(self._queue.join(), CLOSE_WAIT_S)
            except TimeoutError:
                log.error("shutting down with %d background writes unwritten", self._queue.qsize())
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._queue = self._task = None

    async def _run(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    queue.task_done()

    async def _write(self, batch: list[tuple[Job, asyncio.Future[bool]]]) -> None:
        assert self._engine is not None
        try:
            async with self._engine.begin() as conn:
                for job, _ in batch:
                    await job(conn)
        except (sa_exc.TimeoutError, OSError):  # no connection to be had: trying each alone would not help
            log.exception("background writes failed: no database connection")
            for _, done in batch:
                _settle(done, False)
            return
        except Exception:
            if len(batch) == 1:
                log.exception("a background write failed")
                _settle(batch[0][1], False)
                return
            for one in batch:  # one at a time, so one failing job does not lose the rest
                await self._write([one])
            return
        for _, done in batch:
            _settle(done, True)


def _settle(done: asyncio.Future[bool], ok: bool) -> None:
    if not done.done():
        done.set_result(ok)


async def settled(done: asyncio.Future[bool]) -> None:
    await asyncio.shield(done)


# -- a request's writes, waited for once it has been answered --------------------------------------
PENDING = "safermap.pending_writes"


def after_answer(scope: MutableMapping[str, Any], done: asyncio.Future[bool]) -> None:
    """Have the request (its ASGI scope) wait for `done` once its answer has gone (SettleWrites)."""
    scope.setdefault("state", {}).setdefault(PENDING, []).append(done)


class SettleWrites:
    """ASGI middleware: after the app has answered a request (whatever the answer, an error too),
    wait for the background writes the request queued. The client has its answer already; the
    request's own task ends only when they are written, so an in-process client (the tests') sees
    them, and nothing of a finished request is left in flight holding a lock. Over HTTP the next
    request on the same connection waits for it: at most once a minute per caller (see ExactViews
    and LiveState.touch)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.setdefault("state", {})
        try:
            await self.app(scope, receive, send)
        finally:
            for done in state.pop(PENDING, ()):
                await settled(done)
