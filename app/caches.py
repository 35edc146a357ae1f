"""Bounded in-process caches, on cachetools.

Every cache here is keyed by something that names its content exactly (an ETag, a data version),
so a worker's cache is never stale, only cold: entries are dropped for room, never for
correctness. cachetools bounds a cache by one number; `Bounded` holds two (entries and bytes) by
charging each entry at least its share of the byte budget.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cachetools import LRUCache


class Bounded(LRUCache):
    """An LRU cache of at most `entries` entries and, when `weigh` is given, at most `max_bytes` of
    weight in all (an entry is charged max(weigh(value), max_bytes / entries), so both bounds hold)."""

    def __init__(self, entries: int, max_bytes: int | None = None,
                 weigh: Callable[[Any], int] | None = None) -> None:
        entries = max(0, entries)
        if weigh is None or max_bytes is None:
            super().__init__(maxsize=entries)
            return
        max_bytes = max(0, max_bytes)
        floor = max_bytes / entries if entries else 1.0
        super().__init__(maxsize=max_bytes if entries else 0,
                         getsizeof=lambda value: max(weigh(value), floor, 1))

    def put(self, key: Any, value: Any) -> bool:
        """Keep the value unless it alone is over the budget (then nothing is evicted for it)."""
        if self.getsizeof(value) > self.maxsize:
            return False
        self[key] = value
        return True
