"""The next page's rows, read while the client is still busy with this one.

A client paging a collection (GDAL's OAPIF driver, QGIS, OWSLib following `next`) asks for page
n+1 only after it has parsed page n, so the client, this process and PostgreSQL would take turns:
a million incidents through GDAL cost the sum of the three. Once a client has followed a `next`
link (it pages: a single-page client never costs a second read), the rows of the page after the
one being answered are read in the background, on a session of their own, while this page travels
and is parsed. The request for that page takes them when nothing they depend on has changed since:
the same caller and access, the same selection and cursor, and the layer's data versions (incidents,
data sets, sharing rules, sensitive categories, anonymous points: what the sharing function reads)
still those read before the background read began. Otherwise they are dropped and read again.

Only rows are kept. The answer (links, numberReturned, the audit of exact views) is made by the
request that takes them, exactly as for a page read on the spot. Memory is bounded: a few pages
per process, each dropped after TTL_S or once taken.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("safermap.ogc")

MAX_KEPT = 16        # pages held per process (each at most MAX_LIMIT + 1 rows)
MAX_RUNNING = 2      # background reads at once per process: never more than a pager's worth of load
TTL_S = 30.0         # a page not asked for by then is dropped (its client stopped paging)


@dataclass
class _Ahead:
    task: asyncio.Task[list[Any]]
    versions: tuple[str, ...]
    made: float


class Prefetcher:
    """Background reads of next pages, keyed by everything the rows depend on."""

    def __init__(self) -> None:
        self._kept: OrderedDict[Hashable, _Ahead] = OrderedDict()
        self._running = 0

    def start(self, key: Hashable, versions: list[str], read: Callable[[], Coroutine[Any, Any, list[Any]]]) -> None:
        """Read the rows for `key` in the background (unless too many reads run already)."""
        if self._running >= MAX_RUNNING or key in self._kept:
            return
        self._expire()
        while len(self._kept) >= MAX_KEPT:
            _, old = self._kept.popitem(last=False)
            old.task.cancel()
        self._running += 1
        task: asyncio.Task[list[Any]] = asyncio.get_running_loop().create_task(read(), name="safermap-ogc-ahead")
        task.add_done_callback(self._done)
        self._kept[key] = _Ahead(task, tuple(versions), time.monotonic())

    async def take(self, key: Hashable, versions: list[str]) -> list[Any] | None:
        """The rows read ahead for `key`, if they are still valid for these data versions; None:
        read them now. Taken rows are forgotten (a repeated request reads again)."""
        ahead = self._kept.pop(key, None)
        if ahead is None:
            return None
        if ahead.versions != tuple(versions) or time.monotonic() - ahead.made > TTL_S:
            ahead.task.cancel()
            return None
        try:
            return await ahead.task
        except asyncio.CancelledError:
            if asyncio.current_task() is not None and asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise  # this request itself is being cancelled
            return None
        except Exception:  # the read ahead failed (a dropped connection): read again, and say so
            log.warning("an OGC page read ahead failed; reading it again", exc_info=True)
            return None

    async def settle(self) -> None:
        """Wait until every background read started so far has finished (tests, shutdown)."""
        running = [a.task for a in self._kept.values() if not a.task.done()]
        if running:
            await asyncio.wait(running)

    async def close(self) -> None:
        kept = [a.task for a in self._kept.values()]
        self._kept.clear()
        for task in kept:
            task.cancel()
        for task in kept:
            try:
                await task
            except BaseException:  # noqa: BLE001 - cancelled or failed: nobody waits for it any more
                pass

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._running -= 1
        if not task.cancelled() and task.exception() is not None:  # marks it retrieved: no warning at exit
            log.debug("an OGC page read ahead failed: %r", task.exception())

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, a in self._kept.items() if now - a.made > TTL_S]:
            self._kept.pop(key).task.cancel()
