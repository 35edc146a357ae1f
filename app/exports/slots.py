"""How many exports a process runs at once (SAFERMAP_EXPORT_CONCURRENCY): an export is heavy (a
GeoPackage of 1M rows takes ~20 s of a core here and one in PostgreSQL), so past the cap another is
refused at once, 503 with Retry-After, rather than queued behind the others until its client gives
up. A slot is held from the start of an export until its answer is sent, cut off or abandoned.

A plain counter: the event loop runs one request at a time between awaits, so taking and giving
back need no lock, and a refusal never waits."""
from __future__ import annotations

from typing import Any

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.errors import Busy

RETRY_AFTER_S = 5  # an export takes seconds to tens of seconds; asking again at once would only be refused


class Slot:
    def __init__(self, slots: ExportSlots) -> None:
        self._slots: ExportSlots | None = slots

    def release(self) -> None:
        """Give the slot back (once; later calls do nothing)."""
        if self._slots is not None:
            self._slots.free += 1
            self._slots = None

    def __del__(self) -> None:
        # An answer dropped without ever being sent (its request cancelled in between) must not
        # keep its slot for the life of the process.
        self.release()


class ExportSlots:
    def __init__(self, size: int) -> None:
        self.size = size
        self.free = size

    def take(self) -> Slot:
        """A slot, or Busy (503 with Retry-After) when all are taken."""
        if self.free <= 0:
            raise Busy(f"{self.size} export{'s are' if self.size != 1 else ' is'} already running here, the most "
                       "at once; try again in a few seconds.", RETRY_AFTER_S)
        self.free -= 1
        return Slot(self)


class SlotResponse(StreamingResponse):
    """A streamed answer that gives its export slot back once it is over, however it ends (sent,
    failed, or the client gone)."""

    def __init__(self, content: Any, slot: Slot, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()
