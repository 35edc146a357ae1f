"""Tile ETags and the in-process tile cache.

An ETag names everything a tile depends on: layer, z/x/y, filters, partnership, role, the
catalog's fingerprint, the caller's sharing access (partnership, role, agency) and the data versions of the layer's tables for that partnership. Because
the data version is in the key, every worker's cache is right without any shared state: a change
in the database changes the key, and stale entries simply age out of the LRU.
"""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.catalog import Layer
from app.tiles.sql import versions_sql

DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # a few dense high-zoom tiles must not exhaust memory


def etag(*parts: object, versions: Iterable[str]) -> str:
    """A strong ETag: a hash of the parts and of the (sorted) 'table=version' strings."""
    raw = "|".join(str(p) for p in parts) + "|" + ",".join(sorted(versions))
    return '"' + hashlib.sha256(raw.encode()).hexdigest()[:32] + '"'


def fill_versions(found: Iterable[str], tables: Iterable[str]) -> list[str]:
    """Tables with no row yet have never changed: version 0. Versions of other partnerships
    ('7:incident=42', a shared layer seen by a hub agency) are kept as they are."""
    seen = {v.split("=", 1)[0]: v for v in found}
    tables = list(tables)
    others = sorted(v for k, v in seen.items() if k not in tables)
    return [seen.get(t, f"{t}=0") for t in tables] + others


async def current_versions(session: AsyncSession, layer: Layer, principal: Any) -> list[str]:
    """The data versions a layer's tiles depend on for this caller (one cheap lookup)."""
    found = (await session.execute(text(versions_sql(layer)), {
        "p": principal.partnership_id, "agency": principal.agency_id,
        "tables": list(layer.versioned_by)})).scalar_one()
    return fill_versions(found, layer.versioned_by)


def matches(if_none_match: str | None, tag: str) -> bool:
    """If-None-Match uses the weak comparison (RFC 9110 13.1.2): W/ prefixes are ignored."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == tag:
            return True
    return False


class TileCache:
    """A bounded LRU of tile bytes keyed by ETag, limited by entries and by total bytes."""

    def __init__(self, max_entries: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_entries = max(0, max_entries)
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> bytes | None:
        tile = self._items.get(key)
        if tile is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return tile

    def put(self, key: str, tile: bytes) -> None:
        if self.max_entries == 0 or len(tile) > self.max_bytes // 4:
            return  # one huge tile must not flush everything else
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._items[key] = tile
        self._bytes += len(tile)
        while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
