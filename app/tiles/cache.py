"""Tile ETags and the in-process tile cache.

An ETag names everything a tile depends on: its kind, z/x/y, filters, the catalog's fingerprint,
the caller's sharing access (partnership, role, agency, level cap) and the data versions of the
tables it is drawn from. Because the data version is in the key, every worker's cache is right
without any shared state: a change in the database changes the key, and stale entries simply age
out of the LRU.

The versions themselves come from each process's memory (app/live_state.py, kept exact by
LISTEN/NOTIFY), so a cached tile or a 304 reads nothing from the database; the SQL here is the
fallback while that memory cannot be trusted.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.caches import Bounded
from app.catalog import Layer
from app.tiles.sql import versions_sql


@dataclass(frozen=True)
class Body:
    """A drawn tile (or any answer named by an ETag): its bytes, ETag and media type. `exact`: it
    holds exact incident locations, so even a cached copy is audited when served."""
    data: bytes
    etag: str
    media_type: str
    exact: bool = False


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


class VersionSource(Protocol):
    """Data versions held in memory (app.live_state.LiveState): the same strings the versions SQL
    returns, or None when the memory cannot be trusted right now (then the database is asked)."""

    async def versions(self, partnership_id: int, tables: Iterable[str], agency_id: int | None,
                       shared: bool) -> list[str] | None: ...


async def current_versions(session: AsyncSession, layer: Layer, principal: Any,
                           live: VersionSource | None = None) -> list[str]:
    """The data versions a layer's tiles depend on for this caller: from memory when it is exact,
    else one cheap lookup."""
    if live is not None:
        held = await live.versions(principal.partnership_id, layer.versioned_by, principal.agency_id,
                                   shared=layer.shared)
        if held is not None:
            return fill_versions(held, layer.versioned_by)
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
    """Tiles by ETag, at most `max_entries` of them and `max_bytes` of tile data in all
    (SAFERMAP_TILE_CACHE_ENTRIES, SAFERMAP_TILE_CACHE_BYTES); 0 entries turns it off. A tile over a
    quarter of the byte budget is not kept: one huge tile must not flush everything else."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._lru = Bounded(max_entries, max_bytes, lambda tile: len(tile.data))
        self.hits = 0
        self.misses = 0

    def get(self, tag: str) -> Body | None:
        tile = self._lru.get(tag)
        if tile is None:
            self.misses += 1
        else:
            self.hits += 1
        return tile

    def peek(self, tag: str) -> Body | None:
        """Like get, but a miss is not counted (the caller will ask `get` again on its way to drawing)."""
        tile = self._lru.get(tag)
        if tile is not None:
            self.hits += 1
        return tile

    def put(self, tile: Body) -> None:
        if len(tile.data) <= self.max_bytes // 4:
            self._lru.put(tile.etag, tile)

    @property
    def bytes(self) -> int:
        """Tile bytes held (entries smaller than their share of the budget are charged that share)."""
        return sum(len(t.data) for t in self._lru.values())

    def __len__(self) -> int:
        return len(self._lru)

    def clear(self) -> None:
        self._lru.clear()
